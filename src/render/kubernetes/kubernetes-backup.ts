// Backups on Kubernetes, from the data tier's model. The database: pgBackRest in the cluster
// through Dalibo's CNPG-I plugin (pgbackrest.dalibo.com), which archives WAL to every repository
// of its Stanza and takes each ScheduledBackup into the repository it selects, with pgBackRest's
// client-side aes-256-cbc (CloudNativePG's own barman offers only server-side encryption). The
// plugin writes object stores only: a posix repository (a volume here) gets the database as a
// nightly pg_dump in restic, encrypted, but without WAL (no point-in-time recovery from it), and
// the artifact controls report that gap. The filestore: restic, one CronJob per
// repository, encrypted with the repository's passphrase for the environment, forgetting by the
// same tiers as everywhere. Pure.
import type { TBackupRepository } from "../../backup/pgbackrest-config.js";
import type { TBackupRepositorySpec } from "../../spec/spec-schema.js";
import {
  containerRepositoryOf,
  declaredRepositoriesOf,
  filestoreForgetArguments,
  filestorePathOf,
  PGBACKREST_CIPHER_TYPE,
  resticTargetIfAny,
  resticTargetOf,
  retentionDays,
} from "../data-tier/data-tier-backup.js";
import type { TResticTarget } from "../data-tier/data-tier-backup.js";
import type { TKubernetesObject, TRenderContext } from "./kubernetes-common.js";
import {
  besideOdooWeb,
  clusterNameOf,
  containerSecurity,
  labels,
  metadata,
  podSecurity,
  SECRET_STORE,
} from "./kubernetes-common.js";

/** The CNPG-I plugin that runs pgBackRest beside each instance. */
export const PGBACKREST_PLUGIN = "pgbackrest.dalibo.com";
/**
 * restic's own image, pinned by digest (CH-KUBE-006: production runs only what was approved). The
 * digest is restic 0.18.1's as other projects pin it; carehost did not pull it here.
 */
export const RESTIC_IMAGE =
  "docker.io/restic/restic:0.18.1@sha256:39d9072fb5651c80d75c7a811612eb60b4c06b32ffe87c2e9f3c7222e1797e76";
const FILESTORE_MOUNT = "/var/lib/odoo";
const POSIX_ROOT = "/var/lib/carehost-backup";

export const stanzaNameOf = (context: TRenderContext) => `${context.environment.name}-stanza`;
/** One Secret per repository: its access key and the environment's passphrase in it (both from carehost's store). */
export const repositorySecretOf = (repository: { readonly name: string }) => `backup-${repository.name}`;

const prefixOf = (context: TRenderContext) => `/${context.organization.metadata.name}/${context.environment.name}`;

const repositoriesOf = (context: TRenderContext) =>
  declaredRepositoriesOf(context.organization, context.environment).map((spec) => ({
    spec,
    repository: containerRepositoryOf(spec, { posixRoot: POSIX_ROOT, prefix: prefixOf(context) }),
  }));

/** The object stores in the plugin's order (its S3 list, then its Azure list): selectedRepository counts in it. */
const pluginRepositoriesOf = (context: TRenderContext) => [
  ...repositoriesOf(context).filter(({ repository }) => repository.type === "s3"),
  ...repositoriesOf(context).filter(({ repository }) => repository.type === "azure"),
];

const secretKey = (name: string, key: string) => ({ name, key });
const retentionPolicy = (context: TRenderContext) =>
  context.environment.backup.enabled
    ? { fullType: "time", full: retentionDays(context.environment.backup.retention) }
    : undefined;

function stanzaRepository(context: TRenderContext, repository: TBackupRepository) {
  const secret = repositorySecretOf(repository);
  const common = {
    repoPath: repository.path,
    retentionPolicy: retentionPolicy(context),
    cipherConfig: { type: PGBACKREST_CIPHER_TYPE, encryptionPass: secretKey(secret, "passphrase") },
  };
  if (repository.type === "s3")
    return {
      ...common,
      bucket: repository.bucket,
      endpoint: repository.endpoint.host,
      region: repository.region,
      uriStyle: repository.endpoint.pathStyle ? "path" : "host",
      verifyTLS: true,
      secretRef: {
        accessKeyId: secretKey(secret, "access-key-id"),
        secretAccessKey: secretKey(secret, "secret-access-key"),
      },
    };
  if (repository.type === "azure")
    return {
      ...common,
      account: repository.account,
      container: repository.container,
      ...(repository.endpoint === undefined
        ? {}
        : { endpoint: repository.endpoint.host.slice(repository.account.length + 1) }),
      keyType: "shared",
      uriStyle: repository.endpoint?.pathStyle === true ? "path" : "host",
      verifyTLS: true,
      secretRef: { keyReference: secretKey(secret, "key") },
    };
  return undefined;
}

/** The Cluster's `plugins` entry: pgBackRest archives WAL (CloudNativePG allows one WAL archiver). */
export const pgbackrestPluginOf = (context: TRenderContext) =>
  pluginRepositoriesOf(context).length === 0
    ? undefined
    : [
        {
          name: PGBACKREST_PLUGIN,
          enabled: true,
          isWALArchiver: true,
          parameters: { stanzaRef: stanzaNameOf(context) },
        },
      ];

const repositorySecret = (context: TRenderContext, spec: TBackupRepositorySpec): TKubernetesObject => {
  const org = context.organization.metadata.name;
  return {
    apiVersion: "external-secrets.io/v1",
    kind: "ExternalSecret",
    metadata: metadata(context, repositorySecretOf(spec), "backup"),
    spec: {
      refreshInterval: "1h",
      secretStoreRef: { kind: "ClusterSecretStore", name: SECRET_STORE },
      target: { name: repositorySecretOf(spec), creationPolicy: "Owner" },
      data: [
        // The environment's own passphrase in the repository (derived as for Compose), never the repository's.
        {
          secretKey: "passphrase",
          remoteRef: { key: `${org}/${context.environment.name}/backup-passphrase-${spec.name}` },
        },
        ...(spec.type === "azure"
          ? [{ secretKey: "key", remoteRef: { key: `${org}/backup/${spec.keySecretRef}`, property: "key" } }]
          : spec.type === "s3"
            ? (["access-key-id", "secret-access-key"] as const).map((property) => ({
                secretKey: property,
                remoteRef: { key: `${org}/backup/${spec.keySecretRef}`, property },
              }))
            : []),
      ],
    },
  };
};

/** What a restic job backs up: the filestore from its volume, or the database as a dump an init container takes. */
type TResticJob = { readonly kind: "filestore" } | { readonly kind: "database" };

const DUMP_DIRECTORY = "/var/lib/carehost-dump";

/**
 * pg_dump over verified TLS as Odoo's role (it owns the database), into a volume of the job's own.
 * It runs the environment's Odoo image (pinned as the spec pins it), which carries the PostgreSQL
 * client Odoo itself needs.
 */
const dumpContainer = (context: TRenderContext) => ({
  name: "pg-dump",
  image: context.environment.odoo.image,
  command: ["/bin/sh", "-c", `set -eu; pg_dump --format=custom --file=${DUMP_DIRECTORY}/odoo.dump`],
  env: [
    { name: "PGHOST", value: `${clusterNameOf(context.environment)}-rw` },
    { name: "PGDATABASE", value: "odoo" },
    { name: "PGSSLMODE", value: "verify-full" },
    { name: "PGSSLROOTCERT", value: "/run/postgres-ca/ca.crt" },
    { name: "PGUSER", valueFrom: { secretKeyRef: secretKey("odoo-db-credentials", "username") } },
    { name: "PGPASSWORD", valueFrom: { secretKeyRef: secretKey("odoo-db-credentials", "password") } },
  ],
  securityContext: containerSecurity,
  resources: { requests: { cpu: "100m", memory: "256Mi" }, limits: { cpu: "1", memory: "1Gi" } },
  volumeMounts: [
    { name: "dump", mountPath: DUMP_DIRECTORY },
    { name: "postgres-ca", mountPath: "/run/postgres-ca", readOnly: true },
  ],
});

function resticCronJob(
  context: TRenderContext,
  spec: TBackupRepositorySpec,
  repository: TBackupRepository,
  target: TResticTarget,
  job: TResticJob,
): TKubernetesObject {
  const backup = context.environment.backup;
  if (!backup.enabled)
    throw new TypeError(`environment ${JSON.stringify(context.environment.name)} has backups disabled`);
  const secret = repositorySecretOf(spec);
  const keyFrom: Record<string, string> = {
    AWS_ACCESS_KEY_ID: "access-key-id",
    AWS_SECRET_ACCESS_KEY: "secret-access-key",
    AZURE_ACCOUNT_KEY: "key",
  };
  const restic = (args: readonly string[]) => ["restic", "-r", target.location, ...target.flags, ...args].join(" ");
  const tag = job.kind === "filestore" ? `env:${context.environment.name}` : `database:${context.environment.name}`;
  const source = job.kind === "filestore" ? `${FILESTORE_MOUNT}/filestore` : DUMP_DIRECTORY;
  const script = [
    "set -eu",
    `${restic(["cat", "config"])} >/dev/null 2>&1 || ${restic(["init"])}`,
    restic(["backup", "--tag", tag, source]),
    restic(["forget", "--prune", "--tag", tag, "--group-by", "''", ...filestoreForgetArguments(backup.retention)]),
  ].join("\n");
  const podLabels = { ...labels(context, "backup"), "carehost.io/tier": "backup" };
  return {
    apiVersion: "batch/v1",
    kind: "CronJob",
    metadata: metadata(context, `${job.kind}-backup-${spec.name}`, "backup"),
    spec: {
      schedule: backup.schedule.full,
      timeZone: "Etc/UTC",
      concurrencyPolicy: "Forbid",
      successfulJobsHistoryLimit: 3,
      failedJobsHistoryLimit: 3,
      jobTemplate: {
        spec: {
          backoffLimit: 2,
          template: {
            metadata: { labels: podLabels },
            spec: {
              ...podSecurity,
              restartPolicy: "OnFailure",
              ...(job.kind === "database" ? { initContainers: [dumpContainer(context)] } : {}),
              // A ReadWriteOnce filestore is mountable on one node only: the job goes where Odoo's web pod is.
              affinity: besideOdooWeb(context),
              containers: [
                {
                  name: "restic",
                  image: RESTIC_IMAGE,
                  command: ["/bin/sh", "-c", script],
                  env: [
                    { name: "RESTIC_PASSWORD", valueFrom: { secretKeyRef: secretKey(secret, "passphrase") } },
                    { name: "RESTIC_CACHE_DIR", value: "/tmp/restic" },
                    ...Object.entries(target.plain).map(([name, value]) => ({ name, value })),
                    ...target.keyVariables.map((name) => ({
                      name,
                      valueFrom: { secretKeyRef: secretKey(secret, keyFrom[name] ?? name) },
                    })),
                  ],
                  securityContext: containerSecurity,
                  resources: {
                    requests: { cpu: "100m", memory: "256Mi" },
                    limits: { cpu: "1", memory: "1Gi" },
                  },
                  volumeMounts: [
                    job.kind === "filestore"
                      ? { name: "filestore", mountPath: FILESTORE_MOUNT, readOnly: true }
                      : { name: "dump", mountPath: DUMP_DIRECTORY, readOnly: true },
                    { name: "tmp", mountPath: "/tmp" },
                    ...(repository.type === "posix" ? [{ name: "repository", mountPath: repository.path }] : []),
                  ],
                },
              ],
              volumes: [
                ...(job.kind === "filestore"
                  ? [{ name: "filestore", persistentVolumeClaim: { claimName: "odoo-filestore", readOnly: true } }]
                  : [
                      // The plaintext dump lives only in this pod's own volume, until restic has encrypted it.
                      { name: "dump", emptyDir: { sizeLimit: `${context.environment.database.storageGi}Gi` } },
                      {
                        name: "postgres-ca",
                        secret: {
                          secretName: `${clusterNameOf(context.environment)}-ca`,
                          items: [{ key: "ca.crt", path: "ca.crt" }],
                        },
                      },
                    ]),
                { name: "tmp", emptyDir: { sizeLimit: "2Gi" } },
                ...(repository.type === "posix"
                  ? [{ name: "repository", persistentVolumeClaim: { claimName: repositorySecretOf(spec) } }]
                  : []),
              ],
            },
          },
        },
      },
    },
  };
}

export function backupObjects(context: TRenderContext): TKubernetesObject[] {
  const backup = context.environment.backup;
  if (!backup.enabled) return [];
  const repositories = repositoriesOf(context);
  const plugin = pluginRepositoriesOf(context);
  const objects: TKubernetesObject[] = repositories.map(({ spec }) => repositorySecret(context, spec));
  if (plugin.length > 0) {
    objects.push({
      apiVersion: "pgbackrest.dalibo.com/v1",
      kind: "Stanza",
      metadata: metadata(context, stanzaNameOf(context), "postgres"),
      spec: {
        stanzaConfiguration: {
          name: context.environment.name,
          s3Repositories: plugin
            .filter(({ repository }) => repository.type === "s3")
            .map(({ repository }) => stanzaRepository(context, repository)),
          azureRepositories: plugin
            .filter(({ repository }) => repository.type === "azure")
            .map(({ repository }) => stanzaRepository(context, repository)),
          archive: { async: true },
          compressConfig: { type: "zst", level: 1 },
          startFast: true,
          delta: true,
        },
      },
    });
    // One ScheduledBackup per repository: pgBackRest writes one repository per backup.
    plugin.forEach(({ repository }, index) =>
      objects.push({
        apiVersion: "postgresql.cnpg.io/v1",
        kind: "ScheduledBackup",
        metadata: metadata(context, `${context.environment.name}-full-${repository.name}`, "postgres"),
        spec: {
          schedule: `0 ${backup.schedule.full}`,
          cluster: { name: clusterNameOf(context.environment) },
          backupOwnerReference: "self",
          method: "plugin",
          pluginConfiguration: { name: PGBACKREST_PLUGIN, parameters: { selectedRepository: String(index + 1) } },
          immediate: true,
        },
      }),
    );
  }
  for (const { spec, repository } of repositories) {
    if (repository.type === "posix")
      objects.push({
        apiVersion: "v1",
        kind: "PersistentVolumeClaim",
        // The cluster's stand-in for a posix repository: a volume of its own, outside the filestore's.
        metadata: metadata(context, repositorySecretOf(spec), "backup"),
        spec: {
          accessModes: ["ReadWriteOnce"],
          resources: { requests: { storage: `${Math.max(10, context.environment.database.storageGi * 2)}Gi` } },
        },
      });
    // restic cannot address every repository (an Azure endpoint in path style): then the job is
    // not rendered, the file says why, and CH-BAK-007 fails for this target.
    const target = resticTargetIfAny(repository, filestorePathOf(context.environment.name));
    if (typeof target !== "string")
      objects.push(resticCronJob(context, spec, repository, target, { kind: "filestore" }));
    if (repository.type === "posix") {
      const databaseTarget = resticTargetOf(repository, `database/${context.environment.name}`);
      objects.push(resticCronJob(context, spec, repository, databaseTarget, { kind: "database" }));
    }
  }
  return objects;
}
