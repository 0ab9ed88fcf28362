import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { clusterPassphrase } from "../../backup/backup-passphrase.js";
import {
  clusterClients,
  createRuntimeHarness,
  filesBelow,
  runtimeTestSpec,
  waitForArchive,
  type TRuntimeHarness,
} from "../../../test/runtime-fixtures.js";
import type { TOrganizationSpec } from "../../spec/spec-schema.js";
import { pgbackrestConfigPathOf, repositorySecretNames } from "./local-backup-config.js";
import { clusterDirectory, secretNames } from "./local-placement.js";
import { connectAdmin } from "./postgres-cluster.js";

const run = promisify(execFile);

const ORG = "recovery-health";
const MARKER = "PLAINTEXT-MARKER-3f9c1e";

void describe("local runtime recovery: pgBackRest backups, point-in-time restore and drills on real clusters", () => {
  let harness: TRuntimeHarness;
  let spec: TOrganizationSpec;

  before(async () => {
    harness = await createRuntimeHarness();
    const full = runtimeTestSpec(ORG);
    spec = { ...full, environments: full.environments.filter((environment) => environment.name === "prod") };
    // prod starts without backups: the first case turns them on while it runs.
    await harness.runtime.reconcile({
      ...spec,
      environments: spec.environments.map((environment) => ({ ...environment, backup: { enabled: false } })),
    });
  });
  after(async () => harness.close([spec]));

  const { connect, admin } = clusterClients(() => harness, ORG);
  const prodPort = async () => (await harness.runtime.observe(spec)).environments[0]!.postgres.port!;

  void it("turns backups on for a running cluster: the stanza exists before archive_mode does, the filestore's restic repository once it runs again, and no push fails", async () => {
    const actions = (await harness.runtime.reconcile(spec))
      .filter((action) => action.target === "postgres/dedicated-prod")
      .map((action) => action.action);
    const stanza = actions.findIndex((action) => action.startsWith("created pgBackRest stanza"));
    const restic = actions.indexOf("initialized restic repositories for the filestore (local)");
    const restart = actions.findIndex(
      (action) => action.startsWith("restarted to apply") && action.includes("archive_mode"),
    );
    assert.ok(stanza >= 0 && restart > stanza && restic > restart, actions.join("; "));
    const client = await admin(await prodPort());
    try {
      await waitForArchive(client);
      const archiver = (
        await client.query<{ archived: string; failed: string }>(
          "SELECT archived_count AS archived, failed_count AS failed FROM pg_stat_archiver",
        )
      ).rows[0];
      assert.ok(Number(archiver?.archived) >= 1);
      assert.equal(Number(archiver?.failed), 0);
    } finally {
      await client.end();
    }
  });

  void it("restores to a chosen second: every row committed before the target is there, none after", async () => {
    const port = await prodPort();
    const odoo = await connect(
      port,
      "odoo_prod",
      await harness.secrets.current(secretNames.databasePassword(ORG, "prod")),
      "prod",
    );
    await odoo.query(
      "CREATE TABLE ledger (id serial PRIMARY KEY, note text, at timestamptz NOT NULL DEFAULT clock_timestamp())",
    );
    await odoo.query("INSERT INTO ledger (note) VALUES ($1)", [MARKER]);
    const backup = await harness.runtime.backup(spec, "prod", "full");
    assert.equal(backup.type, "full");
    assert.ok(backup.databaseBytes > 0);

    // Rows arrive one by one, each committed on its own, 40 ms apart.
    for (let index = 0; index < 60; index += 1) {
      await odoo.query("INSERT INTO ledger (note) VALUES ($1)", [`row ${index}`]);
      await sleep(40);
    }
    const rows = (await odoo.query<{ id: number; at: Date }>("SELECT id, at FROM ledger ORDER BY id")).rows;
    const middle = rows[30]!;
    const next = rows[31]!;
    // Between a row's commit and the next row's insert.
    const target = new Date(middle.at.getTime() + Math.floor((next.at.getTime() - middle.at.getTime()) / 2));
    await harness.runtime.heartbeat(spec);
    const root = await admin(port);
    await waitForArchive(root);
    await root.end();
    await odoo.end();

    const restored = await harness.runtime.restore(
      spec,
      "prod",
      { kind: "time", time: target },
      { kind: "copy", name: "pitr" },
    );
    const copy = await admin(restored.port, "prod");
    const restoredIds = (await copy.query<{ id: number }>("SELECT id FROM ledger ORDER BY id")).rows.map(
      (row) => row.id,
    );
    await copy.end();
    const expected = rows.filter((row) => row.at.getTime() <= target.getTime()).map((row) => row.id);
    assert.deepEqual(restoredIds, expected, `restored up to ${target.toISOString()}`);
    assert.ok(expected.length > 20 && expected.length < rows.length);

    const latest = await harness.runtime.restore(spec, "prod", { kind: "latest" }, { kind: "copy", name: "latest" });
    const latestCopy = await admin(latest.port, "prod");
    assert.equal(
      Number((await latestCopy.query<{ n: string }>("SELECT count(*) AS n FROM ledger")).rows[0]?.n),
      rows.length,
    );
    await latestCopy.end();
    await assert.rejects(
      harness.runtime.restore(spec, "prod", { kind: "latest" }, { kind: "copy", name: "latest" }),
      /already exists/,
    );
    await assert.rejects(
      harness.runtime.restore(spec, "prod", { kind: "lsn", lsn: "nonsense" }, { kind: "copy", name: "x" }),
      /is not an LSN/,
    );
  });

  void it("runs a restore drill that measures RTO and RPO, checks the copy and removes it", async () => {
    const drill = await harness.runtime.drill(spec, "prod");
    assert.ok(drill.rtoSeconds > 0 && drill.rtoSeconds < 120, `RTO ${drill.rtoSeconds}`);
    assert.ok(drill.rpoSeconds !== null && drill.rpoSeconds >= 0, `RPO ${drill.rpoSeconds}`);
    // The heartbeat lives in carehost's own schema, and the superuser resolves names in pg_catalog alone.
    const source = await harness.runtime.recoverable(spec, "prod");
    const client = await connectAdmin(source.cluster, source.adminPassword, source.caPem);
    try {
      const placed = (
        await client.query<{ own: string | null; legacy: string | null; path: string }>(
          "SELECT to_regclass('carehost.heartbeat')::text AS own, to_regclass('public.carehost_heartbeat')::text AS legacy, current_setting('search_path') AS path",
        )
      ).rows[0];
      assert.deepEqual(placed, { own: "carehost.heartbeat", legacy: null, path: "pg_catalog,pg_temp" });
    } finally {
      await client.end();
    }
    assert.equal(drill.amcheckPassed, true, drill.amcheckOutput);
    assert.deepEqual(drill.databasesMissing, []);
    assert.ok(drill.tables.some((table) => table.table === "public.ledger" && table.restored === table.source));
  });

  void it("removes the copy a drill left behind when carehost was killed midway, at the next reconcile", async () => {
    const leftover = join(harness.root, ORG, "drills", "dedicated-prod-1", "postgres");
    await mkdir(join(leftover, "data"), { recursive: true });
    await writeFile(join(leftover, "data", "PG_VERSION"), "15\n");
    const actions = await harness.runtime.reconcile(spec);
    assert.deepEqual(actions, [
      { target: "drill/dedicated-prod-1", action: "removed the copy of an interrupted restore drill" },
    ]);
    await assert.rejects(stat(leftover), /ENOENT/);
  });

  void it("encrypts each cluster under a passphrase of its own, derived from the repository's and opened by nothing else", async () => {
    const local = spec.backupRepositories.find((repository) => repository.name === "local")!;
    const stored = await harness.secrets.current(repositorySecretNames(ORG, local).cipher);
    const own = clusterPassphrase(stored, { organization: ORG, repository: "local", stanza: "dedicated-prod" });
    const repository = join(harness.root, "..", "backups", ORG);
    // pgBackRest 2.45 puts the decryption error's line breaks raw into its JSON: the status is matched, not parsed.
    const stanzaOpens = async (passphrase: string) => {
      const { stdout } = await run(
        "pgbackrest",
        [
          `--config=${pgbackrestConfigPathOf({ directory: clusterDirectory(harness.root, ORG, "dedicated-prod") })}`,
          "--stanza=dedicated-prod",
          "--log-level-file=off",
          "--output=json",
          "info",
        ],
        {
          env: { ...process.env, PGBACKREST_REPO1_CIPHER_PASS: passphrase },
        },
      );
      return /"status":\{"code":0,/.test(stdout);
    };
    assert.equal(await stanzaOpens(own), true);
    assert.equal(await stanzaOpens(stored), false, "the repository's own passphrase opens the stanza");
    const filestore = (passphrase: string) =>
      run("restic", ["--no-cache", "cat", "config"], {
        env: {
          ...process.env,
          RESTIC_REPOSITORY: join(repository, "filestore", "dedicated-prod"),
          RESTIC_PASSWORD: passphrase,
        },
      });
    await filestore(own);
    await assert.rejects(filestore(stored), /wrong password/);
  });

  void it("encrypts the repository, and verify finds a corrupted file", async () => {
    const repository = join(harness.root, "..", "backups", ORG);
    const files = await filesBelow(repository);
    assert.ok(files.length > 5);
    for (const path of files) assert.ok(!(await readFile(path)).includes(MARKER), `${path} holds the plaintext marker`);
    assert.equal((await harness.runtime.verify(spec, "prod")).ok, true);
    // pgBackRest bundles small files (repo-bundle): a bundle of the backup's files is the victim.
    const victim = files.find((path) => /\/backup\/[^/]+\/\d{8}-\d{6}F\/bundle\/\d+$/.test(path));
    assert.ok(victim, "a backup file to corrupt");
    const bytes = await readFile(victim);
    bytes[Math.floor(bytes.length / 2)] = (bytes[Math.floor(bytes.length / 2)]! + 1) % 256;
    await writeFile(victim, bytes);
    const verified = await harness.runtime.verify(spec, "prod");
    assert.equal(verified.ok, false, verified.output);
  });
});
