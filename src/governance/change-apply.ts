// Carrying out an approved change request: applied now through the environment service's apply
// (whose gate checks the request again), scheduled for the opening of its maintenance window, or
// refused during a freeze or once another revision was applied; for production, backed up just
// before and its posture read back after.
import type { TEnvironmentStore } from "../environments/environment-store.js";
import type { TApplyResult, TEnvironmentService } from "../environments/environment-service.js";
import { parseSpecSubmission } from "../environments/environment-service.js";
import type { TAuditAppend } from "../identity/identity-types.js";
import { ConflictError } from "../lib/errors.js";
import type { TRequestContext } from "../lib/request-context.js";
import { staleRefusal, timingRefusal } from "./change-gate.js";
import type { TChangeSteps } from "./change-steps.js";
import type { TChangeStore } from "./change-store.js";
import { changeTiming } from "./change-timing.js";
import type { TChangeTiming } from "./change-timing.js";
import { dataTierChangedIn } from "./change-checks.js";
import type { TChangeRequest, TPostChangeDrill, TPostChangePosture, TPreChangeBackup } from "./change-types.js";
import { reviewDeadline } from "./change-view.js";
import type { TChangeView } from "./change-view.js";

/** What a step did: the request as it stands, and the apply's result when it applied now. */
export type TChangeOutcome = { readonly request: TChangeView; readonly applied: TApplyResult | null };

export type TChangeApplierDeps = {
  steps: Pick<TChangeSteps, "target" | "viewOf" | "refuse" | "step">;
  store: Pick<TChangeStore, "find" | "note">;
  environments: Pick<TEnvironmentService, "apply">;
  revisions: Pick<TEnvironmentStore, "appliedRevision">;
  audit: { append: TAuditAppend };
  now: () => Date;
  /** Backs up one production environment before a change to it applies (the recovery service's backup). */
  preChangeBackup?: (request: TChangeRequest, environment: string) => Promise<TPreChangeBackup>;
  /** Reads the posture back from the live systems once a change applied. */
  postChangePosture?: (organization: string) => Promise<TPostChangePosture | undefined>;
  /** A restore drill of a production environment whose data tier the change touched (change-checks.ts). */
  postChangeDrill?: (request: TChangeRequest, environment: string) => Promise<TPostChangeDrill>;
};

export const changeApplierFactory = ({
  steps: { target, viewOf, refuse, step },
  store,
  environments,
  revisions,
  audit,
  now,
  preChangeBackup,
  postChangePosture,
  postChangeDrill,
}: TChangeApplierDeps) => {
  const timingOf = async (
    request: TChangeRequest,
  ): Promise<{ timing: TChangeTiming; appliedId: number | undefined }> => {
    const applied = await revisions.appliedRevision(request.organization);
    const proposed = parseSpecSubmission({ source: request.source, fileName: request.fileName }).spec;
    return {
      appliedId: applied?.id,
      timing:
        applied === undefined
          ? { decision: "now" }
          : changeTiming({
              kind: request.kind,
              production: request.assessment.production,
              applied: applied.spec,
              proposed,
              at: now(),
            }),
    };
  };

  /** The backups of the production environments a change touches, taken just before it applies. */
  const backUpProduction = async (ctx: TRequestContext, request: TChangeRequest) => {
    if (preChangeBackup === undefined || request.assessment.production.length === 0) return;
    const backups: TPreChangeBackup[] = [];
    for (const environment of request.assessment.production) {
      const backup = await preChangeBackup(request, environment);
      backups.push(backup);
      await audit.append(ctx, {
        type: "change.pre_change_backup",
        outcome: backup.status === "failed" ? "failure" : "success",
        target: target(request),
        payload: {
          changeRequest: request.id,
          environment,
          status: backup.status,
          ...(backup.label === null ? {} : { label: backup.label }),
          detail: backup.detail.slice(0, 500),
        },
      });
    }
    await store.note(request.id, { preChangeBackup: backups });
    const failed = backups.find((backup) => backup.status === "failed");
    // No change to production without a copy of what it changes: a failed backup stops the apply,
    // but for an emergency, which goes on (its request shows the failed backup, and it is an alert).
    if (failed !== undefined && request.kind !== "emergency")
      throw new ConflictError(
        `change request #${request.id} did not apply: the pre-change backup of ${failed.environment} failed (${failed.detail}); carehost change apply ${request.id} tries again`,
      );
  };

  /**
   * Applies an approved request now, or schedules it for its window; refuses it during a freeze, or
   * once another revision was applied since it was measured.
   */
  const carryOut = async (ctx: TRequestContext, request: TChangeRequest): Promise<TChangeOutcome> => {
    if (request.state !== "approved" && request.state !== "scheduled")
      return refuse(
        ctx,
        request,
        "apply",
        new ConflictError(
          `change request #${request.id} is ${request.state}${request.state === "pending" ? `: it needs ${request.approvalsRequired - request.approvals.length} more approval(s) (carehost change approve ${request.id})` : ""}; only an approved change applies`,
        ),
      );
    const { timing, appliedId } = await timingOf(request);
    const stale = staleRefusal(request, appliedId);
    if (stale !== undefined) return refuse(ctx, request, "apply", stale);
    if (timing.decision === "wait") {
      if (request.state === "scheduled" && request.scheduledFor?.getTime() === timing.opensAt.getTime())
        return { request: await viewOf(request), applied: null };
      const scheduled = await step(
        ctx,
        request,
        ["approved", "scheduled"],
        { state: "scheduled", scheduledFor: timing.opensAt },
        () => [
          {
            type: "change.scheduled",
            outcome: "success",
            target: target(request),
            payload: { changeRequest: request.id, scheduledFor: timing.opensAt.toISOString() },
          },
        ],
      );
      return { request: await viewOf(scheduled), applied: null };
    }
    const refusal = timingRefusal(request, timing);
    if (refusal !== undefined) return refuse(ctx, request, "apply", refusal);
    await backUpProduction(ctx, request);
    const applied = await environments.apply(
      ctx,
      { source: request.source, fileName: request.fileName, confirmDestroy: request.confirmDestroy },
      { changeRequestId: request.id },
    );
    const done = (await store.find(request.id))!;
    const deadline = reviewDeadline(done);
    // The alert an auditor finds in the log until the change is approved retrospectively.
    if (deadline !== null)
      await audit.append(ctx, {
        type: "change.emergency_applied",
        outcome: "success",
        target: target(request),
        payload: { changeRequest: request.id, reason: request.reason.slice(0, 500), reviewBy: deadline.toISOString() },
      });
    const posture = await postChangePosture?.(request.organization);
    if (posture !== undefined) await store.note(request.id, { postChangePosture: posture });
    const drilled = postChangeDrill === undefined ? [] : dataTierChangedIn(request.assessment);
    if (drilled.length > 0) {
      const drills: TPostChangeDrill[] = [];
      for (const environment of drilled) drills.push(await postChangeDrill!(request, environment));
      await store.note(request.id, { postChangeDrills: drills });
    }
    const checked = posture !== undefined || drilled.length > 0;
    return { request: await viewOf(checked ? (await store.find(request.id))! : done), applied };
  };

  return { timingOf, carryOut };
};

export type TChangeApplier = ReturnType<typeof changeApplierFactory>;
