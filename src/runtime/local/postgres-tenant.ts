// An environment's database and the least-privileged role Odoo connects as, in a dedicated or the
// shared cluster. `observeTenant` reads what is there; `tenantDrift` compares it with what should be;
// `reconcileTenant` issues only the statements that close the difference, so a second run issues none.
import pg from "pg";
import type { TLivePostgresState } from "../../policy/policy-types.js";
import { scramVerifier, scramVerifierMatches } from "./postgres-scram.js";

export type TPostgresTenant = {
  readonly database: string;
  readonly role: string;
  readonly password: string;
  readonly connectionLimit: number;
};

type TQueryable = Pick<pg.Client, "query">;

export type TTenantObservation = {
  readonly roleExists: boolean;
  readonly databaseExists: boolean;
  readonly passwordMatches: boolean;
  readonly connectionLimit: number | null;
  readonly canLogin: boolean;
  readonly databaseOwner: string | null;
  readonly live: TLivePostgresState;
};

export type TTenantDrift = { readonly field: string; readonly expected: string; readonly actual: string };

const ident = (name: string) => pg.escapeIdentifier(name);

export async function observeTenant(admin: TQueryable, tenant: TPostgresTenant): Promise<TTenantObservation> {
  const role = await admin.query<{
    rolsuper: boolean;
    rolcreaterole: boolean;
    rolcreatedb: boolean;
    rolreplication: boolean;
    rolbypassrls: boolean;
    rolcanlogin: boolean;
    rolconnlimit: number;
    rolpassword: string | null;
  }>(
    "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin, rolconnlimit, rolpassword FROM pg_authid WHERE rolname = $1",
    [tenant.role],
  );
  const database = await admin.query<{ owner: string; public_connect: boolean }>(
    "SELECT pg_get_userbyid(datdba) AS owner, has_database_privilege('public', oid, 'CONNECT') AS public_connect FROM pg_database WHERE datname = $1",
    [tenant.database],
  );
  const settings = await admin.query<{ name: string; setting: string }>(
    "SELECT name, setting FROM pg_settings WHERE name IN ('ssl', 'password_encryption', 'shared_preload_libraries', 'data_checksums')",
  );
  const hba = await admin.query<{ auth_method: string }>(
    "SELECT DISTINCT auth_method FROM pg_hba_file_rules WHERE error IS NULL ORDER BY 1",
  );
  const standbys = await admin.query<{ count: number }>(
    "SELECT count(*)::int AS count FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')",
  );
  const setting = (name: string) => settings.rows.find((row) => row.name === name)?.setting ?? "";
  const roleRow = role.rows[0];
  const databaseRow = database.rows[0];
  return {
    roleExists: roleRow !== undefined,
    databaseExists: databaseRow !== undefined,
    passwordMatches: scramVerifierMatches(roleRow?.rolpassword ?? null, tenant.password),
    connectionLimit: roleRow?.rolconnlimit ?? null,
    canLogin: roleRow?.rolcanlogin ?? false,
    databaseOwner: databaseRow?.owner ?? null,
    live: {
      roleSuperuser: roleRow?.rolsuper ?? false,
      roleCreateRole: roleRow?.rolcreaterole ?? false,
      roleCreateDb: roleRow?.rolcreatedb ?? false,
      publicConnect: databaseRow?.public_connect ?? false,
      ssl: setting("ssl") === "on",
      passwordEncryption: setting("password_encryption"),
      hbaMethods: hba.rows.map((row) => row.auth_method),
      sharedPreloadLibraries: setting("shared_preload_libraries")
        .split(",")
        .map((library) => library.trim())
        .filter((library) => library !== ""),
      dataChecksums: setting("data_checksums") === "on",
      synchronousStandbys: standbys.rows[0]?.count ?? 0,
    },
  };
}

/** What differs between the tenant as declared and as observed; values never include the password. */
export function tenantDrift(tenant: TPostgresTenant, observed: TTenantObservation): TTenantDrift[] {
  const drift: TTenantDrift[] = [];
  const add = (field: string, expected: unknown, actual: unknown) => {
    if (expected !== actual) drift.push({ field, expected: String(expected), actual: String(actual) });
  };
  add("role", "present", observed.roleExists ? "present" : "missing");
  add("database", "present", observed.databaseExists ? "present" : "missing");
  if (observed.roleExists) {
    add("role.superuser", false, observed.live.roleSuperuser);
    add("role.createrole", false, observed.live.roleCreateRole);
    add("role.createdb", false, observed.live.roleCreateDb);
    add("role.login", true, observed.canLogin);
    add("role.connectionLimit", tenant.connectionLimit, observed.connectionLimit);
    if (!observed.passwordMatches)
      drift.push({ field: "role.password", expected: "the stored secret", actual: "a different password" });
  }
  if (observed.databaseExists) {
    add("database.owner", tenant.role, observed.databaseOwner);
    add("database.publicConnect", false, observed.live.publicConnect);
  }
  return drift;
}

/** Creates or corrects the role and database; returns a line per statement group it ran. */
export async function reconcileTenant(
  admin: TQueryable,
  tenant: TPostgresTenant,
  observed: TTenantObservation,
): Promise<string[]> {
  const actions: string[] = [];
  const role = ident(tenant.role);
  const database = ident(tenant.database);
  // NOREPLICATION and NOBYPASSRLS too: neither is needed by Odoo, and both widen what a leaked password can do.
  const attributes = `LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT ${Math.trunc(tenant.connectionLimit)}`;
  const passwordClause = `PASSWORD ${pg.escapeLiteral(scramVerifier(tenant.password))}`;
  if (!observed.roleExists) {
    await admin.query(`CREATE ROLE ${role} ${attributes} ${passwordClause}`);
    actions.push(`created role ${tenant.role}`);
  } else {
    const drift = tenantDrift(tenant, observed).filter(
      (item) => item.field.startsWith("role.") && item.field !== "role.password",
    );
    if (drift.length > 0 || observed.live.roleSuperuser) {
      await admin.query(`ALTER ROLE ${role} ${attributes}`);
      actions.push(
        `corrected role ${tenant.role} (${drift.map((item) => `${item.field}: ${item.actual} → ${item.expected}`).join(", ")})`,
      );
    }
    if (!observed.passwordMatches) {
      await admin.query(`ALTER ROLE ${role} ${passwordClause}`);
      actions.push(`set the password of role ${tenant.role} from the secret store`);
    }
  }
  if (!observed.databaseExists) {
    // CREATE DATABASE cannot run in a transaction block; pg sends it as a simple query.
    await admin.query(`CREATE DATABASE ${database} OWNER ${role} ENCODING 'UTF8' TEMPLATE template0`);
    actions.push(`created database ${tenant.database}`);
  } else if (observed.databaseOwner !== tenant.role) {
    await admin.query(`ALTER DATABASE ${database} OWNER TO ${role}`);
    actions.push(
      `gave database ${tenant.database} back to ${tenant.role} (owner was ${observed.databaseOwner ?? "none"})`,
    );
  }
  if (!observed.databaseExists || observed.live.publicConnect) {
    // Other tenants of a shared cluster must not even connect; the owner keeps CONNECT.
    await admin.query(`REVOKE CONNECT, TEMPORARY ON DATABASE ${database} FROM PUBLIC`);
    if (observed.databaseExists) actions.push(`revoked CONNECT on database ${tenant.database} from PUBLIC`);
  }
  return actions;
}

/**
 * The databases initdb makes in every cluster. PUBLIC has CONNECT on them by default, so a tenant
 * role of the shared cluster could connect to `postgres` and list every other tenant's database
 * (pg_database is cluster-wide) and read the cluster's settings. Only carehost's admin uses them
 * (its own connection, the drills' heartbeat, pgBackRest), and a superuser is not bound by
 * CONNECT. template0 already refuses every connection (datallowconn is false).
 */
export const MAINTENANCE_DATABASES = ["postgres", "template1"] as const;

/** The maintenance databases PUBLIC may connect to; empty once `closeMaintenanceDatabases` ran. */
export async function maintenanceDatabasesOpenToPublic(admin: TQueryable): Promise<string[]> {
  const result = await admin.query<{ datname: string }>(
    "SELECT datname FROM pg_database WHERE datname = ANY($1::text[]) AND has_database_privilege('public', oid, 'CONNECT') ORDER BY datname",
    [[...MAINTENANCE_DATABASES]],
  );
  return result.rows.map((row) => row.datname);
}

/** What drift a maintenance database open to PUBLIC is, in the same words as a tenant database's. */
export const maintenanceDrift = (open: readonly string[]): TTenantDrift[] =>
  open.map((database) => ({ field: `database ${database}.publicConnect`, expected: "false", actual: "true" }));

/** Revokes CONNECT (and TEMPORARY) on the maintenance databases from PUBLIC where it is granted; returns a line per database. */
export async function closeMaintenanceDatabases(admin: TQueryable): Promise<string[]> {
  const actions: string[] = [];
  for (const database of await maintenanceDatabasesOpenToPublic(admin)) {
    await admin.query(`REVOKE CONNECT, TEMPORARY ON DATABASE ${ident(database)} FROM PUBLIC`);
    actions.push(`revoked CONNECT on database ${database} from PUBLIC`);
  }
  return actions;
}

/**
 * Creates `database` as the tenant's own database is created (owner, encoding, CONNECT revoked from
 * PUBLIC): a restore loads it, then gives it the tenant's name, so what takes the tenant's place is
 * configured exactly as reconcile would have configured it.
 */
export async function createDatabaseFor(admin: TQueryable, tenant: TPostgresTenant, database: string): Promise<void> {
  const staged = { ...tenant, database };
  await reconcileTenant(admin, staged, await observeTenant(admin, staged));
}

/** Drops an environment's database and role (after its final backup); used only by an audited removal. */
export async function dropTenant(admin: TQueryable, tenant: Pick<TPostgresTenant, "database" | "role">): Promise<void> {
  await admin.query(`DROP DATABASE IF EXISTS ${ident(tenant.database)} WITH (FORCE)`);
  await admin.query(`DROP ROLE IF EXISTS ${ident(tenant.role)}`);
}
