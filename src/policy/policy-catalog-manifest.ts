// Controls over rendered Kubernetes manifests, checked before anything is committed to the GitOps
// repository: what a cluster admission policy would catch, caught at plan time instead, with the
// control id and HIPAA citation in every message.
import type { TControlReport, TManifestControl, TManifestObject } from "./policy-types.js";

type TContainer = {
  readonly name?: string;
  readonly image?: string;
  readonly securityContext?: Record<string, unknown>;
  readonly resources?: { readonly requests?: Record<string, unknown>; readonly limits?: Record<string, unknown> };
  readonly env?: readonly { readonly name?: string; readonly value?: unknown }[];
};
type TPodSpec = {
  readonly containers?: readonly TContainer[];
  readonly initContainers?: readonly TContainer[];
  readonly volumes?: readonly Record<string, unknown>[];
  readonly hostNetwork?: boolean;
  readonly hostPID?: boolean;
  readonly hostIPC?: boolean;
  readonly automountServiceAccountToken?: boolean;
  readonly securityContext?: Record<string, unknown>;
};
type TPod = {
  readonly object: TManifestObject;
  readonly labels: Readonly<Record<string, string>>;
  readonly spec: TPodSpec;
};

const WORKLOAD_KINDS = new Set(["Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"]);
const SECRET_LIKE_NAME = /(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)/i;
const always = () => true;

/** Every pod template of the manifests (and bare Pods), with where it came from. */
export function podsOf(objects: readonly TManifestObject[]): TPod[] {
  const pods: TPod[] = [];
  for (const object of objects) {
    if (object.kind === "Pod") {
      const meta = object.metadata as { labels?: Record<string, string> };
      pods.push({ object, labels: meta.labels ?? {}, spec: (object.spec ?? {}) as TPodSpec });
    } else if (WORKLOAD_KINDS.has(object.kind)) {
      const template = (
        (object.spec ?? {}) as { template?: { metadata?: { labels?: Record<string, string> }; spec?: TPodSpec } }
      ).template;
      pods.push({ object, labels: template?.metadata?.labels ?? {}, spec: template?.spec ?? {} });
    } else if (object.kind === "CronJob") {
      // A CronJob's pods come from the Job template inside it: they are held to the same rules.
      const template = (
        (object.spec ?? {}) as {
          jobTemplate?: { spec?: { template?: { metadata?: { labels?: Record<string, string> }; spec?: TPodSpec } } };
        }
      ).jobTemplate?.spec?.template;
      pods.push({ object, labels: template?.metadata?.labels ?? {}, spec: template?.spec ?? {} });
    }
  }
  return pods;
}

const containersOf = (pod: TPod): TContainer[] => [...(pod.spec.containers ?? []), ...(pod.spec.initContainers ?? [])];
const where = (pod: TPod, container?: TContainer) =>
  `${pod.object.kind} ${pod.object.metadata.name}${container === undefined ? "" : ` container ${container.name ?? "?"}`}`;

const eachContainer = (
  objects: readonly TManifestObject[],
  report: TControlReport,
  check: (pod: TPod, container: TContainer) => string | undefined,
) => {
  for (const pod of podsOf(objects)) {
    for (const container of containersOf(pod)) {
      const problem = check(pod, container);
      if (problem !== undefined)
        report.fail(`${where(pod, container)}: ${problem}`, {
          path: `${pod.object.kind}/${pod.object.metadata.name}`,
          actual: container.name,
        });
    }
  }
};

const imageTag = (image: string): string | undefined => {
  const withoutDigest = image.split("@")[0] ?? image;
  const lastSegment = withoutDigest.slice(withoutDigest.lastIndexOf("/") + 1);
  return lastSegment.includes(":") ? lastSegment.slice(lastSegment.indexOf(":") + 1) : undefined;
};

const selects = (
  selector: { matchLabels?: Record<string, string> } | undefined,
  labels: Readonly<Record<string, string>>,
) =>
  selector !== undefined && Object.entries(selector.matchLabels ?? {}).every(([key, value]) => labels[key] === value);

export const MANIFEST_CONTROLS: readonly TManifestControl[] = [
  {
    id: "CH-KUBE-001",
    title: "No privileged containers and no privilege escalation",
    citations: ["164.312(a)(1)", "164.308(a)(4)"],
    severity: "critical",
    enforcement: "mandatory",
    subject: "manifest",
    appliesTo: always,
    check: ({ objects }, report) =>
      eachContainer(objects, report, (_pod, container) => {
        if (container.securityContext?.privileged === true) return "must not run privileged (privileged: true)";
        if (container.securityContext?.allowPrivilegeEscalation !== false)
          return `must set allowPrivilegeEscalation: false (allowPrivilegeEscalation: ${String(container.securityContext?.allowPrivilegeEscalation ?? "not set")})`;
        return undefined;
      }),
  },
  {
    id: "CH-KUBE-002",
    title: "No host namespaces and no hostPath volumes",
    citations: ["164.312(a)(1)", "164.310(d)(1)"],
    severity: "critical",
    enforcement: "mandatory",
    subject: "manifest",
    appliesTo: always,
    check: ({ objects }, report) => {
      for (const pod of podsOf(objects)) {
        for (const field of ["hostNetwork", "hostPID", "hostIPC"] as const) {
          if (pod.spec[field] === true)
            report.fail(`${where(pod)}: must not share the host's namespaces (${field}: true)`, {
              path: `${pod.object.kind}/${pod.object.metadata.name}`,
              actual: field,
            });
        }
        for (const volume of pod.spec.volumes ?? []) {
          if ("hostPath" in volume)
            report.fail(`${where(pod)}: must not mount a hostPath volume (volume ${String(volume.name)})`, {
              path: `${pod.object.kind}/${pod.object.metadata.name}`,
              actual: volume.name,
            });
        }
      }
    },
  },
  {
    id: "CH-KUBE-003",
    title: "Images carry an explicit tag or digest, never latest",
    citations: ["164.312(c)(1)", "164.308(a)(1)(ii)(B)"],
    severity: "high",
    enforcement: "mandatory",
    subject: "manifest",
    appliesTo: always,
    check: ({ objects }, report) =>
      eachContainer(objects, report, (_pod, container) => {
        const image = container.image ?? "";
        if (image.includes("@sha256:")) return undefined;
        const tag = imageTag(image);
        return tag === undefined || tag === "latest"
          ? `image ${JSON.stringify(image)} must name a version tag or a digest, not ${tag ?? "no tag (latest)"}`
          : undefined;
      }),
  },
  {
    id: "CH-KUBE-004",
    title: "Every container has resource requests and limits",
    citations: ["164.308(a)(7)(ii)(C)", "164.312(a)(1)"],
    severity: "medium",
    enforcement: "mandatory",
    subject: "manifest",
    appliesTo: always,
    check: ({ objects }, report) =>
      eachContainer(objects, report, (_pod, container) => {
        const missing = [
          ...(container.resources?.requests?.cpu === undefined ? ["requests.cpu"] : []),
          ...(container.resources?.requests?.memory === undefined ? ["requests.memory"] : []),
          ...(container.resources?.limits?.cpu === undefined ? ["limits.cpu"] : []),
          ...(container.resources?.limits?.memory === undefined ? ["limits.memory"] : []),
        ];
        return missing.length > 0 ? `must set resources (missing: ${missing.join(", ")})` : undefined;
      }),
  },
  {
    id: "CH-KUBE-005",
    title: "A default-deny NetworkPolicy, and every pod selected by an allowing one",
    citations: ["164.312(e)(1)", "164.308(a)(4)"],
    severity: "critical",
    enforcement: "mandatory",
    subject: "manifest",
    appliesTo: always,
    check: ({ objects }, report) => {
      const policies = objects
        .filter((object) => object.kind === "NetworkPolicy")
        .map(
          (object) =>
            (object.spec ?? {}) as {
              podSelector?: { matchLabels?: Record<string, string> };
              policyTypes?: string[];
              ingress?: unknown[];
              egress?: unknown[];
            },
        );
      const denyAll = policies.some(
        (policy) =>
          Object.keys(policy.podSelector ?? {}).length === 0 &&
          policy.policyTypes?.includes("Ingress") &&
          policy.policyTypes.includes("Egress") &&
          (policy.ingress ?? []).length === 0 &&
          (policy.egress ?? []).length === 0,
      );
      if (!denyAll)
        report.fail("the namespace needs a default-deny NetworkPolicy (podSelector {}, Ingress and Egress, no rules)", {
          path: "NetworkPolicy",
        });
      for (const pod of podsOf(objects)) {
        const covered = policies.some(
          (policy) =>
            Object.keys(policy.podSelector?.matchLabels ?? {}).length > 0 && selects(policy.podSelector, pod.labels),
        );
        if (!covered)
          report.fail(`${where(pod)}: no NetworkPolicy selects its pods, so nothing documents what may reach it`, {
            path: `${pod.object.kind}/${pod.object.metadata.name}`,
          });
      }
    },
  },
  {
    id: "CH-KUBE-006",
    title: "Production images are pinned by digest",
    citations: ["164.312(c)(1)", "164.308(a)(1)(ii)(B)"],
    severity: "high",
    enforcement: "mandatory",
    subject: "manifest",
    appliesTo: (environment) => environment.tier === "production",
    check: ({ objects }, report) =>
      eachContainer(objects, report, (_pod, container) =>
        (container.image ?? "").includes("@sha256:")
          ? undefined
          : `production image ${JSON.stringify(container.image ?? "")} must be pinned by @sha256 digest`,
      ),
  },
  {
    id: "CH-KUBE-007",
    title: "No secret value in any manifest",
    citations: ["164.312(a)(2)(iv)", "164.312(e)(2)(ii)"],
    severity: "critical",
    enforcement: "mandatory",
    subject: "manifest",
    appliesTo: always,
    check: ({ objects }, report) => {
      for (const object of objects) {
        if (object.kind === "Secret" && (object.data !== undefined || object.stringData !== undefined)) {
          report.fail(
            `Secret ${object.metadata.name} carries its values in the manifest; reference them from the secret store (ExternalSecret)`,
            { path: `Secret/${object.metadata.name}` },
          );
        }
      }
      eachContainer(objects, report, (_pod, container) => {
        const leaked = (container.env ?? []).filter(
          (variable) => variable.value !== undefined && SECRET_LIKE_NAME.test(variable.name ?? ""),
        );
        return leaked.length > 0
          ? `environment variable ${leaked.map((variable) => variable.name).join(", ")} holds a literal value; use valueFrom.secretKeyRef`
          : undefined;
      });
    },
  },
  {
    id: "CH-KUBE-008",
    title: "Containers run as non-root with a read-only root filesystem, all capabilities dropped and seccomp",
    citations: ["164.312(a)(1)", "164.312(c)(1)"],
    severity: "high",
    enforcement: "mandatory",
    subject: "manifest",
    appliesTo: always,
    check: ({ objects }, report) =>
      eachContainer(objects, report, (pod, container) => {
        const context = container.securityContext ?? {};
        const podContext = pod.spec.securityContext ?? {};
        const problems = [
          ...(context.runAsNonRoot === true || podContext.runAsNonRoot === true ? [] : ["runAsNonRoot"]),
          ...(context.readOnlyRootFilesystem === true ? [] : ["readOnlyRootFilesystem"]),
          ...(JSON.stringify((context.capabilities as { drop?: string[] } | undefined)?.drop ?? []).includes("ALL")
            ? []
            : ["capabilities.drop ALL"]),
          ...((context.seccompProfile ?? podContext.seccompProfile) !== undefined ? [] : ["seccompProfile"]),
        ];
        return problems.length > 0 ? `must set ${problems.join(", ")}` : undefined;
      }),
  },
  {
    id: "CH-KUBE-009",
    title: "Pods do not mount a service-account token they do not use",
    citations: ["164.308(a)(4)", "164.312(a)(1)"],
    severity: "medium",
    enforcement: "advisory",
    subject: "manifest",
    appliesTo: always,
    check: ({ objects }, report) => {
      for (const pod of podsOf(objects)) {
        if (pod.spec.automountServiceAccountToken !== false)
          report.fail(`${where(pod)}: should set automountServiceAccountToken: false`, {
            path: `${pod.object.kind}/${pod.object.metadata.name}`,
          });
      }
    },
  },
];
