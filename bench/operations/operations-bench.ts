// bench/operations: 1,000 operations over 50 clusters, claimed and run by two replicas (two
// connection pools) on one PostgreSQL, side by side with the queue a platform engineer would write
// by hand (one table, one UPDATE … FOR UPDATE SKIP LOCKED, no lease, no per-cluster exclusion).
// Prints duplicates (must be 0), claim latency p50/p99, total time and the ratio.
//
// Run: npx tsx bench/operations/operations-bench.ts
import { randomBytes } from "node:crypto";
import pg from "pg";
import { operationStoreFactory } from "../../src/operations/operation-store.js";
import { operationWorkerFactory } from "../../src/operations/operation-worker.js";
import { openStore } from "../../src/store/store-open.js";

const ADMIN_URL = process.env.CAREHOST_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const OPERATIONS = 1000;
const TARGETS = 50;
const CONCURRENCY = 4;

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
};
const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;

const withDatabase = async <T>(fn: (url: string) => Promise<T>): Promise<T> => {
  const name = `carehost_bench_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  try {
    return await fn(url.toString());
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
};

type TFigures = { totalMs: number; duplicates: number; claimP50: number; claimP99: number; overlaps: number };

/** One queue's figures: how long, how many ran more than once, claim latency, two of one cluster at once. */
const figuresOf = (totalMs: number, claims: number[], runs: Map<number, number>, overlaps: number): TFigures => ({
  totalMs,
  duplicates: [...runs.values()].filter((count) => count > 1).length,
  claimP50: percentile(claims, 50),
  claimP99: percentile(claims, 99),
  overlaps,
});

const carehostQueue = (): Promise<TFigures> =>
  withDatabase(async (url) => {
    const replicas = await Promise.all(
      [0, 1].map(() => openStore({ kind: "postgres", url, poolSize: CONCURRENCY + 2 })),
    );
    const enqueuer = operationStoreFactory(replicas[0]!);
    for (let index = 0; index < OPERATIONS; index += 1)
      await enqueuer.enqueue({
        organization: "bench",
        environment: `env-${index % TARGETS}`,
        target: `cluster/bench/t${index % TARGETS}`,
        kind: "backup",
        requestedBy: "bench",
        deadlineSeconds: 600,
      });
    const claims: number[] = [];
    const runs = new Map<number, number>();
    const busy = new Set<string>();
    let overlaps = 0;
    const started = process.hrtime.bigint();
    const workers = replicas.map((db, replica) => {
      const store = operationStoreFactory(db);
      const timed: typeof store = {
        ...store,
        claim: async (...args) => {
          const start = process.hrtime.bigint();
          const claimed = await store.claim(...args);
          if (claimed !== undefined) claims.push(ms(start));
          return claimed;
        },
      };
      return operationWorkerFactory({
        store: timed,
        workerId: `replica-${replica}`,
        concurrency: CONCURRENCY,
        pollMs: 2,
        onError: (error) => {
          throw error;
        },
        handlers: {
          backup: async ({ operation }) => {
            if (busy.has(operation.target)) overlaps += 1;
            busy.add(operation.target);
            runs.set(operation.id, (runs.get(operation.id) ?? 0) + 1);
            await new Promise((resolve) => setImmediate(resolve));
            busy.delete(operation.target);
          },
        },
      });
    });
    for (const worker of workers) worker.start();
    while (runs.size < OPERATIONS) await new Promise((resolve) => setTimeout(resolve, 5));
    await Promise.all(workers.map((worker) => worker.stop(10_000)));
    const totalMs = ms(started);
    await Promise.all(replicas.map((db) => db.close()));
    return figuresOf(totalMs, claims, runs, overlaps);
  });

/** The queue one writes by hand: a jobs table and SKIP LOCKED, nothing else. */
const handWrittenQueue = (): Promise<TFigures> =>
  withDatabase(async (url) => {
    const pools = [0, 1].map(() => new pg.Pool({ connectionString: url, max: CONCURRENCY + 2 }));
    for (const pool of pools) pool.on("error", () => undefined);
    await pools[0]!.query(
      "CREATE TABLE jobs (id bigserial PRIMARY KEY, target text NOT NULL, state text NOT NULL DEFAULT 'pending')",
    );
    for (let index = 0; index < OPERATIONS; index += 1)
      await pools[0]!.query("INSERT INTO jobs (target) VALUES ($1)", [`t${index % TARGETS}`]);
    const claims: number[] = [];
    const runs = new Map<number, number>();
    const busy = new Set<string>();
    let overlaps = 0;
    const started = process.hrtime.bigint();
    const loop = async (pool: pg.Pool) => {
      for (;;) {
        const start = process.hrtime.bigint();
        const { rows } = await pool.query<{ id: number; target: string }>(
          `UPDATE jobs SET state = 'running' WHERE id = (
             SELECT id FROM jobs WHERE state = 'pending' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
           RETURNING id, target`,
        );
        const job = rows[0];
        if (job === undefined) return;
        claims.push(ms(start));
        if (busy.has(job.target)) overlaps += 1;
        busy.add(job.target);
        runs.set(Number(job.id), (runs.get(Number(job.id)) ?? 0) + 1);
        await new Promise((resolve) => setImmediate(resolve));
        busy.delete(job.target);
        await pool.query("UPDATE jobs SET state = 'done' WHERE id = $1", [job.id]);
      }
    };
    await Promise.all(pools.flatMap((pool) => Array.from({ length: CONCURRENCY }, () => loop(pool))));
    const totalMs = ms(started);
    await Promise.all(pools.map((pool) => pool.end()));
    return figuresOf(totalMs, claims, runs, overlaps);
  });

const line = (name: string, figures: TFigures) =>
  `${name.padEnd(22)} ${figures.totalMs.toFixed(0).padStart(6)} ms  claim p50 ${figures.claimP50.toFixed(2)} ms  p99 ${figures.claimP99.toFixed(2)} ms  duplicates ${figures.duplicates}  two at once on one cluster ${figures.overlaps}`;
console.log(`${OPERATIONS} operations over ${TARGETS} clusters, two replicas × ${CONCURRENCY} at a time`);
const carehost = await carehostQueue();
console.log(line("carehost queue", carehost));
const byHand = await handWrittenQueue();
console.log(line("hand-written queue", byHand));
console.log(
  `ratio (carehost / by hand, total time): ${(carehost.totalMs / byHand.totalMs).toFixed(2)}; carehost leases, fences and holds one operation per cluster, which the hand-written queue does not`,
);
if (carehost.duplicates !== 0 || carehost.overlaps !== 0) {
  console.error("FAILED: an operation ran twice, or two of one cluster ran at once");
  process.exitCode = 1;
}

// The overhead of a change request over an apply that needs none, on the control plane alone
// (CAREHOST_RUNTIME=none, so neither times a reconcile): the same one-field change, applied at once
// as a standard change (staging's workers) and carried through a change request (production's
// workers: recorded, approved by two others, applied inside the window). Target: under 300 ms.
const { createAuditHarness } = await import("../../test/audit-fixtures.js");
const { createGovernedServices, userContext, INSIDE_PROD_WINDOW } = await import("../../test/change-fixtures.js");
const { testDatabaseFactories } = await import("../../test/test-databases.js");
const { readFile } = await import("node:fs/promises");
const ROUNDS = 20;
const median = (values: number[]) => percentile(values, 50);
const harness = await createAuditHarness(testDatabaseFactories.postgres);
try {
  const services = createGovernedServices(harness, { now: () => INSIDE_PROD_WINDOW });
  const alice = userContext("alice", "operator");
  const approvers = [userContext("bob", "approver"), userContext("dana", "approver")];
  const demo = await readFile(new URL("../../examples/northwind-health.yaml", import.meta.url), "utf8");
  await services.environments.apply(alice, { source: demo, fileName: "org.yaml" });
  const [prodWorkers, stagingWorkers] = [/(name: prod[\s\S]*?workers: )(\d+)/, /(name: staging[\s\S]*?workers: )(\d+)/];
  let source = demo;
  const bump = (pattern: RegExp) => {
    source = source.replace(pattern, (_all, head: string, count: string) => `${head}${Number(count) + 1}`);
    return { source, fileName: "org.yaml" };
  };
  const standard: number[] = [];
  const throughRequest: number[] = [];
  for (let round = 0; round < ROUNDS; round += 1) {
    let start = process.hrtime.bigint();
    const applied = await services.environments.apply(alice, bump(stagingWorkers));
    standard.push(ms(start));
    if (applied.revisionId === null) throw new Error("the standard change applied nothing");
    start = process.hrtime.bigint();
    const { request } = await services.changes.create(alice, { ...bump(prodWorkers), reason: "bench" });
    for (const approver of approvers) await services.changes.approve(approver, request.id);
    const outcome = await services.changes.apply(alice, request.id);
    throughRequest.push(ms(start));
    if (outcome.request.state !== "applied")
      throw new Error(`change request ${request.id} is ${outcome.request.state}`);
  }
  const overhead = median(throughRequest) - median(standard);
  console.log(
    `apply that needs no approval  median ${median(standard).toFixed(0)} ms; through a change request (create, 2 approvals, apply) median ${median(throughRequest).toFixed(0)} ms`,
  );
  console.log(
    `change-request overhead ${overhead.toFixed(0)} ms (target under 300 ms), ratio ${(median(throughRequest) / median(standard)).toFixed(2)}`,
  );
  if (overhead >= 300) process.exitCode = 1;
} finally {
  await harness.dispose();
}
