// What every part of the local runtime shares: the deps it was made with, the admin connections
// kept between calls, the locks that keep what changes an organization as a whole apart from what
// works on one of its instances, the service owners, the organization's certificate authority, and
// the ways to an instance (its cluster context, its admin access, a recoverable cluster, its
// Redis's sessions, the restored copies) that reconcile, observe, render, the lifecycle, backups,
// restores and drills all go through.
import { readdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type pg from "pg";
import { NotFoundError, ValidationError } from "../../lib/errors.js";
import { scopedLocks } from "../../lib/scoped-lock.js";
import { instanceNameOf } from "../../spec/spec-hosting.js";
import type { TEnvironmentSpec, TOrganizationSpec } from "../../spec/spec-schema.js";
import { filestoreRepositoriesOf, resticCacheDirectoryOf } from "./local-filestore.js";
import { backupOf } from "./local-postgres.js";
import type { TClusterContext } from "./local-postgres.js";
import type { TRecoverableCluster } from "./local-recovery.js";
import {
  clusterDirectory,
  organizationDirectory,
  placeOrganization,
  redisDirectory,
  redisKeyPrefixOf,
  secretNames,
} from "./local-placement.js";
import type { TClusterPlacement, TInstancePlacement } from "./local-placement.js";
import type { TRedisContext } from "./local-redis.js";
import { stopCluster } from "./postgres-cluster.js";
import type { TPostgresCluster } from "./postgres-cluster.js";
import { connectRedisAdmin } from "./redis-instance.js";
import { ensureCertificateAuthority } from "./runtime-ca.js";
import type { TCertificateAuthority, TRuntimeSecrets } from "./runtime-ca.js";
import { serviceUser } from "../../lib/runtime-command.js";
import type { TOsUser } from "../../lib/runtime-command.js";
import { readInstanceRecord } from "./runtime-instance.js";

export type TLocalRuntimeDeps = {
  /** Directory holding every organization's clusters, e.g. <CAREHOST_HOME>/runtime. */
  readonly root: string;
  readonly secrets: TRuntimeSecrets;
  /** Roots beyond the data dir a spec's posix repositories and CA files may lead to (CAREHOST_ALLOWED_PATHS). */
  readonly allowedRoots?: readonly string[];
  readonly now?: () => Date;
};

/** In a copy's or a cluster's directory while a restore writes it; found at start, it marks a half-made restore. */
export const RESTORING_MARKER = "restore-in-progress.json";
export const elapsedMs = (started: bigint) => Math.round(Number(process.hrtime.bigint() - started) / 1e6);

export const localContextFactory = ({
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

  return {
    root,
    secrets,
    allowedRoots,
    now,
    connections,
    locks,
    exclusive,
    onInstancesOf,
    serviceOwners,
    certificateAuthority,
    clusterContext,
    redisContext,
    recoverable,
    backedUpIn,
    flushSessions,
    clusterOf,
    adminAccessOf,
    stopCopies,
  };
};

export type TLocalContext = ReturnType<typeof localContextFactory>;
