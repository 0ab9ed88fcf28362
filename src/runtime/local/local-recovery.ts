// Backups, restores and restore drills of the local runtime, on pgBackRest. A restore goes into a
// new "scratch" cluster next to the source (its own data directory and port, archiving off so it
// can never write into production's repository), or, for a dedicated cluster, in place over the
// stopped cluster (`--delta`, archiving on: the new timeline is archived like the old one). A
// drill restores the latest backup, checks it, measures the achieved RTO and RPO, and tears the
// copy down.
import { randomBytes } from "node:crypto";
import { appendFile, mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import { pgbackrest, stanzaInfo } from "../../backup/pgbackrest-command.js";
import type { TBackupInfo } from "../../backup/pgbackrest-command.js";
import { ConflictError, DomainError, NotFoundError, ValidationError } from "../../lib/errors.js";
import type { TEnvironmentSpec } from "../../spec/spec-schema.js";
import type { TResticRepository } from "../../backup/restic-command.js";
import type { TBackupType, TDrillResult, TRestoreTarget, TTableCount } from "../../backup/recovery-driver.js";
import type { TClusterBackup } from "./local-backup-config.js";
import {
  CLUSTER_ADMIN_ROLE,
  connectAdmin,
  dataDirectoryOf,
  postgresBinary,
  serverLog,
  startCluster,
  stopCluster,
} from "./postgres-cluster.js";
import { renderReplayFloor, replayFloorOf } from "./postgres-replay-settings.js";
import type { TReplaySettings } from "./postgres-replay-settings.js";
import type { TPostgresCluster } from "./postgres-cluster.js";
import { runCommand } from "../../lib/runtime-command.js";
import { freeLoopbackPort } from "./runtime-instance.js";

/** A cluster reachable by the recovery code: its process, admin password, backup access and CA. */
export type TRecoverableCluster = {
  readonly cluster: TPostgresCluster;
  readonly backup: TClusterBackup;
  readonly adminPassword: string;
  readonly caPem: string;
  readonly caPath: string;
  /** The restic repositories of the cluster's filestores, in the order of the pgBackRest repositories. */
  readonly filestoreRepositories: readonly TResticRepository[];
};

const LSN_PATTERN = /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i;
/**
 * The table carehost writes a timestamp into every supervision tick, so a restore shows how recent
 * it is: in a schema of carehost's own, qualified, never where a tenant could plant an object that
 * the superuser's statement would resolve to (connectAdmin also pins search_path to pg_catalog).
 */
const HEARTBEAT_SCHEMA = "carehost";
const HEARTBEAT_TABLE = `${HEARTBEAT_SCHEMA}.heartbeat`;
/** Where carehost before 2026-12 kept it, read only from backups taken then. */
const LEGACY_HEARTBEAT_TABLE = "public.carehost_heartbeat";

/** The id one backup run carries into every repository and every filestore snapshot, e.g. 20261129T201437Z-3f9a. */
export const backupRunId = (at: Date) =>
  `${at
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z")}-${randomBytes(2).toString("hex")}`;

/** The pgBackRest annotation naming the carehost backup run a backup belongs to. */
const RUN_ANNOTATION = "carehost-run";

/**
 * One pgBackRest backup per repository (pgBackRest writes a backup to one repository per run):
 * every repository holds a whole, independently restorable backup, annotated with the run's id.
 * Returns the first repository's.
 */
export async function takeBackup(source: TRecoverableCluster, type: TBackupType, runId: string): Promise<TBackupInfo> {
  for (const index of source.backup.repositories.keys()) {
    await pgbackrest(source.backup.access, "backup", [
      `--type=${type}`,
      `--repo=${index + 1}`,
      `--annotation=${RUN_ANNOTATION}=${runId}`,
    ]);
  }
  const created = (await stanzaInfo(source.backup.access)).backups.filter(
    (backup) => backup.annotations[RUN_ANNOTATION] === runId,
  );
  const first = created.find((backup) => backup.repository === 1);
  if (first === undefined)
    throw new DomainError(
      `pgBackRest reported success for stanza "${source.backup.access.stanza}" but no backup of run ${runId} is listed`,
    );
  return first;
}

export async function verifyRepository(source: TRecoverableCluster): Promise<{ ok: boolean; output: string }> {
  try {
    const output = await pgbackrest(source.backup.access, "verify", ["--log-level-console=info"]);
    // pgBackRest 2.45's verify exits 0 even when it finds bad files; its summary says so.
    return { ok: !/status: error|invalid checksum|missing/i.test(output), output };
  } catch (error) {
    return { ok: false, output: error instanceof Error ? error.message : String(error) };
  }
}

/** Writes the heartbeat into the cluster's postgres database (table created on first use). */
export async function writeHeartbeat(admin: Pick<pg.Client, "query">): Promise<void> {
  await admin.query(`CREATE SCHEMA IF NOT EXISTS ${HEARTBEAT_SCHEMA} AUTHORIZATION ${CLUSTER_ADMIN_ROLE}`);
  await admin.query(`REVOKE ALL ON SCHEMA ${HEARTBEAT_SCHEMA} FROM PUBLIC`);
  await admin.query(`CREATE TABLE IF NOT EXISTS ${HEARTBEAT_TABLE} (id int PRIMARY KEY, at timestamptz NOT NULL)`);
  await admin.query(
    `INSERT INTO ${HEARTBEAT_TABLE} VALUES (1, pg_catalog.clock_timestamp()) ON CONFLICT (id) DO UPDATE SET at = excluded.at`,
  );
}

const targetOptions = (target: TRestoreTarget): string[] => {
  if (target.kind === "time") {
    if (Number.isNaN(target.time.getTime()))
      throw new ValidationError("the restore target time is not a valid instant");
    return [
      "--type=time",
      `--target=${target.time.toISOString().replace("T", " ").replace("Z", "+00")}`,
      "--target-action=promote",
    ];
  }
  if (target.kind === "lsn") {
    if (!LSN_PATTERN.test(target.lsn))
      throw new ValidationError(`--to-lsn ${JSON.stringify(target.lsn)} is not an LSN such as 0/3000028`);
    return ["--type=lsn", `--target=${target.lsn}`, "--target-action=promote"];
  }
  return [];
};

/**
 * Restores the source's backups into a new cluster in `directory` on a free port and starts it.
 * Returns once the copy accepts connections. Leaves nothing behind on failure.
 */
export async function restoreToScratch(
  source: TRecoverableCluster,
  directory: string,
  target: TRestoreTarget,
  /** The copy's settings floor; by default the highest the source has run with (postgres-replay-settings.ts). */
  replayFloor?: TReplaySettings,
): Promise<TPostgresCluster> {
  const scratch: TPostgresCluster = {
    name: `${source.cluster.name}-restore`,
    directory,
    port: await freeLoopbackPort(),
    version: source.cluster.version,
    owner: source.cluster.owner,
  };
  const socketDirectory = join(directory, "run");
  // The parents only need to be traversable for the cluster's account.
  await mkdir(dirname(directory), { recursive: true, mode: 0o711 });
  await mkdir(socketDirectory, { recursive: true, mode: 0o700 });
  await mkdir(dataDirectoryOf(scratch), { recursive: true, mode: 0o700 });
  if (scratch.owner !== undefined) {
    await runCommand("chown", ["-R", `${scratch.owner.uid}:${scratch.owner.gid}`, directory]);
  }
  try {
    // archive-mode=off: the copy keeps production's archive_command otherwise (PGBACKREST.md).
    // A spool of its own: a restore clears the spool's archive queues, and the source's holds the
    // live archiver's status files (clearing it under a busy source fails the restore).
    const floor = replayFloor ?? (await replayFloorOf(source.cluster));
    await pgbackrest(source.backup.access, "restore", [
      `--pg1-path=${dataDirectoryOf(scratch)}`,
      `--spool-path=${join(directory, "spool")}`,
      "--archive-mode=off",
      ...targetOptions(target),
    ]);
    // The copy's own port and socket, after pgBackRest's recovery settings in the same file.
    await appendFile(
      join(dataDirectoryOf(scratch), "postgresql.auto.conf"),
      `\n# carehost: restored copy\nport = ${scratch.port}\nunix_socket_directories = '${socketDirectory}'\n${renderReplayFloor(floor)}`,
    );
    // restore_command (archive-get) reads the repository: it needs the passphrases too.
    await startRecovering(scratch, source, target);
    return scratch;
  } catch (error) {
    await stopCluster(scratch).catch(() => undefined);
    await rm(directory, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Restores a dedicated cluster over itself: the caller has stopped it and taken a safety backup.
 * `--delta` rewrites only the files that differ; archiving stays on, so the promoted timeline is
 * archived and backed up like the one before it.
 */
export async function restoreInPlace(source: TRecoverableCluster, target: TRestoreTarget): Promise<void> {
  // Read before the restore rewrites the control file with the backup's.
  const floor = await replayFloorOf(source.cluster);
  await stopCluster(source.cluster);
  await pgbackrest(source.backup.access, "restore", ["--delta", ...targetOptions(target)]);
  await appendFile(join(dataDirectoryOf(source.cluster), "postgresql.auto.conf"), `\n${renderReplayFloor(floor)}`);
  await startRecovering(source.cluster, source, target);
  // pgBackRest's recovery settings stay in postgresql.auto.conf after promotion; they only apply at
  // a restart and carehost's own settings live in postgresql.conf, so the file is emptied and the
  // cluster restarted once, leaving nothing pending for the next reconcile.
  await stopCluster(source.cluster);
  await writeFile(
    join(dataDirectoryOf(source.cluster), "postgresql.auto.conf"),
    "# carehost: pgBackRest's recovery settings removed after an in-place restore\n",
  );
  await startCluster(source.cluster, source.backup.access.env);
}

/** The commit time of the last transaction a restored cluster replayed (null: it replayed none). */
export async function recoveredUntil(cluster: TPostgresCluster, source: TRecoverableCluster): Promise<Date | null> {
  const client = await connectAdmin(cluster, source.adminPassword, source.caPem);
  try {
    return (
      (await client.query<{ at: Date | null }>("SELECT pg_last_xact_replay_timestamp() AS at")).rows[0]?.at ?? null
    );
  } finally {
    await client.end();
  }
}

/** Why PostgreSQL stopped or paused a recovery, in its own words (the server log's lines about it). */
async function recoveryReason(cluster: TPostgresCluster): Promise<string> {
  const lines = (await serverLog(cluster)).trim().split("\n");
  const relevant = lines.filter((line) =>
    /FATAL|PANIC|WARNING|DETAIL|HINT|recovery has paused|recovery ended|recovery stopping/.test(line),
  );
  return (relevant.length > 0 ? relevant : lines)
    .slice(-6)
    .map((line) => line.replace(/^\S+ \S+ \S+ \[\d+\] \S*\s*/, ""))
    .join("; ");
}

/** The failure of a recovery, with PostgreSQL's reason and what to do about it. */
async function recoveryFailure(
  cluster: TPostgresCluster,
  target: TRestoreTarget,
  what: string,
): Promise<ConflictError> {
  const reason = await recoveryReason(cluster);
  const advice = /recovery ended before configured recovery target was reached/.test(reason)
    ? "the archive ends before the target: restore to an earlier instant, or let the source archive its WAL first"
    : /insufficient parameter settings|is a lower setting than on the primary/.test(reason)
      ? "the copy started with a lower setting than the primary ran with: set it at least as high in the copy's postgresql.auto.conf and start it again, or restore again"
      : "see the copy's server log for the cause";
  const described =
    target.kind === "time" ? ` to ${target.time.toISOString()}` : target.kind === "lsn" ? ` to LSN ${target.lsn}` : "";
  return new ConflictError(
    `the recovery of cluster "${cluster.name}"${described} ${what}: ${reason || "the server logged nothing"} (${advice})`,
  );
}

/** Starts a cluster that pgBackRest restored and returns once it is promoted, or throws PostgreSQL's reason as soon as it stops or pauses. */
async function startRecovering(
  cluster: TPostgresCluster,
  source: TRecoverableCluster,
  target: TRestoreTarget,
): Promise<void> {
  try {
    await startCluster(cluster, source.backup.access.env);
  } catch {
    throw await recoveryFailure(cluster, target, "stopped before the copy accepted connections");
  }
  await waitUntilPromoted(cluster, source, target);
}

/**
 * With hot_standby the copy answers queries while it still replays WAL: wait until it is promoted
 * and writable. A recovery that pauses (settings lower than the primary's) or a postmaster that
 * exits (the archive ended before the target) is reported at once, never by a deadline.
 */
async function waitUntilPromoted(
  cluster: TPostgresCluster,
  source: TRecoverableCluster,
  target: TRestoreTarget,
): Promise<void> {
  const client = await connectAdmin(cluster, source.adminPassword, source.caPem).catch(async () => {
    throw await recoveryFailure(cluster, target, "stopped before carehost could connect");
  });
  try {
    for (;;) {
      const state = await client
        .query<{ recovering: boolean; pause: string | null }>(
          "SELECT pg_is_in_recovery() AS recovering, CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() END AS pause",
        )
        .then((result) => result.rows[0])
        .catch(() => undefined);
      if (state === undefined) throw await recoveryFailure(cluster, target, "ended: the server closed the connection");
      if (!state.recovering) return;
      if (state.pause !== "not paused")
        throw await recoveryFailure(
          cluster,
          target,
          state.pause === "paused" ? "paused" : `is pausing (${state.pause})`,
        );
      await sleep(50);
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function discardScratch(scratch: TPostgresCluster): Promise<void> {
  await stopCluster(scratch).catch(() => undefined);
  await rm(scratch.directory, { recursive: true, force: true });
}

const databasesOf = async (admin: Pick<pg.Client, "query">): Promise<string[]> =>
  (
    await admin.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datallowconn AND datname NOT IN ('template0', 'template1') ORDER BY 1",
    )
  ).rows.map((row) => row.datname);

/** The five largest user tables of a database, with exact row counts. */
async function largestTables(
  cluster: TPostgresCluster,
  source: TRecoverableCluster,
  database: string,
): Promise<Map<string, number>> {
  const client = await connectAdmin(cluster, source.adminPassword, source.caPem, database);
  try {
    const tables = await client.query<{ name: string }>(
      "SELECT format('%I.%I', schemaname, relname) AS name FROM pg_stat_user_tables ORDER BY pg_total_relation_size(relid) DESC, 1 LIMIT 5",
    );
    const counts = new Map<string, number>();
    for (const { name } of tables.rows)
      counts.set(
        name,
        Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${name}`)).rows[0]?.n ?? 0),
      );
    return counts;
  } finally {
    await client.end();
  }
}

/** Restores the latest backup into a scratch cluster, checks it, measures RTO and RPO, and removes it. */
export async function runDrill(
  source: TRecoverableCluster,
  scratchDirectory: string,
  environments: readonly TEnvironmentSpec[],
  now = () => new Date(),
): Promise<TDrillResult> {
  const info = await stanzaInfo(source.backup.access);
  const latest = info.backups.at(-1);
  if (latest === undefined)
    throw new NotFoundError(
      `stanza "${source.backup.access.stanza}" has no backup to drill yet; run carehost backup first`,
    );
  const startedAt = now();
  const started = process.hrtime.bigint();
  const scratch = await restoreToScratch(source, scratchDirectory, { kind: "latest" });
  try {
    const restored = await connectAdmin(scratch, source.adminPassword, source.caPem);
    let rpoSeconds: number | null = null;
    let databasesMissing: string[] = [];
    try {
      const restoredDatabases = new Set(await databasesOf(restored));
      databasesMissing = environments
        .map((environment) => environment.name)
        .filter((name) => !restoredDatabases.has(name));
      for (const database of restoredDatabases) {
        const client = await connectAdmin(scratch, source.adminPassword, source.caPem, database);
        await client.query("SELECT 1");
        await client.end();
      }
      const heartbeatIn = (table: string) =>
        restored
          .query<{ at: Date }>(`SELECT at FROM ${table} WHERE id = 1`)
          .catch(() => ({ rows: [] as { at: Date }[] }));
      const current = await heartbeatIn(HEARTBEAT_TABLE);
      const heartbeat = current.rows.length > 0 ? current : await heartbeatIn(LEGACY_HEARTBEAT_TABLE);
      const at = heartbeat.rows[0]?.at;
      if (at !== undefined) rpoSeconds = Math.max(0, (startedAt.getTime() - at.getTime()) / 1000);
    } finally {
      await restored.end();
    }
    const rtoSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    const amcheck = await runCommand(
      postgresBinary(scratch, "pg_amcheck"),
      [
        "-h",
        "127.0.0.1",
        "-p",
        String(scratch.port),
        "-U",
        CLUSTER_ADMIN_ROLE,
        "--all",
        "--install-missing",
        "--heapallindexed",
      ],
      {
        env: { PGPASSWORD: source.adminPassword, PGSSLMODE: "verify-full", PGSSLROOTCERT: source.caPath },
        timeoutMs: 30 * 60_000,
      },
    ).then(
      (result) => ({ passed: true, output: (result.stdout + result.stderr).trim() }),
      (error: unknown) => ({ passed: false, output: error instanceof Error ? error.message : String(error) }),
    );
    const tables: TTableCount[] = [];
    for (const environment of environments) {
      if (databasesMissing.includes(environment.name)) continue;
      const sourceCounts = await largestTables(source.cluster, source, environment.name);
      const restoredCounts = await largestTables(scratch, source, environment.name);
      for (const [table, count] of sourceCounts)
        tables.push({ database: environment.name, table, source: count, restored: restoredCounts.get(table) ?? 0 });
    }
    return {
      backupLabel: latest.label,
      startedAt,
      rtoSeconds,
      rpoSeconds,
      amcheckPassed: amcheck.passed,
      amcheckOutput: amcheck.output.slice(-2000),
      databasesMissing,
      tables,
    };
  } finally {
    await discardScratch(scratch);
  }
}
