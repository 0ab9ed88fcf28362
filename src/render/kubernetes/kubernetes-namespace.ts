// The environment's namespace and its fences: Pod Security "restricted", a quota sized from the
// spec, default container limits, a service account without a token, and NetworkPolicies that
// deny everything and then allow only the paths Odoo needs.
import type { TKubernetesObject, TRenderContext } from "./kubernetes-common.js";
import {
  CNPG_NAMESPACE,
  INGRESS_NAMESPACE,
  ODOO_GEVENT_PORT,
  ODOO_HTTP_PORT,
  POSTGRES_PORT,
  REDIS_PORT,
  clusterNameOf,
  labels,
  metadata,
} from "./kubernetes-common.js";
import { namespaceBudget } from "./kubernetes-sizing.js";

const namespaceSelector = (name: string) => ({
  namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": name } },
});
const odooPods = { podSelector: { matchLabels: { "carehost.io/tier": "odoo" } } };
const postgresPods = (context: TRenderContext) => ({
  podSelector: { matchLabels: { "cnpg.io/cluster": clusterNameOf(context.environment) } },
});
const redisPods = { podSelector: { matchLabels: { "carehost.io/tier": "redis" } } };
const dns = {
  to: [{ ...namespaceSelector("kube-system"), podSelector: { matchLabels: { "k8s-app": "kube-dns" } } }],
  ports: [
    { protocol: "UDP", port: 53 },
    { protocol: "TCP", port: 53 },
  ],
};
const tcp = (...ports: number[]) => ports.map((port) => ({ protocol: "TCP", port }));

const networkPolicy = (context: TRenderContext, name: string, spec: Record<string, unknown>): TKubernetesObject => ({
  apiVersion: "networking.k8s.io/v1",
  kind: "NetworkPolicy",
  metadata: metadata(context, name, "network"),
  spec,
});

export function namespaceObjects(context: TRenderContext): TKubernetesObject[] {
  const budget = namespaceBudget(context.environment);
  return [
    {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: {
        name: context.namespace,
        labels: {
          ...labels(context, "namespace"),
          "pod-security.kubernetes.io/enforce": "restricted",
          "pod-security.kubernetes.io/enforce-version": "latest",
          "pod-security.kubernetes.io/audit": "restricted",
          "pod-security.kubernetes.io/warn": "restricted",
        },
      },
    },
    {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: metadata(context, "odoo", "odoo"),
      automountServiceAccountToken: false,
    },
    {
      apiVersion: "v1",
      kind: "ResourceQuota",
      metadata: metadata(context, "environment-budget", "namespace"),
      spec: {
        hard: {
          "requests.cpu": `${budget.cpuRequestMilli}m`,
          "limits.cpu": `${budget.cpuLimitMilli}m`,
          "requests.memory": `${budget.memoryRequestMi}Mi`,
          "limits.memory": `${budget.memoryLimitMi}Mi`,
          "requests.storage": `${budget.storageGi}Gi`,
          pods: String(budget.pods),
          "services.loadbalancers": "0",
          "services.nodeports": "0",
        },
      },
    },
    {
      apiVersion: "v1",
      kind: "LimitRange",
      metadata: metadata(context, "container-defaults", "namespace"),
      spec: {
        limits: [
          {
            type: "Container",
            default: { cpu: "500m", memory: "512Mi" },
            defaultRequest: { cpu: "100m", memory: "128Mi" },
          },
        ],
      },
    },
    networkPolicy(context, "default-deny", { podSelector: {}, policyTypes: ["Ingress", "Egress"] }),
    networkPolicy(context, "odoo", {
      ...odooPods,
      policyTypes: ["Ingress", "Egress"],
      ingress: [{ from: [namespaceSelector(INGRESS_NAMESPACE)], ports: tcp(ODOO_HTTP_PORT, ODOO_GEVENT_PORT) }],
      egress: [
        { to: [postgresPods(context)], ports: tcp(POSTGRES_PORT) },
        ...(context.environment.redis.enabled ? [{ to: [redisPods], ports: tcp(REDIS_PORT) }] : []),
        dns,
      ],
    }),
    networkPolicy(context, "postgres", {
      ...postgresPods(context),
      policyTypes: ["Ingress", "Egress"],
      ingress: [
        { from: [odooPods], ports: tcp(POSTGRES_PORT) },
        ...(context.environment.backup.enabled
          ? [{ from: [{ podSelector: { matchLabels: { "carehost.io/tier": "backup" } } }], ports: tcp(POSTGRES_PORT) }]
          : []),
        // Replication between instances, and the operator's status and control port.
        { from: [postgresPods(context)], ports: tcp(POSTGRES_PORT) },
        { from: [namespaceSelector(CNPG_NAMESPACE)], ports: tcp(POSTGRES_PORT, 8000) },
      ],
      egress: [
        { to: [postgresPods(context)], ports: tcp(POSTGRES_PORT) },
        dns,
        // The instance manager talks to the Kubernetes API; WAL and base backups go to the object store over HTTPS.
        { ports: tcp(443, 6443) },
      ],
    }),
    ...(context.environment.backup.enabled
      ? [
          // restic's CronJobs: nothing reaches them; they reach only DNS and object stores over HTTPS.
          networkPolicy(context, "backup", {
            podSelector: {
              matchLabels: { "carehost.io/environment": context.environment.name, "carehost.io/tier": "backup" },
            },
            policyTypes: ["Ingress", "Egress"],
            ingress: [],
            // The database's dump for a posix repository is read from the primary.
            egress: [dns, { to: [postgresPods(context)], ports: tcp(POSTGRES_PORT) }, { ports: tcp(443) }],
          }),
        ]
      : []),
    ...(context.environment.redis.enabled
      ? [
          networkPolicy(context, "redis", {
            ...redisPods,
            policyTypes: ["Ingress", "Egress"],
            ingress: [{ from: [odooPods], ports: tcp(REDIS_PORT) }],
            egress: [],
          }),
        ]
      : []),
  ];
}
