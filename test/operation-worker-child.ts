// A replica in its own process for the operation tests: it opens the queue's database, runs one
// worker whose handlers hang until killed, and prints "claimed <id>" once it holds an operation.
import { operationStoreFactory } from "../src/operations/operation-store.js";
import { operationWorkerFactory } from "../src/operations/operation-worker.js";
import { openStore } from "../src/store/store-open.js";

const url = process.argv[2];
if (url === undefined) throw new Error("usage: operation-worker-child.ts <postgres url>");
const db = await openStore({ kind: "postgres", url, poolSize: 2 });
const hang = async ({ operation }: { operation: { id: number } }) => {
  process.stdout.write(`claimed ${operation.id}\n`);
  await new Promise(() => undefined);
};
const worker = operationWorkerFactory({
  store: operationStoreFactory(db),
  handlers: { backup: hang },
  workerId: "child-replica",
  leaseSeconds: 2,
  pollMs: 100,
  onError: (error) => process.stderr.write(`${String(error)}\n`),
});
worker.start();
