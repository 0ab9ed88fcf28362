// Claims operations from the queue and runs them, several at a time but never two of one target.
// A worker holds each operation through a lease it renews; when it dies (SIGKILL, a lost host), its
// leases run out and any worker's next pass marks those operations interrupted and hands them to
// `onInterrupted` to clean up after, as a start-up does. A worker that finds its lease gone (another
// replica interrupted it) stops the handler and writes nothing more to the operation.
import { currentOperation, newWorkerId, operationError } from "./operation-context.js";
import type { TOperationStore } from "./operation-store.js";
import type { TOperation, TOperationHandler, TOperationKind } from "./operation-types.js";

export type TOperationWorkerOptions = {
  readonly store: TOperationStore;
  readonly handlers: Partial<Record<TOperationKind, TOperationHandler>>;
  /** Names this worker in leases and in interruption messages; unique per process. */
  readonly workerId?: string;
  readonly leaseSeconds?: number;
  readonly pollMs?: number;
  /** How many operations (of different targets) this worker runs at once. */
  readonly concurrency?: number;
  /** An operation ended (by this worker, or found interrupted by its lease running out). */
  readonly onEnded?: (operation: TOperation) => Promise<void> | void;
  /** An operation another worker held was found with its lease run out, and is now interrupted. */
  readonly onInterrupted?: (operation: TOperation) => Promise<void> | void;
  readonly onError: (error: unknown) => void;
};

export { newWorkerId };

/** Why a running operation's signal was aborted; decides the state it ends in. */
type TAbortReason = "cancelled" | "deadline" | "lease-lost" | "stopping";

export const operationWorkerFactory = ({
  store,
  handlers,
  workerId = newWorkerId(),
  leaseSeconds = 30,
  pollMs = 1000,
  concurrency = 4,
  onEnded,
  onInterrupted,
  onError,
}: TOperationWorkerOptions) => {
  const kinds = Object.keys(handlers) as TOperationKind[];
  const running = new Map<number, { stop: () => void; done: Promise<void> }>();
  let timer: NodeJS.Timeout | undefined;
  let stopping = false;
  let pass: Promise<number> | undefined;

  const notify = async (hook: ((operation: TOperation) => Promise<void> | void) | undefined, operation: TOperation) => {
    try {
      await hook?.(operation);
    } catch (error) {
      onError(error);
    }
  };

  const execute = async (operation: TOperation): Promise<void> => {
    const handler = handlers[operation.kind];
    const controller = new AbortController();
    let reason: TAbortReason | undefined;
    const abort = (why: TAbortReason) => {
      if (reason !== undefined) return;
      reason = why;
      controller.abort(new Error(`operation ${operation.id}: ${why}`));
    };
    const entry = running.get(operation.id);
    if (entry !== undefined) entry.stop = () => abort("stopping");
    // Renewed three times per lease, so one slow renewal does not lose it.
    const renewal = setInterval(
      () => {
        store.renewLease(operation.id, workerId, leaseSeconds).then((held) => {
          if (held === undefined) abort("lease-lost");
          else if (held.cancelRequested) abort("cancelled");
        }, onError);
      },
      (leaseSeconds * 1000) / 3,
    );
    renewal.unref();
    const deadline = setTimeout(() => abort("deadline"), operation.deadlineSeconds * 1000);
    deadline.unref();
    const ending = await (async () => {
      if (handler === undefined) throw new Error(`no worker here runs operations of kind ${operation.kind}`);
      const step = async (name: string, detail: string) => {
        const held = await store.addStep(operation.id, workerId, { step: name, detail, at: new Date().toISOString() });
        if (!held) abort("lease-lost");
      };
      // Work the handler does on the operation's own target joins it (operation-hold's `within`);
      // the steps it records that way are written, in order, before the operation ends.
      let joinedSteps: Promise<unknown> = Promise.resolve();
      const current = {
        id: operation.id,
        target: operation.target,
        step: (name: string, detail: string) => {
          joinedSteps = joinedSteps.then(() => step(name, detail)).catch(onError);
        },
      };
      try {
        return await currentOperation.run(current, () => handler({ operation, signal: controller.signal, step }));
      } finally {
        await joinedSteps;
      }
    })().then(
      (result) => ({ ok: true as const, result }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    clearInterval(renewal);
    clearTimeout(deadline);
    // Someone else ended it (its lease ran out while this worker hung): what it did is not ours to record.
    if (reason === "lease-lost") return;
    // Work that finished succeeded, whatever was asked of it meanwhile: a cancel or a deadline it did
    // not stop for is noted beside its result, never turned into a failure it was not.
    const late =
      reason === "cancelled"
        ? "finished although a cancel was requested"
        : reason === "deadline"
          ? `finished after its deadline of ${operation.deadlineSeconds} s`
          : undefined;
    const end = ending.ok
      ? { state: "succeeded" as const, result: ending.result ?? null, ...(late === undefined ? {} : { error: late }) }
      : reason === "cancelled"
        ? { state: "cancelled" as const, error: `cancelled while running: ${operationError(ending.error)}` }
        : reason === "deadline"
          ? {
              state: "failed" as const,
              error: `deadline of ${operation.deadlineSeconds} s passed: ${operationError(ending.error)}`,
            }
          : reason === "stopping"
            ? {
                state: "interrupted" as const,
                error: `interrupted: carehost stopped (${operationError(ending.error)})`,
              }
            : { state: "failed" as const, error: operationError(ending.error) };
    const ended = await store.finish(operation.id, workerId, end);
    if (ended !== undefined) await notify(onEnded, ended);
  };

  /** Interrupts what ran out of lease, then claims until this worker runs `concurrency` operations. */
  const runPass = async (): Promise<number> => {
    for (const interrupted of await store.expireLeases()) {
      await notify(onInterrupted, interrupted);
      await notify(onEnded, interrupted);
    }
    let claimed = 0;
    while (!stopping && running.size < concurrency && kinds.length > 0) {
      const operation = await store.claim(workerId, leaseSeconds, kinds);
      if (operation === undefined) break;
      claimed += 1;
      const entry = { stop: () => undefined as void, done: Promise.resolve() };
      running.set(operation.id, entry);
      entry.done = execute(operation)
        .catch(onError)
        .finally(() => running.delete(operation.id));
    }
    return claimed;
  };

  /** One pass, never two at once (a timer tick and a caller's wake-up share it). */
  const poll = (): Promise<number> => {
    pass ??= runPass()
      .catch((error: unknown) => {
        onError(error);
        return 0;
      })
      .finally(() => (pass = undefined));
    return pass;
  };

  return {
    workerId,
    /** Starts polling; `wake` makes a pass at once (after an enqueue on this replica). */
    start: () => {
      stopping = false;
      timer ??= setInterval(() => void poll(), pollMs);
      timer.unref();
    },
    wake: () => void poll(),
    poll,
    /** Operations this worker runs now. */
    runningIds: () => [...running.keys()],
    /** Waits until everything this worker runs has ended (tests, benchmarks). */
    idle: async () => {
      await pass;
      await Promise.all([...running.values()].map((entry) => entry.done));
    },
    /**
     * Stops claiming; what runs gets `graceMs` to end on its own, then its signal is aborted and it
     * ends interrupted. Resolves once every handler returned.
     */
    stop: async (graceMs = 0) => {
      stopping = true;
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      await pass;
      const all = Promise.all([...running.values()].map((entry) => entry.done));
      await Promise.race([all, new Promise((resolve) => setTimeout(resolve, graceMs).unref())]);
      for (const entry of running.values()) entry.stop();
      await all;
    },
  };
};

export type TOperationWorker = ReturnType<typeof operationWorkerFactory>;
