// The one gate every recorded change of an organization's spec passes (environment-service.ts
// `apply` calls it before anything is touched): the first revision of an organization and a spec
// that declares nothing new pass as they are; a change request passes when it is approved, still
// measured from the applied revision and inside its time (change-timing.ts); anything else passes
// only as a standard change, recorded as a change request of its own in the revision's transaction.
// What it refuses, it refuses with the command that asks for approval.
import type { TAuditLog } from "../audit/audit-log.js";
import type { TAuditEvent } from "../audit/audit-types.js";
import type { TPlan } from "../environments/environment-plan.js";
import { ConflictError, NotFoundError, PolicyViolation } from "../lib/errors.js";
import { actorName } from "../lib/request-context.js";
import type { TRequestContext } from "../lib/request-context.js";
import { exceptionActorOf } from "../policy/policy-exception-store.js";
import type { TRuntimeChange } from "../runtime/runtime-types.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import type { TSqlExecutor } from "../store/store-types.js";
import { classifyChange } from "./change-classify.js";
import type { TChangeAssessment } from "./change-classify.js";
import type { TChangeStore } from "./change-store.js";
import { changeTiming } from "./change-timing.js";
import type { TChangeTiming } from "./change-timing.js";
import type { TChangeRequest, TChangeVerdict } from "./change-types.js";

/** What an apply would record, as the environment service hands it to the gate. */
export type TChangeProposal = {
  readonly spec: TOrganizationSpec;
  readonly digest: string;
  readonly source: string;
  readonly fileName: string;
  readonly confirmDestroy: readonly string[];
  readonly plan: TPlan;
  /** The applied revision; undefined before the organization's first. */
  readonly applied: { readonly id: number; readonly spec: TOrganizationSpec } | undefined;
  /** Whether the spec declares anything the applied revision does not (else apply only corrects drift). */
  readonly changed: boolean;
  readonly runtime: TRuntimeChange;
  readonly verdict: TChangeVerdict;
};

/** What the gate lets through: the change request the revision belongs to, and what commits with it. */
export type TAdmission = {
  /** Known once `record` ran for a standard change; at once for a change request applied by id. */
  readonly changeRequest: () => { readonly id: number; readonly kind: TChangeRequest["kind"] } | null;
  /** Runs in the revision's transaction: the change request's own rows and audit entries. */
  readonly record: (tx: TSqlExecutor, revisionId: number) => Promise<TAuditEvent[]>;
  /** After the revision committed, when the runtime failed to make it real. */
  readonly failed: (error: unknown) => Promise<void>;
};

export type TChangeGate = {
  admit(
    ctx: TRequestContext,
    proposal: TChangeProposal,
    via?: { readonly changeRequestId?: number },
  ): Promise<TAdmission>;
};

type TChangeGateDeps = {
  store: Pick<TChangeStore, "find" | "insert" | "transition">;
  audit: Pick<TAuditLog, "recordChange">;
  now?: () => Date;
};

const PASS: TAdmission = { changeRequest: () => null, record: async () => [], failed: async () => undefined };
const message = (error: unknown) => (error instanceof Error ? error.message : String(error)).slice(0, 500);

/** "production prod", "production prod and staging": what a refusal says the change is to. */
export const changeTargets = (assessment: TChangeAssessment): string => {
  const names =
    assessment.production.length > 0
      ? assessment.production.map((name) => `production ${name}`)
      : assessment.environments.map((environment) => environment.name);
  return names.length === 0 ? "the organization's settings" : names.join(" and ");
};

/** Why a change request cannot apply at `timing`, as an error; undefined when it can. */
export const timingRefusal = (request: Pick<TChangeRequest, "id" | "organization">, timing: TChangeTiming) => {
  switch (timing.decision) {
    case "now":
      return undefined;
    case "frozen":
      return new PolicyViolation(
        `changes to ${request.organization} are frozen until ${timing.freeze.to} (${timing.freeze.reason}); only an emergency change applies during a freeze: carehost change create FILE --emergency --reason '…'`,
      );
    case "wait":
      return new ConflictError(
        `change request #${request.id} applies inside the maintenance window of ${timing.environments.join(", ")}, which next opens at ${timing.opensAt.toISOString()}`,
      );
    case "never":
      return new PolicyViolation(
        `the maintenance windows of ${timing.environments.join(", ")} are never open at the same time in the next 8 weeks; change request #${request.id} cannot apply until they are`,
      );
  }
};

/** Refusals of a change request that no longer fits what is applied (the same checks for apply and the scheduler). */
export const staleRefusal = (
  request: Pick<TChangeRequest, "id" | "baseRevisionId" | "fileName">,
  appliedRevisionId: number | undefined,
): ConflictError | undefined =>
  appliedRevisionId === request.baseRevisionId
    ? undefined
    : new ConflictError(
        `change request #${request.id} is stale: it was measured from revision ${request.baseRevisionId}, and revision ${appliedRevisionId ?? "(none)"} has been applied since; recreate it: carehost change create ${request.fileName} --reason '…'`,
      );

export const changeGateFactory = ({ store, audit, now = () => new Date() }: TChangeGateDeps): TChangeGate => {
  const admitRequest = async (
    ctx: TRequestContext,
    proposal: TChangeProposal,
    applied: NonNullable<TChangeProposal["applied"]>,
    id: number,
  ): Promise<TAdmission> => {
    const organization = proposal.spec.metadata.name;
    const request = await store.find(id);
    if (request === undefined || request.organization !== organization)
      throw new NotFoundError(`organization ${JSON.stringify(organization)} has no change request #${id}`);
    if (request.specDigest !== proposal.digest)
      throw new ConflictError(`change request #${id} is for spec ${request.specDigest.slice(0, 12)}, not this one`);
    const stale = staleRefusal(request, applied.id);
    if (stale !== undefined) throw stale;
    if (request.state !== "approved" && request.state !== "scheduled")
      throw new ConflictError(`change request #${id} is ${request.state}; only an approved change applies`);
    const refusal = timingRefusal(
      request,
      changeTiming({
        kind: request.kind,
        production: request.assessment.production,
        applied: applied.spec,
        proposed: proposal.spec,
        at: now(),
      }),
    );
    if (refusal !== undefined) throw refusal;
    return {
      changeRequest: () => ({ id, kind: request.kind }),
      record: async (tx, revisionId) => {
        const done = await store.transition(tx, id, ["approved", "scheduled"], {
          state: "applied",
          appliedRevisionId: revisionId,
          appliedBy: actorName(ctx.actor),
          appliedAt: now(),
        });
        if (done === undefined) throw new ConflictError(`change request #${id} was applied or closed meanwhile`);
        return [
          {
            type: "change.applied",
            outcome: "success",
            target: `change/${organization}/${id}`,
            payload: { changeRequest: id, kind: request.kind, revisionId },
          },
        ];
      },
      failed: (error) => markFailed(ctx, organization, id, error),
    };
  };

  /** The revision committed; what failed is the runtime's part, and the change request says so. */
  const markFailed = async (ctx: TRequestContext, organization: string, id: number, error: unknown) => {
    const reason = message(error);
    await audit.recordChange(ctx, async (tx) => {
      const failed = await store.transition(tx, id, ["applied"], { state: "failed", failure: reason });
      return {
        result: failed,
        events:
          failed === undefined
            ? []
            : [
                {
                  type: "change.failed",
                  outcome: "failure",
                  target: `change/${organization}/${id}`,
                  payload: { changeRequest: id, reason },
                },
              ],
      };
    });
  };

  return {
    admit: async (ctx, proposal, via = {}) => {
      const applied = proposal.applied;
      if (applied === undefined || (!proposal.changed && via.changeRequestId === undefined)) return PASS;
      if (via.changeRequestId !== undefined) return admitRequest(ctx, proposal, applied, via.changeRequestId);
      const organization = proposal.spec.metadata.name;
      const assessment = classifyChange({
        applied: applied.spec,
        proposed: proposal.spec,
        plan: proposal.plan,
        effects: proposal.runtime.effects,
      });
      const kind = assessment.standard ? "standard" : "normal";
      const timing = changeTiming({
        kind,
        production: assessment.production,
        applied: applied.spec,
        proposed: proposal.spec,
        at: now(),
      });
      if (timing.decision === "frozen") throw timingRefusal({ id: 0, organization }, timing)!;
      if (!assessment.standard)
        throw new PolicyViolation(
          `this change to ${changeTargets(assessment)} needs approval: carehost change create ${proposal.fileName} --reason '…'`,
          assessment.reasons.map((line) => ({ message: line })),
        );
      const requester = exceptionActorOf(ctx);
      let recordedId: number | undefined;
      return {
        changeRequest: () => (recordedId === undefined ? null : { id: recordedId, kind: "standard" }),
        record: async (tx, revisionId) => {
          const at = now();
          const recorded = await store.insert(tx, {
            organization,
            kind: "standard",
            state: "approved",
            reason: "standard change, applied by carehost apply",
            ticket: null,
            requestedBy: requester.name,
            requesterId: requester.id,
            requestedAt: at,
            source: proposal.source,
            fileName: proposal.fileName,
            specDigest: proposal.digest,
            baseRevisionId: applied.id,
            confirmDestroy: proposal.confirmDestroy,
            assessment,
            plan: {
              plan: proposal.plan,
              artifacts: proposal.runtime.artifacts,
              effects: proposal.runtime.effects,
              verdict: proposal.verdict,
            },
            approvalsRequired: assessment.approvalsRequired,
            rollbackOf: null,
          });
          recordedId = recorded.id;
          await store.transition(tx, recorded.id, ["approved"], {
            state: "applied",
            appliedRevisionId: revisionId,
            appliedBy: requester.name,
            appliedAt: at,
          });
          const target = `change/${organization}/${recorded.id}`;
          return [
            {
              type: "change.requested",
              outcome: "success",
              target,
              payload: {
                changeRequest: recorded.id,
                kind: "standard",
                reason: recorded.reason,
                specDigest: proposal.digest,
                baseRevisionId: applied.id,
                environments: assessment.environments.map((environment) => environment.name),
                production: [...assessment.production],
                approvalsRequired: assessment.approvalsRequired,
              },
            },
            {
              type: "change.applied",
              outcome: "success",
              target,
              payload: { changeRequest: recorded.id, kind: "standard", revisionId },
            },
          ];
        },
        failed: async (error) => {
          if (recordedId !== undefined) await markFailed(ctx, organization, recordedId, error);
        },
      };
    },
  };
};
