// Every backup, verification, restore and drill is an operation (src/operations/): a row written
// before the run touches anything, holding the run's cluster as its target, so that replicas
// sharing one PostgreSQL never run two things on one cluster, and one that dies mid-run is found
// by its lease running out and repaired by another. A run inside an operation that already holds
// its cluster (a worker's scheduled backup, a restore's safety backup) belongs to that operation;
// any other (a person's restore, a change's pre-change backup) reserves its own through the hold
// and runs in this process once the cluster is free.
import type { TOperationHold, TOperationHoldRequest } from "../operations/operation-hold.js";
import type { TRunStep } from "./recovery-runs.js";

/** The operation a run belongs to, as the run sees it. */
export type TRunOperation = {
  readonly id: number;
  readonly target: string;
  /** Resolves once the run may touch its cluster; rejects when the operation ended while it waited (cancelled, interrupted). */
  readonly started: Promise<void>;
  /** Records a completed step on the operation too (best effort: the run's own row has it). */
  step(step: TRunStep): void;
  /** Ends the operation as the run ended; a no-op for an operation the run joined (its holder ends it). */
  finish(end: { readonly state: "succeeded" | "failed" | "interrupted"; readonly error?: string }): Promise<void>;
};

export const recoveryOperationsFactory = ({
  hold,
}: {
  hold: Pick<TOperationHold, "joinable" | "reserve" | "interruptHeld">;
}) => ({
  /** The operation a run belongs to: the one the call runs inside when it holds the cluster, or one reserved now. */
  operationFor: async (
    ctx: Parameters<TOperationHold["reserve"]>[0],
    request: TOperationHoldRequest,
  ): Promise<TRunOperation> => {
    const operation = hold.joinable(request.target) ?? (await hold.reserve(ctx, request));
    return { ...operation, step: (step) => operation.step(step.step, step.detail), finish: operation.finish };
  },

  /** carehost is stopping: every operation this process holds (its runs', its applies') ends interrupted. */
  interruptHeld: hold.interruptHeld,
});

export type TRecoveryOperations = ReturnType<typeof recoveryOperationsFactory>;
