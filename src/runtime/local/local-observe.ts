// Observe: reads an organization's data tier on this host back, for `carehost status` and the
// control baseline: each environment's PostgreSQL, Redis and Odoo, its drift from the spec, its WAL
// archiving and backup repositories, and the artifact and live subjects the controls check.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { TArtifactSubject, TLiveBackupState, TLiveSubject } from "../../policy/policy-types.js";
import { parseOdooConf } from "../../render/odoo/odoo-conf.js";
import { instanceNameOf } from "../../spec/spec-hosting.js";
import type { TEnvironmentSpec, TOrganizationSpec } from "../../spec/spec-schema.js";
import { archiveLagSeconds } from "../../backup/wal-archiving.js";
import type { TWalArchiving } from "../../backup/wal-archiving.js";
import type { TLocalContext } from "./local-context.js";
import type { TLocalOdooFiles } from "./local-odoo-files.js";
import { databaseNameOf, databaseRoleOf, odooDirectory, placeOrganization, redisUserOf } from "./local-placement.js";
import { observeCluster } from "./local-postgres.js";
import type { TClusterObservation } from "./local-postgres.js";
import { observeRedis } from "./local-redis.js";
import type { TRedisObservation } from "./local-redis.js";
import { localArtifactSubjects } from "./local-render-offline.js";
import type { TEnvironmentRuntimeStatus, TOrganizationObservation, TRuntimeDrift } from "../runtime-types.js";

/** The host runs one PostgreSQL per cluster; a standby is what CloudNativePG gives on Kubernetes. */
const NO_STANDBY_HERE =
  "the host runtime runs one PostgreSQL per cluster and no standby (pg_stat_replication is empty); a synchronous standby needs the Kubernetes target's CloudNativePG instances";

export const localObserveFactory = ({
  root,
  now,
  certificateAuthority,
  clusterContext,
  redisContext,
  odooFiles,
}: Pick<TLocalContext, "root" | "now" | "certificateAuthority" | "clusterContext" | "redisContext"> &
  Pick<TLocalOdooFiles, "odooFiles">) => {
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

  return {
    /** Reads everything back: status, drift, and the artifact and live subjects for the control baseline. */
    observe: (organization: TOrganizationSpec): Promise<TOrganizationObservation> => observeNow(organization),
  };
};
