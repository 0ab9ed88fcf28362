// bench/backup: backing up and restoring an Odoo-sized database (≥ 1 GB by default, many tables
// and indexes), three ways in one run:
//   1. carehost (pgBackRest through the local runtime: zstd, AES-256, parallel, WAL archiving on),
//   2. what Odoo's database manager does (pg_dump -Fc; pg_restore into a new database),
//   3. pgBackRest run by hand on the same cluster (carehost's overhead over the bare tool).
// Targets: backup ≥ 5x faster than pg_dump, restore ≥ 3x faster than pg_restore, overhead ≤ 10%.
// The filestore half of the comparison (zip vs carehost) is not measured: carehost does not back
// up the filestore yet. BENCH_BACKUP_GB sets the database size (default 1).
//
// Run: npx tsx bench/backup/backup-bench.ts
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { localRuntimeFactory } from "../../src/runtime/local/local-runtime.js";
import { secretNames } from "../../src/runtime/local/local-placement.js";
import { masterKeyFrom } from "../../src/secrets/secrets-master-key.js";
import { secretsServiceFactory } from "../../src/secrets/secrets-service.js";
import { loadSpecText } from "../../src/spec/spec-loader.js";
import { openStore } from "../../src/store/store-open.js";

const run = promisify(execFile);
const BIN = "/usr/lib/postgresql/15/bin";
const TARGET_BYTES = Number(process.env.BENCH_BACKUP_GB ?? "1") * 1024 ** 3;
const TABLES = 40;
const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;

async function main(): Promise<void> {
  const home = await mkdtemp(join(tmpdir(), "carehost-bench-backup-"));
  await chmod(home, 0o711);
  const db = await openStore({ kind: "pglite", dataDir: join(home, "state") });
  const secrets = secretsServiceFactory({ db, masterKey: masterKeyFrom(randomBytes(32), "env"), audit: { append: async () => undefined }, authorizeReveal: async () => undefined });
  const runtime = localRuntimeFactory({ root: join(home, "runtime"), secrets });
  const loaded = loadSpecText(readFileSync(new URL("../../examples/northwind-health.yaml", import.meta.url), "utf8"), "northwind-health.yaml");
  if (!loaded.ok) throw new Error("the demo spec does not load");
  const spec = { ...loaded.spec, metadata: { name: "bench-backup", displayName: "bench" }, environments: loaded.spec.environments.filter((environment) => environment.name === "prod") };
  try {
    await runtime.reconcile(spec);
    const port = (await runtime.observe(spec)).environments[0]!.postgres.port!;
    const adminPassword = await secrets.current(secretNames.clusterAdmin("bench-backup", "dedicated-prod"));
    const ca = join(home, "runtime", "bench-backup", "ca.crt");
    const env = { ...process.env, PGPASSWORD: adminPassword, PGSSLMODE: "verify-full", PGSSLROOTCERT: ca };
    const client = new pg.Client({ host: "127.0.0.1", port, user: "carehost_admin", password: adminPassword, database: "prod", ssl: { ca: readFileSync(ca, "utf8") } });
    await client.connect();

    // An Odoo-like schema: many tables with text, numbers, dates, and two indexes each.
    console.log(`bench/backup: generating ~${(TARGET_BYTES / 1024 ** 3).toFixed(1)} GB in ${TABLES} tables…`);
    const rowsPerTable = Math.ceil(TARGET_BYTES / TABLES / 420);
    const generate = process.hrtime.bigint();
    for (let table = 0; table < TABLES; table += 1) {
      await client.query(`CREATE TABLE model_${table} (id bigserial PRIMARY KEY, name text, ref text, amount numeric(14,2), state text, partner_id int, create_date timestamptz, note text)`);
      await client.query(
        `INSERT INTO model_${table} (name, ref, amount, state, partner_id, create_date, note)
         SELECT 'Record ' || g, md5(g::text), (g % 100000) / 100.0, (ARRAY['draft','posted','cancel'])[1 + g % 3], g % 5000, now() - (g || ' minutes')::interval, repeat(md5((g * 7)::text), 9)
         FROM generate_series(1, ${rowsPerTable}) AS g`,
      );
      await client.query(`CREATE INDEX ON model_${table} (partner_id, state)`);
      await client.query(`CREATE INDEX ON model_${table} (create_date)`);
    }
    const size = Number((await client.query<{ size: string }>("SELECT pg_database_size('prod') AS size")).rows[0]?.size);
    await client.end();
    console.log(`  database: ${(size / 1024 ** 3).toFixed(2)} GB in ${seconds(generate).toFixed(0)} s`);

    let start = process.hrtime.bigint();
    const backup = await runtime.backup(spec, "prod", "full");
    const carehostBackup = seconds(start);

    const dumpFile = join(home, "prod.dump");
    start = process.hrtime.bigint();
    await run(join(BIN, "pg_dump"), ["-h", "127.0.0.1", "-p", String(port), "-U", "carehost_admin", "-d", "prod", "-Fc", "-f", dumpFile], { env, maxBuffer: 1 << 26 });
    const dumpSeconds = seconds(start);

    // pgBackRest by hand: the same command carehost runs, typed at a shell.
    const conf = join(home, "runtime", "bench-backup", "postgres", "dedicated-prod", "pgbackrest", "pgbackrest.conf");
    const cipher = await secrets.current("backup/bench-backup/backup-local-cipher");
    start = process.hrtime.bigint();
    await run("runuser", ["-u", "postgres", "--", "pgbackrest", `--config=${conf}`, "--stanza=dedicated-prod", "--type=full", "backup"], { env: { ...process.env, PGPASSWORD: adminPassword, PGBACKREST_REPO1_CIPHER_PASS: cipher } });
    const handBackup = seconds(start);

    start = process.hrtime.bigint();
    const restored = await runtime.restore(spec, "prod", { kind: "latest" }, { kind: "copy", name: "bench" });
    const carehostRestore = seconds(start);

    start = process.hrtime.bigint();
    await run(join(BIN, "createdb"), ["-h", "127.0.0.1", "-p", String(port), "-U", "carehost_admin", "prod_restored"], { env });
    await run(join(BIN, "pg_restore"), ["-h", "127.0.0.1", "-p", String(port), "-U", "carehost_admin", "-d", "prod_restored", dumpFile], { env, maxBuffer: 1 << 26 });
    const pgRestore = seconds(start);

    console.log(`  backup:  carehost ${carehostBackup.toFixed(1)} s (${backup.label}) | pg_dump -Fc ${dumpSeconds.toFixed(1)} s | pgBackRest by hand ${handBackup.toFixed(1)} s`);
    console.log(`           carehost is ${(dumpSeconds / carehostBackup).toFixed(1)}x faster than pg_dump (target ≥ 5x); overhead over bare pgBackRest ${(((carehostBackup - handBackup) / handBackup) * 100).toFixed(1)}% (target ≤ 10%)`);
    console.log(`  restore: carehost ${carehostRestore.toFixed(1)} s to a writable copy on port ${restored.port} | createdb + pg_restore ${pgRestore.toFixed(1)} s`);
    console.log(`           carehost is ${(pgRestore / carehostRestore).toFixed(1)}x faster than pg_restore (target ≥ 3x)`);
  } finally {
    await runtime.stopOrganization(spec).catch(() => undefined);
    const { readdir } = await import("node:fs/promises");
    for (const name of await readdir(join(home, "runtime", "bench-backup", "restores")).catch(() => [] as string[])) {
      await run("runuser", ["-u", "postgres", "--", join(BIN, "pg_ctl"), "stop", "-D", join(home, "runtime", "bench-backup", "restores", name, "data"), "-m", "immediate"]).catch(() => undefined);
    }
    await runtime.close();
    await db.close();
    await rm(home, { recursive: true, force: true });
  }
}

await main();
