// The Odoo tier: web and cron as separate Deployments (cron is never scaled with web, so jobs do
// not run twice), the websocket port as its own Service, odoo.conf in a ConfigMap, and secrets
// only by reference: External Secrets materializes them from carehost's store.
import { renderOdooConf } from "../odoo/odoo-conf.js";
import type { TKubernetesObject, TRenderContext } from "./kubernetes-common.js";
import {
  ODOO_GEVENT_PORT,
  ODOO_HTTP_PORT,
  SECRET_STORE,
  besideOdooWeb,
  clusterNameOf,
  containerSecurity,
  labels,
  metadata,
  podSecurity,
} from "./kubernetes-common.js";
import {
  cronPodResources,
  filestoreGiOf,
  resourcesOf,
  webPodResources,
  webReplicasOf,
  workersPerPodOf,
} from "./kubernetes-sizing.js";

const PATHS = {
  template: "/etc/odoo-template/odoo.conf",
  config: "/run/odoo/odoo.conf",
  secrets: "/run/secrets/odoo",
  data: "/var/lib/odoo",
  caCert: "/run/postgres-ca/ca.crt",
} as const;
export const ODOO_SECRET = "odoo-secrets";
/** What the start-up script says when the master password is not a hash; the artifact controls look for the refusal. */
export const ADMIN_HASH_REFUSAL = "is not a pbkdf2-sha512 hash; refusing to start";

export function assertPinnedImage(context: TRenderContext): void {
  if (context.environment.tier === "production" && !context.environment.odoo.image.includes("@sha256:")) {
    throw new TypeError(
      `environment "${context.environment.name}": production image ${JSON.stringify(context.environment.odoo.image)} must be pinned by digest (@sha256:…)`,
    );
  }
}

const odooConf = (context: TRenderContext, role: "web" | "cron") =>
  renderOdooConf({
    environment: context.environment,
    // CloudNativePG's read-write service; the CA is the cluster's own, mounted from its Secret.
    database: {
      host: `${clusterNameOf(context.environment)}-rw`,
      port: 5432,
      name: "odoo",
      user: "odoo",
      sslRootCertPath: PATHS.caCert,
    },
    adminPasswordHash: { joinedAtStartFrom: `${PATHS.secrets}/admin-passwd-hash` },
    dataDir: PATHS.data,
    addonsPaths: ["/usr/lib/python3/dist-packages/odoo/addons", "/mnt/extra-addons"],
    httpInterface: "0.0.0.0",
    workers: role === "web" ? workersPerPodOf(context.environment) : 1,
    maxCronThreads: role === "web" ? 0 : Math.max(1, context.environment.odoo.cronWorkers),
  });

/** The init container writes the complete odoo.conf (template + hashed master password) into memory. */
const joinConfig = (context: TRenderContext) => ({
  name: "join-config",
  image: context.environment.odoo.image,
  command: [
    "/bin/sh",
    "-c",
    // Only a pbkdf2-sha512 hash is written as the master password (CH-ODOO-006): anything else stops the pod.
    `set -eu; hash="$(cat ${PATHS.secrets}/admin-passwd-hash)"; case "$hash" in '$pbkdf2-sha512$'*) ;; *) echo "carehost: admin-passwd-hash ${ADMIN_HASH_REFUSAL}" >&2; exit 1 ;; esac; cp ${PATHS.template} ${PATHS.config}; printf 'admin_passwd = %s\\n' "$hash" >> ${PATHS.config}`,
  ],
  securityContext: containerSecurity,
  resources: resourcesOf({ cpuRequestMilli: 10, cpuLimitMilli: 100, memoryRequestMi: 16, memoryLimitMi: 64 }),
  volumeMounts: [
    { name: "odoo-template", mountPath: "/etc/odoo-template", readOnly: true },
    { name: "odoo-secrets", mountPath: PATHS.secrets, readOnly: true },
    { name: "run", mountPath: "/run/odoo" },
  ],
});

const deployment = (context: TRenderContext, role: "web" | "cron"): TKubernetesObject => {
  const web = role === "web";
  const podLabels = { ...labels(context, `odoo-${role}`), "carehost.io/tier": "odoo", "carehost.io/odoo-role": role };
  const probe = (path: string) => ({
    httpGet: { path, port: ODOO_HTTP_PORT },
    periodSeconds: 10,
    timeoutSeconds: 5,
    failureThreshold: 6,
  });
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: metadata(context, `odoo-${role}`, `odoo-${role}`),
    spec: {
      replicas: web ? webReplicasOf(context.environment) : 1,
      // Two cron pods would run the same jobs at once: replace, never overlap.
      strategy: web
        ? { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } }
        : { type: "Recreate" },
      selector: { matchLabels: { "carehost.io/environment": context.environment.name, "carehost.io/odoo-role": role } },
      template: {
        metadata: { labels: podLabels },
        spec: {
          ...podSecurity,
          serviceAccountName: "odoo",
          // A ReadWriteOnce filestore (one web pod) is mountable on one node only: cron goes where web is.
          ...(!web && webReplicasOf(context.environment) === 1 ? { affinity: besideOdooWeb(context) } : {}),
          initContainers: [joinConfig(context)],
          containers: [
            {
              name: "odoo",
              image: context.environment.odoo.image,
              args: ["odoo", "--config", PATHS.config],
              ports: web
                ? [
                    { name: "http", containerPort: ODOO_HTTP_PORT },
                    { name: "websocket", containerPort: ODOO_GEVENT_PORT },
                  ]
                : [{ name: "http", containerPort: ODOO_HTTP_PORT }],
              env: [
                { name: "PGPASSWORD", valueFrom: { secretKeyRef: { name: ODOO_SECRET, key: "db-password" } } },
                { name: "PGSSLROOTCERT", value: PATHS.caCert },
              ],
              securityContext: containerSecurity,
              resources: resourcesOf(
                web ? webPodResources(context.environment) : cronPodResources(context.environment),
              ),
              livenessProbe: probe("/web/health"),
              readinessProbe: probe("/web/health?db_server_status=1"),
              startupProbe: { ...probe("/web/health"), failureThreshold: 30 },
              volumeMounts: [
                { name: "run", mountPath: "/run/odoo", readOnly: true },
                { name: "filestore", mountPath: PATHS.data },
                { name: "tmp", mountPath: "/tmp" },
                { name: "postgres-ca", mountPath: "/run/postgres-ca", readOnly: true },
              ],
            },
          ],
          volumes: [
            { name: "odoo-template", configMap: { name: `odoo-${role}-conf` } },
            {
              name: "odoo-secrets",
              secret: { secretName: ODOO_SECRET, items: [{ key: "admin-passwd-hash", path: "admin-passwd-hash" }] },
            },
            { name: "run", emptyDir: { medium: "Memory", sizeLimit: "1Mi" } },
            { name: "tmp", emptyDir: { sizeLimit: "1Gi" } },
            { name: "filestore", persistentVolumeClaim: { claimName: "odoo-filestore" } },
            {
              name: "postgres-ca",
              secret: {
                secretName: `${clusterNameOf(context.environment)}-ca`,
                items: [{ key: "ca.crt", path: "ca.crt" }],
              },
            },
          ],
        },
      },
    },
  };
};

export function odooObjects(context: TRenderContext): TKubernetesObject[] {
  assertPinnedImage(context);
  const replicas = webReplicasOf(context.environment);
  const selector = (role: "web" | "cron") => ({
    "carehost.io/environment": context.environment.name,
    "carehost.io/odoo-role": role,
  });
  return [
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: metadata(context, "odoo-web-conf", "odoo-web"),
      data: { "odoo.conf": odooConf(context, "web") },
    },
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: metadata(context, "odoo-cron-conf", "odoo-cron"),
      data: { "odoo.conf": odooConf(context, "cron") },
    },
    {
      apiVersion: "external-secrets.io/v1",
      kind: "ExternalSecret",
      metadata: metadata(context, ODOO_SECRET, "odoo"),
      spec: {
        refreshInterval: "1h",
        secretStoreRef: { kind: "ClusterSecretStore", name: SECRET_STORE },
        target: { name: ODOO_SECRET, creationPolicy: "Owner" },
        data: [
          {
            secretKey: "db-password",
            remoteRef: { key: `${context.organization.metadata.name}/${context.environment.name}/database` },
          },
          {
            secretKey: "admin-passwd-hash",
            remoteRef: { key: `${context.organization.metadata.name}/${context.environment.name}/odoo-master-hash` },
          },
          ...(context.environment.redis.enabled
            ? [
                {
                  secretKey: "redis-password",
                  remoteRef: { key: `${context.organization.metadata.name}/${context.environment.name}/redis` },
                },
              ]
            : []),
        ],
      },
    },
    deployment(context, "web"),
    deployment(context, "cron"),
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: metadata(context, "odoo-http", "odoo-web"),
      spec: {
        type: "ClusterIP",
        selector: selector("web"),
        ports: [{ name: "http", port: ODOO_HTTP_PORT, targetPort: ODOO_HTTP_PORT }],
      },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: metadata(context, "odoo-websocket", "odoo-web"),
      spec: {
        type: "ClusterIP",
        selector: selector("web"),
        ports: [{ name: "websocket", port: ODOO_GEVENT_PORT, targetPort: ODOO_GEVENT_PORT }],
      },
    },
    {
      apiVersion: "policy/v1",
      kind: "PodDisruptionBudget",
      metadata: metadata(context, "odoo-web", "odoo-web"),
      // One pod may go at a time; with a single replica a drain may take it (maxUnavailable 1), never more.
      spec: {
        selector: { matchLabels: selector("web") },
        ...(replicas > 1 ? { minAvailable: replicas - 1 } : { maxUnavailable: 1 }),
      },
    },
    {
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: metadata(context, "odoo-filestore", "odoo"),
      spec: {
        // Several web pods share attachments: ReadWriteMany; one pod: ReadWriteOnce.
        accessModes: [replicas > 1 ? "ReadWriteMany" : "ReadWriteOnce"],
        resources: { requests: { storage: `${filestoreGiOf(context.environment)}Gi` } },
      },
    },
  ];
}
