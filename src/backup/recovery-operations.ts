// Every backup, verification, restore and drill is an operation (src/operations/): a row written
// before the run touches anything, holding the run's cluster as its target, so that replicas
// sharing one PostgreSQL never run two things on one cluster, and one that dies mid-run is found
// by its lease running out and repaired by another. A run a worker's operation carries (a
// scheduled backup) belongs to that operation; any other (a person's restore, a change's
// pre-change backup) reserves its own here and runs in this process once its cluster is free.
import { ConflictError } from "../lib/errors.js";
import { actorName } from "../lib/request-context.js";
import type { TRequestContext } from "../lib/request-context.js";
import { newWorkerId } from "../operations/operation-worker.js";
import type { TOperationStore } from "../operations/operation-store.js";
import type { TOperationKind } from "../operations/operation-types.js";
import type { TRunStep } from "./recovery-runs.js";

/** The operation a run belongs to, as the run sees it. */
export type TRunOperation = {
  readonly id: number;
  /** Resolves once the run may touch its cluster; rejects when the operation ended while it waited (cancelled, interrupted). */
  readonly started: Promise<void>;
  /** Records a completed step on the operation too (best effort: the run's own row has it). */
  step(step: TRunStep): void;
  /** Ends the operation as the run ended; a no-op for an operation a worker holds (the worker ends it). */
  finish(end: { readonly state: "succeeded" | "failed" | "interrupted"; readonly error?: string }): Promise<void>;
};

/** An operation a worker claimed and runs the run inside (a scheduled one). */
export type TRunVia = {
  readonly operationId: number;
  readonly step: (step: string, detail: string) => Promise<void>;
};

export type TRecoveryOperationsDeps = {
  readonly store: Pick<TOperationStore, "reserve" | "claimReserved" | "renewLease" | "addStep" | "finish" | "get">;
  readonly workerId?: string;
  readonly leaseSeconds?: number;
  /** How often a run waiting for its cluster looks again. */
  readonly pollMs?: number;
};

/** A person's run is not held to a deadline: a restore of a large database takes what it takes. */
const RUN_DEADLINE_SECONDS = 7 * 24 * 3600;

export const recoveryOperationsFactory = ({
  store,
  workerId = newWorkerId(),
  leaseSeconds = 30,
  pollMs = 500,
}: TRecoveryOperationsDeps) => {
  /** Operations this process holds for its runs, ended as interrupted when it stops. */
  const held = new Map<number, TRunOperation>();

  const reserve = async (
    ctx: TRequestContext,
    request: { organization: string; environment: string; target: string; kind: TOperationKind; params: object },
  ): Promise<TRunOperation> => {
    const operation = await store.reserve(
      {
        ...request,
        params: { ...request.params },
        requestedBy: actorName(ctx.actor),
        source: ctx.sourceAddress,
        deadlineSeconds: RUN_DEADLINE_SECONDS,
      },
      workerId,
      leaseSeconds,
    );
    const { id } = operation;
    let ended = false;
    // Renewed three times per lease while it waits and while it runs, so one slow renewal does not lose it.
    const renewal = setInterval(
      () => void store.renewLease(id, workerId, leaseSeconds).catch(() => undefined),
      (leaseSeconds * 1000) / 3,
    );
    renewal.unref();
    const started = (async () => {
      for (;;) {
        if ((await store.claimReserved(id, workerId, leaseSeconds)) !== undefined) return;
        if ((await store.renewLease(id, workerId, leaseSeconds)) === undefined) {
          const gone = await store.get(id);
          throw new ConflictError(
            `operation #${id} ended before its cluster was free (${gone?.state ?? "gone"}${gone?.error == null ? "" : `: ${gone.error}`})`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, pollMs));
      }
    })();
    const run: TRunOperation = {
      id,
      started,
      step: (step) =>
        void store
          .addStep(id, workerId, { step: step.step, detail: step.detail, at: new Date().toISOString() })
          .catch(() => undefined),
      finish: async (end) => {
        if (ended) return;
        ended = true;
        clearInterval(renewal);
        held.delete(id);
        await store.finish(id, workerId, {
          state: end.state,
          result: { run: true },
          ...(end.error === undefined ? {} : { error: end.error }),
        });
      },
    };
    // A run that could not start ends its operation with it.
    started.catch(() => {
      ended = true;
      clearInterval(renewal);
      held.delete(id);
    });
    held.set(id, run);
    return run;
  };

  return {
    /** The operation a run belongs to: the worker's it runs inside, or one reserved for it now. */
    operationFor: (
      ctx: TRequestContext,
      via: TRunVia | undefined,
      request: { organization: string; environment: string; target: string; kind: TOperationKind; params: object },
    ): Promise<TRunOperation> =>
      via === undefined
        ? reserve(ctx, request)
        : Promise.resolve({
            id: via.operationId,
            started: Promise.resolve(),
            step: (step) => void via.step(step.step, step.detail).catch(() => undefined),
            finish: async () => undefined,
          }),

    /** carehost is stopping: every operation it holds for a run ends interrupted. */
    interruptHeld: async (reason: string): Promise<void> => {
      await Promise.all([...held.values()].map((run) => run.finish({ state: "interrupted", error: reason })));
    },
  };
};

export type TRecoveryOperations = ReturnType<typeof recoveryOperationsFactory>;
