// GitOps delivery: `plan --target kubernetes|compose` diffs a fresh render against the repository
// (object by object, which also shows hand edits made in the repository as drift), and
// `apply --target …` commits the render after the same control gate as a local apply. An
// unchanged spec makes no commit. Argo CD or Flux syncs the repository; carehost never applies
// manifests to a cluster itself.
import { actorNameOf } from "../audit/audit-entry.js";
import type { TAuditLog } from "../audit/audit-log.js";
import { auditPayloadSchemas } from "../audit/audit-types.js";
import type { AuditEventType, TAuditEntry } from "../audit/audit-types.js";
import { PolicyViolation, ValidationError } from "../lib/errors.js";
import { actorName } from "../lib/request-context.js";
import type { TRequestContext } from "../lib/request-context.js";
import type { TPolicyChecker } from "../policy/policy-service.js";
import type { TExceptionApprovals } from "../policy/policy-exceptions.js";
import { parseAuthorizedSpec } from "../environments/environment-service.js";
import type { TSpecSubmission } from "../environments/environment-service.js";
import { isRenderTarget } from "../render/render-targets.js";
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
  audit: Pick<TAuditLog, "append" | "list">;
  /**
   * Where an audit append that failed once the change was live goes (the server log): the caller
   * gets the result with a warning instead of an error, since the change cannot be taken back.
   */
  reportAuditFailure: (ctx: TRequestContext, error: unknown) => void;
  /**
   * Records the spec as the organization's applied revision through change management (the
   * environment service's apply, with its gate) before anything is committed: what reaches the
   * repository, and Argo CD after it, is what carehost applied. A change to production that needs
   * approval is refused here, as `carehost apply` refuses it; once its change request applied, the
   * same file commits (it is the applied revision, nothing left to approve).
   */
  record: (
    ctx: TRequestContext,
    submission: TSpecSubmission & { readonly confirmDestroy?: readonly string[] },
  ) => Promise<unknown>;
};

export type TGitopsPlan = TDiffResult & { readonly organization: string; readonly target: TRenderTarget };
export type TGitopsApply = {
  readonly organization: string;
  readonly target: TRenderTarget;
  readonly commit: string | null;
  readonly changedPaths: readonly string[];
  /** The repository has the change, but the log does not say so: what to tell whoever asked. */
  readonly warning?: string;
};

/** What start-up found for an apply that had stopped between its intent and its conclusion. */
export type TReconciledApply = {
  readonly startedSeq: number;
  readonly organization: string;
  readonly target: string;
  /** committed or failed: a conclusion was appended; unresolved: none was, the next start tries again. */
  readonly outcome: "committed" | "failed" | "unresolved";
  readonly detail: string;
};

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

const CONCLUSION_TYPES = ["gitops.committed", "gitops.commit_failed"] as const satisfies readonly AuditEventType[];
const LIST_PAGE = 1000;

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
  reportAuditFailure,
  record,
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
    await record(ctx, submission);
    // carehost's database holds nothing about a GitOps commit (the repository's history is its
    // record), so there is no row to commit with an entry: plain appends, in an order that leaves
    // evidence. The intent comes first and must be durable before anything is written or pushed;
    // a crash (or a log that fails) before its conclusion leaves it open, and the next start
    // concludes it from the repository's log (reconcileInterrupted).
    const remote = spec.gitops?.repository;
    const started = await audit.append(ctx, {
      type: "gitops.commit_started",
      outcome: "success",
      target: `organization/${organization}`,
      payload: {
        organization,
        target,
        specDigest: digest,
        environmentCount: files.size,
        ...(remote === undefined ? {} : { remote }),
      },
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
          payload: {
            organization,
            target,
            specDigest: digest,
            reason: messageOf(error).slice(0, 500),
            startedSeq: started.seq,
          },
        });
      } catch (auditError) {
        // What went wrong with the repository is the answer; the log's own failure comes with it,
        // and the intent it leaves unconcluded is reconciled at the next start.
        throw new AggregateError(
          [error, auditError],
          `${messageOf(error)}; recording that in the audit log (gitops.commit_failed) failed too: ${messageOf(auditError)}`,
        );
      }
      throw error;
    }
    try {
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
          startedSeq: started.seq,
        },
      });
    } catch (auditError) {
      // The commit is in the repository agents sync from (and pushed on): an error here would tell
      // the caller it failed, and a retry would find nothing to commit.
      reportAuditFailure(ctx, auditError);
      const unrecorded = `its audit entry (gitops.committed) could not be recorded; the server log has why, under request ${ctx.requestId}`;
      return {
        organization,
        target,
        commit: result.commit,
        changedPaths: result.changedPaths,
        warning:
          result.commit === null
            ? `the GitOps repository already held this render (no commit), but ${unrecorded}`
            : `commit ${result.commit} is live in the GitOps repository${remote === undefined ? "" : ` and pushed to ${remote}`}, but ${unrecorded}; the next server start records it from the repository`,
      };
    }
    return { organization, target, commit: result.commit, changedPaths: result.changedPaths };
  },

  /**
   * Concludes every gitops.commit_started written before `startedBefore` (by an earlier process)
   * that has no conclusion: the apply stopped between its intent and its conclusion (a crash, or
   * an audit append that failed after the push). What the repository shows decides the entry: the
   * commit carehost made for that spec and actor since the intent, on main and on the remote.
   */
  reconcileInterrupted: async (
    ctx: TRequestContext,
    { startedBefore }: { readonly startedBefore: Date },
  ): Promise<TReconciledApply[]> => {
    const listAll = async (type: AuditEventType) => {
      const all: { seq: number; entry: TAuditEntry }[] = [];
      for (;;) {
        const afterSeq = all.at(-1)?.seq;
        const page = await audit.list({ type, limit: LIST_PAGE, ...(afterSeq === undefined ? {} : { afterSeq }) });
        all.push(...page);
        if (page.length < LIST_PAGE) return all;
      }
    };
    const startedSchema = auditPayloadSchemas["gitops.commit_started"];
    const open = new Map<number, { entry: TAuditEntry; payload: ReturnType<typeof startedSchema.parse> }>();
    const entries = [
      ...(await listAll("gitops.commit_started")),
      ...(await listAll(CONCLUSION_TYPES[0])),
      ...(await listAll(CONCLUSION_TYPES[1])),
    ].sort((a, b) => a.seq - b.seq);
    for (const { seq, entry } of entries) {
      if (entry.type === "gitops.commit_started") {
        open.set(seq, { entry, payload: startedSchema.parse(entry.payload) });
        continue;
      }
      const concluded = auditPayloadSchemas[entry.type as (typeof CONCLUSION_TYPES)[number]].parse(entry.payload);
      if (concluded.startedSeq !== undefined) {
        open.delete(concluded.startedSeq);
        continue;
      }
      // Conclusions written before they named their intent: the request's latest for the same organization, target and spec.
      const intent = [...open].findLast(
        ([, candidate]) =>
          candidate.entry.requestId === entry.requestId &&
          candidate.payload.organization === concluded.organization &&
          candidate.payload.target === concluded.target &&
          candidate.payload.specDigest === concluded.specDigest,
      );
      if (intent !== undefined) open.delete(intent[0]);
    }

    const reconciled: TReconciledApply[] = [];
    for (const [startedSeq, { entry, payload }] of open) {
      if (Date.parse(entry.time) >= startedBefore.getTime()) continue;
      const { organization, target, specDigest, remote } = payload;
      const actor = actorNameOf(entry.actor);
      const report = (outcome: TReconciledApply["outcome"], detail: string) =>
        reconciled.push({ startedSeq, organization, target, outcome, detail });
      try {
        if (!isRenderTarget(target)) throw new ValidationError(`"${target}" is not a render target`);
        const found = await repositoryFor(organization, target, remote).findCommit({
          specDigest,
          actor,
          since: new Date(entry.time),
        });
        const common = { organization, target, specDigest, startedSeq, reconciled: true as const };
        if (found !== undefined && found.onRemote !== false) {
          await audit.append(ctx, {
            type: "gitops.committed",
            outcome: "success",
            target: `organization/${organization}`,
            payload: { ...common, commit: found.commit, changedPathCount: found.changedPaths.length },
          });
          report(
            "committed",
            `commit ${found.commit} is in the repository${remote === undefined ? "" : ` and on ${remote}`}`,
          );
          continue;
        }
        const reason =
          found === undefined
            ? `interrupted: main has no commit of this spec by ${actor} since ${entry.time} (it stopped before committing, or the repository already held this render)`
            : `interrupted: committed ${found.commit} locally, but ${remote ?? "the remote"} does not have it; the next apply pushes it`;
        await audit.append(ctx, {
          type: "gitops.commit_failed",
          outcome: "failure",
          target: `organization/${organization}`,
          payload: { ...common, reason: reason.slice(0, 500) },
        });
        report("failed", reason);
      } catch (error) {
        report("unresolved", `not reconciled, the next start tries again: ${messageOf(error)}`);
      }
    }
    return reconciled;
  },
});

export type TGitopsService = ReturnType<typeof gitopsServiceFactory>;
