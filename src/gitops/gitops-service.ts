// GitOps delivery: `plan --target kubernetes|compose` diffs a fresh render against the repository
// (object by object, which also shows hand edits made in the repository as drift), and
// `apply --target …` commits the render after the same control gate as a local apply. An
// unchanged spec makes no commit. Argo CD or Flux syncs the repository; carehost never applies
// manifests to a cluster itself.
import { authorize } from "../identity/identity-permissions.js";
import type { TAuditAppend } from "../identity/identity-types.js";
import { actorName } from "../lib/request-context.js";
import type { TRequestContext } from "../lib/request-context.js";
import type { TPolicyChecker } from "../policy/policy-service.js";
import { parseSpecSubmission } from "../environments/environment-service.js";
import type { TSpecSubmission } from "../environments/environment-service.js";
import type { TEnvironmentRenderer, TRenderedFile, TRenderTarget } from "../render/render-types.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import type { TDiffResult, TGitopsRepository } from "./gitops-repository.js";

type TGitopsServiceDeps = {
  /** One repository per target, so Kubernetes and Compose bundles never mix. */
  repositoryFor: (target: TRenderTarget) => TGitopsRepository;
  renderers: Readonly<Record<TRenderTarget, TEnvironmentRenderer>>;
  policy: Pick<TPolicyChecker, "assertSpecCompliant">;
  audit: { append: TAuditAppend };
};

export type TGitopsPlan = TDiffResult & { readonly organization: string; readonly target: TRenderTarget };
export type TGitopsApply = { readonly organization: string; readonly target: TRenderTarget; readonly commit: string | null; readonly changedPaths: readonly string[] };

const renderAll = (renderer: TEnvironmentRenderer, spec: TOrganizationSpec): Map<string, readonly TRenderedFile[]> =>
  new Map(spec.environments.map((environment) => [environment.name, renderer(spec, environment.name)]));

export const gitopsServiceFactory = ({ repositoryFor, renderers, policy, audit }: TGitopsServiceDeps) => ({
  plan: async (ctx: TRequestContext, submission: TSpecSubmission, target: TRenderTarget): Promise<TGitopsPlan> => {
    await authorize(ctx, "spec:plan", audit);
    const { spec } = parseSpecSubmission(submission);
    policy.assertSpecCompliant(spec);
    const repository = repositoryFor(target);
    await repository.ensure();
    const diff = await repository.diff({ files: renderAll(renderers[target], spec) });
    return { organization: spec.metadata.name, target, ...diff };
  },

  apply: async (ctx: TRequestContext, submission: TSpecSubmission, target: TRenderTarget): Promise<TGitopsApply> => {
    await authorize(ctx, "spec:apply", audit);
    const { spec, digest } = parseSpecSubmission(submission);
    const organization = spec.metadata.name;
    policy.assertSpecCompliant(spec);
    const repository = repositoryFor(target);
    await repository.ensure();
    const result = await repository.commitEnvironments({ files: renderAll(renderers[target], spec), organization, specDigest: digest, actor: actorName(ctx.actor) });
    if (result.commit !== null) {
      await audit.append(ctx, {
        type: "gitops.committed",
        outcome: "success",
        target: `organization/${organization}`,
        payload: { organization, target, commit: result.commit, changedPathCount: result.changedPaths.length, specDigest: digest },
      });
    }
    return { organization, target, commit: result.commit, changedPaths: result.changedPaths };
  },
});

export type TGitopsService = ReturnType<typeof gitopsServiceFactory>;
