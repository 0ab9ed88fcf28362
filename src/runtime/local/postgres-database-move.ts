// Moves one database out of a restored (scratch) cluster and over a tenant's database in a live
// cluster, without touching the other databases there: pg_dump in directory format, pg_restore into
// a new database configured like the tenant's, then a swap by renames. Failure rules: until the
// swap, the tenant's database is untouched and the half-loaded one is dropped; the swap itself
// leaves either the old or the new database under the tenant's name, never none, except when
// carehost is killed between its two renames, which `settleInterruptedSwap` repairs at the next start.
import { availableParallelism } from "node:os";
import pg from "pg";
import { DomainError } from "../../lib/errors.js";
import { CLUSTER_ADMIN_ROLE, connectAdmin, postgresBinary } from "./postgres-cluster.js";
import type { TPostgresCluster } from "./postgres-cluster.js";
import { createDatabaseFor } from "./postgres-tenant.js";
import type { TPostgresTenant } from "./postgres-tenant.js";
import { RuntimeCommandError, runCommand } from "../../lib/runtime-command.js";

type TQueryable = Pick<pg.Client, "query">;

/** A cluster carehost can reach as its admin: the password reaches libpq through the environment only. */
export type TAdminAccess = {
  readonly cluster: TPostgresCluster;
  readonly adminPassword: string;
  readonly caPem: string;
  readonly caPath: string;
};

/** The names a database goes by during a swap: the incoming copy, and the old one set aside. */
export const swapNamesOf = (database: string) => ({
  incoming: `${database}__restoring`,
  outgoing: `${database}__replaced`,
});

/** pg_dump and pg_restore work in parallel up to the host's cores (a small host keeps one for the live clusters). */
export const parallelJobs = (cores = availableParallelism()) => Math.max(1, Math.min(8, cores));

/** A dump or a load runs as long as the database is big; hours, not the two minutes of a command. */
const MOVE_TIMEOUT_MS = 12 * 3600 * 1000;

const libpqEnv = (access: TAdminAccess) => ({
  PGPASSWORD: access.adminPassword,
  PGSSLMODE: "verify-full",
  PGSSLROOTCERT: access.caPath,
});
const connection = (access: TAdminAccess) => [
  "-h",
  "127.0.0.1",
  "-p",
  String(access.cluster.port),
  "-U",
  CLUSTER_ADMIN_ROLE,
];

/** pg_dump's arguments: one database, directory format, `jobs` in parallel. */
export const dumpArguments = (access: TAdminAccess, database: string, directory: string, jobs: number): string[] => [
  ...connection(access),
  "--format=directory",
  `--jobs=${jobs}`,
  "--no-sync",
  `--file=${directory}`,
  `--dbname=${database}`,
];

/**
 * pg_restore's arguments: every object created as `role` (SET ROLE), so the tenant owns what it
 * uses; no ownership or grants of the source carried over (they name the source's role).
 */
export const loadArguments = (
  access: TAdminAccess,
  database: string,
  role: string,
  directory: string,
  jobs: number,
): string[] => [
  ...connection(access),
  `--dbname=${database}`,
  "--no-owner",
  "--no-acl",
  `--role=${role}`,
  "--no-publications",
  "--no-subscriptions",
  "--exit-on-error",
  `--jobs=${jobs}`,
  directory,
];

export async function dumpDatabase(
  source: TAdminAccess,
  database: string,
  directory: string,
  jobs = parallelJobs(),
): Promise<void> {
  await runCommand(postgresBinary(source.cluster, "pg_dump"), dumpArguments(source, database, directory, jobs), {
    env: libpqEnv(source),
    timeoutMs: MOVE_TIMEOUT_MS,
  });
}

const databaseExists = async (admin: TQueryable, database: string) =>
  (await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [database])).rows.length > 0;

/**
 * Loads a dump into a new database beside the tenant's, created as reconcile creates the tenant's,
 * and swaps it in. Before the swap, a failure drops the new database and leaves the tenant's alone.
 */
export async function loadAndSwap(
  target: TAdminAccess,
  tenant: TPostgresTenant,
  directory: string,
  jobs = parallelJobs(),
): Promise<void> {
  const { incoming } = swapNamesOf(tenant.database);
  const admin = await connectAdmin(target.cluster, target.adminPassword, target.caPem);
  try {
    if (!(await databaseExists(admin, tenant.database))) {
      throw new DomainError(
        `database ${tenant.database} does not exist in cluster "${target.cluster.name}" (port ${target.cluster.port}); run carehost apply before restoring over it`,
      );
    }
    // Left by an earlier attempt that failed before its swap: never part of the tenant's data.
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(incoming)} WITH (FORCE)`);
    await createDatabaseFor(admin, tenant, incoming);
    try {
      await runCommand(
        postgresBinary(target.cluster, "pg_restore"),
        loadArguments(target, incoming, tenant.role, directory, jobs),
        { env: libpqEnv(target), timeoutMs: MOVE_TIMEOUT_MS },
      );
    } catch (error) {
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(incoming)} WITH (FORCE)`).catch(() => undefined);
      // pg_restore's own words, not the command line: the reason must survive a 500-character record.
      const reason =
        error instanceof RuntimeCommandError && error.stderr.trim() !== ""
          ? error.stderr.trim().split("\n").slice(-3).join(" ")
          : String(error);
      throw new DomainError(
        `loading database ${tenant.database} into cluster "${target.cluster.name}" failed; ${tenant.database} is unchanged: ${reason}`,
      );
    }
    await swapIn(admin, tenant.database);
  } finally {
    await admin.end();
  }
}

/**
 * Puts the incoming database in the tenant's place: the old one stops taking connections (Odoo's
 * pool would reconnect between a terminate and the rename), its sessions end, it is renamed aside,
 * the new one renamed in, and the old one dropped.
 */
async function swapIn(admin: TQueryable, database: string): Promise<void> {
  const { incoming, outgoing } = swapNamesOf(database);
  const [current, next, old] = [database, incoming, outgoing].map((name) => pg.escapeIdentifier(name)) as [
    string,
    string,
    string,
  ];
  await admin.query(`ALTER DATABASE ${current} WITH ALLOW_CONNECTIONS false`);
  try {
    await admin.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
      [database],
    );
    await renameWhenIdle(admin, current, old);
  } catch (error) {
    await admin.query(`ALTER DATABASE ${current} WITH ALLOW_CONNECTIONS true`).catch(() => undefined);
    await admin.query(`DROP DATABASE IF EXISTS ${next} WITH (FORCE)`).catch(() => undefined);
    throw error;
  }
  try {
    await admin.query(`ALTER DATABASE ${next} RENAME TO ${current}`);
  } catch (error) {
    await admin.query(`ALTER DATABASE ${old} RENAME TO ${current}`).catch(() => undefined);
    await admin.query(`ALTER DATABASE ${current} WITH ALLOW_CONNECTIONS true`).catch(() => undefined);
    await admin.query(`DROP DATABASE IF EXISTS ${next} WITH (FORCE)`).catch(() => undefined);
    throw error;
  }
  await admin.query(`DROP DATABASE ${old} WITH (FORCE)`);
}

/** A terminated backend needs a moment to exit; RENAME refuses while it is still there. */
async function renameWhenIdle(admin: TQueryable, from: string, to: string): Promise<void> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      await admin.query(`ALTER DATABASE ${from} RENAME TO ${to}`);
      return;
    } catch (error) {
      if ((error as { code?: string }).code !== "55006" || attempt >= 50) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/**
 * After a carehost killed during a move: the tenant's database gets its name back (the old one
 * when the swap stopped between its renames), takes connections again, and neither the half-loaded
 * nor the set-aside database stays. Returns what it found: "swapped" when the new database had
 * already taken the tenant's name.
 */
export async function settleInterruptedSwap(
  admin: TQueryable,
  database: string,
): Promise<"untouched" | "rolled back" | "swapped"> {
  const { incoming, outgoing } = swapNamesOf(database);
  const [current, old] = [database, outgoing].map((name) => pg.escapeIdentifier(name)) as [string, string];
  const hasCurrent = await databaseExists(admin, database);
  const hasIncoming = await databaseExists(admin, incoming);
  const hasOutgoing = await databaseExists(admin, outgoing);
  let outcome: "untouched" | "rolled back" | "swapped" =
    hasCurrent && hasOutgoing && !hasIncoming ? "swapped" : "untouched";
  if (!hasCurrent && hasOutgoing) {
    await admin.query(`ALTER DATABASE ${old} RENAME TO ${current}`);
    outcome = "rolled back";
  }
  if (hasCurrent || hasOutgoing) await admin.query(`ALTER DATABASE ${current} WITH ALLOW_CONNECTIONS true`);
  await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(incoming)} WITH (FORCE)`);
  await admin.query(`DROP DATABASE IF EXISTS ${old} WITH (FORCE)`);
  return outcome;
}
