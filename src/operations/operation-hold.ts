// Work this process does itself as an operation: a person's apply, a secret rotation, a backup
// someone asked for. The operation is reserved under this process's lease before anything is
// touched (no other worker claims it; should this process die, the lease runs out and any worker
// marks it interrupted), starts once its target runs nothing else, records steps, and ends as the
// work ended. Work that already runs inside an operation of the same target (a worker's, or an
// outer `within`) joins it instead of waiting for itself: the current operation travels with the
// call (AsyncLocalStorage), so a change applied by the queue and the reconcile inside it are one.
import { ConflictError } from "../lib/errors.js";
import { actorName } from "../lib/request-context.js";
import type { TRequestContext } from "../lib/request-context.js";
import type { TOperationStore } from "./operation-store.js";
import type { TOperationKind } from "./operation-types.js";
import { currentOperation, newWorkerId, operationError } from "./operation-context.js";

/** An operation this process holds (or will, once its target is free). */
export type THeldOperation = {
  readonly id: number;
  readonly target: string;
  /** Resolves once the work may touch its target; rejects when the operation ended while it waited (cancelled, interrupted). */
  readonly started: Promise<void>;
  /** Records a completed step (best effort: the work's own record has it too). */
  step(step: string, detail: string): void;
  /** Ends the operation as the work ended; a no-op once ended, and for one this process joined rather than reserved. */
  finish(end: { readonly state: "succeeded" | "failed" | "interrupted"; readonly error?: string }): Promise<void>;
};

export type TOperationHoldRequest = {
  readonly organization: string;
  readonly environment?: string;
  readonly target: string;
  readonly kind: TOperationKind;
  readonly params?: object;
  readonly changeRequest?: number;
};

export type TOperationHoldDeps = {
  readonly store: Pick<TOperationStore, "reserve" | "claimReserved" | "renewLease" | "addStep" | "finish" | "get">;
  readonly workerId?: string;
  readonly leaseSeconds?: number;
  /** How often work waiting for its target looks again. */
  readonly pollMs?: number;
};

/** Work a person asked for is not held to a deadline: a restore of a large database takes what it takes. */
const HELD_DEADLINE_SECONDS = 7 * 24 * 3600;

export const operationHoldFactory = ({
  store,
  workerId = newWorkerId(),
  leaseSeconds = 30,
  pollMs = 500,
}: TOperationHoldDeps) => {
  const held = new Map<number, THeldOperation>();

  /** Reserves an operation for this process; its `started` settles once the target is free (or the operation is gone). */
  const reserve = async (ctx: TRequestContext, request: TOperationHoldRequest): Promise<THeldOperation> => {
    const { id } = await store.reserve(
      {
        ...request,
        params: { ...request.params },
        requestedBy: actorName(ctx.actor),
        source: ctx.sourceAddress,
        deadlineSeconds: HELD_DEADLINE_SECONDS,
      },
      workerId,
      leaseSeconds,
    );
    let ended = false;
    // Steps are written in order, and all of them before the operation ends (a step after its end is lost).
    let steps: Promise<unknown> = Promise.resolve();
    // Renewed three times per lease while it waits and while it runs, so one slow renewal does not lose it.
    const renewal = setInterval(
      () => void store.renewLease(id, workerId, leaseSeconds).catch(() => undefined),
      (leaseSeconds * 1000) / 3,
    );
    renewal.unref();
    const release = () => {
      ended = true;
      clearInterval(renewal);
      held.delete(id);
    };
    const started = (async () => {
      for (;;) {
        if ((await store.claimReserved(id, workerId, leaseSeconds)) !== undefined) return;
        if ((await store.renewLease(id, workerId, leaseSeconds)) === undefined) {
          const gone = await store.get(id);
          throw new ConflictError(
            `operation #${id} ended before ${request.target} was free (${gone?.state ?? "gone"}${gone?.error == null ? "" : `: ${gone.error}`})`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, pollMs));
      }
    })();
    started.catch(release);
    const operation: THeldOperation = {
      id,
      target: request.target,
      started,
      step: (step, detail) => {
        const at = new Date().toISOString();
        steps = steps.then(() => store.addStep(id, workerId, { step, detail, at })).catch(() => undefined);
      },
      finish: async (end) => {
        if (ended) return;
        await steps;
        release();
        await store.finish(id, workerId, {
          state: end.state,
          ...(end.error === undefined ? {} : { error: end.error }),
        });
      },
    };
    held.set(id, operation);
    return operation;
  };

  /** The operation the current call runs inside, when it holds `target`. */
  const joinable = (target: string): THeldOperation | undefined => {
    const current = currentOperation.getStore();
    return current?.target === target
      ? { ...current, started: Promise.resolve(), finish: async () => undefined }
      : undefined;
  };

  return {
    reserve,
    joinable,

    /** Runs `work` as an operation on the request's target: the current one when it holds that target, else one reserved now. */
    within: async <T>(
      ctx: TRequestContext,
      request: TOperationHoldRequest,
      work: (operation: THeldOperation) => Promise<T>,
    ): Promise<T> => {
      const joined = joinable(request.target);
      if (joined !== undefined) return work(joined);
      const operation = await reserve(ctx, request);
      await operation.started;
      try {
        const result = await currentOperation.run(operation, () => work(operation));
        await operation.finish({ state: "succeeded" });
        return result;
      } catch (error) {
        await operation.finish({ state: "failed", error: operationError(error) }).catch(() => undefined);
        throw error;
      }
    },

    /** carehost is stopping: every operation it holds ends interrupted. */
    interruptHeld: async (reason: string): Promise<void> => {
      await Promise.all(
        [...held.values()].map((operation) => operation.finish({ state: "interrupted", error: reason })),
      );
    },
  };
};

export type TOperationHold = ReturnType<typeof operationHoldFactory>;
