import assert from "node:assert/strict";
import { stat } from "node:fs/promises";
import { describe, it } from "node:test";
import {
  AUDIT_APPEND_INJECTED,
  refuseAuditAppends,
  aliceContext,
  appendSamples,
  createAuditHarness,
  sampleEvent,
} from "../../test/audit-fixtures.js";
import { forEachStoreKind } from "../../test/test-databases.js";
import { ValidationError } from "../lib/errors.js";
import { systemContext } from "../lib/request-context.js";
import { leafHash, verifyConsistency, verifyInclusion } from "./audit-merkle.js";
import { checkpointSignatureValid } from "./audit-signing.js";
import { readHeadSize } from "./audit-store.js";
import type { TAuditEvent } from "./audit-types.js";

const fromHex = (text: string): Buffer => Buffer.from(text, "hex");
const waitFor = async (condition: () => Promise<boolean>, timeoutMs = 5000): Promise<boolean> => {
  for (const started = Date.now(); Date.now() - started < timeoutMs;) {
    if (await condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return false;
};

forEachStoreKind((kind, createDatabase) => {
  void describe(`audit log on ${kind}`, () => {
    void it("records who did what, from where, and lists it back", async () => {
      const harness = await createAuditHarness(createDatabase, { now: () => new Date("2026-03-01T10:00:00.123Z") });
      try {
        const { seq } = await harness.log.append(aliceContext, sampleEvent(0));
        assert.equal(seq, 0);
        await harness.log.append(systemContext("scheduler", "req-2"), {
          type: "server.started",
          outcome: "success",
          target: null,
          payload: { version: "0.1.0" },
        });
        const listed = await harness.log.list({ limit: 10 });
        assert.deepEqual(listed[0], {
          seq: 0,
          entry: {
            seq: 0,
            type: "auth.login.failed",
            outcome: "denied",
            actor: { kind: "user", userId: "u_alice", username: "alice", role: "operator" },
            sourceAddress: "10.0.0.7",
            requestId: "req-1",
            target: "user:alice",
            time: "2026-03-01T10:00:00.123Z",
            payload: { username: "alice", reason: "bad password #0" },
          },
        });
        // The stored text is the canonical form: sorted keys, no whitespace.
        const [row] = (await harness.database.superuserQuery("SELECT entry FROM audit_entries WHERE seq = 1")) as {
          entry: string;
        }[];
        assert.equal(
          row!.entry,
          '{"actor":{"kind":"system","name":"scheduler"},"outcome":"success","payload":{"version":"0.1.0"},"requestId":"req-2","seq":1,"sourceAddress":"local","target":null,"time":"2026-03-01T10:00:00.123Z","type":"server.started"}',
        );
        assert.deepEqual(
          (await harness.log.list({ limit: 10, type: "server.started" })).map((item) => item.seq),
          [1],
        );
        assert.deepEqual(
          (await harness.log.list({ limit: 10, target: "user:alice" })).map((item) => item.seq),
          [0],
        );
        assert.deepEqual(
          (await harness.log.list({ limit: 10, afterSeq: 0 })).map((item) => item.seq),
          [1],
        );
        assert.equal((await harness.log.list({ limit: 10, from: new Date("2026-03-02T00:00:00Z") })).length, 0);
      } finally {
        await harness.dispose();
      }
    });

    void it("refuses payloads that are invalid or named like secrets", async () => {
      const harness = await createAuditHarness(createDatabase);
      try {
        await assert.rejects(
          harness.log.append(aliceContext, {
            type: "user.created",
            outcome: "success",
            target: "user:bob",
            payload: { username: "bob", role: "operator", password: "hunter2" },
          } as unknown as TAuditEvent),
          /invalid payload/,
        );
        await assert.rejects(
          harness.log.append(aliceContext, {
            type: "user.created",
            outcome: "success",
            target: "user:bob",
            payload: { username: "bob", role: "owner" },
          } as unknown as TAuditEvent),
          /invalid payload/,
        );
        await assert.rejects(
          harness.log.append(aliceContext, {
            type: "spec.apply_denied",
            outcome: "denied",
            target: null,
            payload: { digest: "x", reason: "-----BEGIN PRIVATE KEY-----\nMC4…" },
          }),
          /private key material/,
        );
        assert.equal((await harness.log.list({ limit: 10 })).length, 0);
      } finally {
        await harness.dispose();
      }
    });

    void it("has the database itself refuse UPDATE, DELETE and TRUNCATE", async () => {
      const harness = await createAuditHarness(createDatabase);
      try {
        await appendSamples(harness.log, 3);
        await harness.log.checkpoint();
        for (const sql of [
          "UPDATE audit_entries SET entry = 'x' WHERE seq = 1",
          "DELETE FROM audit_entries WHERE seq = 1",
          "TRUNCATE audit_entries",
          "UPDATE audit_checkpoints SET time = now()",
          "DELETE FROM audit_checkpoints",
          "TRUNCATE audit_checkpoints CASCADE",
          "DELETE FROM audit_signing_keys",
          "UPDATE audit_signing_keys SET public_key = 'x'",
          "UPDATE audit_head SET size = 1",
          "DELETE FROM audit_head",
        ]) {
          await assert.rejects(harness.database.superuserQuery(sql), /append-only|only moves forward/, sql);
        }
        // The application's own connection is refused as well.
        await assert.rejects(
          harness.db.query("DELETE FROM audit_entries"),
          /audit_entries is append-only: DELETE refused/,
        );
        assert.equal((await harness.log.verify()).ok, true);
      } finally {
        await harness.dispose();
      }
    });

    void it("numbers 500 concurrent appends without gaps, in few transactions", async () => {
      const harness = await createAuditHarness(createDatabase, { checkpointEvery: { entries: 100, ms: 60_000 } });
      try {
        const results = await Promise.all(
          Array.from({ length: 500 }, (_, index) => harness.log.append(aliceContext, sampleEvent(index))),
        );
        const seqs = results.map((result) => result.seq).sort((a, b) => a - b);
        assert.deepEqual(
          seqs,
          Array.from({ length: 500 }, (_, index) => index),
        );
        // Calls made in the same turn of the event loop are one batch, hence one transaction.
        const [head] = (await harness.database.superuserQuery(
          "SELECT size, xmin::text::bigint AS xid FROM audit_head",
        )) as { size: number }[];
        assert.equal(head!.size, 500);
        const transactions = (await harness.database.superuserQuery(
          "SELECT count(DISTINCT xmin::text) AS n FROM audit_entries",
        )) as { n: number | string }[];
        assert.ok(Number(transactions[0]!.n) <= 2, `500 appends took ${transactions[0]!.n} transactions`);
        await harness.log.checkpoint();
        const report = await harness.log.verify();
        assert.deepEqual(report.problems, []);
        assert.equal(report.ok, true);
        assert.equal(report.treeSize, 500);
      } finally {
        await harness.dispose();
      }
    });

    void it("signs checkpoints automatically and explicitly, and proves inclusion and consistency", async () => {
      const harness = await createAuditHarness(createDatabase, { checkpointEvery: { entries: 4, ms: 60_000 } });
      try {
        // Four entries start an automatic checkpoint in the background.
        await Promise.all(
          Array.from({ length: 4 }, (_, index) => harness.log.append(aliceContext, sampleEvent(index))),
        );
        const automatic = await waitFor(
          async () =>
            ((await harness.database.superuserQuery("SELECT tree_size FROM audit_checkpoints")) as unknown[]).length >
            0,
        );
        assert.ok(automatic, "no automatic checkpoint after 4 entries");
        await appendSamples(harness.log, 6, 4);
        const checkpoint = await harness.log.checkpoint();
        assert.equal(checkpoint.treeSize, 10);
        const keyPem = (
          (await harness.database.superuserQuery("SELECT public_key FROM audit_signing_keys")) as {
            public_key: string;
          }[]
        )[0]!.public_key;
        assert.ok(checkpointSignatureValid(checkpoint, { keyId: checkpoint.keyId, publicKeyPem: keyPem }));
        assert.equal(
          checkpointSignatureValid({ ...checkpoint, treeSize: 9 }, { keyId: checkpoint.keyId, publicKeyPem: keyPem }),
          false,
        );
        const sizes = (
          (await harness.database.superuserQuery("SELECT tree_size FROM audit_checkpoints ORDER BY tree_size")) as {
            tree_size: number;
          }[]
        ).map((row) => Number(row.tree_size));
        assert.ok(sizes.length >= 2 && sizes.at(-1) === 10, `checkpoints at ${sizes.join(",")}`);
        // Nothing new: the same checkpoint, not another signature.
        assert.deepEqual(await harness.log.checkpoint(), checkpoint);

        const entries = await harness.log.list({ limit: 100 });
        for (const { seq } of entries) {
          const proof = await harness.log.inclusionProof(seq, 10);
          const [row] = (await harness.database.superuserQuery("SELECT entry FROM audit_entries WHERE seq = $1", [
            seq,
          ])) as { entry: string }[];
          assert.equal(proof.leafHash, leafHash(row!.entry).toString("hex"));
          assert.equal(proof.rootHash, checkpoint.rootHash);
          assert.ok(
            verifyInclusion(seq, 10, leafHash(row!.entry), proof.proof.map(fromHex), fromHex(checkpoint.rootHash)),
          );
        }
        const consistency = await harness.log.consistencyProof(sizes[0]!, 10);
        assert.ok(
          verifyConsistency(
            sizes[0]!,
            10,
            fromHex(consistency.firstRoot),
            fromHex(checkpoint.rootHash),
            consistency.proof.map(fromHex),
          ),
        );
        await assert.rejects(harness.log.inclusionProof(3, 11), /beyond the audit log's head/);

        // A fresh process rebuilds the tree from the database and proves the same.
        const other = harness.openAnother();
        assert.deepEqual(await other.inclusionProof(7, 10), await harness.log.inclusionProof(7, 10));
        await appendSamples(other, 3, 10);
        const later = await other.checkpoint();
        assert.equal(later.treeSize, 13);
        assert.equal((await harness.log.consistencyProof(10, 13)).secondRoot, later.rootHash);
      } finally {
        await harness.dispose();
      }
    });

    void it("creates its signing key once, mode 0600, outside the database", async () => {
      const harness = await createAuditHarness(createDatabase);
      try {
        const first = await harness.log.checkpoint();
        assert.equal((await stat(harness.keyPath)).mode & 0o777, 0o600);
        const again = harness.openAnother();
        await appendSamples(again, 1);
        assert.equal((await again.checkpoint()).keyId, first.keyId);
        const stored = JSON.stringify(await harness.database.superuserQuery("SELECT * FROM audit_signing_keys"));
        assert.doesNotMatch(stored, /PRIVATE KEY/);
      } finally {
        await harness.dispose();
      }
    });

    void it("commits a state change with its audit entries, or neither: a refused payload or a failed append rolls the change back", async () => {
      const harness = await createAuditHarness(createDatabase);
      try {
        await harness.db.exec("CREATE TABLE change_under_test (v int PRIMARY KEY)");
        const rows = async () =>
          (await harness.db.query<{ v: number }>("SELECT v FROM change_under_test ORDER BY v")).rows.map(
            (row) => row.v,
          );
        const insert = (v: number, events: TAuditEvent[]) =>
          harness.log.recordChange(aliceContext, async (tx) => {
            await tx.query("INSERT INTO change_under_test (v) VALUES ($1)", [v]);
            return { result: v, events };
          });

        const committed = await insert(1, [sampleEvent(1), sampleEvent(2)]);
        assert.deepEqual(committed, { result: 1, seqs: [0, 1] });
        assert.deepEqual(await rows(), [1]);

        // The secret guard refuses the entry: the change it describes does not commit either.
        await assert.rejects(
          insert(2, [
            {
              type: "auth.login.failed",
              outcome: "denied",
              target: "user:alice",
              payload: { username: "alice", reason: "-----BEGIN PRIVATE KEY-----" },
            },
          ]),
          (error: unknown) => error instanceof ValidationError && /private key material/.test(error.message),
        );
        // The append itself fails (as a full disk or a lost connection would): the change is rolled back.
        const allowAuditAppends = await refuseAuditAppends(harness.database);
        await assert.rejects(insert(3, [sampleEvent(3)]), AUDIT_APPEND_INJECTED);
        assert.deepEqual(await rows(), [1]);
        assert.equal(await readHeadSize(harness.db), 2);

        await allowAuditAppends();
        assert.deepEqual(await insert(3, [sampleEvent(3)]), { result: 3, seqs: [2] });
        assert.deepEqual(await rows(), [1, 3]);
        assert.deepEqual(
          (await harness.log.list({ limit: 10 })).map((item) => item.entry.payload),
          [sampleEvent(1).payload, sampleEvent(2).payload, sampleEvent(3).payload],
        );
        assert.equal((await harness.log.verify()).ok, true);
      } finally {
        await harness.dispose();
      }
    });

    void it("numbers changes recorded with their entries and batched appends made at the same time without a gap", async () => {
      const harness = await createAuditHarness(createDatabase);
      try {
        await harness.db.exec("CREATE TABLE change_under_test (v int PRIMARY KEY)");
        const changes = Array.from({ length: 20 }, (_, index) =>
          harness.log.recordChange(aliceContext, async (tx) => {
            await tx.query("INSERT INTO change_under_test (v) VALUES ($1)", [index]);
            return { result: index, events: [sampleEvent(index)] };
          }),
        );
        const appends = Array.from({ length: 40 }, (_, index) => harness.log.append(aliceContext, sampleEvent(index)));
        const seqs = [
          ...(await Promise.all(changes)).flatMap((change) => change.seqs),
          ...(await Promise.all(appends)).map((append) => append.seq),
        ].sort((a, b) => a - b);
        assert.deepEqual(
          seqs,
          Array.from({ length: 60 }, (_, index) => index),
        );
        await harness.log.checkpoint();
        assert.equal((await harness.log.verify()).ok, true);
        const proof = await harness.log.inclusionProof(59, 60);
        assert.equal(proof.treeSize, 60);
      } finally {
        await harness.dispose();
      }
    });

    if (kind === "postgres") {
      void it("lets two replicas append at once without clashing seqs", async () => {
        const harness = await createAuditHarness(createDatabase);
        try {
          const replicaDb = await harness.database.open();
          const replica = harness.openAnother({ db: replicaDb });
          const results = await Promise.all(
            Array.from({ length: 200 }, (_, index) =>
              (index % 2 === 0 ? harness.log : replica).append(aliceContext, sampleEvent(index)),
            ),
          );
          assert.deepEqual(
            results.map((result) => result.seq).sort((a, b) => a - b),
            Array.from({ length: 200 }, (_, index) => index),
          );
          await Promise.all([harness.log.checkpoint(), replica.checkpoint()]);
          assert.equal((await harness.log.verify()).ok, true);
        } finally {
          await harness.dispose();
        }
      });
    }
  });
});
