import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import type pg from "pg";
import { startS3rver, S3RVER_ACCESS_KEY_ID, type TS3rver } from "../../../test/s3rver.js";
import {
  attachmentWriter,
  clusterClients,
  createRuntimeHarness,
  filesBelow,
  filesOf,
  readText,
  runtimeTestSpec,
  waitForArchive,
  type TRuntimeHarness,
} from "../../../test/runtime-fixtures.js";
import { ensureS3Bucket } from "../../backup/s3-bucket.js";
import type { TS3Repository } from "../../backup/pgbackrest-config.js";
import { DomainError, ValidationError } from "../../lib/errors.js";
import type { TOrganizationSpec } from "../../spec/spec-schema.js";
import { filestoreDirectoryOf } from "./local-filestore.js";
import { clusterDirectory, secretNames } from "./local-placement.js";

const ORG = "s3-health";
const BUCKET = "carehost-backups";
const KEY_REF = "backup-offsite-s3-key";
// s3rver knows one access key ID and does not check the secret: this one is ours, so a leak of it would show.
const SECRET_ACCESS_KEY = `carehost-test-${randomBytes(12).toString("hex")}`;

/** The prod environment backed up only to the named repositories. */
const backedUpTo = (spec: TOrganizationSpec, repositories: string[]): TOrganizationSpec => ({
  ...spec,
  environments: spec.environments.map((environment) =>
    environment.backup.enabled ? { ...environment, backup: { ...environment.backup, repositories } } : environment,
  ),
});

void describe("S3 repositories: pgBackRest and restic to an S3-compatible server over HTTPS, point-in-time restore from S3 alone", () => {
  let harness: TRuntimeHarness;
  let s3: TS3rver;
  let spec: TOrganizationSpec;
  let odoo: pg.Client;
  const { connect, admin } = clusterClients(() => harness, ORG);
  const observed = async () => (await harness.runtime.observe(spec)).environments[0]!;
  const filestore = () => filestoreDirectoryOf(harness.root, ORG, { name: "prod" });
  const {
    written,
    rows,
    write: writeAttachment,
    createTable: createAttachmentTable,
  } = attachmentWriter(filestore, () => odoo);
  const s3Repository = (): TS3Repository => {
    const url = new URL(s3.endpoint);
    return {
      name: "offsite-s3",
      type: "s3",
      bucket: BUCKET,
      region: "us-east-1",
      path: `/${ORG}`,
      endpoint: { host: url.hostname, port: Number(url.port), pathStyle: true },
      caFile: s3.caFile,
    };
  };

  before(async () => {
    harness = await createRuntimeHarness();
    s3 = await startS3rver(join(harness.root, "..", "s3rver"));
    const full = runtimeTestSpec(ORG);
    spec = backedUpTo(
      {
        ...full,
        environments: full.environments.filter((environment) => environment.name === "prod"),
        backupRepositories: [
          ...full.backupRepositories.filter((repository) => repository.type === "posix"),
          {
            name: "offsite-s3",
            type: "s3",
            bucket: BUCKET,
            region: "us-east-1",
            endpoint: s3.endpoint,
            keySecretRef: KEY_REF,
            caFile: s3.caFile,
          },
        ],
      },
      ["local", "offsite-s3"],
    );
    await harness.secrets.ensure(`backup/${ORG}/${KEY_REF}`, () => `${S3RVER_ACCESS_KEY_ID}\n${SECRET_ACCESS_KEY}`);
    await harness.runtime.reconcile(spec);
    odoo = await connect(
      (await observed()).postgres.port!,
      "odoo_prod",
      await harness.secrets.current(secretNames.databasePassword(ORG, "prod")),
      "prod",
    );
    await createAttachmentTable();
  });
  after(async () => {
    await odoo.end().catch(() => undefined);
    await harness.close([spec]);
    await s3.stop();
  });

  void it("creates the bucket and the stanza in it; the access key is in no file carehost or pgBackRest wrote", async () => {
    assert.ok(
      (await s3.objectKeys(BUCKET, `${ORG}/backup/dedicated-prod`)).includes(
        `${ORG}/backup/dedicated-prod/backup.info`,
      ),
      "the stanza is in the bucket reconcile created",
    );
    const conf = await readText(
      join(clusterDirectory(harness.root, ORG, "dedicated-prod"), "pgbackrest", "pgbackrest.conf"),
    );
    assert.match(conf, /repo2-type=s3\n/);
    assert.match(conf, new RegExp(`repo2-s3-bucket=${BUCKET}\\n`));
    assert.match(conf, /repo2-s3-endpoint=localhost\n/);
    assert.match(conf, /repo2-s3-uri-style=path\n/);
    assert.match(conf, /repo2-storage-ca-file=/);
    for (const path of await filesBelow(harness.root)) {
      // As in the local runtime's leak scan: a lock file dropped since the walk holds nothing to read.
      const content = await readFile(path).catch(() => Buffer.alloc(0));
      assert.ok(!content.includes(SECRET_ACCESS_KEY), `${path} holds the secret access key`);
    }
    // Idempotent: an existing bucket is left as it is.
    assert.equal(
      await ensureS3Bucket(s3Repository(), { accessKeyId: S3RVER_ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY }),
      false,
    );
  });

  void it("refuses an unknown access key with an error naming the bucket and endpoint, not the key", async () => {
    await assert.rejects(
      ensureS3Bucket(
        { ...s3Repository(), bucket: "another-bucket" },
        { accessKeyId: "NOT-A-KEY", secretAccessKey: SECRET_ACCESS_KEY },
      ),
      (error: unknown) => {
        assert.ok(error instanceof DomainError);
        assert.match(
          error.message,
          /S3 bucket another-bucket at https:\/\/localhost:\d+ \(repository offsite-s3\) answered HTTP 403/,
        );
        assert.ok(!error.message.includes(SECRET_ACCESS_KEY));
        return true;
      },
    );
  });

  void it("backs up the database and the filestore to posix and S3, restores to a point in time from S3 alone, and verifies S3", async () => {
    await writeAttachment(0);
    const backup = await harness.runtime.backup(spec, "prod", "full");
    assert.equal(backup.filestore.files, 1);
    const info = await harness.runtime.backups(spec, "prod");
    assert.deepEqual(
      [...new Set(info.backups.map((item) => item.repository))].sort(),
      [1, 2],
      "the backup is in both repositories",
    );
    for (let index = 1; index <= 30; index += 1) {
      await writeAttachment(index);
      if (index % 10 === 0)
        assert.ok(await harness.runtime.snapshotFilestore(spec, "prod"), `a snapshot after attachment ${index}`);
      await sleep(40);
    }
    const snapshots = await harness.runtime.filestoreSnapshots(spec, "prod");
    assert.deepEqual(
      snapshots.map((list) => list.length),
      [4, 4],
      "every filestore snapshot is in the posix and the S3 repository",
    );
    // Between two attachments that fall between two snapshots.
    const target = new Date(Math.floor((written[15]!.at + rows[16]!.at) / 2));
    const root = await admin((await observed()).postgres.port!);
    await waitForArchive(root);
    await root.end();

    const s3Only = backedUpTo(spec, ["offsite-s3"]);
    await harness.runtime.reconcile(s3Only);
    try {
      const restored = await harness.runtime.restore(
        s3Only,
        "prod",
        { kind: "time", time: target },
        { kind: "copy", name: "pitr-s3" },
      );
      assert.deepEqual(
        restored.steps.map((step) => step.step),
        ["secrets", "postgresql", "filestore", "redis", "application", "ingress"],
      );
      const copy = await admin(restored.port, "prod");
      const restoredRows = (
        await copy.query<{ store_fname: string }>("SELECT store_fname FROM ir_attachment ORDER BY id")
      ).rows.map((row) => row.store_fname);
      await copy.end();
      const expectedRows = rows
        .map((row, index) => ({ ...row, path: written[index]!.path }))
        .filter((row) => row.at <= target.getTime())
        .map((row) => row.path);
      assert.deepEqual(restoredRows, expectedRows, "rows committed at or before the target, none after");
      const expectedFiles = written
        .filter((file) => file.at <= target.getTime())
        .map((file) => file.path)
        .sort();
      assert.deepEqual(
        await filesOf(join(restored.directory, "filestore")),
        expectedFiles,
        "files written at or before the target, none after",
      );
      assert.ok(
        expectedFiles.length === 16 && restoredRows.length === 16,
        `${expectedFiles.length} files, ${restoredRows.length} rows`,
      );
      assert.deepEqual(restoredRows.toSorted(), expectedFiles, "every restored row has its file");

      const verified = await harness.runtime.verify(s3Only, "prod");
      assert.equal(verified.ok, true, verified.output);
    } finally {
      await harness.runtime.reconcile(spec);
    }
  });

  void it("expires by tier in the S3 repository too: pgBackRest's backup sets and restic's snapshots are removed from the bucket", async () => {
    await harness.runtime.backup(spec, "prod", "full");
    await harness.runtime.backup(spec, "prod", "incr");
    const before = (await harness.runtime.backups(spec, "prod")).backups;
    const expired = await harness.runtime.expire(
      {
        ...spec,
        environments: spec.environments.map((environment) =>
          environment.backup.enabled
            ? { ...environment, backup: { ...environment.backup, retention: { daily: 0, weekly: 0, monthly: 0 } } }
            : environment,
        ),
      },
      "prod",
    );
    assert.ok(expired.expired.length >= 1, JSON.stringify(expired));
    const remaining = (await harness.runtime.backups(spec, "prod")).backups;
    const fulls = (list: typeof before) =>
      list.filter((backup) => backup.type === "full" && backup.repository === 2).map((backup) => backup.label);
    assert.ok(fulls(before).length >= 2);
    assert.deepEqual(fulls(remaining), fulls(before).slice(-1), "the S3 repository keeps only its newest full backup");
    // pgBackRest deletes an expired set's manifest, then the set's other files as orphans found by a
    // delimited listing; s3rver leaves "directories" holding only deeper keys out of CommonPrefixes,
    // so the orphans stay there (real S3 lists them). The manifest is what makes a set restorable.
    const manifests = (label: string) =>
      s3
        .objectKeys(BUCKET, `${ORG}/backup/dedicated-prod/${label}`)
        .then((keys) => keys.filter((key) => key.endsWith(`/${label}/backup.manifest`)));
    for (const label of fulls(before).slice(0, -1))
      assert.deepEqual(await manifests(label), [], `backup set ${label} has no manifest left in the bucket`);
    assert.equal((await manifests(fulls(remaining)[0]!)).length, 1, "the newest backup set is still in the bucket");
    assert.deepEqual(
      (await harness.runtime.filestoreSnapshots(spec, "prod")).map((list) => list.length),
      [1, 1],
    );
    const verified = await harness.runtime.verify(spec, "prod");
    assert.equal(verified.ok, true, verified.output);
  });

  void it("names the secret, never its value, when the S3 key does not have the two-line shape", async () => {
    const badRef = "backup-bad-s3-key";
    const badValue = `${S3RVER_ACCESS_KEY_ID}:${SECRET_ACCESS_KEY}`;
    await harness.secrets.ensure(`backup/${ORG}/${badRef}`, () => badValue);
    const bad: TOrganizationSpec = {
      ...spec,
      backupRepositories: spec.backupRepositories.map((repository) =>
        repository.type === "s3" ? { ...repository, keySecretRef: badRef } : repository,
      ),
    };
    await assert.rejects(harness.runtime.backups(bad, "prod"), (error: unknown) => {
      assert.ok(error instanceof ValidationError);
      assert.match(
        error.message,
        new RegExp(
          `secret "backup/${ORG}/${badRef}" must hold the access key ID on its first line and the secret access key on its second`,
        ),
      );
      assert.ok(!error.message.includes(SECRET_ACCESS_KEY) && !error.message.includes(badValue));
      return true;
    });
  });
});
