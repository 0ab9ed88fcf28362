// The runtime of each kind, picked once at start from this record (CAREHOST_RUNTIME): callers
// never branch on which runtime runs.
import { chmod } from "node:fs/promises";
import { join } from "node:path";
import type { TGitopsRepository } from "../gitops/gitops-repository.js";
import type { TSecretsService } from "../secrets/secrets-service.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import { gitopsRuntimeFactory } from "./gitops/gitops-runtime.js";
import { localRuntimeFactory } from "./local/local-runtime.js";
import { noneRuntimeFactory } from "./none/none-runtime.js";
import type { TRuntimeDriver, TRuntimeKind } from "./runtime-driver.js";

export type TRuntimeDriverDeps = {
  /** carehost's data dir. */
  readonly home: string;
  readonly secrets: TSecretsService;
  /** Directories outside the data dir a spec's paths may lead to (CAREHOST_ALLOWED_PATHS). */
  readonly allowedPaths: readonly string[];
  /** An organization's repository of Kubernetes manifests. */
  readonly kubernetesRepositoryFor: (organization: TOrganizationSpec) => TGitopsRepository;
};

export const RUNTIME_DRIVERS: Readonly<Record<TRuntimeKind, (deps: TRuntimeDriverDeps) => Promise<TRuntimeDriver>>> = {
  local: async ({ home, secrets, allowedPaths }) => {
    // The PostgreSQL and Redis owners pass through the data dir to their own directories under it.
    await chmod(home, 0o711);
    return localRuntimeFactory({ root: join(home, "runtime"), secrets, allowedRoots: allowedPaths });
  },
  gitops: async ({ kubernetesRepositoryFor }) => gitopsRuntimeFactory({ repositoryFor: kubernetesRepositoryFor }),
  none: async () => noneRuntimeFactory(),
};
