// Shared pieces of the Kubernetes renderer: names, labels, the hardened container and pod
// settings every workload gets, and deterministic YAML (cdk8s order: apiVersion, kind, metadata,
// then every other key sorted).
// js-yaml emits straight from the object; the `yaml` package (the spec loader's, for its line
// numbers) builds a document tree first and is four times slower, which 1,000 environments feel.
import jsYaml from "js-yaml";
import type { TEnvironmentSpec, TOrganizationSpec } from "../../spec/spec-schema.js";

export type TKubernetesObject = {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly labels?: Record<string, string> };
} & Record<string, unknown>;

export type TRenderContext = {
  readonly organization: TOrganizationSpec;
  readonly environment: TEnvironmentSpec;
  readonly namespace: string;
};

export const ODOO_HTTP_PORT = 8069;
export const ODOO_GEVENT_PORT = 8072;
export const POSTGRES_PORT = 5432;
export const REDIS_PORT = 6379;
/** The namespace of the Traefik ingress controller and of CloudNativePG's operator. */
export const INGRESS_NAMESPACE = "traefik";
export const CNPG_NAMESPACE = "cnpg-system";
/** The ClusterSecretStore External Secrets reads carehost's secrets from. */
export const SECRET_STORE = "carehost";
/** Where Argo CD finds the GitOps repository unless the organization says otherwise. */
export const DEFAULT_GITOPS_REPOSITORY = "file:///carehost/gitops.git";

export const namespaceOf = (organization: TOrganizationSpec, environment: TEnvironmentSpec) =>
  `${organization.metadata.name}-${environment.name}`.slice(0, 63).replace(/-+$/, "");
export const clusterNameOf = (environment: TEnvironmentSpec) => `${environment.name}-db`;

export const labels = (context: TRenderContext, component: string): Record<string, string> => ({
  "app.kubernetes.io/component": component,
  "app.kubernetes.io/managed-by": "carehost",
  "app.kubernetes.io/part-of": context.organization.metadata.name,
  "carehost.io/environment": context.environment.name,
  "carehost.io/data-class": context.environment.dataClass,
});

export const metadata = (context: TRenderContext, name: string, component: string) => ({
  name,
  namespace: context.namespace,
  labels: labels(context, component),
});

/** Pod-level hardening: Pod Security "restricted" and no service-account token. */
export const podSecurity = {
  automountServiceAccountToken: false,
  securityContext: {
    runAsNonRoot: true,
    runAsUser: 1000,
    runAsGroup: 1000,
    fsGroup: 1000,
    seccompProfile: { type: "RuntimeDefault" },
  },
} as const;

/** Container-level hardening: read-only root, no privilege escalation, every capability dropped. */
/**
 * Puts a pod on the node of the environment's Odoo web pod: a ReadWriteOnce filestore is mountable
 * on one node only, so whatever else mounts it (cron, the filestore's backup) goes where web is.
 */
export const besideOdooWeb = (context: TRenderContext) => ({
  podAffinity: {
    requiredDuringSchedulingIgnoredDuringExecution: [
      {
        labelSelector: {
          matchLabels: { "carehost.io/environment": context.environment.name, "carehost.io/odoo-role": "web" },
        },
        topologyKey: "kubernetes.io/hostname",
      },
    ],
  },
});

export const containerSecurity = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  capabilities: { drop: ["ALL"] },
  seccompProfile: { type: "RuntimeDefault" },
} as const;

const sortKeys = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== "object") return value;
  const entries = Object.entries(value as Record<string, unknown>).filter(([, item]) => item !== undefined);
  return Object.fromEntries(
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([key, item]) => [key, sortKeys(item)]),
  );
};

export function toYaml(object: TKubernetesObject): string {
  const { apiVersion, kind, metadata: meta, ...rest } = object;
  // js-yaml quotes YAML 1.1 booleans (on/off/yes/no), which Kubernetes' decoder would otherwise read as true/false.
  return jsYaml.dump(
    { apiVersion, kind, metadata: sortKeys(meta), ...(sortKeys(rest) as Record<string, unknown>) },
    { lineWidth: -1, noRefs: true, sortKeys: false },
  );
}

/** File name of an object in the environment's directory: kind-name.yaml, lowercase. */
export const fileNameOf = (object: TKubernetesObject) => `${object.kind.toLowerCase()}-${object.metadata.name}.yaml`;
