// What travels with a call that runs inside an operation: the operation itself (set by the worker
// around a handler and by operation-hold's `within`), so work nested in it on the same target joins
// it rather than waiting for itself; and the name a process holds its leases under.
import { AsyncLocalStorage } from "node:async_hooks";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";

export type TCurrentOperation = {
  readonly id: number;
  readonly target: string;
  step(step: string, detail: string): void;
};

export const currentOperation = new AsyncLocalStorage<TCurrentOperation>();

/** An error as an operation's record keeps it: its message, bounded. */
export const operationError = (error: unknown) =>
  (error instanceof Error ? error.message : String(error)).slice(0, 2000);

export const newWorkerId = () => `${hostname()}/${process.pid}/${randomBytes(3).toString("hex")}`;
