// The files the local runtime writes for a spec, rendered without a host, for `carehost validate`
// in a CI pipeline or a pre-commit hook: the same renderers reconcile writes with (postgresql.conf
// and pg_hba.conf, redis.conf, odoo.conf), fed with what only a host knows replaced by stand-ins
// (ports, the data dir, the master password's hash). None of those is what an artifact control
// reads. Pure.
import { join } from "node:path";
import { archiveSettings, renderPgbackrestConf } from "../../backup/pgbackrest-config.js";
import { combinedTiers, containerRepositoryOf } from "../../render/data-tier/data-tier-backup.js";
import { pgbackrestRepositoriesOf } from "../../policy/policy-rendered-files.js";
import type { TBackupArtifact } from "../../policy/policy-types.js";
import { odooConnectionLimit, parseOdooConf, renderOdooConf } from "../../render/odoo/odoo-conf.js";
import type { TArtifactSubject } from "../../policy/policy-types.js";
import { instanceNameOf } from "../../spec/spec-hosting.js";
import type { TOrganizationSpec } from "../../spec/spec-schema.js";
import {
  clusterDirectory,
  databaseNameOf,
  databaseRoleOf,
  odooDirectory,
  placeOrganization,
  redisDirectory,
} from "./local-placement.js";
import { CLUSTER_ADMIN_ROLE } from "./postgres-cluster.js";
import { parsePostgresqlConf, postgresqlSettings, renderPgHba, renderPostgresqlConf } from "./postgres-config.js";
import type { TStatementAudit } from "./postgres-config.js";
import { redisSettings, renderRedisConf } from "./redis-config.js";

/** Where the runtime's directories would be: a stand-in, as the real data dir is the host's. */
const STANDIN_ROOT = "/var/lib/carehost/runtime";
const STANDIN_POSTGRES_PORT = 5432;
const STANDIN_REDIS_PORT = 6380;
/** The form renderOdooConf requires; reconcile renders a real pbkdf2-sha512 hash from the secret store. */
const STANDIN_ADMIN_PASSWORD_HASH = "$pbkdf2-sha512$600000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA";

const certificateIn = (directory: string) => ({
  certPath: join(directory, "tls", "server.crt"),
  keyPath: join(directory, "tls", "server.key"),
  caPath: join(directory, "tls", "ca.crt"),
});

/**
 * What the cluster's pgbackrest.conf writes, per repository of the environment; the filestore goes
 * to the same repositories (every repository written holds both: clusterRepositoriesOf), with
 * restic's encryption under the same passphrase.
 */
const localBackupOf = (names: readonly string[], pgbackrestConf: string): TBackupArtifact => {
  const written = pgbackrestRepositoriesOf(pgbackrestConf);
  return {
    repositories: names.map((name) => {
      const repo = written.find((candidate) => candidate.name === name);
      return repo === undefined
        ? {
            name,
            database: { written: false, reason: "not in pgbackrest.conf" },
            filestore: { written: false, reason: "not in pgbackrest.conf" },
          }
        : { name, database: { written: true, cipher: repo.cipher }, filestore: { written: true, cipher: "restic" } };
    }),
  };
};

/**
 * One artifact subject per environment, as observe reads them back from the files reconcile wrote.
 * `statementAudit` is the host's (statementAuditFor): pgaudit where its package is installed, as on
 * a production host, otherwise log_statement = all; both pass CH-DB-006.
 */
export function localArtifactSubjects(
  organization: TOrganizationSpec,
  options: { readonly statementAudit?: Exclude<TStatementAudit, "ddl"> } = {},
): TArtifactSubject[] {
  const { org, clusterFiles: clusterTexts, redisFiles: redisTexts } = localRenderedFiles(organization, options);
  const clusterFiles = new Map(
    [...clusterTexts].map(([name, { postgresqlConf, ...rest }]) => [
      name,
      { postgresqlConf: parsePostgresqlConf(postgresqlConf), ...rest },
    ]),
  );
  const redisFiles = new Map(
    [...redisTexts].map(([name, text]) => [
      name,
      Object.fromEntries(
        text
          .split("\n")
          .filter((line) => line !== "" && !line.startsWith("#"))
          .map((line) => [line.split(" ")[0] ?? "", line.slice(line.indexOf(" ") + 1)]),
      ),
    ]),
  );
  return artifactSubjectsFrom(organization, org, clusterFiles, redisFiles);
}

/**
 * The files the local runtime writes for the spec, as text, with stand-ins for what only a host
 * knows: postgresql.conf, pg_hba.conf and pgbackrest.conf per cluster, redis.conf per instance.
 */
export function localRenderedFiles(
  organization: TOrganizationSpec,
  { statementAudit = "pgaudit" }: { readonly statementAudit?: Exclude<TStatementAudit, "ddl"> } = {},
) {
  const placement = placeOrganization(organization);
  const org = placement.organization;
  const clusterFiles = new Map(
    placement.clusters.map((cluster) => {
      const directory = clusterDirectory(STANDIN_ROOT, org, cluster.name);
      const backedUp = cluster.environments.filter((environment) => environment.backup.enabled);
      const rpoMinutes = Math.min(
        ...backedUp.map((environment) => (environment.backup.enabled ? environment.backup.rpoMinutes : Infinity)),
      );
      const settings = postgresqlSettings({
        port: STANDIN_POSTGRES_PORT,
        certificate: certificateIn(directory),
        statementAudit,
        tenantConnections: cluster.environments.reduce(
          (total, environment) => total + odooConnectionLimit(environment),
          0,
        ),
        ...(backedUp.length === 0
          ? {}
          : {
              socketDirectory: join(directory, "run"),
              archive: archiveSettings({
                configPath: join(directory, "pgbackrest", "pgbackrest.conf"),
                stanza: cluster.name,
                rpoMinutes,
              }),
            }),
      });
      // Every repository of the cluster's environments, as clusterRepositoriesOf writes them (a
      // repository the host cannot reach is skipped there, and CH-BAK-006 reads that live).
      const names = [
        ...new Set(
          backedUp.flatMap((environment) => (environment.backup.enabled ? environment.backup.repositories : [])),
        ),
      ].sort();
      const pgbackrestConf =
        names.length === 0
          ? undefined
          : renderPgbackrestConf({
              stanza: cluster.name,
              dataDirectory: join(directory, "data"),
              port: STANDIN_POSTGRES_PORT,
              socketDirectory: join(directory, "run"),
              adminUser: CLUSTER_ADMIN_ROLE,
              workDirectory: join(directory, "pgbackrest"),
              repositories: names.flatMap((name) => {
                const spec = organization.backupRepositories.find((repository) => repository.name === name);
                return spec === undefined
                  ? []
                  : [containerRepositoryOf(spec, { posixRoot: join(STANDIN_ROOT, "backups"), prefix: `/${org}` })];
              }),
              retention: combinedTiers(
                backedUp.map((environment) =>
                  environment.backup.enabled ? environment.backup.retention : { daily: 0, weekly: 0, monthly: 0 },
                ),
              ),
              processMax: 1,
            }).text;
      return [
        cluster.name,
        {
          postgresqlConf: renderPostgresqlConf(settings),
          pgHba: renderPgHba(CLUSTER_ADMIN_ROLE),
          ...(pgbackrestConf === undefined ? {} : { pgbackrestConf }),
        },
      ];
    }),
  );
  const redisFiles = new Map(
    placement.redis.map((instance) => {
      const directory = redisDirectory(STANDIN_ROOT, org, instance.name);
      const text = renderRedisConf(
        redisSettings({
          directory,
          port: STANDIN_REDIS_PORT,
          certificate: certificateIn(directory),
          maxMemoryMb: instance.environments.reduce((total, environment) => total + environment.redis.maxMemoryMb, 0),
        }),
      );
      return [instance.name, text];
    }),
  );
  return { placement, org, clusterFiles, redisFiles };
}

function artifactSubjectsFrom(
  organization: TOrganizationSpec,
  org: string,
  clusterFiles: ReadonlyMap<string, { postgresqlConf: Record<string, string>; pgHba: string; pgbackrestConf?: string }>,
  redisFiles: ReadonlyMap<string, Record<string, string>>,
): TArtifactSubject[] {
  return organization.environments.map((environment) => {
    const instance = instanceNameOf(environment);
    const odooConf = renderOdooConf({
      environment,
      database: {
        host: "127.0.0.1",
        port: STANDIN_POSTGRES_PORT,
        name: databaseNameOf(environment),
        user: databaseRoleOf(environment),
        sslRootCertPath: join(STANDIN_ROOT, org, "ca.crt"),
      },
      adminPasswordHash: STANDIN_ADMIN_PASSWORD_HASH,
      dataDir: join(odooDirectory(STANDIN_ROOT, org, environment.name), "data"),
      addonsPaths: ["/usr/lib/python3/dist-packages/odoo/addons"],
    });
    const redisConf = environment.redis.enabled ? redisFiles.get(instance) : undefined;
    const { pgbackrestConf, ...cluster } = clusterFiles.get(instance)!;
    return {
      environment,
      artifacts: {
        odooConf: parseOdooConf(odooConf),
        ...cluster,
        ...(environment.backup.enabled
          ? { backup: localBackupOf(environment.backup.repositories, pgbackrestConf ?? "") }
          : {}),
        ...(redisConf === undefined ? {} : { redisConf }),
        // As on the host: Odoo binds to loopback and no ingress is run.
        ingress: null,
      },
    };
  });
}
