// What an operation is: one state-changing action, recorded before anything is touched, claimed by
// one worker, with its steps, result and end. The shapes the queue, the workers and the API share.

export const OPERATION_KINDS = [
  "apply",
  "gitops-commit",
  "backup",
  "filestore-snapshot",
  "verify",
  "expire",
  "restore",
  "drill",
  "secret-rotation",
  "destroy",
] as const;
export type TOperationKind = (typeof OPERATION_KINDS)[number];

export const OPERATION_STATES = [
  "pending",
  "scheduled",
  "running",
  "succeeded",
  "failed",
  "interrupted",
  "cancelled",
] as const;
export type TOperationState = (typeof OPERATION_STATES)[number];
export const OPEN_STATES: readonly TOperationState[] = ["pending", "scheduled", "running"];
export const isFinished = (state: TOperationState) => !OPEN_STATES.includes(state);

export type TOperationStep = { readonly step: string; readonly detail: string; readonly at: string };

export type TOperation = {
  readonly id: number;
  readonly organization: string;
  readonly environment: string | null;
  /** What the operation holds while it runs: one running operation per target (a cluster). */
  readonly target: string;
  readonly kind: TOperationKind;
  readonly params: Readonly<Record<string, unknown>>;
  readonly requestedBy: string;
  readonly source: string | null;
  readonly changeRequest: number | null;
  readonly state: TOperationState;
  readonly notBefore: Date;
  readonly deadlineSeconds: number;
  readonly dedupeKey: string | null;
  readonly leaseOwner: string | null;
  readonly leaseExpiresAt: Date | null;
  readonly attempts: number;
  readonly cancelRequested: boolean;
  readonly steps: readonly TOperationStep[];
  readonly result: unknown;
  readonly error: string | null;
  readonly createdAt: Date;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
};

export type TOperationRequest = {
  readonly organization: string;
  readonly environment?: string;
  readonly target: string;
  readonly kind: TOperationKind;
  readonly params?: Readonly<Record<string, unknown>>;
  readonly requestedBy: string;
  readonly source?: string;
  readonly changeRequest?: number;
  /** Not claimed before this instant (a change waiting for its maintenance window). */
  readonly notBefore?: Date;
  readonly deadlineSeconds: number;
  /** At most one open operation per key: enqueueing another while one is open returns the open one. */
  readonly dedupeKey?: string;
};

/** What a worker's handler is given while it runs an operation. */
export type TOperationContext = {
  readonly operation: TOperation;
  /** Aborted when the operation is cancelled, passes its deadline, loses its lease, or the worker stops. */
  readonly signal: AbortSignal;
  /** Records a completed step on the operation, for followers and the record. */
  step(step: string, detail: string): Promise<void>;
};

/**
 * Runs one kind of operation. Failure rules: a handler that throws has failed and must leave what
 * it touched as it found it or say in its error what it left; one whose signal aborts stops at its
 * next safe point and throws. Its return value is the operation's result (JSON).
 */
export type TOperationHandler = (context: TOperationContext) => Promise<unknown>;
