// Tampering behind the application's back, as a database superuser would: disable the
// append-only triggers, change rows, re-enable them. verify() must fail and name the entry.
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { describe, it } from "node:test";
import { appendSamples, createAuditHarness, type TAuditHarness } from "../../test/audit-fixtures.js";
import { forEachStoreKind, type TTestDatabase } from "../../test/test-databases.js";
import { MerkleCache } from "./audit-merkle-cache.js";
import { keyIdOf, loadOrCreateSigningKey, signCheckpoint } from "./audit-signing.js";
import type { TAuditVerifyReport } from "./audit-types.js";

const ENTRIES = 50;
const TARGET = 21; // an auth.login.failed by alice (sampleEvent(21))

const behindTheBack = async (
  database: TTestDatabase,
  tables: readonly string[],
  statements: readonly string[],
): Promise<void> => {
  for (const table of tables) await database.superuserQuery(`ALTER TABLE ${table} DISABLE TRIGGER ALL`);
  try {
    for (const sql of statements) await database.superuserQuery(sql);
  } finally {
    for (const table of tables) await database.superuserQuery(`ALTER TABLE ${table} ENABLE TRIGGER ALL`);
  }
};

/** A log of 50 entries with a checkpoint every 10 (or after every entry). */
const populated = async (
  createDatabase: () => Promise<TTestDatabase>,
  checkpointAfterEach = 10,
): Promise<TAuditHarness> => {
  const harness = await createAuditHarness(createDatabase);
  for (let start = 0; start < ENTRIES; start += checkpointAfterEach) {
    await appendSamples(harness.log, checkpointAfterEach, start);
    await harness.log.checkpoint();
  }
  const report = await harness.log.verify();
  assert.equal(report.ok, true, JSON.stringify(report.problems));
  assert.equal(report.checkpointsVerified, ENTRIES / checkpointAfterEach);
  return harness;
};

const assertNamed = (report: TAuditVerifyReport, kind: string, seq: number, message: RegExp): void => {
  assert.equal(report.ok, false);
  assert.equal(report.firstBadSeq, seq, JSON.stringify(report.problems));
  assert.equal(report.problems[0]!.kind, kind, JSON.stringify(report.problems));
  assert.equal(report.problems[0]!.seq, seq);
  assert.match(report.problems[0]!.message, message);
};

const rewriteSql = (seq: number, alsoLeafHash: boolean): string =>
  `UPDATE audit_entries SET entry = replace(entry, 'bad password #${seq}', 'typo #${seq}')` +
  (alsoLeafHash
    ? `, leaf_hash = sha256('\\x00'::bytea || convert_to(replace(entry, 'bad password #${seq}', 'typo #${seq}'), 'UTF8'))`
    : "") +
  ` WHERE seq = ${seq}`;

forEachStoreKind((kind, createDatabase) => {
  void describe(`audit tamper detection on ${kind}`, () => {
    void it("names an entry whose text was edited", async () => {
      const harness = await populated(createDatabase);
      try {
        await behindTheBack(harness.database, ["audit_entries"], [rewriteSql(TARGET, false)]);
        assertNamed(
          await harness.log.verify(),
          "altered",
          TARGET,
          /^entry #21 \(auth\.login\.failed by alice at 20\d\d-.*Z\) was altered/,
        );
      } finally {
        await harness.dispose();
      }
    });

    void it("names an entry that was deleted", async () => {
      const harness = await populated(createDatabase);
      try {
        await behindTheBack(harness.database, ["audit_entries"], [`DELETE FROM audit_entries WHERE seq = ${TARGET}`]);
        assertNamed(await harness.log.verify(), "missing", TARGET, /entry #21 is missing/);
      } finally {
        await harness.dispose();
      }
    });

    void it("names entries deleted from the end, even when the head is wound back too", async () => {
      const harness = await populated(createDatabase);
      try {
        await behindTheBack(harness.database, ["audit_entries"], ["DELETE FROM audit_entries WHERE seq >= 47"]);
        assertNamed(await harness.log.verify(), "missing", 47, /entries #47–#49 are missing/);
        await behindTheBack(harness.database, ["audit_head"], ["UPDATE audit_head SET size = 47"]);
        assertNamed(
          await harness.log.verify(),
          "missing",
          47,
          /checkpoint at tree size 50 .* covers 50 entries but only 47 are stored/,
        );
      } finally {
        await harness.dispose();
      }
    });

    void it("names entries that were reordered (seq values swapped)", async () => {
      const harness = await populated(createDatabase);
      try {
        await behindTheBack(
          harness.database,
          ["audit_entries"],
          [
            `UPDATE audit_entries SET seq = 1000000 WHERE seq = ${TARGET}`,
            `UPDATE audit_entries SET seq = ${TARGET} WHERE seq = ${TARGET + 5}`,
            `UPDATE audit_entries SET seq = ${TARGET + 5} WHERE seq = 1000000`,
          ],
        );
        const report = await harness.log.verify();
        assertNamed(
          report,
          "reordered",
          TARGET,
          /^entry #21 \(.*\) is out of place: the row at #21 holds the entry written as #26/,
        );
        assert.deepEqual(
          report.problems.filter((problem) => problem.kind === "reordered").map((problem) => problem.seq),
          [21, 26],
        );
      } finally {
        await harness.dispose();
      }
    });

    void it("catches an entry rewritten together with its leaf hash through the signed roots", async () => {
      const harness = await populated(createDatabase);
      try {
        await behindTheBack(harness.database, ["audit_entries"], [rewriteSql(TARGET, true)]);
        const report = await harness.log.verify();
        // Only the checkpoints vouch for the original: the entry is named by the range between
        // the last checkpoint that still matches (20) and the first that does not (30).
        assertNamed(
          report,
          "altered",
          20,
          /one or more of entries #20–#29 were rewritten together with their leaf hashes: checkpoint at tree size 30/,
        );
        assert.deepEqual(report.problems[0]!.seqRange, [20, 29]);
        assert.equal(report.problems[0]!.checkpointTreeSize, 30);
        // Another process refuses to build proofs or sign on top of it.
        await assert.rejects(
          harness.openAnother().inclusionProof(3, ENTRIES),
          /no longer match the checkpoint at tree size 50/,
        );
      } finally {
        await harness.dispose();
      }
    });

    void it("names exactly the rewritten entry when checkpoints are frequent enough", async () => {
      const harness = await populated(createDatabase, 1);
      try {
        await behindTheBack(harness.database, ["audit_entries"], [rewriteSql(TARGET, true)]);
        assertNamed(
          await harness.log.verify(),
          "altered",
          TARGET,
          /^entry #21 was rewritten together with its leaf hash: checkpoint at tree size 22/,
        );
      } finally {
        await harness.dispose();
      }
    });

    void it("reports a forged checkpoint signature", async () => {
      const harness = await populated(createDatabase);
      try {
        await behindTheBack(
          harness.database,
          ["audit_checkpoints"],
          ["UPDATE audit_checkpoints SET signature = decode(repeat('00', 64), 'hex') WHERE tree_size = 30"],
        );
        const report = await harness.log.verify();
        assert.equal(report.ok, false);
        assert.deepEqual(
          report.problems.map((problem) => [problem.kind, problem.checkpointTreeSize]),
          [["bad-signature", 30]],
        );
      } finally {
        await harness.dispose();
      }
    });

    void it("does not trust a key an attacker registered to re-sign a rewritten log", async () => {
      const harness = await populated(createDatabase);
      try {
        await harness.log.close();
        const { privateKey, publicKey } = generateKeyPairSync("ed25519");
        const attackerKey = {
          keyId: keyIdOf(publicKey),
          publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
          privateKey,
        };
        const rows = (await harness.database.superuserQuery("SELECT tree_size FROM audit_checkpoints")) as {
          tree_size: number;
        }[];
        await behindTheBack(harness.database, ["audit_entries"], [rewriteSql(TARGET, true)]);
        // Re-sign every checkpoint over the rewritten entries with the attacker's own key.
        const tree = new MerkleCache();
        const leaves = (await harness.database.superuserQuery("SELECT leaf_hash FROM audit_entries ORDER BY seq")) as {
          leaf_hash: Uint8Array;
        }[];
        for (const row of leaves) tree.append(Buffer.from(row.leaf_hash));
        const statements = [
          `INSERT INTO audit_signing_keys (key_id, public_key) VALUES ('${attackerKey.keyId}', '${attackerKey.publicKeyPem}')`,
          "DELETE FROM audit_checkpoints",
          ...rows.map(({ tree_size }) => {
            const forged = signCheckpoint(attackerKey, Number(tree_size), tree.rootAt(Number(tree_size)), new Date());
            return `INSERT INTO audit_checkpoints VALUES (${forged.treeSize}, decode('${forged.rootHash}', 'hex'), '${forged.time}', decode('${forged.signature}', 'base64'), '${forged.keyId}')`;
          }),
        ];
        await behindTheBack(harness.database, ["audit_checkpoints", "audit_signing_keys"], statements);
        const report = await harness.openAnother().verify();
        assert.equal(report.ok, false);
        assert.equal(report.checkpointsVerified, 0);
        assert.ok(
          report.problems.every((problem) => problem.kind === "unknown-key"),
          JSON.stringify(report.problems),
        );
        assert.match(
          report.problems[0]!.message,
          new RegExp(`signed by key ${attackerKey.keyId}, which is registered but not trusted`),
        );
      } finally {
        await harness.dispose();
      }
    });

    void it("reports a signed checkpoint that is not a prefix of the later signed history", async () => {
      const harness = await populated(createDatabase);
      try {
        // Someone with the key signed a different history at size 10 (a fork).
        const key = await loadOrCreateSigningKey(harness.keyPath);
        const forged = signCheckpoint(key, 10, Buffer.alloc(32, 7), new Date());
        await behindTheBack(
          harness.database,
          ["audit_checkpoints"],
          [
            "DELETE FROM audit_checkpoints WHERE tree_size = 10",
            `INSERT INTO audit_checkpoints VALUES (10, decode('${forged.rootHash}', 'hex'), '${forged.time}', decode('${forged.signature}', 'base64'), '${forged.keyId}')`,
          ],
        );
        const report = await harness.log.verify();
        assert.equal(report.ok, false);
        assert.ok(
          report.problems.some(
            (problem) => problem.kind === "inconsistent-checkpoint" && problem.checkpointTreeSize === 10,
          ),
          JSON.stringify(report.problems),
        );
      } finally {
        await harness.dispose();
      }
    });
  });
});
