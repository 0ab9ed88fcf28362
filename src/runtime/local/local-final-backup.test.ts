// The final dump of a removed environment holds its PHI: on disk it is encrypted, and it opens,
// with the organization's final-backups passphrase, into a dump pg_restore restores.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import {
  createRuntimeHarness,
  filesBelow,
  runtimeTestSpec,
  type TRuntimeHarness,
} from "../../../test/runtime-fixtures.js";
import { resticCommand } from "../../backup/restic-command.js";
import type { TOrganizationSpec } from "../../spec/spec-schema.js";
import { finalBackupRepositoryOf, finalBackupSecretName, finalDumpFileOf } from "./local-final-backup.js";
import { databaseNameOf, databaseRoleOf, secretNames } from "./local-placement.js";
import { resticCacheDirectoryOf } from "./local-filestore.js";
import { runPipeline } from "../../lib/runtime-command.js";

const ORG = "final-health";
/** A row only the removed environment's database holds. */
const PATIENT = "Jane Roe, MRN 4417-FINAL-DUMP-MARKER";

void describe("local runtime: the final backup before a removal is encrypted", () => {
  let harness: TRuntimeHarness;
  let spec: TOrganizationSpec;
  let home: string;
  before(async () => {
    harness = await createRuntimeHarness();
    home = dirname(harness.root);
    const full = runtimeTestSpec(ORG);
    // One shared cluster is all it takes.
    spec = { ...full, environments: full.environments.filter((environment) => environment.hosting === "shared") };
  });
  after(async () => harness.close([spec]));

  void it("streams pg_dump into restic: no plaintext on disk, and the dump decrypts and restores", async () => {
    await harness.runtime.reconcile(spec);
    const training = spec.environments.find((environment) => environment.name === "training")!;
    const status = (await harness.runtime.observe(spec)).environments.find((item) => item.environment === "training");
    const client = new pg.Client({
      host: "127.0.0.1",
      port: status!.postgres.port!,
      user: databaseRoleOf(training),
      password: await harness.secrets.current(secretNames.databasePassword(ORG, training.name)),
      database: databaseNameOf(training),
      ssl: { ca: await readFile(join(harness.root, ORG, "ca.crt"), "utf8"), rejectUnauthorized: true },
    });
    await client.connect();
    await client.query("CREATE TABLE patients (name text)");
    await client.query("INSERT INTO patients VALUES ($1)", [PATIENT]);
    await client.end();

    const finalBackups = join(home, "final-backups");
    const backup = await harness.runtime.destroyEnvironment(spec, "training", finalBackups);
    assert.equal(backup.path, join(finalBackups, ORG));
    assert.match(backup.snapshotId, /^[0-9a-f]{8,64}$/);
    assert.ok(backup.bytes > 0);

    // Every file carehost left under final-backups is restic's, encrypted: the row is in none of them.
    const files = await filesBelow(finalBackups);
    assert.ok(files.length > 0);
    for (const file of files) {
      assert.ok(!(await readFile(file)).includes(PATIENT), `${file} holds the row in clear`);
      assert.ok(!file.endsWith(".dump") && !file.includes(".pgpass"), `${file} should not be left`);
    }

    // With the organization's passphrase (from the secret store), the snapshot opens into the dump pg_restore reads.
    const passphrase = await harness.secrets.current(finalBackupSecretName(ORG));
    const repository = finalBackupRepositoryOf(finalBackups, ORG, passphrase, resticCacheDirectoryOf(home));
    const restored = await runPipeline(
      resticCommand(repository, ["dump", backup.snapshotId, `/${finalDumpFileOf("training")}`]),
      { file: "/usr/lib/postgresql/15/bin/pg_restore", args: ["--data-only", "--file", "-"] },
    );
    assert.ok(restored.stdout.includes(PATIENT), "the decrypted dump restores the row");

    // Without it, nothing opens.
    const stranger = finalBackupRepositoryOf(finalBackups, ORG, "not-the-passphrase", resticCacheDirectoryOf(home));
    await assert.rejects(
      runPipeline(resticCommand(stranger, ["dump", backup.snapshotId, `/${finalDumpFileOf("training")}`]), {
        file: "/usr/lib/postgresql/15/bin/pg_restore",
        args: ["--list"],
      }),
      /wrong password|no key found/,
    );
  });
});
