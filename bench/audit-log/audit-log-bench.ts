// Audit log benchmark: carehost's batched Merkle log side by side with what a user would write by
// hand (one INSERT per event in its own transaction, chained by hash), then verify and proof
// times over a 1,000,000-entry log. Run: npx tsx bench/audit-log/audit-log-bench.ts
// Needs the PostgreSQL of test/test-databases.ts (CAREHOST_TEST_POSTGRES_URL); uses throwaway
// databases and temp dirs, removed afterwards.
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { auditLogFactory } from "../../src/audit/audit-log.js";
import { MerkleCache } from "../../src/audit/audit-merkle-cache.js";
import { loadOrCreateSigningKey, signCheckpoint } from "../../src/audit/audit-signing.js";
import { asBuffer, registerSigningKey } from "../../src/audit/audit-store.js";
import type { TAuditEvent } from "../../src/audit/audit-types.js";
import type { TRequestContext } from "../../src/lib/request-context.js";
import type { TSqlClient, TStoreKind } from "../../src/store/store-types.js";
import { testDatabaseFactories } from "../../test/test-databases.js";

const CONCURRENCY = 200;
const APPENDS: Record<TStoreKind, { carehost: number; naive: number }> = {
  postgres: { carehost: 50_000, naive: 3_000 },
  pglite: { carehost: 20_000, naive: 2_000 },
};
const VERIFY_ENTRIES: Record<TStoreKind, number> = { postgres: 1_000_000, pglite: 200_000 };
const CHECKPOINT_EVERY = 1000;
const PROOF_SAMPLES = 20_000;

const context: TRequestContext = {
  actor: {
    kind: "user",
    userId: "u_alice",
    username: "alice",
    role: "operator",
    bindings: [{ role: "operator", organization: "*" }],
  },
  requestId: "req-bench",
  sourceAddress: "10.0.0.7",
};
const event = (index: number): TAuditEvent => ({
  type: "environment.changed",
  outcome: "success",
  target: `environment:northwind/env-${index % 50}`,
  payload: {
    digest: `sha256:${index.toString(16).padStart(64, "0")}`,
    previousDigest: `sha256:${(index - 1).toString(16).padStart(64, "0")}`,
  },
});

/** Runs `total` calls of `work` from `concurrency` workers; returns calls per second. */
const throughput = async (
  total: number,
  concurrency: number,
  work: (index: number) => Promise<unknown>,
): Promise<number> => {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) await work(next++);
    }),
  );
  return total / ((performance.now() - started) / 1000);
};

/** The hand-written alternative: one transaction per event, each row chained to the last by hash. */
const naiveAppender = async (db: TSqlClient) => {
  await db.exec(`CREATE TABLE naive_audit (id bigint PRIMARY KEY, entry text NOT NULL, prev_hash bytea, hash bytea NOT NULL);
    INSERT INTO naive_audit VALUES (0, 'genesis', NULL, sha256('genesis'::bytea))`);
  return (index: number) =>
    db.transaction(async (tx) => {
      // The chain needs the previous hash, so writers take turns (FOR UPDATE on the last row is
      // not enough: a waiter wakes up holding the row it locked, not the one added meanwhile).
      await tx.query("LOCK TABLE naive_audit IN EXCLUSIVE MODE");
      const { rows } = await tx.query<{ id: number; hash: Uint8Array }>(
        "SELECT id, hash FROM naive_audit ORDER BY id DESC LIMIT 1",
      );
      const previous = rows[0]!;
      const entry = JSON.stringify({ ...event(index), actor: "alice", time: new Date().toISOString() });
      const hash = createHash("sha256").update(asBuffer(previous.hash)).update(entry).digest();
      await tx.query("INSERT INTO naive_audit VALUES ($1, $2, $3, $4)", [
        previous.id + 1,
        entry,
        asBuffer(previous.hash),
        hash,
      ]);
    });
};

/** 1M entries written straight by SQL (same canonical shape as the log writes), plus signed checkpoints. */
const generateLog = async (db: TSqlClient, count: number, keyPath: string): Promise<void> => {
  const chunk = 200_000;
  for (let start = 0; start < count; start += chunk) {
    await db.query(
      `INSERT INTO audit_entries (seq, entry, leaf_hash, type, actor, target, time)
       SELECT g, e, sha256('\\x00'::bytea || convert_to(e, 'UTF8')), 'auth.login.failed', 'alice', 'user:alice', t
       FROM (SELECT g, t, format('{"actor":{"kind":"user","role":"operator","userId":"u_alice","username":"alice"},"outcome":"denied","payload":{"reason":"bad password #%s","username":"alice"},"requestId":"req-%s","seq":%s,"sourceAddress":"10.0.0.7","target":"user:alice","time":"%s","type":"auth.login.failed"}',
               g, g, g, to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')) AS e
             FROM (SELECT g, timestamptz '2026-01-01 00:00:00+00' + g * interval '10 ms' AS t FROM generate_series($1::bigint, $2::bigint) g) s) x`,
      [start, Math.min(start + chunk, count) - 1],
    );
  }
  await db.query("UPDATE audit_head SET size = $1", [count]);
  const key = await loadOrCreateSigningKey(keyPath);
  await registerSigningKey(db, key);
  const tree = new MerkleCache();
  for (let start = 0; start < count; start += chunk) {
    const { rows } = await db.query<{ leaf_hash: Uint8Array }>(
      "SELECT leaf_hash FROM audit_entries WHERE seq >= $1 AND seq < $2 ORDER BY seq",
      [start, start + chunk],
    );
    for (const row of rows) tree.append(asBuffer(row.leaf_hash));
  }
  const checkpoints = [];
  for (let size = CHECKPOINT_EVERY; size <= count; size += CHECKPOINT_EVERY) {
    checkpoints.push(signCheckpoint(key, size, tree.rootAt(size), new Date(Date.UTC(2026, 0, 1) + size * 10)));
  }
  await db.query(
    `INSERT INTO audit_checkpoints (tree_size, root_hash, time, signature, key_id)
     SELECT s, decode(r, 'hex'), t::timestamptz, decode(sig, 'base64'), k FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[]) AS c (s, r, t, sig, k)`,
    [
      checkpoints.map((c) => c.treeSize),
      checkpoints.map((c) => c.rootHash),
      checkpoints.map((c) => c.time),
      checkpoints.map((c) => c.signature),
      checkpoints.map((c) => c.keyId),
    ],
  );
};

const percentile = (sorted: readonly number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
const fmt = (value: number, digits = 0): string =>
  value.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

type TRow = { store: TStoreKind; metric: string; carehost: string; naive?: string; note?: string };

const benchStore = async (kind: TStoreKind, rows: TRow[]): Promise<void> => {
  const keyDir = await mkdtemp(join(tmpdir(), "carehost-audit-bench-"));
  try {
    // 1. Durable appends: carehost (group commit) vs the hand-written hash chain.
    {
      const database = await testDatabaseFactories[kind]();
      try {
        const db = await database.open();
        const log = auditLogFactory({ db, signingKeyPath: join(keyDir, "append.pem") });
        const batched = await throughput(APPENDS[kind].carehost, CONCURRENCY, (index) =>
          log.append(context, event(index)),
        );
        await log.close();
        const verified = await log.verify();
        if (!verified.ok || verified.treeSize !== APPENDS[kind].carehost)
          throw new Error(`bench log failed verification: ${JSON.stringify(verified.problems[0])}`);
        const naive = await throughput(APPENDS[kind].naive, CONCURRENCY, await naiveAppender(db));
        rows.push({
          store: kind,
          metric: `durable appends/s (${CONCURRENCY} concurrent callers)`,
          carehost: fmt(batched),
          naive: fmt(naive),
          note: `${fmt(batched / naive, 1)}× (carehost ${fmt(APPENDS[kind].carehost)} events, naive ${fmt(APPENDS[kind].naive)})`,
        });
      } finally {
        await database.dispose();
      }
    }
    // 2. Verify a large log, and 3. inclusion proofs over it.
    {
      const database = await testDatabaseFactories[kind]();
      try {
        const db = await database.open();
        const count = VERIFY_ENTRIES[kind];
        const keyPath = join(keyDir, "verify.pem");
        const generating = performance.now();
        await generateLog(db, count, keyPath);
        const generated = performance.now() - generating;
        const log = auditLogFactory({ db, signingKeyPath: keyPath });
        const verifying = performance.now();
        const report = await log.verify();
        const verifyMs = performance.now() - verifying;
        if (!report.ok || report.checkpointsVerified !== count / CHECKPOINT_EVERY)
          throw new Error(`generated log failed verification: ${JSON.stringify(report.problems[0])}`);
        rows.push({
          store: kind,
          metric: `verify ${fmt(count)} entries, ${fmt(report.checkpointsVerified)} signed checkpoints`,
          carehost: `${fmt(verifyMs / 1000, 2)} s`,
          note: `generating them by SQL took ${fmt(generated / 1000, 1)} s`,
        });

        const loading = performance.now();
        await log.inclusionProof(0, count);
        const loadMs = performance.now() - loading;
        const timings: number[] = [];
        for (let sample = 0; sample < PROOF_SAMPLES; sample += 1) {
          const seq = Math.floor(Math.random() * count);
          const started = performance.now();
          await log.inclusionProof(seq, count);
          timings.push(performance.now() - started);
        }
        timings.sort((a, b) => a - b);
        rows.push({
          store: kind,
          metric: `inclusion proof, tree of ${fmt(count)} (median / p99)`,
          carehost: `${fmt(percentile(timings, 0.5) * 1000, 1)} µs / ${fmt(percentile(timings, 0.99) * 1000, 1)} µs`,
          note: `first proof loads the tree from the database: ${fmt(loadMs / 1000, 2)} s`,
        });
        await log.close();
      } finally {
        await database.dispose();
      }
    }
  } finally {
    await rm(keyDir, { recursive: true, force: true });
  }
};

const printTable = (rows: readonly TRow[]): void => {
  const header = { store: "store", metric: "metric", carehost: "carehost", naive: "naive chain", note: "note" };
  const all = [header, ...rows.map((row) => ({ ...row, naive: row.naive ?? "", note: row.note ?? "" }))];
  const widths = (Object.keys(header) as (keyof typeof header)[]).map((key) =>
    Math.max(...all.map((row) => row[key].length)),
  );
  const line = (row: typeof header): string =>
    (Object.keys(header) as (keyof typeof header)[]).map((key, index) => row[key].padEnd(widths[index]!)).join(" │ ");
  console.log(line(header));
  console.log(widths.map((width) => "─".repeat(width)).join("─┼─"));
  for (const row of all.slice(1)) console.log(line(row));
};

const main = async (): Promise<void> => {
  const rows: TRow[] = [];
  for (const kind of ["postgres", "pglite"] as const) {
    const started = performance.now();
    await benchStore(kind, rows);
    console.error(`${kind}: ${fmt((performance.now() - started) / 1000, 1)} s`);
  }
  printTable(rows);
  console.log(
    "targets: ≥10,000 durable appends/s on PostgreSQL; verify 1,000,000 entries < 10 s; inclusion proof < 1 ms",
  );
};

await main();
