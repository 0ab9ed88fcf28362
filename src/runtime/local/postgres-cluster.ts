// One PostgreSQL cluster on this host, driven through the host's own binaries (initdb, pg_ctl) as
// a non-root OS user. Failure rules (STYLE.md item 4): `initialize` leaves either a complete data
// directory or none; `start` returns only once the server accepts connections or throws with the
// server log's last lines; every method may be called again after a failure.
import { access, chown, mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { DomainError } from "../../lib/errors.js";
import { isProcessAlive, runCommand } from "../../lib/runtime-command.js";
import { writeFileIfChanged } from "./runtime-files.js";
import type { TOsUser } from "../../lib/runtime-command.js";

/** The superuser carehost administers each cluster as; Odoo never gets it. */
export const CLUSTER_ADMIN_ROLE = "carehost_admin";

export type TPostgresCluster = {
  /** e.g. "prod" for a dedicated cluster, "shared" for the organization's shared one. */
  readonly name: string;
  readonly directory: string;
  readonly port: number;
  readonly version: number;
  readonly owner: TOsUser | undefined;
};

export const dataDirectoryOf = (cluster: TPostgresCluster) => join(cluster.directory, "data");
/** A program of the cluster's PostgreSQL version, as Debian installs it. */
export const postgresBinary = (cluster: Pick<TPostgresCluster, "version">, name: string) =>
  join(`/usr/lib/postgresql/${cluster.version}/bin`, name);

export async function assertPostgresInstalled(version: number): Promise<void> {
  try {
    await access(`/usr/lib/postgresql/${version}/bin/initdb`);
  } catch {
    throw new DomainError(
      `PostgreSQL ${version} is not installed on this host (/usr/lib/postgresql/${version}/bin/initdb is missing); install postgresql-${version} or declare the installed version in database.postgresVersion`,
    );
  }
}

const asOwner = (cluster: TPostgresCluster) => (cluster.owner === undefined ? {} : { asUser: cluster.owner });

async function chownTree(path: string, owner: TOsUser | undefined): Promise<void> {
  if (owner !== undefined) await chown(path, owner.uid, owner.gid);
}

export async function isInitialized(cluster: TPostgresCluster): Promise<boolean> {
  try {
    await access(join(dataDirectoryOf(cluster), "PG_VERSION"));
    return true;
  } catch {
    return false;
  }
}

/**
 * WAL segments of 2 MB, not 16: archiving ships whole segments, so the segment being written is
 * what a lost host takes with it. Under pgbench's steady 0.8 MB/s of WAL (bench/backup), a 16 MB
 * segment held 10-20 s of transactions, a 4 MB one up to 5.2 s, a 2 MB one about 2.5 s. Not
 * smaller: each segment costs one archive_command, and with 1 MB segments archiving fell behind a
 * bulk load (about 40 segments/s). A quiet cluster is covered by archive_timeout instead.
 */
export const WAL_SEGMENT_MB = 2;

/** initdb with data checksums and SCRAM; the admin password is read from a 0600 file removed right after. */
export async function initializeCluster(cluster: TPostgresCluster, adminPassword: string): Promise<void> {
  const dataDirectory = dataDirectoryOf(cluster);
  await mkdir(cluster.directory, { recursive: true, mode: 0o700 });
  await chownTree(cluster.directory, cluster.owner);
  const passwordFile = join(cluster.directory, ".initdb-password");
  await writeFile(passwordFile, `${adminPassword}\n`, { mode: 0o600 });
  await chownTree(passwordFile, cluster.owner);
  try {
    await runCommand(
      postgresBinary(cluster, "initdb"),
      [
        "-D",
        dataDirectory,
        "--data-checksums",
        "--auth=scram-sha-256",
        `--username=${CLUSTER_ADMIN_ROLE}`,
        `--pwfile=${passwordFile}`,
        "--encoding=UTF8",
        "--locale=C.UTF-8",
        `--wal-segsize=${WAL_SEGMENT_MB}`,
      ],
      asOwner(cluster),
    );
  } catch (error) {
    // A half-written data directory would make the next attempt fail for the wrong reason.
    await rm(dataDirectory, { recursive: true, force: true });
    throw error;
  } finally {
    await rm(passwordFile, { force: true });
  }
}

/** Writes a file the cluster reads, owned by its OS user; returns whether the content changed. */
export async function writeClusterFile(cluster: TPostgresCluster, name: string, content: string): Promise<boolean> {
  return writeFileIfChanged(join(dataDirectoryOf(cluster), name), content, { mode: 0o600, owner: cluster.owner });
}

export async function readClusterFile(cluster: TPostgresCluster, name: string): Promise<string | undefined> {
  return readFile(join(dataDirectoryOf(cluster), name), "utf8").catch(() => undefined);
}

/** The postmaster's pid when it is running; a stale postmaster.pid (after a crash or reboot) counts as stopped. */
export async function runningPid(cluster: TPostgresCluster): Promise<number | undefined> {
  const pidFile = await readClusterFile(cluster, "postmaster.pid");
  const pid = Number(pidFile?.split("\n")[0]);
  return Number.isInteger(pid) && pid > 0 && isProcessAlive(pid) ? pid : undefined;
}

/** What the server wrote: the logging collector's newest file, or pg_ctl's log before it started. */
export async function serverLog(cluster: TPostgresCluster): Promise<string> {
  const logDirectory = join(dataDirectoryOf(cluster), "log");
  const files = await readdir(logDirectory).catch(() => [] as string[]);
  const newest = (
    await Promise.all(files.map(async (file) => ({ file, time: (await stat(join(logDirectory, file))).mtimeMs })))
  ).sort((a, b) => b.time - a.time)[0];
  const collected = newest === undefined ? "" : await readFile(join(logDirectory, newest.file), "utf8").catch(() => "");
  return collected.trim() === ""
    ? await readFile(join(cluster.directory, "startup.log"), "utf8").catch(() => "")
    : collected;
}

/** The last lines the server wrote that say what went wrong. */
async function serverLogTail(cluster: TPostgresCluster): Promise<string> {
  const text = await serverLog(cluster);
  return (
    text
      .trim()
      .split("\n")
      .filter((line) => /FATAL|ERROR|PANIC|LOG: {2}database system/.test(line))
      .slice(-5)
      .join("\n") || text.trim().split("\n").slice(-5).join("\n")
  );
}

/** After a crash the dead postmaster may linger as a zombie until reaped; PostgreSQL would take it for alive. */
async function waitForReap(cluster: TPostgresCluster): Promise<void> {
  const pid = Number((await readClusterFile(cluster, "postmaster.pid"))?.split("\n")[0]);
  if (!Number.isInteger(pid) || pid <= 0) return;
  for (let attempt = 0; attempt < 100 && !isProcessAlive(pid); attempt += 1) {
    try {
      await access(`/proc/${pid}`);
    } catch {
      return;
    }
    await sleep(100);
  }
}

/** `env` reaches the postmaster and so archive_command (pgBackRest's passphrases, never on disk). */
export async function startCluster(
  cluster: TPostgresCluster,
  env: Readonly<Record<string, string>> = {},
): Promise<void> {
  await waitForReap(cluster);
  const logFile = join(cluster.directory, "startup.log");
  try {
    await runCommand(
      postgresBinary(cluster, "pg_ctl"),
      ["start", "-D", dataDirectoryOf(cluster), "-l", logFile, "-w", "-t", "60", "-s"],
      { ...asOwner(cluster), env },
    );
  } catch (error) {
    const log = await serverLogTail(cluster);
    throw new DomainError(
      `PostgreSQL cluster "${cluster.name}" (port ${cluster.port}) did not start: ${log || (error as Error).message}`,
    );
  }
}

export async function stopCluster(cluster: TPostgresCluster): Promise<void> {
  if ((await runningPid(cluster)) === undefined) return;
  await runCommand(
    postgresBinary(cluster, "pg_ctl"),
    ["stop", "-D", dataDirectoryOf(cluster), "-m", "fast", "-w", "-t", "60", "-s"],
    asOwner(cluster),
  );
}

export async function reloadCluster(cluster: TPostgresCluster): Promise<void> {
  await runCommand(
    postgresBinary(cluster, "pg_ctl"),
    ["reload", "-D", dataDirectoryOf(cluster), "-s"],
    asOwner(cluster),
  );
}

/** A TLS connection as the cluster admin, verifying the server certificate against the organization CA. */
export async function connectAdmin(
  cluster: TPostgresCluster,
  adminPassword: string,
  caPem: string,
  database = "postgres",
): Promise<pg.Client> {
  const client = new pg.Client({
    host: "127.0.0.1",
    port: cluster.port,
    user: CLUSTER_ADMIN_ROLE,
    password: adminPassword,
    database,
    ssl: { ca: caPem, rejectUnauthorized: true },
    connectionTimeoutMillis: 10_000,
    application_name: "carehost",
    // The superuser resolves no name through a schema a tenant owns or can write (public, on a
    // database a tenant owns): catalogs first, temporary objects last, nothing else.
    options: "-c search_path=pg_catalog,pg_temp",
  });
  // A cluster restarted under an idle client must not crash carehost.
  client.on("error", () => undefined);
  await client.connect();
  return client;
}
