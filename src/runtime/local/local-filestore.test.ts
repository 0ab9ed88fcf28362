import assert from "node:assert/strict";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import type pg from "pg";
import { startAzurite, AZURITE_ACCOUNT, AZURITE_KEY, type TAzurite } from "../../../test/azurite.js";
import {
  attachmentWriter,
  clusterClients,
  createRuntimeHarness,
  filesOf,
  runtimeTestSpec,
  waitForArchive,
  type TRuntimeHarness,
} from "../../../test/runtime-fixtures.js";
import type { TOrganizationSpec } from "../../spec/spec-schema.js";
import { backupRunTag, filestoreDirectoryOf } from "./local-filestore.js";
import { secretNames } from "./local-placement.js";
import { connectRedis } from "./redis-instance.js";

const ORG = "filestore-health";

void describe("filestore and Azure repositories: restic beside pgBackRest, Azurite over HTTPS, expiry by tier, in-place restore", () => {
  let harness: TRuntimeHarness;
  let azurite: TAzurite;
  let spec: TOrganizationSpec;
  let odoo: pg.Client;
  const { caPem, connect, admin } = clusterClients(() => harness, ORG);
  const observed = async () => (await harness.runtime.observe(spec)).environments[0]!;
  const filestore = () => filestoreDirectoryOf(harness.root, ORG, { name: "prod" });
  const {
    written,
    rows,
    write: writeAttachment,
    createTable: createAttachmentTable,
  } = attachmentWriter(filestore, () => odoo);
  const archiveNow = async () => {
    const root = await admin((await observed()).postgres.port!);
    await waitForArchive(root);
    await root.end();
  };

  before(async () => {
    harness = await createRuntimeHarness();
    azurite = await startAzurite(join(harness.root, "..", "azurite"));
    const full = runtimeTestSpec(ORG);
    spec = {
      ...full,
      environments: full.environments.filter((environment) => environment.name === "prod"),
      backupRepositories: full.backupRepositories.map((repository) =>
        repository.type === "azure"
          ? { ...repository, account: AZURITE_ACCOUNT, endpoint: azurite.endpoint, caFile: azurite.caFile }
          : repository,
      ),
    };
    await harness.secrets.ensure(`backup/${ORG}/backup-offsite-azure-key`, () => AZURITE_KEY);
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
    await azurite.stop();
  });

  void it("backs up the database and the filestore to a posix and an Azure repository, and restores both to the same second", async () => {
    await writeAttachment(0);
    const backup = await harness.runtime.backup(spec, "prod", "full");
    assert.equal(backup.filestore.files, 1);
    const info = await harness.runtime.backups(spec, "prod");
    assert.deepEqual(
      [...new Set(info.backups.map((item) => item.repository))].sort(),
      [1, 2],
      "the backup is in both repositories",
    );
    const paired = (await harness.runtime.filestoreSnapshots(spec, "prod")).map((list) =>
      list.map((snapshot) => snapshot.tags.includes(backupRunTag(backup.runId))),
    );
    assert.deepEqual(
      paired,
      [[true], [true]],
      "one filestore snapshot in the posix and one in the Azure repository, each paired with the backup",
    );
    for (let index = 1; index <= 30; index += 1) {
      await writeAttachment(index);
      if (index % 10 === 0)
        assert.ok(await harness.runtime.snapshotFilestore(spec, "prod"), `a snapshot after attachment ${index}`);
      await sleep(40);
    }
    assert.equal(
      await harness.runtime.snapshotFilestore(spec, "prod"),
      undefined,
      "nothing changed since the last snapshot",
    );
    // Between two attachments that fall between two snapshots.
    const target = new Date(Math.floor((written[15]!.at + rows[16]!.at) / 2));
    await archiveNow();

    const restored = await harness.runtime.restore(
      spec,
      "prod",
      { kind: "time", time: target },
      { kind: "copy", name: "pitr" },
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
    assert.ok(expectedFiles.length === 16 && restoredRows.length === 16, `${expectedFiles.length} files`);
    // Every attachment row of the restored database has its file: the two agree.
    assert.deepEqual(restoredRows.toSorted(), expectedFiles);
  });

  void it("verifies both repositories: pgBackRest's files and restic's packs read back whole", async () => {
    const verified = await harness.runtime.verify(spec, "prod");
    assert.equal(verified.ok, true, verified.output);
  });

  void it("restores from the Azure repository alone, as after losing the host's own repository", async () => {
    const [posixSnapshots, azureSnapshots] = await harness.runtime.filestoreSnapshots(spec, "prod");
    assert.ok(
      azureSnapshots !== undefined && azureSnapshots.length >= 4,
      `the Azure repository holds the filestore snapshots (${azureSnapshots?.length ?? 0})`,
    );
    assert.deepEqual(
      azureSnapshots.map((snapshot) => snapshot.tags),
      posixSnapshots!.map((snapshot) => snapshot.tags),
      "the same snapshots as the posix repository",
    );
    const offsiteOnly: TOrganizationSpec = {
      ...spec,
      environments: spec.environments.map((environment) =>
        environment.backup.enabled
          ? { ...environment, backup: { ...environment.backup, repositories: ["offsite"] } }
          : environment,
      ),
    };
    await harness.runtime.reconcile(offsiteOnly);
    try {
      const restored = await harness.runtime.restore(
        offsiteOnly,
        "prod",
        { kind: "latest" },
        { kind: "copy", name: "from-azure" },
      );
      assert.deepEqual(
        (await harness.runtime.filestoreSnapshots(offsiteOnly, "prod")).map((list) => list.length),
        [azureSnapshots.length],
        "only the Azure repository is left to read",
      );
      const copy = await admin(restored.port, "prod");
      assert.equal(
        Number((await copy.query<{ n: string }>("SELECT count(*) AS n FROM ir_attachment")).rows[0]?.n),
        rows.length,
      );
      const restoredRows = (
        await copy.query<{ store_fname: string }>("SELECT store_fname FROM ir_attachment ORDER BY id")
      ).rows.map((row) => row.store_fname);
      await copy.end();
      // Every attachment was committed before the latest backup and snapshot: all of them come back from Azure, and nothing else.
      const expectedFiles = written.map((file) => file.path).sort();
      assert.deepEqual(
        await filesOf(join(restored.directory, "filestore")),
        expectedFiles,
        "the filestore from the Azure repository",
      );
      assert.deepEqual(restoredRows.toSorted(), expectedFiles, "every restored attachment row has its file");
      assert.match(
        restored.steps.find((step) => step.step === "filestore")?.detail ?? "",
        new RegExp(`^${expectedFiles.length} files from snapshot ${azureSnapshots.at(-1)!.id}`),
      );
    } finally {
      await harness.runtime.reconcile(spec);
    }
  });

  void it("expires by tier: with no tier left, only the newest full backup and filestore snapshot remain", async () => {
    await harness.runtime.backup(spec, "prod", "full");
    await harness.runtime.backup(spec, "prod", "incr");
    const before = (await harness.runtime.backups(spec, "prod")).backups;
    const nothingKept: TOrganizationSpec = {
      ...spec,
      environments: spec.environments.map((environment) =>
        environment.backup.enabled
          ? { ...environment, backup: { ...environment.backup, retention: { daily: 0, weekly: 0, monthly: 0 } } }
          : environment,
      ),
    };
    const expired = await harness.runtime.expire(nothingKept, "prod");
    const remaining = (await harness.runtime.backups(spec, "prod")).backups;
    assert.ok(expired.expired.length >= 1 && expired.reclaimedBytes > 0, JSON.stringify(expired));
    for (const repository of [1, 2]) {
      const fulls = (list: typeof before) =>
        list
          .filter((backup) => backup.type === "full" && backup.repository === repository)
          .map((backup) => backup.label);
      assert.deepEqual(
        fulls(remaining),
        fulls(before).slice(-1),
        `repository ${repository} keeps only its newest full backup`,
      );
    }
    assert.ok(
      remaining.some((backup) => backup.type === "incr"),
      "the incremental on the newest full stays",
    );
    const snapshots = await harness.runtime.filestoreSnapshots(spec, "prod");
    assert.deepEqual(
      snapshots.map((list) => list.length),
      [1, 1],
      "the newest snapshot stays in the posix and in the Azure repository",
    );
    // The default tiers keep everything this young.
    assert.deepEqual((await harness.runtime.expire(spec, "prod")).expired, []);
  });

  void it("restores in place: database and filestore back to the second, sessions flushed, steps in order", async () => {
    await harness.runtime.backup(spec, "prod", "incr");
    const before = written.length;
    for (let index = 0; index < 10; index += 1) {
      await writeAttachment(100 + index);
      await sleep(40);
    }
    await harness.runtime.snapshotFilestore(spec, "prod");
    const target = new Date(Math.floor((written[before + 4]!.at + rows[before + 5]!.at) / 2));
    for (let index = 10; index < 15; index += 1) await writeAttachment(100 + index);
    await harness.runtime.snapshotFilestore(spec, "prod");
    await archiveNow();
    const environment = await observed();
    const redis = await connectRedis(
      { name: environment.redis!.instance, directory: "", port: environment.redis!.port!, owner: undefined },
      "odoo-prod",
      await harness.secrets.current(secretNames.redisPassword(ORG, "prod")),
      await caPem(),
    );
    await redis.set("odoo:prod:session:abc", "signed-in");
    await odoo.end();

    const restoreStarted = new Date();
    const restored = await harness.runtime.restore(spec, "prod", { kind: "time", time: target }, { kind: "in-place" });
    // The restored filestore is every repository's newest snapshot: a drill or a later restore must not bring back what it removed.
    for (const snapshots of await harness.runtime.filestoreSnapshots(spec, "prod"))
      assert.ok(snapshots.at(-1)!.time >= restoreStarted, "a snapshot of the restored filestore");
    assert.deepEqual(
      restored.steps.map((step) => step.step),
      ["secrets", "postgresql", "filestore", "redis", "application", "ingress"],
    );
    assert.match(restored.steps.find((step) => step.step === "redis")!.detail, /flushed 1 /);
    assert.equal(await redis.get("odoo:prod:session:abc"), null);
    await redis.close();
    odoo = await connect(
      environment.postgres.port!,
      "odoo_prod",
      await harness.secrets.current(secretNames.databasePassword(ORG, "prod")),
      "prod",
    );
    const restoredRows = (
      await odoo.query<{ store_fname: string }>("SELECT store_fname FROM ir_attachment ORDER BY id")
    ).rows.map((row) => row.store_fname);
    const expected = written.filter((file, index) => rows[index]!.at <= target.getTime()).map((file) => file.path);
    assert.deepEqual(restoredRows, expected);
    assert.deepEqual(await filesOf(filestore()), expected.toSorted());
    // The restored environment goes on: it writes, archives and backs up on its new timeline.
    await odoo.query("INSERT INTO ir_attachment (store_fname) VALUES ('after-restore')");
    const next = await harness.runtime.backup(spec, "prod", "incr");
    assert.ok(next.label.length > 0);
    assert.deepEqual(await harness.runtime.reconcile(spec), []);
  });
});
