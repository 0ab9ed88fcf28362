// bench/backup: backing up and restoring an Odoo-sized environment (a database of ≥ 1 GB with many
// tables and indexes, and a filestore of ≥ 1 GB of attachments), side by side in one run with:
//   1. what Odoo's database manager does: pg_dump -Fc, then a zip of the filestore; to restore,
//      createdb + pg_restore, then unzip;
//   2. pgBackRest and restic run by hand, the same commands carehost runs, typed at a shell
//      (carehost's overhead over the bare tools).
// Then the recovery point after a crash: a steady pgbench write load, the primary killed with
// SIGKILL, the newest transaction a restore from the repository brings back compared with the
// newest one the primary had committed.
// Targets: backup ≥ 5x faster than dump+zip, restore ≥ 3x faster than pg_restore+unzip, overhead
// over the bare tools ≤ 10%, RPO ≤ 5 s under load.
// BENCH_BACKUP_GB and BENCH_FILESTORE_GB set the sizes (default 1 each).
//
// Run: npx tsx bench/backup/backup-bench.ts
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import pg from "pg";
import { filestoreDirectoryOf } from "../../src/runtime/local/local-filestore.js";
import { localRuntimeFactory } from "../../src/runtime/local/local-runtime.js";
import { secretNames } from "../../src/runtime/local/local-placement.js";
import { masterKeyFrom } from "../../src/secrets/secrets-master-key.js";
import { secretsServiceFactory } from "../../src/secrets/secrets-service.js";
import { loadSpecText } from "../../src/spec/spec-loader.js";
import { openStore } from "../../src/store/store-open.js";
import { changeDatabase, generateDatabase, generateFilestore } from "./odoo-data.js";

const run = promisify(execFile);
const BIN = "/usr/lib/postgresql/15/bin";
const ORG = "bench-backup";
const DATABASE_BYTES = Number(process.env.BENCH_BACKUP_GB ?? "1") * 1024 ** 3;
const FILESTORE_BYTES = Number(process.env.BENCH_FILESTORE_GB ?? "1") * 1024 ** 3;
const LOAD_SECONDS = 30;
const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;
const timed = async (work: () => Promise<unknown>): Promise<number> => {
  const start = process.hrtime.bigint();
  await work();
  return seconds(start);
};
const gb = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(2)} GB`;
const ratio = (slow: number, fast: number) => `${(slow / fast).toFixed(1)}x`;

async function main(): Promise<void> {
  const home = await mkdtemp(join(tmpdir(), "carehost-bench-backup-"));
  await chmod(home, 0o711);
  const root = join(home, "runtime");
  const db = await openStore({ kind: "pglite", dataDir: join(home, "state") });
  const secrets = secretsServiceFactory({ db, masterKey: masterKeyFrom(randomBytes(32), "env"), audit: { append: async () => undefined }, authorizeReveal: async () => undefined });
  const runtime = localRuntimeFactory({ root, secrets });
  const loaded = loadSpecText(readFileSync(new URL("../../examples/northwind-health.yaml", import.meta.url), "utf8"), "northwind-health.yaml");
  if (!loaded.ok) throw new Error("the demo spec does not load");
  // Production alone, to the host's own repository (the demo's offsite one needs an Azure key).
  const prod = loaded.spec.environments.find((environment) => environment.name === "prod")!;
  if (!prod.backup.enabled) throw new Error("the demo's prod has backups disabled");
  const spec = { ...loaded.spec, metadata: { name: ORG, displayName: "bench" }, environments: [{ ...prod, backup: { ...prod.backup, repositories: ["local"] } }] };
  try {
    await runtime.reconcile(spec);
    const port = (await runtime.observe(spec)).environments[0]!.postgres.port!;
    const adminPassword = await secrets.current(secretNames.clusterAdmin(ORG, "dedicated-prod"));
    const ca = join(root, ORG, "ca.crt");
    const env = { ...process.env, PGHOST: "127.0.0.1", PGPORT: String(port), PGUSER: "carehost_admin", PGPASSWORD: adminPassword, PGSSLMODE: "verify-full", PGSSLROOTCERT: ca };
    const connect = async (database = "prod") => {
      const client = new pg.Client({ host: "127.0.0.1", port, user: "carehost_admin", password: adminPassword, database, ssl: { ca: readFileSync(ca, "utf8") } });
      client.on("error", () => undefined);
      await client.connect();
      return client;
    };

    console.log(`bench/backup: generating a ~${gb(DATABASE_BYTES)} database and a ~${gb(FILESTORE_BYTES)} filestore…`);
    const client = await connect();
    const generating = process.hrtime.bigint();
    await generateDatabase(client, DATABASE_BYTES);
    const size = Number((await client.query<{ size: string }>("SELECT pg_database_size('prod') AS size")).rows[0]?.size);
    const filestore = filestoreDirectoryOf(root, ORG, prod);
    const files = await generateFilestore(filestore, FILESTORE_BYTES);
    console.log(`  database ${gb(size)} in ${(await client.query("SELECT count(*) FROM pg_class WHERE relkind IN ('r', 'i') AND relnamespace = 'public'::regnamespace")).rows[0]?.count} tables and indexes; filestore ${files.files} files, ${gb(files.bytes)}; generated in ${seconds(generating).toFixed(0)} s`);

    // ── Backup: carehost, then Odoo's way, then the bare tools.
    const carehostFull = await timed(() => runtime.backup(spec, "prod", "full"));
    const dumpFile = join(home, "prod.dump");
    const zipFile = join(home, "filestore.zip");
    const pgDump = await timed(() => run(join(BIN, "pg_dump"), ["-d", "prod", "-Fc", "-f", dumpFile], { env }));
    const zip = await timed(() => run("zip", ["-r", "-q", zipFile, "."], { cwd: filestore }));
    const conf = join(root, ORG, "postgres", "dedicated-prod", "pgbackrest", "pgbackrest.conf");
    const cipher = await secrets.current(`backup/${ORG}/backup-local-cipher`);
    const handPgbackrest = await timed(() =>
      run("runuser", ["-u", "postgres", "--", "pgbackrest", `--config=${conf}`, "--stanza=dedicated-prod", "--type=full", "backup"], { env: { ...process.env, PGPASSWORD: adminPassword, PGBACKREST_REPO1_CIPHER_PASS: cipher } }),
    );
    // restic into a repository of its own, as carehost's first snapshot went into a new one.
    const resticEnv = { ...process.env, RESTIC_REPOSITORY: join(home, "restic-by-hand"), RESTIC_PASSWORD: cipher, RESTIC_CACHE_DIR: join(home, "restic-cache") };
    const handRestic = await timed(async () => {
      await run("restic", ["init"], { env: resticEnv });
      await run("restic", ["backup", "--host", ORG, "--tag", "env:prod", "."], { env: resticEnv, cwd: filestore, maxBuffer: 1 << 26 });
    });
    const odooBackup = pgDump + zip;
    const handBackup = handPgbackrest + handRestic;

    // ── A day later: 1% of the rows changed, 1% more attachments; carehost takes its daily backup, Odoo's way is always whole.
    await changeDatabase(client);
    await generateFilestore(filestore, FILESTORE_BYTES / 100, files.files);
    await client.end();
    const carehostDaily = await timed(() => runtime.backup(spec, "prod", "incr"));
    const dailyOdoo = await timed(async () => {
      await run(join(BIN, "pg_dump"), ["-d", "prod", "-Fc", "-f", `${dumpFile}.2`], { env });
      await run("zip", ["-r", "-q", `${zipFile}.2`, "."], { cwd: filestore });
    });
    await rm(`${dumpFile}.2`);
    await rm(`${zipFile}.2`);

    // ── Restore: carehost into a new copy (database and filestore), then Odoo's way.
    let restoreSteps = "";
    const carehostRestore = await timed(async () => {
      const restored = await runtime.restore(spec, "prod", { kind: "latest" }, { kind: "copy", name: "bench" });
      restoreSteps = restored.steps.map((item) => `${item.step} ${(item.durationMs / 1000).toFixed(1)} s`).join(", ");
    });
    const unzipTarget = join(home, "unzipped");
    const pgRestore = await timed(async () => {
      await run(join(BIN, "createdb"), ["prod_restored"], { env });
      await run(join(BIN, "pg_restore"), ["-d", "prod_restored", dumpFile], { env, maxBuffer: 1 << 26 });
    });
    const unzip = await timed(() => run("unzip", ["-q", zipFile, "-d", unzipTarget]));
    const odooRestore = pgRestore + unzip;
    await run(join(BIN, "dropdb"), ["prod_restored"], { env });
    await rm(unzipTarget, { recursive: true, force: true });

    // ── RPO after a crash under a steady pgbench load.
    const rpo = await measureRpo({ env, connect, kill: () => killPostmaster(join(root, ORG, "postgres", "dedicated-prod", "data"), conf), restoreCopy: (name) => runtime.restore(spec, "prod", { kind: "latest" }, { kind: "copy", name }), restart: () => runtime.restartStopped(spec), connectCopy: async (copyPort) => {
      const copy = new pg.Client({ host: "127.0.0.1", port: copyPort, user: "carehost_admin", password: adminPassword, database: "prod", ssl: { ca: readFileSync(ca, "utf8") } });
      copy.on("error", () => undefined);
      await copy.connect();
      return copy;
    } });

    console.log("");
    console.log(`  backup, full     carehost ${carehostFull.toFixed(1)} s | pg_dump -Fc ${pgDump.toFixed(1)} s + zip ${zip.toFixed(1)} s = ${odooBackup.toFixed(1)} s | pgBackRest ${handPgbackrest.toFixed(1)} s + restic ${handRestic.toFixed(1)} s by hand = ${handBackup.toFixed(1)} s`);
    console.log(`                   carehost is ${ratio(odooBackup, carehostFull)} faster than dump+zip (target ≥ 5x); overhead over the bare tools ${(((carehostFull - handBackup) / handBackup) * 100).toFixed(1)}% (target ≤ 10%)`);
    console.log(`  backup, daily    carehost incremental ${carehostDaily.toFixed(1)} s | dump+zip (always whole) ${dailyOdoo.toFixed(1)} s: ${ratio(dailyOdoo, carehostDaily)} faster`);
    console.log(`  restore          carehost ${carehostRestore.toFixed(1)} s to a writable copy with its filestore | createdb + pg_restore ${pgRestore.toFixed(1)} s + unzip ${unzip.toFixed(1)} s = ${odooRestore.toFixed(1)} s`);
    console.log(`                   carehost is ${ratio(odooRestore, carehostRestore)} faster than pg_restore+unzip (target ≥ 3x); steps: ${restoreSteps}`);
    console.log(`  RPO after crash  ${rpo.rpoSeconds.toFixed(1)} s under pgbench (${rpo.tps.toFixed(0)} tps, ${rpo.walMbPerSecond.toFixed(1)} MB/s of WAL) (target ≤ 5 s); a daily dump+zip loses up to 24 h`);
  } finally {
    await runtime.stopOrganization(spec).catch(() => undefined);
    await runtime.close();
    await db.close();
    // pgBackRest's asynchronous archiver may still be finishing a push into the repository.
    await rm(home, { recursive: true, force: true, maxRetries: 10 });
  }
}

/**
 * The host is lost: SIGKILL to the postmaster and to pgBackRest's asynchronous archiver, which
 * would otherwise go on pushing the WAL left in the spool; nothing is flushed on the way out.
 */
async function killPostmaster(dataDirectory: string, configPath: string): Promise<void> {
  const pid = Number((await readFile(join(dataDirectory, "postmaster.pid"), "utf8")).split("\n")[0]);
  process.kill(pid, "SIGKILL");
  await run("pkill", ["-KILL", "-f", `--config=${configPath}`]).catch(() => undefined);
  for (let attempt = 0; attempt < 100; attempt += 1) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await sleep(50);
  }
}

/**
 * Runs pgbench (TPC-B-like, every transaction stamps pgbench_history.mtime) against prod, kills
 * the primary midway, restores the latest recoverable state from the repository into a copy, and
 * compares its newest transaction with the newest one the primary committed (read after the
 * primary's own crash recovery, which loses nothing committed).
 */
async function measureRpo(input: {
  env: NodeJS.ProcessEnv;
  connect: () => Promise<pg.Client>;
  kill: () => Promise<void>;
  restart: () => Promise<unknown>;
  restoreCopy: (name: string) => Promise<{ port: number }>;
  connectCopy: (port: number) => Promise<pg.Client>;
}): Promise<{ rpoSeconds: number; tps: number; walMbPerSecond: number }> {
  await run(join(BIN, "pgbench"), ["-i", "-s", "10", "-q", "prod"], { env: input.env });
  const before = await input.connect();
  // A steady state to start from: the archiver has caught up with what the bench wrote before.
  await before.query("SELECT pg_switch_wal()");
  for (let attempt = 0; attempt < 1200; attempt += 1) {
    const archiver = await before.query<{ caught_up: boolean }>("SELECT last_archived_wal >= pg_walfile_name(pg_current_wal_lsn()) AS caught_up FROM pg_stat_archiver");
    if (archiver.rows[0]?.caught_up === true) break;
    await sleep(100);
  }
  const startLsn = (await before.query<{ lsn: string }>("SELECT pg_current_wal_lsn() AS lsn")).rows[0]!.lsn;
  const startCount = Number((await before.query<{ n: string }>("SELECT count(*) AS n FROM pgbench_history")).rows[0]?.n);
  await before.end();
  const load = spawn(join(BIN, "pgbench"), ["-n", "-c", "4", "-j", "2", "-T", String(LOAD_SECONDS * 2), "prod"], { env: input.env, stdio: "ignore" });
  await sleep(LOAD_SECONDS * 1000);
  await input.kill();
  load.kill("SIGKILL");
  const copy = await input.restoreCopy("rpo");
  const restored = await input.connectCopy(copy.port);
  const recovered = (await restored.query<{ newest: Date }>("SELECT max(mtime) AS newest FROM pgbench_history")).rows[0]!.newest;
  await restored.end();
  await input.restart();
  const primary = await input.connect();
  const committed = await primary.query<{ newest: Date; n: string; wal: string }>(
    "SELECT max(mtime) AS newest, count(*) AS n, pg_wal_lsn_diff(pg_current_wal_lsn(), $1) AS wal FROM pgbench_history",
    [startLsn],
  );
  await primary.end();
  const row = committed.rows[0]!;
  return {
    rpoSeconds: Math.max(0, (row.newest.getTime() - recovered.getTime()) / 1000),
    tps: (Number(row.n) - startCount) / LOAD_SECONDS,
    walMbPerSecond: Number(row.wal) / 1024 ** 2 / LOAD_SECONDS,
  };
}

await main();
