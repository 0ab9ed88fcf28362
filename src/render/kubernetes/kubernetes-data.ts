// The data tier from its model: PostgreSQL as a CloudNativePG Cluster (TLS, SCRAM, pgaudit,
// synchronous replication where the RPO needs it, WAL archived by pgBackRest through its CNPG-I
// plugin: kubernetes-backup.ts), and Redis over TLS only with ACLs from a Secret, reachable only
// inside the namespace.
import {
  archiveTimeoutSeconds,
  pgHbaLine,
  pgHbaRules,
  postgresSecuritySettings,
  statementAuditSettings,
  unquotePostgresValue,
} from "../data-tier/data-tier-postgres.js";
import type { TStatementAudit } from "../data-tier/data-tier-postgres.js";
import {
  odooRedisAclLine,
  REDIS_DEFAULT_USER_OFF,
  redisKeyPrefixOf,
  redisSecuritySettings,
  renderRedisSettings,
} from "../data-tier/data-tier-redis.js";
import { pgbackrestPluginOf } from "./kubernetes-backup.js";
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

/** The CloudNativePG image of the PostgreSQL major carries pgaudit (its standard images do). */
export const KUBERNETES_STATEMENT_AUDIT: TStatementAudit = "pgaudit";

/**
 * The Cluster's parameters from the model, unquoted as CloudNativePG takes them. `ssl` and
 * `shared_preload_libraries` are CloudNativePG's to set: it always serves TLS, and loads pgaudit
 * from spec.postgresql.shared_preload_libraries.
 */
export function clusterParametersOf(environment: TRenderContext["environment"]): Record<string, string> {
  const { ssl: _ssl, ...security } = postgresSecuritySettings();
  const { shared_preload_libraries: _libraries, ...audit } = statementAuditSettings(KUBERNETES_STATEMENT_AUDIT);
  return Object.fromEntries(
    Object.entries({
      ...security,
      ...audit,
      ...(environment.backup.enabled
        ? { archive_timeout: `${archiveTimeoutSeconds(environment.backup.rpoMinutes)}s` }
        : {}),
    }).map(([key, value]) => [key, unquotePostgresValue(value)]),
  );
}

/** pg_hba lines of the model for clients from anywhere in the cluster network (the NetworkPolicy narrows who). */
export const clusterPgHbaOf = () =>
  pgHbaRules({ clients: ["0.0.0.0/0", "::/0"] }).map((rule) => pgHbaLine(rule).replace(/\s+/g, " "));

export function postgresObjects(context: TRenderContext): TKubernetesObject[] {
  const { environment } = context;
  const instances = postgresInstancesOf(environment);
  const synchronous =
    instances > 1 && environment.backup.enabled && environment.backup.rpoMinutes < SYNCHRONOUS_RPO_MINUTES + 1;
  const plugins = pgbackrestPluginOf(context);
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
          parameters: clusterParametersOf(environment),
          shared_preload_libraries: ["pgaudit"],
          pg_hba: clusterPgHbaOf(),
        },
        ...(plugins === undefined ? {} : { plugins }),
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
  return objects;
}

export function redisObjects(context: TRenderContext): TKubernetesObject[] {
  if (!context.environment.redis.enabled) return [];
  const podLabels = { ...labels(context, "redis"), "carehost.io/tier": "redis" };
  const conf = renderRedisSettings(
    {
      ...redisSecuritySettings({ tlsPort: REDIS_PORT, maxMemoryMb: context.environment.redis.maxMemoryMb }),
      bind: "0.0.0.0",
      "tls-cert-file": "/run/redis-tls/tls.crt",
      "tls-key-file": "/run/redis-tls/tls.key",
      "tls-ca-cert-file": "/run/redis-tls/ca.crt",
      aclfile: "/run/redis-acl/users.acl",
      dir: "/data",
    },
    ["# Rendered by carehost from the organization spec; edits are overwritten and reported as drift."],
  );
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
              "users.acl": `${REDIS_DEFAULT_USER_OFF}\n${odooRedisAclLine("odoo", "{{ .password | sha256sum }}", redisKeyPrefixOf(context.environment))}\n`,
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
      apiVersion: "external-secrets.io/v1",
      kind: "ExternalSecret",
      metadata: metadata(context, "redis-tls", "redis"),
      spec: {
        refreshInterval: "1h",
        secretStoreRef: { kind: "ClusterSecretStore", name: SECRET_STORE },
        // The server certificate (DNS:redis) and the CA Odoo verifies it with: TLS only (CH-RDS-001).
        target: { name: "redis-tls", creationPolicy: "Owner" },
        data: (["tls.crt", "tls.key", "ca.crt"] as const).map((property) => ({
          secretKey: property,
          remoteRef: { key: `${context.organization.metadata.name}/${context.environment.name}/redis-tls`, property },
        })),
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
                  { name: "tls", mountPath: "/run/redis-tls", readOnly: true },
                  { name: "data", mountPath: "/data" },
                ],
              },
            ],
            volumes: [
              { name: "conf", configMap: { name: "redis-conf" } },
              { name: "acl", secret: { secretName: "redis-acl" } },
              { name: "tls", secret: { secretName: "redis-tls" } },
              // Room for the append-only file of maxmemory's worth of sessions, and its rewrite.
              { name: "data", emptyDir: { sizeLimit: `${context.environment.redis.maxMemoryMb * 2}Mi` } },
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
