// Reconciles and observes one PostgreSQL cluster of an organization with its tenants (the
// environments placed in it). Reconcile acts only on a difference; observe never changes anything.
import { access } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import { odooConnectionLimit } from "../../render/odoo/odoo-conf.js";
import type { TLivePostgresState, TLiveRepository } from "../../policy/policy-types.js";
import type { TBackupRepositorySpec, TEnvironmentSpec } from "../../spec/spec-schema.js";
import type { TArchiverReading } from "../../backup/wal-archiving.js";
import { stanzaInfo, pgbackrest, STANZA_MISSING_CODES } from "../../backup/pgbackrest-command.js";
import { ensureResticRepository } from "../../backup/restic-command.js";
import {
  clusterBackupOf,
  clusterRepositoriesOf,
  ensureRepositoryStorage,
  prepareBackupDirectories,
} from "./local-backup-config.js";
import type { TClusterBackup, TClusterRepositories } from "./local-backup-config.js";
import { filestoreRepositoriesOf, resticCacheDirectoryOf } from "./local-filestore.js";
import { generatePassword } from "../../secrets/secrets-generate.js";
import {
  CLUSTER_ADMIN_ROLE,
  connectAdmin,
  initializeCluster,
  isInitialized,
  readClusterFile,
  runningPid,
  startCluster,
  stopCluster,
  writeClusterFile,
} from "./postgres-cluster.js";
import type { TPostgresCluster } from "./postgres-cluster.js";
import { parsePostgresqlConf, postgresqlSettings, renderPgHba, renderPostgresqlConf } from "./postgres-config.js";
import type { TStatementAudit } from "./postgres-config.js";
import {
  closeMaintenanceDatabases,
  maintenanceDatabasesOpenToPublic,
  maintenanceDrift,
  observeTenant,
  reconcileTenant,
  tenantDrift,
} from "./postgres-tenant.js";
import type { TPostgresTenant } from "./postgres-tenant.js";
import { clusterDirectory, databaseNameOf, databaseRoleOf, secretNames } from "./local-placement.js";
import type { TClusterPlacement } from "./local-placement.js";
import { readArchiver } from "./postgres-archiver.js";
import { liveReplaySettings, raiseHighWater } from "./postgres-replay-settings.js";
import { ensureServerCertificate } from "./runtime-ca.js";
import type { TCertificateAuthority, TRuntimeSecrets } from "./runtime-ca.js";
import type { TOsUser } from "../../lib/runtime-command.js";
import { ensureInstanceRecord, readInstanceRecord } from "./runtime-instance.js";
import { writeFileIfChanged } from "./runtime-files.js";
import type { TRuntimeAction, TRuntimeDrift } from "../runtime-types.js";

export type TClusterContext = {
  readonly root: string;
  /** The carehost data dir; posix backup repositories are relative to it. */
  readonly home: string;
  /** Roots beyond the data dir a spec's host paths may lead to (CAREHOST_ALLOWED_PATHS). */
  readonly allowedRoots: readonly string[];
  readonly repositories: readonly TBackupRepositorySpec[];
  readonly organization: string;
  readonly placement: TClusterPlacement;
  readonly ca: TCertificateAuthority;
  readonly secrets: TRuntimeSecrets;
  readonly owner: TOsUser | undefined;
  readonly now: Date;
  /** Admin connections kept between calls: a no-op reconcile of many environments must not pay a TLS handshake each. */
  readonly connections: Map<string, pg.Client>;
};

export type TTenantObservationResult = {
  readonly environment: string;
  readonly live?: TLivePostgresState;
  readonly drift: readonly TRuntimeDrift[];
};

export type TClusterObservation = {
  readonly name: string;
  readonly port: number | null;
  readonly state: "running" | "stopped" | "absent";
  readonly drift: readonly TRuntimeDrift[];
  readonly files: { readonly postgresqlConf?: Record<string, string>; readonly pgHba?: string };
  readonly tenants: readonly TTenantObservationResult[];
  /** WAL archiving as the running cluster reports it; null when it is not running or not backed up. */
  readonly archiving: TArchiverReading | null;
  /** The repositories each backup of the cluster writes, and the declared ones it skips (null: they could not be resolved). */
  readonly repositories: {
    readonly written: readonly TLiveRepository[];
    readonly skipped: TClusterRepositories["skipped"];
  } | null;
};

const generateDatabasePassword = () => generatePassword(24);

const clusterOf = (context: TClusterContext, port: number): TPostgresCluster => ({
  name: context.placement.name,
  directory: clusterDirectory(context.root, context.organization, context.placement.name),
  port,
  version: context.placement.version,
  owner: context.owner,
});

/** pgaudit when this host has it for the cluster's version, otherwise log_statement = all. */
export async function statementAuditFor(version: number): Promise<TStatementAudit> {
  try {
    await access(`/usr/lib/postgresql/${version}/lib/pgaudit.so`);
    return "pgaudit";
  } catch {
    // Without pgaudit, log every statement: reads of PHI must be on record too.
    return "log-statement-all";
  }
}

const tlsDirectory = (cluster: TPostgresCluster) => join(cluster.directory, "tls");

/** The cluster's backup configuration (absent when none of its environments is backed up). */
const backupInput = (context: TClusterContext, cluster: TPostgresCluster, createSecrets: boolean) => ({
  organization: context.organization,
  home: context.home,
  allowedRoots: context.allowedRoots,
  placement: context.placement,
  cluster,
  repositories: context.repositories,
  secrets: context.secrets,
  createSecrets,
});
export const backupOf = (
  context: TClusterContext,
  cluster: TPostgresCluster,
  createSecrets: boolean,
): Promise<TClusterBackup | undefined> => clusterBackupOf(backupInput(context, cluster, createSecrets));

/** postgresql.conf and pg_hba.conf as reconcile writes them (plan renders them too, to compare two revisions). */
export async function desiredFiles(
  context: TClusterContext,
  cluster: TPostgresCluster,
  backup: TClusterBackup | undefined,
) {
  const certificate = {
    certPath: join(tlsDirectory(cluster), "server.crt"),
    keyPath: join(tlsDirectory(cluster), "server.key"),
    caPath: join(tlsDirectory(cluster), "ca.crt"),
  };
  const settings = postgresqlSettings({
    port: cluster.port,
    certificate,
    statementAudit: await statementAuditFor(cluster.version),
    tenantConnections: context.placement.environments.reduce(
      (total, environment) => total + odooConnectionLimit(environment),
      0,
    ),
    ...(backup === undefined ? {} : { socketDirectory: backup.socketDirectory, archive: backup.archive }),
  });
  return { settings, postgresqlConf: renderPostgresqlConf(settings), pgHba: renderPgHba(CLUSTER_ADMIN_ROLE) };
}

/** The database and role an environment is declared to have (its password from the secret store). */
export const tenantOf = async (
  secrets: Pick<TRuntimeSecrets, "current">,
  organization: string,
  environment: TEnvironmentSpec,
): Promise<TPostgresTenant> => ({
  database: databaseNameOf(environment),
  role: databaseRoleOf(environment),
  password: await secrets.current(secretNames.databasePassword(organization, environment.name)),
  connectionLimit: odooConnectionLimit(environment),
});

async function tenantsOf(
  context: TClusterContext,
  create: boolean,
): Promise<(TPostgresTenant & { environment: string })[]> {
  return Promise.all(
    context.placement.environments.map(async (environment) => {
      if (create)
        await context.secrets.ensure(
          secretNames.databasePassword(context.organization, environment.name),
          generateDatabasePassword,
        );
      return { environment: environment.name, ...(await tenantOf(context.secrets, context.organization, environment)) };
    }),
  );
}

/** The cluster's admin connection, kept in the context between calls (observe, probes) and opened again when it broke. */
export async function adminConnection(context: TClusterContext, cluster: TPostgresCluster): Promise<pg.Client> {
  const key = `${context.organization}/${cluster.name}`;
  const cached = context.connections.get(key);
  if (cached !== undefined) {
    try {
      await cached.query("SELECT 1");
      return cached;
    } catch {
      context.connections.delete(key);
      await cached.end().catch(() => undefined);
    }
  }
  const password = await context.secrets.current(secretNames.clusterAdmin(context.organization, cluster.name));
  const client = await connectAdmin(cluster, password, context.ca.certPem);
  context.connections.set(key, client);
  return client;
}

export async function closeConnection(context: Pick<TClusterContext, "connections">, key: string): Promise<void> {
  const client = context.connections.get(key);
  context.connections.delete(key);
  await client?.end().catch(() => undefined);
}

/** Settings someone changed with ALTER SYSTEM: they override the rendered file. */
async function alterSystemOverrides(admin: pg.Client): Promise<string[]> {
  const result = await admin.query<{ name: string }>(
    "SELECT name FROM pg_file_settings WHERE sourcefile LIKE '%/postgresql.auto.conf' ORDER BY name",
  );
  return result.rows.map((row) => row.name);
}

/** pg_reload_conf() only signals; wait until the server has read the files again. */
async function reloadAndWait(admin: pg.Client): Promise<void> {
  const before = (await admin.query<{ t: Date }>("SELECT pg_conf_load_time() AS t")).rows[0]?.t.getTime() ?? 0;
  await admin.query("SELECT pg_reload_conf()");
  for (let attempt = 0; attempt < 100; attempt += 1) {
    await sleep(20);
    const after = (await admin.query<{ t: Date }>("SELECT pg_conf_load_time() AS t")).rows[0]?.t.getTime() ?? 0;
    if (after > before) return;
  }
}

export async function reconcileCluster(context: TClusterContext): Promise<TRuntimeAction[]> {
  const target = `postgres/${context.placement.name}`;
  const actions: TRuntimeAction[] = [];
  const act = (action: string) => actions.push({ target, action });
  const directory = clusterDirectory(context.root, context.organization, context.placement.name);
  const { record } = await ensureInstanceRecord(directory, context.owner, context.now, {
    backupPassphrases: "per-cluster",
  });
  const cluster = clusterOf(context, record.port);
  const { issued } = await ensureServerCertificate(
    context.ca,
    tlsDirectory(cluster),
    `${context.organization} ${cluster.name}`,
    context.owner,
    context.now,
  );
  if (issued) act("issued a TLS certificate from the organization CA");
  const adminSecret = secretNames.clusterAdmin(context.organization, cluster.name);
  await context.secrets.ensure(adminSecret, generateDatabasePassword);
  if (!(await isInitialized(cluster))) {
    await initializeCluster(cluster, await context.secrets.current(adminSecret));
    act(`initialized PostgreSQL ${cluster.version} with data checksums and SCRAM (port ${cluster.port})`);
  }
  const backup = await backupOf(context, cluster, true);
  let backupConfChanged = false;
  if (backup !== undefined) {
    await prepareBackupDirectories(backup, cluster.owner);
    backupConfChanged = await writeFileIfChanged(backup.access.configPath, backup.confText, {
      mode: 0o640,
      owner: cluster.owner,
    });
    if (backupConfChanged)
      act(
        `wrote pgbackrest.conf (stanza ${backup.access.stanza}; repositories: ${backup.repositories.map((item) => item.repository.name).join(", ")})`,
      );
  }
  const env = backup?.access.env ?? {};
  const files = await desiredFiles(context, cluster, backup);
  const changed = [
    ...((await writeClusterFile(cluster, "postgresql.conf", files.postgresqlConf)) ? ["postgresql.conf"] : []),
    ...((await writeClusterFile(cluster, "pg_hba.conf", files.pgHba)) ? ["pg_hba.conf"] : []),
  ];
  if (changed.length > 0 && !issued) act(`wrote ${changed.join(" and ")}`);
  // A repository added to the spec changes the file; stanza-create is idempotent and creates the
  // stanza where it is missing. It runs before archiving can start: a WAL segment completed
  // before the stanza exists fails its push, and pgBackRest's asynchronous archiver then holds
  // every later segment back for minutes (measured with 4 MB segments). So the stanza is created
  // offline while the cluster is down, before the start or restart that turns archive_mode on,
  // and online only when the cluster keeps running.
  let stanzaPending =
    backup !== undefined &&
    (backupConfChanged || STANZA_MISSING_CODES.has((await stanzaInfo(backup.access)).statusCode));
  const createPendingStanza = async (online: boolean) => {
    if (backup === undefined || !stanzaPending) return;
    await createStanza(backup, online ? [] : ["--no-online"]);
    act(`created pgBackRest stanza ${backup.access.stanza}`);
    stanzaPending = false;
  };
  // With the stanza come the filestore's restic repositories, once the cluster runs again (restic
  // needs no downtime): a repository restic cannot open fails the apply that configured it, not a
  // night's backup, and the first backup does not spend restic's key calibration (1.7 s here).
  // A backup still creates one it finds missing (a reconcile interrupted in between).
  const filestoreRepositoriesPending = stanzaPending;
  let admin: pg.Client;
  if ((await runningPid(cluster)) === undefined) {
    await createPendingStanza(false);
    await closeConnection(context, `${context.organization}/${cluster.name}`);
    await startCluster(cluster, env);
    act(`started (port ${cluster.port})`);
    admin = await adminConnection(context, cluster);
  } else {
    admin = await adminConnection(context, cluster);
    if (changed.length > 0 || issued) await reloadAndWait(admin);
  }
  const overrides = await alterSystemOverrides(admin);
  if (overrides.length > 0) {
    await admin.query("ALTER SYSTEM RESET ALL");
    await reloadAndWait(admin);
    act(`reset ALTER SYSTEM overrides (${overrides.join(", ")})`);
  }
  const pendingRestart = (
    await admin.query<{ name: string }>("SELECT name FROM pg_settings WHERE pending_restart ORDER BY name")
  ).rows.map((row) => row.name);
  if (pendingRestart.length > 0) {
    await closeConnection(context, `${context.organization}/${cluster.name}`);
    await stopCluster(cluster);
    await createPendingStanza(false);
    await startCluster(cluster, env);
    act(`restarted to apply ${pendingRestart.join(", ")}`);
    admin = await adminConnection(context, cluster);
  } else {
    await createPendingStanza(true);
  }
  // What the server runs with now is the floor of every later copy's settings (postgres-replay-settings.ts).
  await raiseHighWater(directory, await liveReplaySettings(admin));
  if (backup !== undefined && filestoreRepositoriesPending) {
    const created = await createFilestoreRepositories(backup, context.home);
    if (created.length > 0) act(`initialized restic repositories for the filestore (${created.join(", ")})`);
  }
  for (const action of await closeMaintenanceDatabases(admin)) act(action);
  for (const tenant of await tenantsOf(context, true)) {
    const observed = await observeTenant(admin, tenant);
    for (const action of await reconcileTenant(admin, tenant, observed))
      actions.push({ target: `environment/${tenant.environment}`, action });
  }
  return actions;
}

/** Initializes the restic repository beside each pgBackRest repository unless it exists; returns the repositories it created. */
async function createFilestoreRepositories(backup: TClusterBackup, home: string): Promise<string[]> {
  const created: string[] = [];
  for (const [index, repository] of filestoreRepositoriesOf(backup, resticCacheDirectoryOf(home)).entries()) {
    if (await ensureResticRepository(repository)) created.push(backup.repositories[index]!.repository.name);
  }
  return created;
}

/** pgBackRest does not create Azure containers or S3 buckets, so carehost does, first. */
async function createStanza(backup: TClusterBackup, options: readonly string[] = []): Promise<void> {
  for (const item of backup.repositories) await ensureRepositoryStorage(item);
  await pgbackrest(backup.access, "stanza-create", options);
}

export async function observeCluster(context: TClusterContext): Promise<TClusterObservation> {
  const directory = clusterDirectory(context.root, context.organization, context.placement.name);
  const record = await readInstanceRecord(directory);
  const target = `postgres/${context.placement.name}`;
  const absentTenants = (reason: string) =>
    context.placement.environments.map((environment) => ({
      environment: environment.name,
      drift: [{ target, field: "cluster", expected: "running", actual: reason }],
    }));
  if (record === undefined)
    return {
      name: context.placement.name,
      port: null,
      state: "absent",
      drift: [],
      files: {},
      tenants: absentTenants("not provisioned"),
      archiving: null,
      repositories: null,
    };
  const cluster = clusterOf(context, record.port);
  const drift: TRuntimeDrift[] = [];
  const resolved = await clusterRepositoriesOf(backupInput(context, cluster, false)).catch(() => undefined);
  const backup = resolved?.backup;
  const repositories =
    resolved === undefined
      ? null
      : {
          written: (backup?.repositories ?? []).map(({ repository }) => ({
            name: repository.name,
            type: repository.type,
          })),
          skipped: resolved.skipped,
        };
  const desired = await desiredFiles(context, cluster, backup);
  const postgresqlConf = await readClusterFile(cluster, "postgresql.conf");
  const pgHba = await readClusterFile(cluster, "pg_hba.conf");
  if (postgresqlConf !== desired.postgresqlConf)
    drift.push({
      target,
      field: "postgresql.conf",
      expected: "as rendered",
      actual: postgresqlConf === undefined ? "missing" : "edited by hand",
    });
  if (pgHba !== desired.pgHba)
    drift.push({
      target,
      field: "pg_hba.conf",
      expected: "as rendered",
      actual: pgHba === undefined ? "missing" : "edited by hand",
    });
  const files = {
    ...(postgresqlConf === undefined ? {} : { postgresqlConf: parsePostgresqlConf(postgresqlConf) }),
    ...(pgHba === undefined ? {} : { pgHba }),
  };
  if ((await runningPid(cluster)) === undefined) {
    return {
      name: cluster.name,
      port: cluster.port,
      state: "stopped",
      drift: [...drift, { target, field: "process", expected: "running", actual: "stopped" }],
      files,
      tenants: absentTenants("stopped"),
      archiving: null,
      repositories,
    };
  }
  const admin = await adminConnection(context, cluster);
  for (const name of await alterSystemOverrides(admin))
    drift.push({ target, field: `ALTER SYSTEM ${name}`, expected: "not set", actual: "overrides postgresql.conf" });
  for (const item of maintenanceDrift(await maintenanceDatabasesOpenToPublic(admin))) drift.push({ target, ...item });
  const tenants: TTenantObservationResult[] = [];
  for (const tenant of await tenantsOf(context, false).catch(() => [])) {
    const observed = await observeTenant(admin, tenant);
    tenants.push({
      environment: tenant.environment,
      live: observed.live,
      drift: tenantDrift(tenant, observed).map((item) => ({ target: `environment/${tenant.environment}`, ...item })),
    });
  }
  const archiving = backup === undefined ? null : await readArchiver(admin);
  return { name: cluster.name, port: cluster.port, state: "running", drift, files, tenants, archiving, repositories };
}
