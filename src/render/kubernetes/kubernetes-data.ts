// The data tier: PostgreSQL as a CloudNativePG Cluster (TLS, SCRAM, pgaudit for PHI, synchronous
// replication where the RPO needs it, encrypted backups with WAL archiving to Azure Blob or S3),
// a ScheduledBackup, and Redis with ACLs from a Secret, reachable only inside the namespace.
import type { TBackupRepositorySpec } from "../../spec/spec-schema.js";
import type { TKubernetesObject, TRenderContext } from "./kubernetes-common.js";
import {
  REDIS_PORT,
  SECRET_STORE,
  clusterNameOf,
  containerSecurity,
  labels,
  metadata,
  podSecurity,
} from "./kubernetes-common.js";
import { postgresInstancesOf, postgresPodResources, redisPodResources, resourcesOf } from "./kubernetes-sizing.js";

/** With an RPO under this many minutes and HA instances, commits wait for a synchronous standby. */
const SYNCHRONOUS_RPO_MINUTES = 15;

/** CloudNativePG's ScheduledBackup takes six cron fields, seconds first. */
export const sixFieldCron = (fiveFields: string) => `0 ${fiveFields}`;

/** The first object-store repository of the environment; posix repositories cannot be reached from a cluster. */
const objectStoreOf = (
  context: TRenderContext,
): Extract<TBackupRepositorySpec, { type: "azure" | "s3" }> | undefined => {
  const backup = context.environment.backup;
  if (!backup.enabled) return undefined;
  const repositories = context.organization.backupRepositories.filter((repository) =>
    backup.repositories.includes(repository.name),
  );
  return repositories.find(
    (repository): repository is Extract<TBackupRepositorySpec, { type: "azure" | "s3" }> => repository.type !== "posix",
  );
};

const barmanObjectStore = (context: TRenderContext) => {
  const repository = objectStoreOf(context);
  if (repository === undefined) return undefined;
  const path = `${context.organization.metadata.name}/${context.environment.name}`;
  const credentials =
    repository.type === "azure"
      ? {
          destinationPath: `${repository.endpoint ?? `https://${repository.account}.blob.core.windows.net`}/${repository.container}/${path}`,
          azureCredentials: {
            storageAccount: { name: "backup-credentials", key: "account" },
            storageKey: { name: "backup-credentials", key: "key" },
          },
        }
      : {
          destinationPath: `s3://${repository.bucket}/${path}`,
          ...(repository.endpoint === undefined ? {} : { endpointURL: repository.endpoint }),
          s3Credentials: {
            accessKeyId: { name: "backup-credentials", key: "access-key-id" },
            secretAccessKey: { name: "backup-credentials", key: "secret-access-key" },
            region: { name: "backup-credentials", key: "region" },
          },
        };
  // Server-side encryption is what barman offers (PGBACKREST.md); retention follows the daily tier.
  return {
    ...credentials,
    wal: { compression: "gzip", encryption: "AES256" },
    data: { compression: "gzip", encryption: "AES256" },
  };
};

export function postgresObjects(context: TRenderContext): TKubernetesObject[] {
  const { environment } = context;
  const phi = environment.dataClass === "phi";
  const instances = postgresInstancesOf(environment);
  const synchronous =
    instances > 1 && environment.backup.enabled && environment.backup.rpoMinutes < SYNCHRONOUS_RPO_MINUTES + 1;
  const objectStore = barmanObjectStore(context);
  const repository = objectStoreOf(context);
  const objects: TKubernetesObject[] = [
    {
      apiVersion: "postgresql.cnpg.io/v1",
      kind: "Cluster",
      metadata: metadata(context, clusterNameOf(environment), "postgres"),
      spec: {
        instances,
        imageName: `ghcr.io/cloudnative-pg/postgresql:${environment.database.postgresVersion}`,
        primaryUpdateStrategy: "unsupervised",
        ...(synchronous ? { minSyncReplicas: 1, maxSyncReplicas: instances - 1 } : {}),
        postgresql: {
          parameters: {
            password_encryption: "scram-sha-256",
            ssl_min_protocol_version: "TLSv1.2",
            log_connections: "on",
            log_disconnections: "on",
            ...(phi ? { "pgaudit.log": "read, write, ddl, role", "pgaudit.log_relation": "on" } : {}),
          },
          ...(phi ? { shared_preload_libraries: ["pgaudit"] } : {}),
          pg_hba: ["hostssl all all all scram-sha-256", "hostnossl all all all reject"],
        },
        bootstrap: {
          initdb: {
            database: "odoo",
            owner: "odoo",
            secret: { name: "odoo-db-credentials" },
            dataChecksums: true,
            encoding: "UTF8",
          },
        },
        enableSuperuserAccess: false,
        storage: { size: `${environment.database.storageGi}Gi` },
        resources: resourcesOf(postgresPodResources(environment)),
        ...(objectStore === undefined || !environment.backup.enabled
          ? {}
          : {
              backup: {
                barmanObjectStore: objectStore,
                retentionPolicy: `${Math.max(1, environment.backup.retention.daily)}d`,
              },
            }),
      },
    },
    {
      apiVersion: "external-secrets.io/v1",
      kind: "ExternalSecret",
      metadata: metadata(context, "odoo-db-credentials", "postgres"),
      spec: {
        refreshInterval: "1h",
        secretStoreRef: { kind: "ClusterSecretStore", name: SECRET_STORE },
        target: {
          name: "odoo-db-credentials",
          creationPolicy: "Owner",
          template: { type: "kubernetes.io/basic-auth", data: { username: "odoo", password: "{{ .password }}" } },
        },
        data: [
          {
            secretKey: "password",
            remoteRef: { key: `${context.organization.metadata.name}/${environment.name}/database` },
          },
        ],
      },
    },
  ];
  if (repository !== undefined && environment.backup.enabled) {
    objects.push(
      {
        apiVersion: "external-secrets.io/v1",
        kind: "ExternalSecret",
        metadata: metadata(context, "backup-credentials", "postgres"),
        spec: {
          refreshInterval: "1h",
          secretStoreRef: { kind: "ClusterSecretStore", name: SECRET_STORE },
          target: { name: "backup-credentials", creationPolicy: "Owner" },
          dataFrom: [{ extract: { key: `${context.organization.metadata.name}/backup/${repository.keySecretRef}` } }],
        },
      },
      {
        apiVersion: "postgresql.cnpg.io/v1",
        kind: "ScheduledBackup",
        metadata: metadata(context, `${environment.name}-full`, "postgres"),
        spec: {
          schedule: sixFieldCron(environment.backup.schedule.full),
          cluster: { name: clusterNameOf(environment) },
          backupOwnerReference: "self",
          method: "barmanObjectStore",
          immediate: true,
        },
      },
    );
  }
  return objects;
}

export function redisObjects(context: TRenderContext): TKubernetesObject[] {
  if (!context.environment.redis.enabled) return [];
  const podLabels = { ...labels(context, "redis"), "carehost.io/tier": "redis" };
  const conf = [
    `port ${REDIS_PORT}`,
    "bind 0.0.0.0",
    "protected-mode yes",
    "aclfile /run/redis-acl/users.acl",
    `maxmemory ${context.environment.redis.maxMemoryMb}mb`,
    "maxmemory-policy volatile-lru",
    "appendonly no",
    'save ""',
    "enable-debug-command no",
    "enable-module-command no",
    "",
  ].join("\n");
  return [
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: metadata(context, "redis-conf", "redis"),
      data: { "redis.conf": conf },
    },
    {
      apiVersion: "external-secrets.io/v1",
      kind: "ExternalSecret",
      metadata: metadata(context, "redis-acl", "redis"),
      spec: {
        refreshInterval: "1h",
        secretStoreRef: { kind: "ClusterSecretStore", name: SECRET_STORE },
        // The ACL file holds only the SHA-256 of Odoo's password; default user off, dangerous commands denied.
        target: {
          name: "redis-acl",
          creationPolicy: "Owner",
          template: {
            data: {
              "users.acl":
                "user default off resetkeys -@all\nuser odoo on #{{ .password | sha256sum }} ~odoo:* -@all +@read +@write +@keyspace +@connection +@transaction -@dangerous\n",
            },
          },
        },
        data: [
          {
            secretKey: "password",
            remoteRef: { key: `${context.organization.metadata.name}/${context.environment.name}/redis` },
          },
        ],
      },
    },
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: metadata(context, "redis", "redis"),
      spec: {
        replicas: 1,
        strategy: { type: "Recreate" },
        selector: { matchLabels: { "carehost.io/environment": context.environment.name, "carehost.io/tier": "redis" } },
        template: {
          metadata: { labels: podLabels },
          spec: {
            ...podSecurity,
            containers: [
              {
                name: "redis",
                image: context.environment.redis.image,
                args: ["redis-server", "/etc/redis/redis.conf"],
                ports: [{ name: "redis", containerPort: REDIS_PORT }],
                securityContext: containerSecurity,
                resources: resourcesOf(redisPodResources(context.environment)),
                readinessProbe: { tcpSocket: { port: REDIS_PORT }, periodSeconds: 10 },
                livenessProbe: { tcpSocket: { port: REDIS_PORT }, periodSeconds: 20 },
                volumeMounts: [
                  { name: "conf", mountPath: "/etc/redis", readOnly: true },
                  { name: "acl", mountPath: "/run/redis-acl", readOnly: true },
                  { name: "data", mountPath: "/data" },
                ],
              },
            ],
            volumes: [
              { name: "conf", configMap: { name: "redis-conf" } },
              { name: "acl", secret: { secretName: "redis-acl" } },
              { name: "data", emptyDir: { sizeLimit: "64Mi" } },
            ],
          },
        },
      },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: metadata(context, "redis", "redis"),
      spec: {
        type: "ClusterIP",
        selector: { "carehost.io/environment": context.environment.name, "carehost.io/tier": "redis" },
        ports: [{ name: "redis", port: REDIS_PORT, targetPort: REDIS_PORT }],
      },
    },
  ];
}
