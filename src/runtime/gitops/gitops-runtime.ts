// The GitOps runtime (CAREHOST_RUNTIME=gitops): an organization's environments are real once their
// Kubernetes manifests are on main of its GitOps repository, where Argo CD or Flux syncs them from.
// Reconcile commits what the spec renders (nothing when it matches); observe reads the repository
// back, so a hand edit pushed there is drift and a manifest control passes only on what Git holds.
// The data tier runs in the cluster: CloudNativePG takes its backups (the ScheduledBackup rendered),
// so carehost neither backs it up nor restores it from here, and says so.
import { ValidationError } from "../../lib/errors.js";
import { unifiedDiff } from "../../lib/unified-diff.js";
import { kubernetesArtifactsOf } from "../../policy/policy-rendered-files.js";
import type { TArtifactSubject } from "../../policy/policy-types.js";
import { renderKubernetesEnvironment } from "../../render/kubernetes/kubernetes-render.js";
import type { TRenderedFile } from "../../render/render-types.js";
import { instanceNameOf } from "../../spec/spec-hosting.js";
import { specDigest } from "../../spec/spec-digest.js";
import type { TOrganizationSpec } from "../../spec/spec-schema.js";
import type { TGitopsRepository } from "../../gitops/gitops-repository.js";
import { ENVIRONMENTS_DIR } from "../../gitops/gitops-repository.js";
import type { TRuntimeDriver } from "../runtime-driver.js";
import { assertDeclared, dataTierElsewhere } from "../runtime-elsewhere.js";
import type { TArtifactChange, TEnvironmentRuntimeStatus, TRuntimeDrift } from "../runtime-types.js";

const WHY =
  "the gitops runtime runs the data tier in Kubernetes, where CloudNativePG backs it up and restores it (the ScheduledBackup and Cluster recovery carehost renders); carehost runs no backup, restore or drill from this host";

/** Who the runtime's commits are by: the audit log names who applied the revision behind each. */
const RUNTIME_ACTOR = "carehost-runtime";

export type TGitopsRuntimeDeps = {
  /** The organization's repository of Kubernetes manifests (the remote, when the spec names one). */
  readonly repositoryFor: (organization: TOrganizationSpec) => TGitopsRepository;
};

/** Every environment's manifests; a renderer's TypeError (a value it cannot render) is the user's to fix. */
const renderAll = (organization: TOrganizationSpec): Map<string, readonly TRenderedFile[]> => {
  try {
    return new Map(
      organization.environments.map((environment) => [
        environment.name,
        renderKubernetesEnvironment(organization, environment.name),
      ]),
    );
  } catch (error) {
    if (error instanceof TypeError) throw new ValidationError(error.message);
    throw error;
  }
};

const environmentOfPath = (path: string) => path.split("/")[1] ?? "";

export const gitopsRuntimeFactory = ({ repositoryFor }: TGitopsRuntimeDeps): TRuntimeDriver => {
  /** The spec's manifests, with the directories of environments no longer declared emptied. */
  const desiredFiles = async (organization: TOrganizationSpec, repository: TGitopsRepository) => {
    const files = renderAll(organization);
    for (const name of await repository.committedEnvironments()) if (!files.has(name)) files.set(name, []);
    return files;
  };

  return {
    ...dataTierElsewhere(WHY),
    kind: "gitops",
    dataTier: { onThisHost: false, why: WHY },
    deliveryTarget: "kubernetes",
    // Nothing of the spec becomes a path on this host.
    assertPathsConfined: async () => undefined,

    reconcile: async (organization) => {
      const repository = repositoryFor(organization);
      await repository.ensure();
      const result = await repository.commitEnvironments({
        files: await desiredFiles(organization, repository),
        organization: organization.metadata.name,
        specDigest: specDigest(organization),
        actor: RUNTIME_ACTOR,
      });
      if (result.commit === null) return [];
      return [
        {
          target: `gitops/${organization.metadata.name}`,
          action: `committed ${result.commit.slice(0, 12)} to main (${result.changedPaths.length} file(s))`,
        },
      ];
    },

    observe: async (organization) => {
      const repository = repositoryFor(organization);
      await repository.ensure();
      const files = renderAll(organization);
      const diff = await repository.diff({ files });
      const driftOf = new Map<string, TRuntimeDrift[]>();
      for (const change of diff.changes) {
        const environment = environmentOfPath(change.path);
        const drift = driftOf.get(environment) ?? [];
        drift.push({
          target: `gitops/${change.path}`,
          field: "manifest",
          expected: change.change === "added" ? "committed" : "as carehost rendered it",
          actual:
            change.change === "added"
              ? "missing from main"
              : change.change === "removed"
                ? "not rendered by carehost"
                : "edited on main",
        });
        driftOf.set(environment, drift);
      }
      const environments: TEnvironmentRuntimeStatus[] = organization.environments.map((environment) => {
        const drift = driftOf.get(environment.name) ?? [];
        const state = drift.length === 0 ? "committed to Git" : "drifted in Git";
        return {
          environment: environment.name,
          hosting: environment.hosting,
          postgres: { instance: instanceNameOf(environment), port: null, state, database: "", role: "" },
          redis: null,
          app: { state: "not-deployed", detail: "synced by the cluster's GitOps agent from the repository" },
          drift,
          archiving: null,
          backupRepositories: null,
        };
      });
      // A manifest control passes only on what Git holds: an environment whose files match carehost's render.
      const artifact: TArtifactSubject[] = organization.environments
        .filter((environment) => !driftOf.has(environment.name))
        .map((environment) => ({
          environment,
          artifacts: kubernetesArtifactsOf(files.get(environment.name) ?? [], environment),
        }));
      return { organization: organization.metadata.name, environments, subjects: { artifact, live: [] } };
    },

    planChange: async (applied, proposed) => {
      const before = renderAll(applied);
      const after = renderAll(proposed);
      const artifacts: TArtifactChange[] = [];
      for (const environment of new Set([...before.keys(), ...after.keys()])) {
        const old = new Map((before.get(environment) ?? []).map((file) => [file.path, file.content]));
        const now = new Map((after.get(environment) ?? []).map((file) => [file.path, file.content]));
        for (const path of new Set([...old.keys(), ...now.keys()])) {
          const was = old.get(path);
          const is = now.get(path);
          if (was === is) continue;
          artifacts.push({
            target: `gitops/${ENVIRONMENTS_DIR}/${environment}/${path}`,
            environments: [environment],
            file: path,
            change: was === undefined ? "added" : is === undefined ? "removed" : "changed",
            diff: unifiedDiff(`${ENVIRONMENTS_DIR}/${environment}/${path}`, was, is),
          });
        }
      }
      // What the cluster restarts is CloudNativePG's and Argo CD's to decide once the commit syncs.
      return { artifacts, effects: [] };
    },

    // Prometheus in the cluster scrapes CloudNativePG's own metrics; nothing of it runs here (probe).
    restartStopped: async () => [],
    heartbeat: async () => undefined,

    destroyEnvironment: async (organization, environment) => {
      assertDeclared(organization, environment);
      throw new ValidationError(
        `the gitops runtime cannot take the final backup of ${JSON.stringify(environment)} from this host: its data is in the cluster. Take a final CloudNativePG backup (kubectl cnpg backup), keep its object store, and remove the environment there; carehost removes nothing it has not backed up`,
      );
    },
    stopOrganization: async () => undefined,
    close: async () => undefined,

    // No copy is ever made where the data tier is elsewhere: there is none to remove.
    removeCopy: async () => ({ removed: false }),
  };
};
