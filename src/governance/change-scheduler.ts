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
import type { TChangeRequest } from "./change-types.js";
import { reviewDeadline } from "./change-view.js";

export type TChangeSchedulerDeps = {
  steps: Pick<TChangeSteps, "target">;
  applier: TChangeApplier;
  store: Pick<TChangeStore, "due" | "unreviewedEmergencies" | "transition" | "find">;
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
   * Applies one scheduled change whose window opened (or leaves it for the next opening while a
   * freeze holds it); a change no longer measured from the applied revision, or one whose apply
   * fails, ends failed and audited.
   */
  const applyScheduled = async (
    ctx: TRequestContext,
    request: TChangeRequest,
  ): Promise<"applied" | "held" | "failed" | "unchanged"> => {
    const { timing, appliedId } = await timingOf(request);
    // A freeze holds it; it applies in the first window after the freeze ends.
    if (timing.decision === "frozen") return "held";
    const stale = staleRefusal(request, appliedId);
    try {
      if (stale !== undefined) throw stale;
      const done = await carryOut(ctx, request);
      return done.applied !== null ? "applied" : "unchanged";
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
      if (failed || !(error instanceof DomainError)) return "failed";
      return "unchanged";
    }
  };

  /**
   * The scheduler's pass: the scheduled changes whose window opened are queued as apply
   * operations (one per change, by dedupe key, so replicas ticking at once queue it once and one
   * worker applies it), or applied here when no queue is given; emergency changes nobody approved
   * within 24 hours are escalated.
   */
  const runDue = async (
    ctx: TRequestContext,
    enqueue?: (request: TChangeRequest) => Promise<unknown>,
  ): Promise<{ applied: number[]; failed: number[]; escalated: number[]; queued?: number[] }> => {
    const queued: number[] = [];
    const outcome = { applied: [] as number[], failed: [] as number[], escalated: [] as number[] };
    for (const request of await store.due(now())) {
      if (enqueue !== undefined) {
        await enqueue(request);
        queued.push(request.id);
        continue;
      }
      const ended = await applyScheduled(ctx, request);
      if (ended === "applied") outcome.applied.push(request.id);
      if (ended === "failed") outcome.failed.push(request.id);
    }
    const at = now();
    for (const request of await store.unreviewedEmergencies()) {
      const deadline = reviewDeadline(request);
      if (deadline === null || request.escalatedAt !== null || at < deadline) continue;
      const { result: escalated } = await audit.recordChange(ctx, async (tx) => {
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
      if (escalated !== undefined) outcome.escalated.push(request.id);
    }
    return enqueue === undefined ? outcome : { ...outcome, queued };
  };

  /**
   * An apply operation a worker claimed: the change is applied if it is still scheduled and due
   * (another replica, a cancel or a freeze may have moved it since the tick that queued it).
   */
  const applyQueued = async (ctx: TRequestContext, id: number): Promise<{ changeRequest: number; outcome: string }> => {
    const request = await store.find(id);
    if (
      request === undefined ||
      request.state !== "scheduled" ||
      request.scheduledFor === null ||
      request.scheduledFor > now()
    )
      return { changeRequest: id, outcome: `not applied: it is ${request?.state ?? "gone"} and not due` };
    const ended = await applyScheduled(ctx, request);
    if (ended === "failed")
      throw new Error(`change request ${id} failed to apply: carehost change show ${id} says why`);
    return { changeRequest: id, outcome: ended };
  };

  return { runDue, applyQueued };
};
