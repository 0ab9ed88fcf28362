// The local runtime: makes an organization's data tier real on this host from the host's
// PostgreSQL and Redis binaries, reads it back for drift and for the live controls, restarts what
// crashed, and removes an environment only after a final backup.
import { mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type pg from "pg";
import type { TArtifactSubject, TLiveBackupState, TLiveSubject } from "../../policy/policy-types.js";
import { hashOdooAdminPassword } from "../../render/odoo/odoo-admin-password.js";
import { odooConnectionLimit, parseOdooConf, renderOdooConf } from "../../render/odoo/odoo-conf.js";
import { generatePassword } from "../../secrets/secrets-generate.js";
import type { TEnvironmentSpec, TOrganizationSpec } from "../../spec/spec-schema.js";
import { NotFoundError, ValidationError } from "../../lib/errors.js";
import { endLeftoverRuns, pgbackrest, stanzaInfo } from "../../backup/pgbackrest-command.js";
import { combinedRetention, fullBackupsToExpire } from "../../backup/backup-retention.js";
import { archiveLagSeconds } from "../../backup/wal-archiving.js";
import type { TWalArchiving } from "../../backup/wal-archiving.js";
import { resticCheck, resticFileCount, resticForget, resticSnapshots } from "../../backup/restic-command.js";
import {
  filestoreDirectoryOf,
  filestoreRepositoriesOf,
  filestoreSwapNamesOf,
  filestoreTag,
  newestChange,
  resticCacheDirectoryOf,
  restoreFilestore,
  snapshotFilestore,
  swapInFilestore,
} from "./local-filestore.js";
import type { TFilestoreRestore } from "./local-filestore.js";
import {
  backupRunId,
  recoveredUntil,
  restoreInPlace,
  restoreToScratch,
  runDrill,
  takeBackup,
  verifyRepository,
  writeHeartbeat,
} from "./local-recovery.js";
import type { TBackupType, TRecoverableCluster, TRestoreTarget } from "./local-recovery.js";
import {
  backupOf,
  closeConnection,
  desiredFiles,
  observeCluster,
  reconcileCluster,
  tenantOf,
} from "./local-postgres.js";
import { planLocalChange } from "./local-change.js";
import { readRestoreOverMarker, restoreOver, settleInterruptedRestoreOver } from "./local-restore-over.js";
import { ensureTargetArchived } from "./local-restore-target.js";
import { pgbackrestConfigPathOf } from "./local-backup-config.js";
import { localArtifactSubjects } from "./local-render-offline.js";
import { assertRepositoriesConfined } from "./local-confinement.js";
import type { TClusterContext, TClusterObservation } from "./local-postgres.js";
import {
  clusterDirectory,
  databaseNameOf,
  databaseRoleOf,
  instanceNameOf,
  odooDirectory,
  organizationDirectory,
  placeOrganization,
  redisDirectory,
  redisUserOf,
  secretNames,
} from "./local-placement.js";
import type { TClusterPlacement, TInstancePlacement } from "./local-placement.js";
import { observeRedis, reconcileRedis, redisFilesWithoutSecrets } from "./local-redis.js";
import { redisKeyPrefixOf } from "./local-placement.js";
import type { TRedisContext, TRedisObservation } from "./local-redis.js";
import {
  CLUSTER_ADMIN_ROLE,
  assertPostgresInstalled,
  connectAdmin,
  isInitialized,
  runningPid,
  startCluster,
  stopCluster,
} from "./postgres-cluster.js";
import type { TPostgresCluster } from "./postgres-cluster.js";
import { dropTenant } from "./postgres-tenant.js";
import { connectRedisAdmin, redisPid, startRedis, stopRedis } from "./redis-instance.js";
import { ensureCertificateAuthority } from "./runtime-ca.js";
import type { TCertificateAuthority, TRuntimeSecrets } from "./runtime-ca.js";
import { serviceUser } from "./runtime-command.js";
import type { TOsUser } from "./runtime-command.js";
import { readInstanceRecord } from "./runtime-instance.js";
import { writeFileIfChanged } from "./runtime-files.js";
import { finalBackupRepositoryOf, finalBackupSecretName, takeFinalBackup } from "./local-final-backup.js";
import type { TFinalBackup } from "./local-final-backup.js";
import { scopedLocks } from "../../lib/scoped-lock.js";
import type {
  TRenderedRuntimeFile,
  TRenderedRuntimeRole,
  TRuntimeAction,
  TRuntimeChange,
  TRuntimeDrift,
  TRuntimeRender,
} from "./runtime-types.js";

export type TLocalRuntimeDeps = {
  /** Directory holding every organization's clusters, e.g. <CAREHOST_HOME>/runtime. */
  readonly root: string;
  readonly secrets: TRuntimeSecrets;
  /** Roots beyond the data dir a spec's posix repositories and CA files may lead to (CAREHOST_ALLOWED_PATHS). */
  readonly allowedRoots?: readonly string[];
  readonly now?: () => Date;
};

/** Where Debian's odoo package installs the standard addons; used when Odoo is deployed on this host. */
const ODOO_ADDONS_PATH = "/usr/lib/python3/dist-packages/odoo/addons";

export type TEnvironmentRuntimeStatus = {
  readonly environment: string;
  readonly hosting: TEnvironmentSpec["hosting"];
  readonly postgres: {
    readonly instance: string;
    readonly port: number | null;
    readonly state: string;
    readonly database: string;
    readonly role: string;
  };
  readonly redis: {
    readonly instance: string;
    readonly port: number | null;
    readonly state: string;
    readonly user: string;
  } | null;
  readonly app: { readonly state: "not-deployed"; readonly detail: string };
  readonly drift: readonly TRuntimeDrift[];
  /** WAL archiving of the environment's cluster, with the archive lag at the time of reading; null without backups or while the cluster is not running. */
  readonly archiving: TWalArchiving | null;
  /** The environment's declared repositories its backups are written to, and those skipped with why; null without backups or before the cluster exists. */
  readonly backupRepositories: TLiveBackupState | null;
};

/** The host runs one PostgreSQL per cluster; a standby is what CloudNativePG gives on Kubernetes. */
const NO_STANDBY_HERE =
  "the host runtime runs one PostgreSQL per cluster and no standby (pg_stat_replication is empty); a synchronous standby needs the Kubernetes target's CloudNativePG instances";

export type TOrganizationObservation = {
  readonly organization: string;
  readonly environments: readonly TEnvironmentRuntimeStatus[];
  readonly subjects: { readonly artifact: readonly TArtifactSubject[]; readonly live: readonly TLiveSubject[] };
};

/** Where a restore goes: a new copy beside the source, over the environment itself, or over another declared environment. */
export type TRestoreDestination =
  | { readonly kind: "copy"; readonly name: string }
  | { readonly kind: "in-place" }
  | { readonly kind: "environment"; readonly name: string };
/** Every restore runs these steps in this order, wherever it goes. */
export const RESTORE_STEPS = ["secrets", "postgresql", "filestore", "redis", "application", "ingress"] as const;
export type TRestoreStep = {
  readonly step: (typeof RESTORE_STEPS)[number];
  readonly detail: string;
  readonly durationMs: number;
};
export type TDrillFilestore = {
  readonly environment: string;
  readonly files: number;
  /** Files the snapshot holds: a verified restore produces exactly these. */
  readonly expectedFiles: number;
  /** Every restored file re-hashed against the snapshot (restic restore --verify). */
  readonly verified: boolean;
  readonly snapshotAgeSeconds: number | null;
};

/** A promise's outcome held as a value, so work started early can be awaited later without an unhandled rejection. */
type TSettled<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };
const settled = <T>(promise: Promise<T>): Promise<TSettled<T>> =>
  promise.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
const unwrap = <T>(outcome: TSettled<T>): T => {
  if (!outcome.ok) throw outcome.error;
  return outcome.value;
};

/** odoo.conf as a plan shows it: the master password's hash is never part of a diff. */
const HIDDEN_ADMIN_PASSWD = "admin_passwd = (pbkdf2-sha512 hash of the master password, not shown)";
/** Rendered in its place, then replaced by HIDDEN_ADMIN_PASSWD: a hash of nothing, in the form renderOdooConf accepts. */
const HIDDEN_HASH_STANDIN = "$pbkdf2-sha512$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA";

/** In a copy's or a cluster's directory while a restore writes it; found at start, it marks a half-made restore. */
const RESTORING_MARKER = "restore-in-progress.json";
const elapsedMs = (started: bigint) => Math.round(Number(process.hrtime.bigint() - started) / 1e6);

export const localRuntimeFactory = ({
  root,
  secrets,
  allowedRoots = [],
  now = () => new Date(),
}: TLocalRuntimeDeps) => {
  const connections = new Map<string, pg.Client>();
  // What changes the organization as a whole (reconcile, destroy, stop, and expire and verify,
  // whose restic prune and check lock a repository its environments share) never overlaps
  // anything else of it: the supervisor restarting a cluster while a reconcile starts it would
  // have two pg_ctl start calls race on one data directory. What works on one instance (a cluster
  // and its Redis: a backup, a restore, a drill, a crash restart) holds that instance only, so a
  // restore hung on prod's cluster holds up neither staging's backups nor its crash restarts.
  const locks = scopedLocks();
  const exclusive = <T>(organization: TOrganizationSpec, operation: () => Promise<T>): Promise<T> =>
    locks.whole(organization.metadata.name, operation);
  const onInstancesOf = <T>(
    organization: TOrganizationSpec,
    environmentNames: readonly string[],
    operation: () => Promise<T>,
  ): Promise<T> => {
    const environments = environmentNames.map((name) =>
      organization.environments.find((environment) => environment.name === name),
    );
    // An environment the spec does not hold is refused inside (recoverable); hold everything meanwhile.
    if (environments.some((environment) => environment === undefined)) return exclusive(organization, operation);
    const instances = [...new Set(environments.map((environment) => instanceNameOf(environment!)))];
    return locks.parts(organization.metadata.name, instances, operation);
  };
  let owners: Promise<{ postgres: TOsUser | undefined; redis: TOsUser | undefined }> | undefined;
  const serviceOwners = () =>
    (owners ??= Promise.all([serviceUser("postgres"), serviceUser("redis")]).then(([postgres, redis]) => ({
      postgres,
      redis,
    })));

  const certificateAuthority = (organization: string): Promise<TCertificateAuthority> =>
    ensureCertificateAuthority(organization, organizationDirectory(root, organization), secrets, now());

  const clusterContext = async (
    spec: TOrganizationSpec,
    placement: TClusterPlacement,
    ca: TCertificateAuthority,
  ): Promise<TClusterContext> => ({
    root,
    home: dirname(root),
    allowedRoots,
    repositories: spec.backupRepositories,
    organization: spec.metadata.name,
    placement,
    ca,
    secrets,
    owner: (await serviceOwners()).postgres,
    now: now(),
    connections,
  });
  const redisContext = async (
    organization: string,
    placement: TInstancePlacement,
    ca: TCertificateAuthority,
  ): Promise<TRedisContext> => ({
    root,
    organization,
    placement,
    ca,
    secrets,
    owner: (await serviceOwners()).redis,
    now: now(),
  });

  const odooConfOf = (
    org: string,
    environment: TEnvironmentSpec,
    ca: TCertificateAuthority,
    port: number,
    adminPasswordHash: string,
  ) =>
    renderOdooConf({
      environment,
      database: {
        host: "127.0.0.1",
        port,
        name: databaseNameOf(environment),
        user: databaseRoleOf(environment),
        sslRootCertPath: ca.certPath,
      },
      adminPasswordHash,
      dataDir: join(odooDirectory(root, org, environment.name), "data"),
      addonsPaths: [ODOO_ADDONS_PATH],
    });

  const odooFiles = async (
    organization: TOrganizationSpec,
    environment: TEnvironmentSpec,
    ca: TCertificateAuthority,
    createSecrets: boolean,
  ) => {
    const org = organization.metadata.name;
    const master = secretNames.odooMasterPassword(org, environment.name);
    const masterHash = secretNames.odooMasterPasswordHash(org, environment.name);
    if (createSecrets) {
      await secrets.ensure(master, () => generatePassword(24));
      const masterPassword = await secrets.current(master);
      await secrets.ensure(masterHash, () => hashOdooAdminPassword(masterPassword));
    }
    const record = await readInstanceRecord(clusterDirectory(root, org, instanceNameOf(environment)));
    const directory = odooDirectory(root, org, environment.name);
    const odooConf = odooConfOf(org, environment, ca, record?.port ?? 0, await secrets.current(masterHash));
    // libpq reads the password and the CA from these, so odoo.conf holds neither.
    const pgpass = `127.0.0.1:${record?.port ?? 0}:${databaseNameOf(environment)}:${databaseRoleOf(environment)}:${await secrets.current(secretNames.databasePassword(org, environment.name))}\n`;
    const odooEnv = `PGPASSFILE=${join(directory, "pgpass")}\nPGSSLROOTCERT=${ca.certPath}\nPGSSLMODE=verify-full\n`;
    return { directory, odooConf, pgpass, odooEnv };
  };

  /** The environment's cluster with what backups and restores need; refuses an environment without backups. */
  const recoverable = async (
    organization: TOrganizationSpec,
    environmentName: string,
  ): Promise<TRecoverableCluster> => {
    const environment = organization.environments.find((item) => item.name === environmentName);
    if (environment === undefined)
      throw new NotFoundError(
        `environment ${JSON.stringify(environmentName)} is not part of organization ${organization.metadata.name}`,
      );
    if (!environment.backup.enabled)
      throw new ValidationError(
        `environment ${JSON.stringify(environmentName)} has backups disabled (backup.enabled: false)`,
      );
    const { ca, ...access } = await adminAccessOf(organization, environment);
    const placement = placeOrganization(organization).clusters.find((item) => item.name === access.cluster.name);
    const backup =
      placement === undefined
        ? undefined
        : await backupOf(await clusterContext(organization, placement, ca), access.cluster, false);
    if (backup === undefined) {
      throw new ValidationError(
        `environment ${JSON.stringify(environmentName)} has no repository this runtime writes to; see backup.repositories and carehost status`,
      );
    }
    return {
      ...access,
      backup,
      filestoreRepositories: filestoreRepositoriesOf(backup, resticCacheDirectoryOf(dirname(root))),
    };
  };

  /** The backed-up environments placed in one cluster (a shared cluster holds several). */
  const backedUpIn = (organization: TOrganizationSpec, cluster: Pick<TPostgresCluster, "name">) =>
    (placeOrganization(organization).clusters.find((item) => item.name === cluster.name)?.environments ?? []).filter(
      (
        environment,
      ): environment is TEnvironmentSpec & { backup: Extract<TEnvironmentSpec["backup"], { enabled: true }> } =>
        environment.backup.enabled,
    );

  /** Deletes an environment's sessions and caches from its Redis (a restored database must not meet sessions newer than itself). */
  const flushSessions = async (organization: TOrganizationSpec, environment: TEnvironmentSpec): Promise<string> => {
    if (!environment.redis.enabled) return "no Redis for this environment";
    const org = organization.metadata.name;
    const instanceName = placeOrganization(organization).redis.find((item) =>
      item.environments.some((candidate) => candidate.name === environment.name),
    )?.name;
    const directory = instanceName === undefined ? undefined : redisDirectory(root, org, instanceName);
    const record = directory === undefined ? undefined : await readInstanceRecord(directory);
    if (instanceName === undefined || directory === undefined || record === undefined)
      return "Redis is not provisioned";
    const ca = await certificateAuthority(org);
    const client = await connectRedisAdmin(
      { name: instanceName, directory, port: record.port, owner: (await serviceOwners()).redis },
      await secrets.current(secretNames.redisAdmin(org, instanceName)),
      ca.certPem,
    );
    let removed = 0;
    try {
      for await (const keys of client.scanIterator({ MATCH: `${redisKeyPrefixOf(environment)}*`, COUNT: 500 })) {
        const batch = Array.isArray(keys) ? keys : [keys];
        if (batch.length > 0) removed += await client.unlink(batch);
      }
    } finally {
      await client.close();
    }
    return `flushed ${removed} session and cache keys (${redisKeyPrefixOf(environment)}*)`;
  };

  const clusterOf = async (
    organization: string,
    environment: TEnvironmentSpec,
  ): Promise<TPostgresCluster | undefined> => {
    const name = instanceNameOf(environment);
    const directory = clusterDirectory(root, organization, name);
    const record = await readInstanceRecord(directory);
    return record === undefined
      ? undefined
      : {
          name,
          directory,
          port: record.port,
          version: environment.database.postgresVersion,
          owner: (await serviceOwners()).postgres,
        };
  };

  /** The environment's cluster as its admin reaches it (the base of `recoverable`; alone, for an environment restored into that may have no backups). */
  const adminAccessOf = async (organization: TOrganizationSpec, environment: TEnvironmentSpec) => {
    const org = organization.metadata.name;
    const cluster = await clusterOf(org, environment);
    if (cluster === undefined)
      throw new NotFoundError(
        `environment ${JSON.stringify(environment.name)} is not provisioned on this host yet; run carehost apply`,
      );
    const ca = await certificateAuthority(org);
    return {
      cluster,
      adminPassword: await secrets.current(secretNames.clusterAdmin(org, cluster.name)),
      caPem: ca.certPem,
      caPath: ca.certPath,
      ca,
    };
  };

  const reconcileNow = async (organization: TOrganizationSpec): Promise<TRuntimeAction[]> => {
    const placement = placeOrganization(organization);
    for (const cluster of placement.clusters) await assertPostgresInstalled(cluster.version);
    const org = placement.organization;
    await mkdir(organizationDirectory(root, org), { recursive: true, mode: 0o711 });
    const ca = await certificateAuthority(org);
    const actions: TRuntimeAction[] = [];
    // No run of this carehost can be going (reconcile holds the lifecycle lock): pgBackRest still
    // working for a cluster was left by a carehost killed midway, and must stop before its copy is
    // removed or its restore finished.
    for (const cluster of placement.clusters) {
      const ended = await endLeftoverRuns(
        pgbackrestConfigPathOf({ directory: clusterDirectory(root, org, cluster.name) }),
      );
      if (ended > 0)
        actions.push({
          target: `postgres/${cluster.name}`,
          action: `ended ${ended} pgBackRest process(es) left by an interrupted backup or restore`,
        });
    }
    // A drill's copy exists only while the drill runs; one found now was left by a carehost killed midway.
    const drills = join(root, org, "drills");
    for (const name of await stopCopies(drills)) {
      await rm(join(drills, name), { recursive: true, force: true });
      actions.push({ target: `drill/${name}`, action: "removed the copy of an interrupted restore drill" });
    }
    // A copy still marked as being restored was left half-made by a carehost killed midway.
    const restores = join(root, org, "restores");
    for (const name of await readdir(restores).catch(() => [] as string[])) {
      if ((await stat(join(restores, name, RESTORING_MARKER)).catch(() => undefined)) === undefined) continue;
      const over = await readRestoreOverMarker(join(restores, name), RESTORING_MARKER);
      await stopCopies(restores, [name]);
      await rm(join(restores, name), { recursive: true, force: true });
      if (over === undefined) {
        actions.push({ target: `restore/${name}`, action: "removed the half-made copy of an interrupted restore" });
        continue;
      }
      // The scratch copy of a restore over a declared environment: its target is repaired before its
      // cluster's tenants are reconciled, which would otherwise create an empty database in the gap of a swap.
      const environment = organization.environments.find((item) => item.name === over.into);
      if (environment === undefined) continue;
      actions.push(...(await restartStoppedNow(organization)));
      const access = await adminAccessOf(organization, environment);
      const admin = await connectAdmin(access.cluster, access.adminPassword, access.caPem);
      try {
        actions.push({ target: `environment/${over.into}`, action: await settleInterruptedRestoreOver(admin, over) });
      } finally {
        await admin.end();
      }
      // A database already replaced must not meet sessions of the one before it.
      if (over.databaseSwapped) await flushSessions(organization, environment);
    }
    // An in-place restore that was interrupted is finished before the cluster serves again: pgBackRest's
    // --delta restore is safe to run twice, and the half-restored data directory must not start as is.
    for (const cluster of placement.clusters) {
      const marker = await readFile(join(clusterDirectory(root, org, cluster.name), RESTORING_MARKER), "utf8").catch(
        () => undefined,
      );
      const environment = cluster.environments.find((item) => item.backup.enabled);
      if (marker === undefined || environment === undefined) continue;
      const recorded = JSON.parse(marker) as {
        target: { kind: "latest" } | { kind: "time"; time: string } | { kind: "lsn"; lsn: string };
      };
      const target: TRestoreTarget =
        recorded.target.kind === "time" ? { kind: "time", time: new Date(recorded.target.time) } : recorded.target;
      await restoreInPlace(await recoverable(organization, environment.name), target);
      await rm(join(clusterDirectory(root, org, cluster.name), RESTORING_MARKER), { force: true });
      actions.push({ target: `postgres/${cluster.name}`, action: "finished an in-place restore that was interrupted" });
    }
    // Clusters and Redis instances are independent processes: bring them up side by side.
    const results = await Promise.all([
      ...placement.clusters.map(async (cluster) => reconcileCluster(await clusterContext(organization, cluster, ca))),
      ...placement.redis.map(async (redis) => reconcileRedis(await redisContext(org, redis, ca))),
    ]);
    actions.push(...results.flat());
    for (const environment of organization.environments) {
      const files = await odooFiles(organization, environment, ca, true);
      await mkdir(join(files.directory, "data"), { recursive: true, mode: 0o700 });
      const changed = [
        ...((await writeFileIfChanged(join(files.directory, "odoo.conf"), files.odooConf, { mode: 0o640 }))
          ? ["odoo.conf"]
          : []),
        ...((await writeFileIfChanged(join(files.directory, "pgpass"), files.pgpass, { mode: 0o600 }))
          ? ["pgpass"]
          : []),
        ...((await writeFileIfChanged(join(files.directory, "odoo.env"), files.odooEnv, { mode: 0o640 }))
          ? ["odoo.env"]
          : []),
      ];
      if (changed.length > 0)
        actions.push({ target: `environment/${environment.name}`, action: `rendered ${changed.join(", ")}` });
    }
    return actions;
  };

  /** The cluster's written and skipped repositories that the environment declares (a shared cluster writes the union of its environments'). */
  const backupRepositoriesOf = (
    environment: TEnvironmentSpec,
    cluster: TClusterObservation | undefined,
  ): TLiveBackupState | null => {
    if (!environment.backup.enabled || cluster?.repositories == null) return null;
    const declared = new Set(environment.backup.repositories);
    return {
      written: cluster.repositories.written.filter((repository) => declared.has(repository.name)),
      skipped: cluster.repositories.skipped.filter((repository) => declared.has(repository.name)),
    };
  };

  /** Reads everything back: status, drift, and the artifact and live subjects for the control baseline. */
  const observeNow = async (organization: TOrganizationSpec): Promise<TOrganizationObservation> => {
    const placement = placeOrganization(organization);
    const org = placement.organization;
    const ca = await certificateAuthority(org);
    const clusters = new Map<string, TClusterObservation>();
    const redis = new Map<string, TRedisObservation>();
    await Promise.all([
      ...placement.clusters.map(async (cluster) =>
        clusters.set(cluster.name, await observeCluster(await clusterContext(organization, cluster, ca))),
      ),
      ...placement.redis.map(async (instance) =>
        redis.set(instance.name, await observeRedis(await redisContext(org, instance, ca))),
      ),
    ]);
    const at = now();
    const archivingOf = (cluster: TClusterObservation | undefined): TWalArchiving | null => {
      const reading = cluster?.archiving ?? null;
      return reading === null ? null : { ...reading, archiveLagSeconds: archiveLagSeconds(reading, at) };
    };
    const environments: TEnvironmentRuntimeStatus[] = [];
    const renderedBackups = new Map(
      localArtifactSubjects(organization).map((subject) => [subject.environment.name, subject.artifacts.backup]),
    );
    const artifact: TArtifactSubject[] = [];
    const live: TLiveSubject[] = [];
    for (const environment of organization.environments) {
      const instance = instanceNameOf(environment);
      const cluster = clusters.get(instance);
      const tenant = cluster?.tenants.find((item) => item.environment === environment.name);
      const redisObservation = environment.redis.enabled ? redis.get(instance) : undefined;
      const drift: TRuntimeDrift[] = [
        ...(cluster?.drift ?? []),
        ...(tenant?.drift ?? []),
        ...(redisObservation?.drift ?? []),
      ];
      const directory = odooDirectory(root, org, environment.name);
      const odooConfText = await readFile(join(directory, "odoo.conf"), "utf8").catch(() => undefined);
      const expected = await odooFiles(organization, environment, ca, false).catch(() => undefined);
      if (expected !== undefined && odooConfText !== expected.odooConf) {
        drift.push({
          target: `environment/${environment.name}`,
          field: "odoo.conf",
          expected: "as rendered",
          actual: odooConfText === undefined ? "missing" : "edited by hand",
        });
      }
      const backupRepositories = backupRepositoriesOf(environment, cluster);
      environments.push({
        environment: environment.name,
        hosting: environment.hosting,
        postgres: {
          instance,
          port: cluster?.port ?? null,
          state: cluster?.state ?? "absent",
          database: databaseNameOf(environment),
          role: databaseRoleOf(environment),
        },
        redis: environment.redis.enabled
          ? {
              instance,
              port: redisObservation?.port ?? null,
              state: redisObservation?.state ?? "absent",
              user: redisUserOf(environment),
            }
          : null,
        app: {
          state: "not-deployed",
          detail: `not deployed on this runtime: no Odoo installation is configured here; its odoo.conf is at ${join(directory, "odoo.conf")}`,
        },
        drift,
        archiving: environment.backup.enabled ? archivingOf(cluster) : null,
        backupRepositories,
      });
      artifact.push({
        environment,
        artifacts: {
          // What the renderer configures for the spec (every declared repository, both parts): a
          // repository this host skips (a key never stored) is CH-BAK-006's, read back live.
          ...(renderedBackups.get(environment.name) === undefined
            ? {}
            : { backup: renderedBackups.get(environment.name) }),
          ...(odooConfText === undefined ? {} : { odooConf: parseOdooConf(odooConfText) }),
          ...(cluster?.files.pgHba === undefined ? {} : { pgHba: cluster.files.pgHba }),
          ...(cluster?.files.postgresqlConf === undefined ? {} : { postgresqlConf: cluster.files.postgresqlConf }),
          ...(redisObservation?.files.redisConf === undefined ? {} : { redisConf: redisObservation.files.redisConf }),
          // Odoo binds to loopback and no ingress is run here: the database manager is unreachable from the network.
          ingress: null,
        },
      });
      const redisLive = redisObservation?.live.get(environment.name);
      live.push({
        environment,
        live: {
          ...(tenant?.live === undefined ? {} : { postgres: tenant.live }),
          ...(redisLive === undefined ? {} : { redis: redisLive }),
          ...(backupRepositories === null ? {} : { backup: backupRepositories }),
          cannotProvide: { synchronousStandby: NO_STANDBY_HERE },
        },
      });
    }
    return { organization: org, environments, subjects: { artifact, live } };
  };

  /**
   * The files reconcile would write for a spec, on the clusters and Redis instances provisioned
   * here (a new one has no port yet: the plan shows it as created), without their secrets. Reads
   * nothing but the instance records and which repositories have their keys; writes nothing.
   */
  const renderNow = async (organization: TOrganizationSpec): Promise<TRuntimeRender> => {
    const placement = placeOrganization(organization);
    const org = placement.organization;
    const ca = await certificateAuthority(org);
    const files: TRenderedRuntimeFile[] = [];
    const roles: TRenderedRuntimeRole[] = [];
    const ports = new Map<string, number>();
    for (const cluster of placement.clusters) {
      const record = await readInstanceRecord(clusterDirectory(root, org, cluster.name));
      if (record === undefined) continue;
      ports.set(cluster.name, record.port);
      const context = await clusterContext(organization, cluster, ca);
      const instance: TPostgresCluster = {
        name: cluster.name,
        directory: clusterDirectory(root, org, cluster.name),
        port: record.port,
        version: cluster.version,
        owner: context.owner,
      };
      const backup = await backupOf(context, instance, false).catch(() => undefined);
      const desired = await desiredFiles(context, instance, backup);
      const of = {
        target: `postgres/${cluster.name}`,
        environments: cluster.environments.map((environment) => environment.name),
      };
      files.push(
        { ...of, component: "postgresql", file: "postgresql.conf", content: desired.postgresqlConf },
        { ...of, component: "postgresql", file: "pg_hba.conf", content: desired.pgHba },
      );
      if (backup !== undefined)
        files.push({ ...of, component: "pgbackrest", file: "pgbackrest.conf", content: backup.confText });
      for (const environment of cluster.environments)
        roles.push({
          target: of.target,
          environment: environment.name,
          role: databaseRoleOf(environment),
          connectionLimit: odooConnectionLimit(environment),
        });
    }
    for (const instance of placement.redis) {
      const directory = redisDirectory(root, org, instance.name);
      const record = await readInstanceRecord(directory);
      if (record === undefined) continue;
      const rendered = redisFilesWithoutSecrets(
        { placement: instance },
        { name: instance.name, directory, port: record.port, owner: (await serviceOwners()).redis },
      );
      const of = {
        target: `redis/${instance.name}`,
        environments: instance.environments.map((environment) => environment.name),
        component: "redis" as const,
      };
      files.push(
        { ...of, file: "redis.conf", content: rendered.redisConf },
        { ...of, file: "users.acl", content: rendered.usersAcl },
      );
    }
    for (const environment of organization.environments) {
      const port = ports.get(instanceNameOf(environment));
      if (port === undefined) continue;
      const odooConf = odooConfOf(org, environment, ca, port, HIDDEN_HASH_STANDIN).replace(
        /^admin_passwd = .*$/m,
        HIDDEN_ADMIN_PASSWD,
      );
      files.push({
        target: `environment/${environment.name}`,
        environments: [environment.name],
        component: "odoo",
        file: "odoo.conf",
        content: odooConf,
      });
    }
    return { files, roles };
  };

  /** Starts every process of the organization that has stopped (crash, reboot); returns what it restarted. */
  const restartStoppedNow = async (
    organization: TOrganizationSpec,
    /** The instances to look at; every one when absent (under the whole organization's lock). */
    only?: ReadonlySet<string>,
  ): Promise<TRuntimeAction[]> => {
    const placement = placeOrganization(organization);
    const org = placement.organization;
    const actions: TRuntimeAction[] = [];
    const owner = await serviceOwners();
    const ca = await certificateAuthority(org);
    for (const cluster of placement.clusters.filter((each) => only?.has(each.name) ?? true)) {
      const directory = clusterDirectory(root, org, cluster.name);
      const record = await readInstanceRecord(directory);
      const instance: TPostgresCluster | undefined =
        record === undefined
          ? undefined
          : { name: cluster.name, directory, port: record.port, version: cluster.version, owner: owner.postgres };
      if (instance !== undefined && (await isInitialized(instance)) && (await runningPid(instance)) === undefined) {
        await closeConnection({ connections }, `${org}/${cluster.name}`);
        // The archiver needs the repository passphrases in its environment, after a crash as on first start.
        const backup = await backupOf(await clusterContext(organization, cluster, ca), instance, false).catch(
          () => undefined,
        );
        await startCluster(instance, backup?.access.env ?? {});
        actions.push({ target: `postgres/${cluster.name}`, action: `restarted (port ${instance.port})` });
      }
    }
    for (const redis of placement.redis.filter((each) => only?.has(each.name) ?? true)) {
      const directory = redisDirectory(root, org, redis.name);
      const record = await readInstanceRecord(directory);
      if (record === undefined) continue;
      const instance = { name: redis.name, directory, port: record.port, owner: owner.redis };
      if ((await redisPid(instance)) === undefined) {
        await startRedis(instance, await secrets.current(secretNames.redisAdmin(org, redis.name)), ca.certPem);
        actions.push({ target: `redis/${redis.name}`, action: `restarted (TLS port ${record.port})` });
      }
    }
    return actions;
  };

  /**
   * Removes one environment of the organization as recorded: first a final pg_dump of its
   * database (verified readable with pg_restore --list), then its database and role or its
   * dedicated cluster and Redis. Nothing is removed when the backup fails.
   */
  const destroyEnvironmentNow = async (
    organization: TOrganizationSpec,
    environmentName: string,
    backupDirectory: string,
  ): Promise<TFinalBackup> => {
    const environment = organization.environments.find((item) => item.name === environmentName);
    if (environment === undefined)
      throw new NotFoundError(
        `environment ${JSON.stringify(environmentName)} is not part of organization ${organization.metadata.name}`,
      );
    const org = organization.metadata.name;
    const ca = await certificateAuthority(org);
    const cluster = await clusterOf(org, environment);
    await mkdir(backupDirectory, { recursive: true, mode: 0o700 });
    let backup: TFinalBackup = { path: "", snapshotId: "", bytes: 0, sha256: "" };
    if (cluster !== undefined) {
      if ((await runningPid(cluster)) === undefined) await startCluster(cluster);
      const passwordDirectory = join(backupDirectory, ".pgpass");
      await mkdir(passwordDirectory, { recursive: true, mode: 0o700 });
      const passfile = join(passwordDirectory, `${environment.name}.pgpass`);
      await writeFile(
        passfile,
        `127.0.0.1:${cluster.port}:*:${CLUSTER_ADMIN_ROLE}:${await secrets.current(secretNames.clusterAdmin(org, cluster.name))}\n`,
        { mode: 0o600 },
      );
      const env = { PGPASSFILE: passfile, PGSSLMODE: "verify-full", PGSSLROOTCERT: ca.certPath };
      const bin = `/usr/lib/postgresql/${cluster.version}/bin`;
      const secretName = finalBackupSecretName(org);
      await secrets.ensure(secretName, () => generatePassword(32));
      try {
        backup = await takeFinalBackup({
          repository: finalBackupRepositoryOf(
            backupDirectory,
            org,
            await secrets.current(secretName),
            resticCacheDirectoryOf(dirname(root)),
          ),
          environment: environment.name,
          dump: {
            file: join(bin, "pg_dump"),
            args: [
              "-h",
              "127.0.0.1",
              "-p",
              String(cluster.port),
              "-U",
              CLUSTER_ADMIN_ROLE,
              "-d",
              databaseNameOf(environment),
              "-Fc",
            ],
            env,
          },
          list: { file: join(bin, "pg_restore"), args: ["--list"] },
        });
      } finally {
        await rm(passwordDirectory, { recursive: true, force: true });
      }
    }
    if (cluster !== undefined && environment.hosting === "dedicated") {
      await closeConnection({ connections }, `${org}/${cluster.name}`);
      await stopCluster(cluster);
      await rm(cluster.directory, { recursive: true, force: true });
    } else if (cluster !== undefined) {
      const admin = await connectAdmin(
        cluster,
        await secrets.current(secretNames.clusterAdmin(org, cluster.name)),
        ca.certPem,
      );
      try {
        await dropTenant(admin, { database: databaseNameOf(environment), role: databaseRoleOf(environment) });
      } finally {
        await admin.end();
      }
    }
    if (environment.hosting === "dedicated" && environment.redis.enabled) {
      const directory = redisDirectory(root, org, instanceNameOf(environment));
      const record = await readInstanceRecord(directory);
      if (record !== undefined)
        await stopRedis({
          name: instanceNameOf(environment),
          directory,
          port: record.port,
          owner: (await serviceOwners()).redis,
        });
      await rm(directory, { recursive: true, force: true });
    }
    await rm(odooDirectory(root, org, environment.name), { recursive: true, force: true });
    return backup;
  };

  /** Stops every process of the organization (tests, `carehost down`); data stays. */
  /** Stops the restored copies under one directory (restores/ or drills/); returns their names. */
  const stopCopies = async (directory: string, only?: readonly string[]): Promise<string[]> => {
    const names = only === undefined ? await readdir(directory).catch(() => [] as string[]) : [...only];
    for (const name of names) {
      const copy = join(directory, name, "postgres");
      const version = Number((await readFile(join(copy, "data", "PG_VERSION"), "utf8").catch(() => "15")).trim());
      await stopCluster({ name, directory: copy, port: 0, version, owner: (await serviceOwners()).postgres }).catch(
        () => undefined,
      );
    }
    return names;
  };

  const stopOrganizationNow = async (organization: TOrganizationSpec): Promise<void> => {
    // Restored copies are this organization's processes too.
    await stopCopies(join(root, organization.metadata.name, "restores"));
    const placement = placeOrganization(organization);
    const org = placement.organization;
    const owner = await serviceOwners();
    for (const cluster of placement.clusters) {
      await closeConnection({ connections }, `${org}/${cluster.name}`);
      const directory = clusterDirectory(root, org, cluster.name);
      const record = await readInstanceRecord(directory);
      if (record !== undefined)
        await stopCluster({
          name: cluster.name,
          directory,
          port: record.port,
          version: cluster.version,
          owner: owner.postgres,
        });
    }
    for (const redis of placement.redis) {
      const directory = redisDirectory(root, org, redis.name);
      const record = await readInstanceRecord(directory);
      if (record !== undefined) await stopRedis({ name: redis.name, directory, port: record.port, owner: owner.redis });
    }
  };

  return {
    kind: "local" as const,

    /** Refuses a spec whose posix repositories or CA files lead outside carehost's directories (local-confinement.ts), before it is recorded. */
    assertPathsConfined: (organization: TOrganizationSpec): Promise<void> =>
      assertRepositoriesConfined(organization.metadata.name, organization.backupRepositories, {
        home: dirname(root),
        allowedRoots,
      }),

    /** Brings the organization's data tier to what the spec declares; returns what it did (nothing, the second time). */
    reconcile: (organization: TOrganizationSpec): Promise<TRuntimeAction[]> =>
      exclusive(organization, () => reconcileNow(organization)),

    /** Reads everything back: status, drift, and the artifact and live subjects for the control baseline. */
    observe: (organization: TOrganizationSpec): Promise<TOrganizationObservation> => observeNow(organization),

    /** The files reconcile would write for a spec, without secrets (see renderNow). */
    render: (organization: TOrganizationSpec): Promise<TRuntimeRender> => renderNow(organization),

    /** What applying `proposed` over `applied` changes in the rendered files, and what reconcile restarts or reloads for it. */
    planChange: async (applied: TOrganizationSpec, proposed: TOrganizationSpec): Promise<TRuntimeChange> =>
      planLocalChange(await renderNow(applied), await renderNow(proposed)),

    /** Starts every process of the organization that has stopped (crash, reboot); returns what it restarted. */
    restartStopped: (organization: TOrganizationSpec): Promise<TRuntimeAction[]> => {
      // An instance a backup, restore or drill holds is that action's to stop and start (an
      // in-place restore stops its cluster on purpose); the next pass looks at it again.
      const placement = placeOrganization(organization);
      const idle = [...new Set([...placement.clusters, ...placement.redis].map((instance) => instance.name))].filter(
        (name) => !locks.partBusy(organization.metadata.name, name),
      );
      return locks.parts(organization.metadata.name, idle, () => restartStoppedNow(organization, new Set(idle)));
    },

    /** Removes one environment after its final backup (see destroyEnvironmentNow). */
    destroyEnvironment: (
      organization: TOrganizationSpec,
      environmentName: string,
      backupDirectory: string,
    ): Promise<TFinalBackup> =>
      exclusive(organization, () => destroyEnvironmentNow(organization, environmentName, backupDirectory)),

    /** Stops every process of the organization (tests, a host shutdown); data stays. */
    stopOrganization: (organization: TOrganizationSpec): Promise<void> =>
      exclusive(organization, () => stopOrganizationNow(organization)),

    /**
     * Takes a pgBackRest backup of the environment's cluster (a shared cluster is backed up as a
     * whole), then a restic snapshot of the filestore of every environment in it, tagged with the
     * backup's run id. Backups, restores and drills hold the organization's lifecycle lock like
     * reconcile: a reconcile must not restart a cluster under a running backup or a drill reading
     * its source.
     */
    backup: (organization: TOrganizationSpec, environmentName: string, type: TBackupType) =>
      onInstancesOf(organization, [environmentName], async () => {
        const source = await recoverable(organization, environmentName);
        const started = process.hrtime.bigint();
        // One id pairs the database backup (a pgBackRest annotation, in every repository) with the
        // filestore snapshots (a restic tag), so both can run at once: pgBackRest spends part of a
        // backup waiting (the checkpoint, the archiving of its last WAL segment) and restic fills it.
        const runId = backupRunId(now());
        const snapshotAll = async () => {
          const filestore = { files: 0, bytes: 0, bytesAdded: 0 };
          for (const environment of backedUpIn(organization, source.cluster)) {
            const snapshot = await snapshotFilestore(
              source.filestoreRepositories,
              filestoreDirectoryOf(root, organization.metadata.name, environment),
              {
                organization: organization.metadata.name,
                environment: environment.name,
                backupRunId: runId,
              },
            );
            filestore.files += snapshot.files;
            filestore.bytes += snapshot.bytes;
            filestore.bytesAdded += snapshot.bytesAdded;
          }
          return filestore;
        };
        // Both are awaited before either's failure is reported: neither goes on behind carehost's back.
        const [database, filestore] = await Promise.allSettled([takeBackup(source, type, runId), snapshotAll()]);
        if (database.status === "rejected") throw database.reason;
        if (filestore.status === "rejected") throw filestore.reason;
        // Never silently dropped: the result names each declared repository this backup did not reach.
        const declared = new Set(
          backedUpIn(organization, source.cluster).flatMap((environment) => environment.backup.repositories),
        );
        const skippedRepositories = source.backup.skipped.filter((repository) => declared.has(repository.name));
        return {
          stanza: source.backup.access.stanza,
          durationMs: elapsedMs(started),
          runId,
          ...database.value,
          filestore: filestore.value,
          skippedRepositories,
        };
      }),

    /**
     * A filestore snapshot between database backups, when files were added or removed since the
     * newest one: the filestore's own recovery point. Returns undefined when nothing changed.
     */
    snapshotFilestore: (organization: TOrganizationSpec, environmentName: string) =>
      onInstancesOf(organization, [environmentName], async () => {
        const source = await recoverable(organization, environmentName);
        const [repository] = source.filestoreRepositories;
        const directory = filestoreDirectoryOf(root, organization.metadata.name, { name: environmentName });
        const newest =
          repository === undefined
            ? undefined
            : (await resticSnapshots(repository, filestoreTag(environmentName)).catch(() => [])).at(-1);
        const changed = await newestChange(directory);
        if (newest !== undefined && (changed === undefined || changed < newest.time)) return undefined;
        const started = process.hrtime.bigint();
        const snapshot = await snapshotFilestore(source.filestoreRepositories, directory, {
          organization: organization.metadata.name,
          environment: environmentName,
        });
        return { ...snapshot, durationMs: elapsedMs(started) };
      }),

    /**
     * Expires what the retention tiers no longer keep: full backups (with the differential and
     * incremental backups and the WAL that depend on them) and filestore snapshots.
     */
    expire: (organization: TOrganizationSpec, environmentName: string) =>
      exclusive(organization, async () => {
        const source = await recoverable(organization, environmentName);
        const started = process.hrtime.bigint();
        const environments = backedUpIn(organization, source.cluster);
        const retention = combinedRetention(environments.map((environment) => environment.backup.retention));
        const before = await stanzaInfo(source.backup.access);
        // Each repository holds its own backups under its own labels; each is expired on its own.
        for (const index of source.backup.repositories.keys()) {
          const held = before.backups.filter((backup) => backup.repository === index + 1);
          for (const label of fullBackupsToExpire(held, retention, now()))
            await pgbackrest(source.backup.access, "expire", [`--set=${label}`, `--repo=${index + 1}`]);
        }
        const remaining = new Set(
          (await stanzaInfo(source.backup.access)).backups.map((backup) => `${backup.repository}/${backup.label}`),
        );
        const expired = before.backups.filter((backup) => !remaining.has(`${backup.repository}/${backup.label}`));
        let filestoreSnapshots = 0;
        for (const repository of source.filestoreRepositories) {
          for (const environment of environments) {
            filestoreSnapshots += (
              await resticForget(repository, filestoreTag(environment.name), {
                withinDays: retention.daily,
                weekly: retention.weekly,
                monthly: retention.monthly,
              })
            ).length;
          }
        }
        return {
          stanza: source.backup.access.stanza,
          expired: [...new Set(expired.map((backup) => backup.label))],
          reclaimedBytes: expired.reduce((sum, backup) => sum + backup.repositoryBytes, 0),
          filestoreSnapshots,
          durationMs: elapsedMs(started),
        };
      }),

    /** pgbackrest verify over every repository of the environment's stanza, and restic check --read-data of its filestores. */
    verify: (organization: TOrganizationSpec, environmentName: string) =>
      exclusive(organization, async () => {
        const source = await recoverable(organization, environmentName);
        const database = await verifyRepository(source);
        const filestores = [];
        for (const repository of source.filestoreRepositories) filestores.push(await resticCheck(repository));
        const ok = database.ok && filestores.every((result) => result.ok);
        const output = [
          database.output,
          ...filestores.filter((result) => !result.ok).map((result) => result.output),
        ].join("\n");
        return { stanza: source.backup.access.stanza, ok, output };
      }),

    /** What local-recovery.ts needs of an environment's cluster (backup access, admin password, CA), for callers that drive it directly (bench/, tests). */
    recoverable,

    backups: async (organization: TOrganizationSpec, environmentName: string) => {
      const source = await recoverable(organization, environmentName);
      return { stanza: source.backup.access.stanza, ...(await stanzaInfo(source.backup.access)) };
    },

    /** The environment's filestore snapshots, per repository (in the order of backup.repositories). */
    filestoreSnapshots: async (organization: TOrganizationSpec, environmentName: string) => {
      const source = await recoverable(organization, environmentName);
      return Promise.all(
        source.filestoreRepositories.map((repository) => resticSnapshots(repository, filestoreTag(environmentName))),
      );
    },

    /**
     * Restores an environment to a point in time, in the documented order: secrets, PostgreSQL,
     * filestore, Redis (sessions flushed), application, ingress. Into a new copy under
     * <root>/<org>/restores/<name> (kept running for inspection), in place over a dedicated
     * environment, or, for a shared environment in place and for another declared environment,
     * database by database (local-restore-over.ts). Over an environment, the caller has taken the
     * safety backup and passed the change gate.
     */
    restore: (
      organization: TOrganizationSpec,
      environmentName: string,
      requested: TRestoreTarget,
      destination: TRestoreDestination,
      onStep: (step: TRestoreStep) => void = () => undefined,
    ) =>
      // The source's instance, and the one whose data a restore over another environment replaces.
      onInstancesOf(
        organization,
        destination.kind === "environment" ? [environmentName, destination.name] : [environmentName],
        async () => {
          const started = process.hrtime.bigint();
          const steps: TRestoreStep[] = [];
          const step = async <T>(
            name: TRestoreStep["step"],
            run: () => Promise<{ detail: string; value: T }>,
          ): Promise<T> => {
            const begun = process.hrtime.bigint();
            const { detail, value } = await run();
            const done = { step: name, detail, durationMs: elapsedMs(begun) };
            steps.push(done);
            onStep(done);
            return value;
          };
          const org = organization.metadata.name;
          const source = await step("secrets", async () => ({
            detail: "repository passphrases, cluster admin and CA read from the secret store",
            value: await recoverable(organization, environmentName),
          }));
          // Before anything is touched: a target the archive does not reach is refused now, not after a recovery that ends early.
          const { detail: archived, target } = await ensureTargetArchived(source, requested, now());
          const [repository] = source.filestoreRepositories;
          // When the instant is known up front (latest, a time), the filestore is fetched while
          // PostgreSQL restores, which shortens the RTO by the filestore's whole download; its step
          // still completes after PostgreSQL's, in the documented order. An LSN's instant is known only
          // once PostgreSQL has replayed to it.
          const fetchFilestore = (into: string) =>
            target.kind === "lsn" || repository === undefined
              ? undefined
              : settled(
                  restoreFilestore(repository, environmentName, target.kind === "time" ? target.time : undefined, into),
                );
          const filestoreOf = async (
            fetching: Promise<TSettled<TFilestoreRestore>> | undefined,
            restoredUntil: () => Promise<Date | null | undefined>,
            into: string,
          ) =>
            fetching === undefined
              ? restoreFilestore(repository!, environmentName, (await restoredUntil()) ?? undefined, into)
              : unwrap(await fetching);
          if (destination.kind === "copy") {
            const name = destination.name;
            if (!/^[a-z0-9][a-z0-9-]{0,39}$/.test(name))
              throw new ValidationError(
                `--into ${JSON.stringify(name)} is not a name (lowercase letters, digits and hyphens)`,
              );
            const directory = join(root, org, "restores", name);
            if ((await stat(directory).catch(() => undefined)) !== undefined) {
              throw new ValidationError(
                `a restored copy named ${JSON.stringify(name)} already exists at ${directory}; choose another --into name`,
              );
            }
            await mkdir(directory, { recursive: true, mode: 0o711 });
            // Present until the copy is whole: a carehost killed midway leaves it, and the next reconcile removes the copy.
            await writeFile(
              join(directory, RESTORING_MARKER),
              JSON.stringify({ source: environmentName, target, startedAt: now() }),
            );
            const fetching = fetchFilestore(join(directory, "filestore"));
            try {
              const scratch = await step("postgresql", async () => {
                const cluster = await restoreToScratch(source, join(directory, "postgres"), target);
                return { detail: `${archived}; restored into a new cluster on port ${cluster.port}`, value: cluster };
              });
              const filestore = await step("filestore", async () => {
                if (repository === undefined) return { detail: "no repository", value: undefined };
                const restored = await filestoreOf(
                  fetching,
                  () => recoveredUntil(scratch, source),
                  join(directory, "filestore"),
                );
                return {
                  detail: `${restored.files} files from snapshot ${restored.snapshots.join(" + ")}${restored.excludedNewer > 0 ? `, ${restored.excludedNewer} newer than the target left out` : ""}`,
                  value: restored,
                };
              });
              await step("redis", async () => ({
                detail: "a copy gets no Redis: sessions are never restored",
                value: undefined,
              }));
              await step("application", async () => ({ detail: "not deployed on this runtime", value: undefined }));
              await step("ingress", async () => ({ detail: "not deployed on this runtime", value: undefined }));
              await rm(join(directory, RESTORING_MARKER), { force: true });
              return {
                directory,
                port: scratch.port,
                database: databaseNameOf({ name: environmentName }),
                filestoreFiles: filestore?.files ?? 0,
                steps,
                durationMs: elapsedMs(started),
              };
            } catch (error) {
              // Nothing half-made stays behind: the fetch is let finish, the copy's cluster stopped and its directory removed.
              await fetching;
              await stopCopies(join(root, org, "restores"), [name]);
              await rm(directory, { recursive: true, force: true });
              throw error;
            }
          }
          const environment = organization.environments.find((item) => item.name === environmentName)!;
          // A shared cluster restored physically would roll its neighbours back: only the one database moves.
          if (destination.kind === "environment" || environment.hosting !== "dedicated") {
            const intoName = destination.kind === "environment" ? destination.name : environmentName;
            const into = organization.environments.find((item) => item.name === intoName);
            if (into === undefined)
              throw new NotFoundError(`environment ${JSON.stringify(intoName)} is not part of organization ${org}`);
            const access = await adminAccessOf(organization, into);
            if ((await runningPid(access.cluster)) === undefined) {
              throw new ValidationError(
                `the PostgreSQL cluster "${access.cluster.name}" of ${JSON.stringify(into.name)} is not running; start it (carehost reconcile) before restoring into it`,
              );
            }
            // Short: the scratch cluster's Unix socket path must stay under 107 bytes. No copy name has a dot.
            const scratchDirectory = join(root, org, "restores", `${into.name}.into`);
            if ((await stat(scratchDirectory).catch(() => undefined)) !== undefined) {
              throw new ValidationError(
                `an interrupted restore into ${JSON.stringify(into.name)} is still to be cleaned up (${scratchDirectory}); run carehost reconcile first`,
              );
            }
            const { filestoreFiles } = await restoreOver({
              source,
              sourceEnvironment: environmentName,
              into: {
                environment: into,
                access,
                tenant: await tenantOf(secrets, org, into),
                filestoreDirectory: filestoreDirectoryOf(root, org, into),
              },
              target,
              scratchDirectory,
              markerName: RESTORING_MARKER,
              step: (name, run) => step(name, run),
              flushSessions: (environment) => flushSessions(organization, environment),
              ...(into.backup.enabled
                ? {
                    snapshotRestoredFilestore: async () =>
                      snapshotFilestore(
                        (await recoverable(organization, into.name)).filestoreRepositories,
                        filestoreDirectoryOf(root, org, into),
                        { organization: org, environment: into.name },
                      ),
                  }
                : {}),
              now,
            });
            return {
              directory: access.cluster.directory,
              port: access.cluster.port,
              database: databaseNameOf(into),
              filestoreFiles,
              steps,
              durationMs: elapsedMs(started),
            };
          }
          const markerPath = join(source.cluster.directory, RESTORING_MARKER);
          await writeFile(markerPath, JSON.stringify({ source: environmentName, target, startedAt: now() }));
          await closeConnection({ connections }, `${org}/${source.cluster.name}`);
          const live = filestoreDirectoryOf(root, org, environment);
          const { incoming } = filestoreSwapNamesOf(live);
          await rm(incoming, { recursive: true, force: true });
          const fetching = fetchFilestore(incoming);
          await step("postgresql", async () => {
            await restoreInPlace(source, target).catch(async (error: unknown) => {
              await fetching;
              throw error;
            });
            return {
              detail: `${archived}; restored in place (port ${source.cluster.port}, new timeline)`,
              value: undefined,
            };
          });
          const restoredFiles = await step("filestore", async () => {
            if (repository === undefined) return { detail: "no repository", value: 0 };
            const restored = await filestoreOf(fetching, () => recoveredUntil(source.cluster, source), incoming);
            await swapInFilestore(live, incoming);
            // Snapshotted at once: the newest snapshot must be the restored filestore, or a drill, or a
            // later restore to a time after this one, would bring back the files this restore removed.
            await snapshotFilestore(source.filestoreRepositories, live, {
              organization: org,
              environment: environmentName,
            });
            return {
              detail: `${restored.files} files from snapshot ${restored.snapshots.join(" + ")}`,
              value: restored.files,
            };
          });
          await step("redis", async () => ({
            detail: await flushSessions(organization, environment),
            value: undefined,
          }));
          await step("application", async () => ({ detail: "not deployed on this runtime", value: undefined }));
          await step("ingress", async () => ({ detail: "not deployed on this runtime", value: undefined }));
          await rm(markerPath, { force: true });
          return {
            directory: source.cluster.directory,
            port: source.cluster.port,
            database: databaseNameOf(environment),
            filestoreFiles: restoredFiles,
            steps,
            durationMs: elapsedMs(started),
          };
        },
      ),

    /**
     * Restores the latest backup (and filestore) into a scratch copy, checks and measures it, and
     * tears it down; `onStep` hears of PostgreSQL's part and the filestore's as each completes.
     */
    drill: (
      organization: TOrganizationSpec,
      environmentName: string,
      onStep: (step: { step: string; detail: string; durationMs: number }) => void = () => undefined,
    ) =>
      onInstancesOf(organization, [environmentName], async () => {
        const source = await recoverable(organization, environmentName);
        // Short: the copy's Unix socket path must stay under 107 bytes.
        const directory = join(root, organization.metadata.name, "drills", now().getTime().toString(36));
        let begun = process.hrtime.bigint();
        const result = await runDrill(
          source,
          join(directory, "postgres"),
          backedUpIn(organization, source.cluster),
          now,
        );
        onStep({
          step: "postgresql",
          detail: `${result.backupLabel} restored and writable in ${result.rtoSeconds.toFixed(1)} s; pg_amcheck ${result.amcheckPassed ? "clean" : "found problems"}${result.databasesMissing.length === 0 ? "" : `; missing ${result.databasesMissing.join(", ")}`}`,
          durationMs: elapsedMs(begun),
        });
        begun = process.hrtime.bigint();
        const filestores: TDrillFilestore[] = [];
        const [repository] = source.filestoreRepositories;
        try {
          for (const environment of repository === undefined ? [] : backedUpIn(organization, source.cluster)) {
            const snapshots = await resticSnapshots(repository!, filestoreTag(environment.name));
            const newest = snapshots.at(-1);
            if (newest === undefined) {
              filestores.push({
                environment: environment.name,
                files: 0,
                expectedFiles: 0,
                verified: false,
                snapshotAgeSeconds: null,
              });
              continue;
            }
            const restored = await restoreFilestore(
              repository!,
              environment.name,
              undefined,
              join(directory, "filestore", environment.name),
            ).then(
              (value) => ({ files: value.files, verified: true }),
              () => ({ files: 0, verified: false }),
            );
            filestores.push({
              environment: environment.name,
              files: restored.files,
              expectedFiles: await resticFileCount(repository!, newest.id),
              verified: restored.verified,
              snapshotAgeSeconds: Math.max(0, (result.startedAt.getTime() - newest.time.getTime()) / 1000),
            });
          }
        } finally {
          await rm(directory, { recursive: true, force: true });
        }
        const files = filestores.reduce((sum, filestore) => sum + filestore.files, 0);
        onStep({
          step: "filestore",
          detail:
            filestores.length === 0
              ? "no filestore repository"
              : `${files} files restored and re-hashed for ${filestores.map((filestore) => filestore.environment).join(", ")}`,
          durationMs: elapsedMs(begun),
        });
        return { stanza: source.backup.access.stanza, ...result, filestores };
      }),

    /** Writes the heartbeat that drills read to measure the achieved RPO, in every backed-up cluster. */
    heartbeat: async (organization: TOrganizationSpec): Promise<void> => {
      for (const environment of organization.environments.filter((item) => item.backup.enabled)) {
        const source = await recoverable(organization, environment.name).catch(() => undefined);
        if (source === undefined || (await runningPid(source.cluster)) === undefined) continue;
        const admin = await connectAdmin(source.cluster, source.adminPassword, source.caPem);
        try {
          await writeHeartbeat(admin);
        } finally {
          await admin.end();
        }
      }
    },

    close: async (): Promise<void> => {
      await Promise.all([...connections.keys()].map((key) => closeConnection({ connections }, key)));
    },
  };
};

export type TLocalRuntime = ReturnType<typeof localRuntimeFactory>;
