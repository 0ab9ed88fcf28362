// GitOps delivery: `plan --target kubernetes|compose` diffs a fresh render against the repository
// (object by object, which also shows hand edits made in the repository as drift), and
// `apply --target …` commits the render after the same control gate as a local apply. An
// unchanged spec makes no commit. Argo CD or Flux syncs the repository; carehost never applies
// manifests to a cluster itself.
import type { TAuditAppend } from "../identity/identity-types.js";
import { PolicyViolation, ValidationError } from "../lib/errors.js";
import { actorName } from "../lib/request-context.js";
import type { TRequestContext } from "../lib/request-context.js";
import type { TPolicyChecker } from "../policy/policy-service.js";
import type { TExceptionApprovals } from "../policy/policy-exceptions.js";
import { parseAuthorizedSpec } from "../environments/environment-service.js";
import type { TSpecSubmission } from "../environments/environment-service.js";
import type { TEnvironmentRenderer, TRenderedFile, TRenderTarget } from "../render/render-types.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import type { TDiffResult, TGitopsRepository } from "./gitops-repository.js";
import { parseAllDocuments } from "yaml";
import type { TManifestObject, TManifestSubject } from "../policy/policy-types.js";

type TGitopsServiceDeps = {
  /** One repository per organization and target: environment names are unique only within an organization, and bundles never mix. */
  repositoryFor: (organization: string, target: TRenderTarget, remote?: string) => TGitopsRepository;
  renderers: Readonly<Record<TRenderTarget, TEnvironmentRenderer>>;
  policy: Pick<TPolicyChecker, "assertDeliveryCompliant" | "assertManifestsCompliant">;
  /** Which of an organization's exceptions carehost holds as approved: the spec's others do not apply. */
  exceptionApprovals: (organization: string) => Promise<TExceptionApprovals>;
  audit: { append: TAuditAppend };
};

export type TGitopsPlan = TDiffResult & { readonly organization: string; readonly target: TRenderTarget };
export type TGitopsApply = {
  readonly organization: string;
  readonly target: TRenderTarget;
  readonly commit: string | null;
  readonly changedPaths: readonly string[];
};

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

const renderAll = (renderer: TEnvironmentRenderer, spec: TOrganizationSpec): Map<string, readonly TRenderedFile[]> =>
  new Map(spec.environments.map((environment) => [environment.name, renderer(spec, environment.name)]));

/** The Kubernetes objects among the rendered files (files without apiVersion and kind, e.g. compose.yaml, are not). */
const manifestObjectsOf = (files: readonly TRenderedFile[]): TManifestObject[] =>
  files
    .filter((file) => file.path.endsWith(".yaml"))
    .flatMap((file) => parseAllDocuments(file.content).map((document) => document.toJS() as unknown))
    .filter(
      (object): object is TManifestObject =>
        typeof object === "object" && object !== null && "apiVersion" in object && "kind" in object,
    );

/**
 * The spec's controls and the artifact controls over the target's files (a mandatory failure
 * refuses with PolicyViolation, exit code 3), then the manifest controls over every environment
 * that renders Kubernetes objects.
 */
export const renderChecked = (
  target: TRenderTarget,
  renderer: TEnvironmentRenderer,
  spec: TOrganizationSpec,
  policy: TGitopsServiceDeps["policy"],
  approvals: TExceptionApprovals,
) => {
  policy.assertDeliveryCompliant(spec, [target], approvals);
  let files: Map<string, readonly TRenderedFile[]>;
  try {
    files = renderAll(renderer, spec);
  } catch (error) {
    // Renderers reject bad input with a TypeError naming the value: that is the user's to fix.
    if (error instanceof TypeError) throw new ValidationError(error.message);
    throw error;
  }
  const manifests: TManifestSubject[] = spec.environments
    .map((environment) => ({ environment, objects: manifestObjectsOf(files.get(environment.name) ?? []) }))
    .filter((subject) => subject.objects.length > 0);
  if (manifests.length > 0) policy.assertManifestsCompliant(spec, manifests, approvals);
  return files;
};

export const gitopsServiceFactory = ({
  repositoryFor,
  renderers,
  policy,
  exceptionApprovals,
  audit,
}: TGitopsServiceDeps) => ({
  plan: async (ctx: TRequestContext, submission: TSpecSubmission, target: TRenderTarget): Promise<TGitopsPlan> => {
    const { spec } = await parseAuthorizedSpec(ctx, "spec:plan", submission, audit);
    const files = renderChecked(target, renderers[target], spec, policy, await exceptionApprovals(spec.metadata.name));
    const repository = repositoryFor(spec.metadata.name, target, spec.gitops?.repository);
    await repository.ensure();
    const diff = await repository.diff({ files });
    return { organization: spec.metadata.name, target, ...diff };
  },

  apply: async (
    ctx: TRequestContext,
    submission: TSpecSubmission & { readonly confirmDestroy?: readonly string[] },
    target: TRenderTarget,
  ): Promise<TGitopsApply> => {
    const { spec, digest } = await parseAuthorizedSpec(ctx, "spec:apply", submission, audit);
    const organization = spec.metadata.name;
    const files = renderChecked(target, renderers[target], spec, policy, await exceptionApprovals(spec.metadata.name));
    const repository = repositoryFor(organization, target, spec.gitops?.repository);
    await repository.ensure();
    // An environment gone from the spec leaves the repository too (an empty set of files removes its
    // directory), and Argo CD prunes its namespace, volumes included: only with --confirm-destroy.
    const stale = (await repository.committedEnvironments()).filter((name) => !files.has(name));
    const unconfirmed = stale.filter((name) => !(submission.confirmDestroy ?? []).includes(name));
    if (unconfirmed.length > 0) {
      const reason = `removing ${unconfirmed.map((name) => `"${name}"`).join(", ")} from the GitOps repository deletes its namespace and volumes; confirm with --confirm-destroy ${unconfirmed.join(" --confirm-destroy ")}`;
      // A refusal: nothing is written but its entry.
      await audit.append(ctx, {
        type: "spec.apply_denied",
        outcome: "denied",
        target: `organization/${organization}`,
        payload: { digest, reason: reason.slice(0, 500) },
      });
      throw new PolicyViolation(`refusing to apply: ${reason}`);
    }
    for (const name of stale) files.set(name, []);
    // carehost's database holds nothing about a GitOps commit (the repository's history is its
    // record), so there is no row to commit with an entry: plain appends, in an order that leaves
    // evidence. The intent comes first and must be durable before anything is written or pushed;
    // a crash after the push leaves it without a conclusion, which the repository's log completes.
    await audit.append(ctx, {
      type: "gitops.commit_started",
      outcome: "success",
      target: `organization/${organization}`,
      payload: { organization, target, specDigest: digest, environmentCount: files.size },
    });
    let result: Awaited<ReturnType<TGitopsRepository["commitEnvironments"]>>;
    try {
      result = await repository.commitEnvironments({
        files,
        organization,
        specDigest: digest,
        actor: actorName(ctx.actor),
      });
    } catch (error) {
      try {
        await audit.append(ctx, {
          type: "gitops.commit_failed",
          outcome: "failure",
          target: `organization/${organization}`,
          payload: { organization, target, specDigest: digest, reason: messageOf(error).slice(0, 500) },
        });
      } catch (auditError) {
        // What went wrong with the repository is the answer; the log's own failure comes with it.
        throw new AggregateError(
          [error, auditError],
          `${messageOf(error)}; recording that in the audit log (gitops.commit_failed) failed too: ${messageOf(auditError)}`,
        );
      }
      throw error;
    }
    await audit.append(ctx, {
      type: "gitops.committed",
      outcome: "success",
      target: `organization/${organization}`,
      payload: {
        organization,
        target,
        commit: result.commit,
        changedPathCount: result.changedPaths.length,
        specDigest: digest,
      },
    });
    return { organization, target, commit: result.commit, changedPaths: result.changedPaths };
  },
});

export type TGitopsService = ReturnType<typeof gitopsServiceFactory>;
