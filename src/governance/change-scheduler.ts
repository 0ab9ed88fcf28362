// The scheduler's side of change management, run on the server's tick: scheduled changes whose
// window opened are applied (or moved to the next opening), those no longer measured from the
// applied revision fail, and emergency changes nobody approved within 24 hours are escalated.
import type { TAuditLog } from "../audit/audit-log.js";
import type { TAuditEvent } from "../audit/audit-types.js";
import { DomainError } from "../lib/errors.js";
import type { TRequestContext } from "../lib/request-context.js";
import type { TChangeApplier } from "./change-apply.js";
import { staleRefusal } from "./change-gate.js";
import type { TChangeSteps } from "./change-steps.js";
import type { TChangeStore } from "./change-store.js";
import { reviewDeadline } from "./change-view.js";

export type TChangeSchedulerDeps = {
  steps: Pick<TChangeSteps, "target">;
  applier: TChangeApplier;
  store: Pick<TChangeStore, "due" | "unreviewedEmergencies" | "transition">;
  audit: { recordChange: TAuditLog["recordChange"] };
  now: () => Date;
};

export const changeSchedulerFactory = ({
  steps: { target },
  applier: { timingOf, carryOut },
  store,
  audit,
  now,
}: TChangeSchedulerDeps) => {
  /**
   * The scheduler's pass: applies the scheduled changes whose window opened (or moves them to the
   * next opening), fails those no longer measured from the applied revision, and escalates emergency
   * changes nobody approved within 24 hours.
   */
  const runDue = async (
    ctx: TRequestContext,
  ): Promise<{ applied: number[]; failed: number[]; escalated: number[] }> => {
    const outcome = { applied: [] as number[], failed: [] as number[], escalated: [] as number[] };
    for (const request of await store.due(now())) {
      const { timing, appliedId } = await timingOf(request);
      // A freeze holds it; it applies in the first window after the freeze ends.
      if (timing.decision === "frozen") continue;
      const stale = staleRefusal(request, appliedId);
      try {
        if (stale !== undefined) throw stale;
        const done = await carryOut(ctx, request);
        if (done.applied !== null) outcome.applied.push(request.id);
      } catch (error) {
        const reason = (error instanceof Error ? error.message : String(error)).slice(0, 500);
        // A runtime failure after the revision committed was recorded by the gate already.
        const failed = await audit
          .recordChange(ctx, async (tx) => {
            const moved = await store.transition(tx, request.id, ["scheduled", "approved"], {
              state: "failed",
              failure: reason,
            });
            return {
              result: moved,
              events:
                moved === undefined
                  ? []
                  : [
                      {
                        type: "change.failed",
                        outcome: "failure",
                        target: target(request),
                        payload: { changeRequest: request.id, reason },
                      } satisfies TAuditEvent,
                    ],
            };
          })
          .then(({ result }) => result !== undefined);
        if (failed || !(error instanceof DomainError)) outcome.failed.push(request.id);
      }
    }
    const at = now();
    for (const request of await store.unreviewedEmergencies()) {
      const deadline = reviewDeadline(request);
      if (deadline === null || request.escalatedAt !== null || at < deadline) continue;
      await audit.recordChange(ctx, async (tx) => {
        const moved = await store.transition(tx, request.id, ["applied", "failed"], { escalatedAt: at });
        return {
          result: moved,
          events:
            moved === undefined
              ? []
              : [
                  {
                    type: "change.emergency_escalated",
                    outcome: "failure",
                    target: target(request),
                    payload: {
                      changeRequest: request.id,
                      appliedAt: request.appliedAt!.toISOString(),
                      reviewBy: deadline.toISOString(),
                      approvals: request.approvals.length,
                      approvalsRequired: request.approvalsRequired,
                    },
                  } satisfies TAuditEvent,
                ],
        };
      });
      outcome.escalated.push(request.id);
    }
    return outcome;
  };

  return { runDue };
};
