// Records the desired state of an organization's environments from its spec. Later issues hang
// provisioning off apply; this service owns the plan, the control baseline check that gates it,
// the guard on removals and the audit trail.
import type { TAuditEvent } from "../audit/audit-types.js";
import { authorize } from "../identity/identity-permissions.js";
import type { TAuditAppend } from "../identity/identity-types.js";
import { PolicyViolation, ValidationError } from "../lib/errors.js";
import { actorName } from "../lib/request-context.js";
import { assertNoMandatoryViolations } from "../policy/policy-engine.js";
import type { TPostureReport } from "../policy/policy-engine.js";
import type { TPolicyChecker } from "../policy/policy-service.js";
import type { TRequestContext } from "../lib/request-context.js";
import { specDigest } from "../spec/spec-digest.js";
import { formatSpecError, loadSpecText } from "../spec/spec-loader.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import { planEnvironments, planHasChanges } from "./environment-plan.js";
import type { TPlan } from "./environment-plan.js";
import type { TEnvironmentStore } from "./environment-store.js";

type TEnvironmentServiceDeps = {
  store: TEnvironmentStore;
  policy: TPolicyChecker;
  audit: { append: TAuditAppend };
};

export type TSpecSubmission = { readonly source: string; readonly fileName: string };

export type TApplyResult = { readonly plan: TPlan; readonly revisionId: number | null };

export const environmentServiceFactory = ({ store, policy, audit }: TEnvironmentServiceDeps) => {
  // The server re-validates what the CLI already checked: the API is a trust boundary.
  const parseSubmission = (submission: TSpecSubmission): { spec: TOrganizationSpec; digest: string } => {
    const result = loadSpecText(submission.source, submission.fileName);
    if (!result.ok) {
      throw new ValidationError(
        `${submission.fileName}: ${result.errors.length} error(s) in the spec`,
        result.errors.map((error) => ({
          path: error.path,
          location: `${error.file}:${error.line}:${error.col}`,
          message: formatSpecError(error),
        })),
      );
    }
    return result;
  };

  const planFor = async (spec: TOrganizationSpec, digest: string): Promise<TPlan> => {
    const recorded = await store.listEnvironments(spec.metadata.name);
    return planEnvironments(spec.metadata.name, digest, new Map(recorded.map((row) => [row.name, row.spec])), spec.environments);
  };

  return {
    plan: async (ctx: TRequestContext, submission: TSpecSubmission): Promise<TPlan> => {
      await authorize(ctx, "spec:plan", audit);
      const { spec, digest } = parseSubmission(submission);
      policy.assertSpecCompliant(spec);
      return planFor(spec, digest);
    },

    apply: async (
      ctx: TRequestContext,
      submission: TSpecSubmission & { readonly confirmDestroy?: readonly string[] },
    ): Promise<TApplyResult> => {
      await authorize(ctx, "spec:apply", audit);
      const { spec, digest } = parseSubmission(submission);
      const organization = spec.metadata.name;
      const posture = policy.evaluateSpec(spec);
      const failedControls = [...new Set(posture.mandatoryViolations.map((violation) => violation.controlId))];
      if (failedControls.length > 0) {
        await audit.append(ctx, {
          type: "spec.apply_denied",
          outcome: "denied",
          target: `organization/${organization}`,
          payload: { digest, reason: `mandatory controls failed: ${failedControls.join(", ")}`.slice(0, 500) },
        });
        assertNoMandatoryViolations(posture);
      }
      const plan = await planFor(spec, digest);
      const removed = plan.changes.filter((change) => change.action === "remove").map((change) => change.name);
      const confirmed = new Set(submission.confirmDestroy ?? []);
      const unconfirmed = removed.filter((name) => !confirmed.has(name));
      if (unconfirmed.length > 0) {
        // Dropping an environment from the spec must never delete it by accident.
        const reason = `removing ${unconfirmed.map((name) => `"${name}"`).join(", ")} needs --confirm-destroy ${unconfirmed.join(" --confirm-destroy ")}`;
        await audit.append(ctx, {
          type: "spec.apply_denied",
          outcome: "denied",
          target: `organization/${organization}`,
          payload: { digest, reason },
        });
        throw new PolicyViolation(`refusing to apply: ${reason}`);
      }
      if (!planHasChanges(plan)) return { plan, revisionId: null };

      const revisionId = await store.recordRevision(
        { spec, digest, source: submission.source, appliedBy: actorName(ctx.actor), removed },
        specDigest,
      );
      // Appended together so they land in one audit batch, in this order.
      const events: TAuditEvent[] = [{ type: "spec.applied", outcome: "success", target: `organization/${organization}`, payload: { digest, revisionId } }];
      for (const change of plan.changes) {
        const target = `environment/${organization}/${change.name}`;
        // Digests, not values: they pin exactly what changed without copying the spec into the log.
        if (change.action === "create") {
          events.push({ type: "environment.created", outcome: "success", target, payload: { digest: change.digest } });
        } else if (change.action === "change") {
          events.push({ type: "environment.changed", outcome: "success", target, payload: { digest: change.digest, previousDigest: change.previousDigest } });
        } else if (change.action === "remove") {
          events.push({ type: "environment.removed", outcome: "success", target, payload: { previousDigest: change.previousDigest } });
        }
      }
      await Promise.all(events.map((event) => audit.append(ctx, event)));
      return { plan, revisionId };
    },

    listEnvironments: async (ctx: TRequestContext, organization?: string) => {
      await authorize(ctx, "environment:read", audit);
      return store.listEnvironments(organization);
    },

    /** The control baseline over every recorded organization's current spec. */
    posture: async (ctx: TRequestContext): Promise<{ organization: string; report: TPostureReport }[]> => {
      await authorize(ctx, "environment:read", audit);
      const specs = await store.latestSpecs();
      return specs.map((spec) => ({ organization: spec.metadata.name, report: policy.evaluateSpec(spec) }));
    },

    latestRevisions: async (ctx: TRequestContext) => {
      await authorize(ctx, "spec:read", audit);
      return store.latestRevisions();
    },
  };
};

export type TEnvironmentService = ReturnType<typeof environmentServiceFactory>;
