// The life of an organization's processes on this host outside reconcile: restarting what stopped
// (a crash, a reboot: the supervisor's pass), stopping all of them (tests, a host shutdown), and
// removing one environment, only after its final backup.
import { mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { NotFoundError } from "../../lib/errors.js";
import { generatePassword } from "../../secrets/secrets-generate.js";
import { instanceNameOf } from "../../spec/spec-hosting.js";
import type { TOrganizationSpec } from "../../spec/spec-schema.js";
import type { TLocalContext } from "./local-context.js";
import { resticCacheDirectoryOf } from "./local-filestore.js";
import { finalBackupRepositoryOf, finalBackupSecretName, takeFinalBackup } from "./local-final-backup.js";
import type { TFinalBackup } from "../runtime-types.js";
import {
  clusterDirectory,
  databaseNameOf,
  databaseRoleOf,
  odooDirectory,
  placeOrganization,
  redisDirectory,
  secretNames,
} from "./local-placement.js";
import { backupOf, closeConnection } from "./local-postgres.js";
import {
  CLUSTER_ADMIN_ROLE,
  connectAdmin,
  isInitialized,
  runningPid,
  startCluster,
  stopCluster,
} from "./postgres-cluster.js";
import type { TPostgresCluster } from "./postgres-cluster.js";
import { dropTenant } from "./postgres-tenant.js";
import { redisPid, startRedis, stopRedis } from "./redis-instance.js";
import { readInstanceRecord } from "./runtime-instance.js";
import type { TRuntimeAction } from "../runtime-types.js";

export const localLifecycleFactory = ({
  root,
  secrets,
  connections,
  locks,
  exclusive,
  serviceOwners,
  certificateAuthority,
  clusterContext,
  clusterOf,
  stopCopies,
}: Pick<
  TLocalContext,
  | "root"
  | "secrets"
  | "connections"
  | "locks"
  | "exclusive"
  | "serviceOwners"
  | "certificateAuthority"
  | "clusterContext"
  | "clusterOf"
  | "stopCopies"
>) => {
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
    restartStoppedNow,

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
  };
};

export type TLocalLifecycle = ReturnType<typeof localLifecycleFactory>;
