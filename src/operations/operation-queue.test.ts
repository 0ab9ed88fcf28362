import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { forEachStoreKind, testDatabaseFactories, withTestDatabase } from "../../test/test-databases.js";
import { operationStoreFactory } from "./operation-store.js";
import type { TOperationRequest } from "./operation-types.js";
import { operationWorkerFactory } from "./operation-worker.js";

const request = (overrides: Partial<TOperationRequest> = {}): TOperationRequest => ({
  organization: "northwind-health",
  environment: "prod",
  target: "cluster/northwind-health/dedicated-prod",
  kind: "backup",
  requestedBy: "alice",
  deadlineSeconds: 600,
  ...overrides,
});

const failOnError = (error: unknown) => {
  throw error;
};

forEachStoreKind((kind, create) => {
  describe(`operation queue (${kind})`, () => {
    it("claims an operation once, holds its target until it ends, and records its end", async () => {
      await withTestDatabase(create, async (db) => {
        const store = operationStoreFactory(db);
        const first = (await store.enqueue(request())).operation;
        const second = (await store.enqueue(request({ kind: "verify" }))).operation;
        const staging = (
          await store.enqueue(request({ environment: "staging", target: "cluster/northwind-health/shared" }))
        ).operation;
        assert.equal(first.state, "pending");

        const claimed = await store.claim("worker-a", 30);
        assert.equal(claimed?.id, first.id);
        assert.equal(claimed?.state, "running");
        assert.equal(claimed?.leaseOwner, "worker-a");
        // prod's cluster is held: the next claim passes over prod's verify to staging's backup.
        assert.equal((await store.claim("worker-b", 30))?.id, staging.id);
        assert.equal(await store.claim("worker-b", 30), undefined);

        // Only the holder of the lease may move the operation.
        assert.equal(await store.addStep(first.id, "worker-b", { step: "backup", detail: "x", at: "now" }), false);
        assert.equal(await store.finish(first.id, "worker-b", { state: "succeeded" }), undefined);
        assert.equal(await store.addStep(first.id, "worker-a", { step: "backup", detail: "full", at: "now" }), true);
        const ended = await store.finish(first.id, "worker-a", { state: "succeeded", result: { label: "F1" } });
        assert.equal(ended?.state, "succeeded");
        assert.deepEqual(ended?.result, { label: "F1" });
        assert.deepEqual(
          ended?.steps.map((step) => step.detail),
          ["full"],
        );
        assert.equal((await store.claim("worker-b", 30))?.id, second.id);
      });
    });

    it("keeps one open operation per dedupe key, and a new one once it ended", async () => {
      await withTestDatabase(create, async (db) => {
        const store = operationStoreFactory(db);
        const queued = await store.enqueue(request({ dedupeKey: "schedule:backup:northwind-health/prod" }));
        const again = await store.enqueue(request({ dedupeKey: "schedule:backup:northwind-health/prod" }));
        assert.equal(queued.created, true);
        assert.equal(again.created, false);
        assert.equal(again.operation.id, queued.operation.id);
        const claimed = await store.claim("worker-a", 30);
        assert.equal(
          (await store.enqueue(request({ dedupeKey: "schedule:backup:northwind-health/prod" }))).created,
          false,
          "a running operation holds its key too",
        );
        await store.finish(claimed!.id, "worker-a", { state: "failed", error: "repository unreachable" });
        const next = await store.enqueue(request({ dedupeKey: "schedule:backup:northwind-health/prod" }));
        assert.equal(next.created, true);
        assert.notEqual(next.operation.id, queued.operation.id);
      });
    });

    it("does not claim a scheduled operation before its time", async () => {
      await withTestDatabase(create, async (db) => {
        const store = operationStoreFactory(db);
        const later = await store.enqueue(request({ kind: "apply", notBefore: new Date(Date.now() + 3_600_000) }));
        assert.equal(later.operation.state, "scheduled");
        assert.equal(await store.claim("worker-a", 30), undefined);
        await db.query("UPDATE operations SET not_before = now() - interval '1 second' WHERE id = $1", [
          later.operation.id,
        ]);
        assert.equal((await store.claim("worker-a", 30))?.id, later.operation.id);
      });
    });

    it("cancels a queued operation at once and stops a running one through its signal", async () => {
      await withTestDatabase(create, async (db) => {
        const store = operationStoreFactory(db);
        const queued = (await store.enqueue(request({ target: "cluster/a" }))).operation;
        assert.equal((await store.requestCancel(queued.id))?.state, "cancelled");
        assert.equal(await store.claim("worker-a", 30), undefined);

        const running = (await store.enqueue(request({ target: "cluster/b" }))).operation;
        let sawAbort = false;
        const worker = operationWorkerFactory({
          store,
          leaseSeconds: 0.3,
          onError: failOnError,
          handlers: {
            backup: async ({ signal }) => {
              await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
              sawAbort = true;
              throw signal.reason as Error;
            },
          },
        });
        await worker.poll();
        assert.deepEqual(worker.runningIds(), [running.id]);
        assert.equal((await store.requestCancel(running.id))?.cancelRequested, true);
        await worker.idle();
        assert.equal(sawAbort, true);
        const ended = await store.get(running.id);
        assert.equal(ended?.state, "cancelled");
        assert.match(ended?.error ?? "", /cancelled while running/);
      });
    });

    it("records work that finished past its deadline as succeeded, with the lateness noted, never as failed", async () => {
      await withTestDatabase(create, async (db) => {
        const store = operationStoreFactory(db);
        const slow = (await store.enqueue(request({ deadlineSeconds: 1 }))).operation;
        const worker = operationWorkerFactory({
          store,
          onError: failOnError,
          handlers: {
            // A backup that does not stop for its signal: when it returns, the backup exists.
            backup: async () => {
              await sleep(1300);
              return { label: "F1" };
            },
          },
        });
        await worker.poll();
        await worker.idle();
        const ended = await store.get(slow.id);
        assert.equal(ended?.state, "succeeded");
        assert.deepEqual(ended?.result, { label: "F1" });
        assert.equal(ended?.error, "finished after its deadline of 1 s");
      });
    });

    it("fails an operation that passes its deadline, and a hung one does not hold up another target", async () => {
      await withTestDatabase(create, async (db) => {
        const store = operationStoreFactory(db);
        const hung = (await store.enqueue(request({ deadlineSeconds: 1 }))).operation;
        const staging = (
          await store.enqueue(request({ environment: "staging", target: "cluster/northwind-health/shared" }))
        ).operation;
        const ranStaging: number[] = [];
        const worker = operationWorkerFactory({
          store,
          onError: failOnError,
          handlers: {
            backup: async ({ operation, signal, step }) => {
              if (operation.id === staging.id) {
                await step("backup", "full");
                ranStaging.push(Date.now());
                return { label: "F1" };
              }
              await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
              throw signal.reason as Error;
            },
          },
        });
        const started = Date.now();
        await worker.poll();
        await worker.idle();
        assert.equal(ranStaging.length, 1);
        assert.ok(ranStaging[0]! - started < 900, "staging's backup ran while prod's hung");
        assert.equal((await store.get(staging.id))?.state, "succeeded");
        const failed = await store.get(hung.id);
        assert.equal(failed?.state, "failed");
        assert.match(failed?.error ?? "", /deadline of 1 s passed/);
      });
    });
  });
});

describe("operation queue on one PostgreSQL shared by replicas", () => {
  it("runs each of 200 operations exactly once across two replicas, never two of one target at a time", async () => {
    await withTestDatabase(testDatabaseFactories.postgres, async (_db, database) => {
      const replicas = await Promise.all([database.open(), database.open()]);
      const enqueuer = operationStoreFactory(replicas[0]!);
      for (let index = 0; index < 200; index += 1)
        await enqueuer.enqueue(request({ target: `cluster/t${index % 10}`, params: { index } }));
      const runs = new Map<number, string[]>();
      const busy = new Set<string>();
      const overlaps: string[] = [];
      const workers = replicas.map((db, replica) =>
        operationWorkerFactory({
          store: operationStoreFactory(db),
          workerId: `replica-${replica}`,
          concurrency: 3,
          pollMs: 5,
          onError: failOnError,
          handlers: {
            backup: async ({ operation }) => {
              if (busy.has(operation.target)) overlaps.push(operation.target);
              busy.add(operation.target);
              runs.set(operation.id, [...(runs.get(operation.id) ?? []), `replica-${replica}`]);
              await sleep(Math.random() * 5);
              busy.delete(operation.target);
            },
          },
        }),
      );
      for (const worker of workers) worker.start();
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const open = await enqueuer.list({ states: ["pending", "running"], limit: 1 });
        if (open.length === 0) break;
        await sleep(50);
      }
      await Promise.all(workers.map((worker) => worker.stop(5000)));
      assert.equal(runs.size, 200);
      assert.deepEqual(
        [...runs.entries()].filter(([, by]) => by.length !== 1),
        [],
        "no operation ran twice",
      );
      assert.deepEqual(overlaps, []);
      const byReplica = new Set([...runs.values()].flat());
      assert.equal(byReplica.size, 2, "both replicas claimed work");
      const states = await enqueuer.list({ limit: 500 });
      assert.ok(states.every((operation) => operation.state === "succeeded"));
    });
  });

  it("repairs an operation whose replica was killed with SIGKILL: its lease runs out, another marks it interrupted", async () => {
    await withTestDatabase(testDatabaseFactories.postgres, async (db, database) => {
      const store = operationStoreFactory(db);
      const operation = (await store.enqueue(request())).operation;
      const url = (database.config as { url: string }).url;
      const child = spawn(process.execPath, ["--import", "tsx", "test/operation-worker-child.ts", url], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      try {
        const lines = createInterface({ input: child.stdout! });
        const [line] = (await once(lines, "line")) as [string];
        assert.equal(line, `claimed ${operation.id}`);
        child.kill("SIGKILL");
        await once(child, "exit");
      } finally {
        child.kill("SIGKILL");
      }
      const interrupted: number[] = [];
      const survivor = operationWorkerFactory({
        store,
        workerId: "survivor",
        onError: failOnError,
        onInterrupted: (found) => {
          interrupted.push(found.id);
        },
        handlers: { backup: async () => undefined },
      });
      // The child held a 2 s lease; the survivor's passes find nothing to repair until it runs out.
      assert.equal((await store.get(operation.id))?.state, "running");
      const deadline = Date.now() + 10_000;
      while (interrupted.length === 0 && Date.now() < deadline) {
        await survivor.poll();
        await sleep(200);
      }
      assert.deepEqual(interrupted, [operation.id]);
      const repaired = await store.get(operation.id);
      assert.equal(repaired?.state, "interrupted");
      assert.match(repaired?.error ?? "", /child-replica stopped renewing its lease/);
      // The cluster is free again: the next operation of the target is claimed.
      const next = (await store.enqueue(request())).operation;
      assert.equal((await store.claim("survivor", 30))?.id, next.id);
    });
  });
});
