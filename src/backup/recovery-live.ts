// Runs as this carehost runs them: a cluster's runs one after another, each started apart from
// whoever asked for it (launch) and heard step by step by its followers (follow, also of a run
// another replica runs), and a stop that starts no new run and marks those going interrupted
// (shutdown).
import { ConflictError, DomainError } from "../lib/errors.js";
import { systemContext } from "../lib/request-context.js";
import { serialQueueByKey } from "../lib/serial-queue.js";
import type { TRequestContext } from "../lib/request-context.js";
import type { TEnvironmentSpec, TOrganizationSpec } from "../spec/spec-schema.js";
import { clusterOf } from "./recovery-context.js";
import type { TRecoveryContext } from "./recovery-context.js";
import type { TRecoveryInterruption } from "./recovery-interruption.js";
import type { TOperationKind } from "../operations/operation-types.js";
import { currentOperation } from "../operations/operation-context.js";
import type { TRunOperation } from "./recovery-operations.js";
import { asError, interruptedError, message } from "./recovery-runs.js";
import type { TRecoveryRuns, TRunEnd, TRunEvent, TRunKind, TRunRef, TRunStep, TStartedRun } from "./recovery-runs.js";

type TLiveRun = TRunRef & {
  steps: TRunStep[];
  listeners: Set<(event: TRunEvent) => void>;
  ended: Promise<TRunEnd>;
  end: (outcome: TRunEnd) => void;
  finished: boolean;
  /** The work itself, which a stop does not wait for beyond its grace. */
  work: Promise<unknown>;
  operation: TRunOperation;
};
/** How long a finished run stays in memory, for a follower that reconnects to hear its error as it was thrown (its row says it in words). */
const KEEP_FINISHED_MS = 10 * 60 * 1000;
/** How often a follower of a run another carehost (a replica) runs reads its row again. */
const POLL_MS = 1000;
export const unwrap = <T>(outcome: { ok: true; result: T } | { ok: false; error: Error }): T => {
  if (!outcome.ok) throw outcome.error;
  return outcome.result;
};

export const recoveryLiveFactory = ({
  runtimeOrRefuse,
  endCommands,
  operations,
  visibleRun,
  runView,
  interruptRows,
}: Pick<TRecoveryContext, "runtimeOrRefuse" | "endCommands" | "operations"> &
  Pick<TRecoveryRuns, "visibleRun" | "runView"> &
  Pick<TRecoveryInterruption, "interruptRows">) => {
  // pgBackRest takes a lock per stanza and refuses a second backup meanwhile; environments that
  // share a cluster share its stanza, so a cluster's backups, restores and drills run one after
  // another, and another cluster's (staging's beside a hung restore of prod) do not wait for them.
  const queue = serialQueueByKey();
  // A stopping carehost marks what runs interrupted, so a run queued behind another must not start when its turn comes.
  const exclusive = <T>(
    organization: TOrganizationSpec,
    environment: TEnvironmentSpec,
    operation: () => Promise<T>,
  ): Promise<T> =>
    queue(clusterOf(organization, environment), async () => {
      if (stopping) throw interruptedError();
      return operation();
    });

  let stopping = false;
  const live = new Map<string, TLiveRun>();
  const keyOf = (kind: TRunKind, id: number) => `${kind}/${id}`;
  /** Refused before a run is recorded: nothing to run it with, or a carehost on its way down. */
  const refuseToStart = () => {
    runtimeOrRefuse();
    if (stopping)
      throw new ConflictError(
        "carehost is stopping and starts no new backup, restore or drill; run it again once carehost is up again",
      );
  };

  /**
   * Runs `work` apart from whoever asked for it, once its operation may touch the cluster: its
   * steps are kept for followers (and on the operation), its end is heard through `ended`, which
   * never rejects (a run nobody follows must not crash the server), and the operation ends with it.
   * A run whose operation ended while it waited for its cluster (cancelled, interrupted) never
   * starts: its row is marked interrupted with the reason.
   */
  const launch = <T>(
    ref: TRunRef,
    operation: TRunOperation,
    work: (onStep: (step: TRunStep) => void) => Promise<T>,
    listener?: (event: TRunEvent) => void,
  ): TStartedRun<T> => {
    let resolveEnd!: (outcome: TRunEnd) => void;
    const run: TLiveRun = {
      ...ref,
      steps: [],
      listeners: new Set(listener === undefined ? [] : [listener]),
      ended: new Promise<TRunEnd>((resolve) => (resolveEnd = resolve)),
      finished: false,
      work: Promise.resolve(),
      operation,
      end: (outcome) => {
        if (run.finished) return;
        run.finished = true;
        run.listeners.clear();
        resolveEnd(outcome);
        setTimeout(() => live.delete(keyOf(ref.kind, ref.id)), KEEP_FINISHED_MS).unref();
      },
    };
    live.set(keyOf(ref.kind, ref.id), run);
    const onStep = (step: TRunStep) => {
      if (run.finished) return;
      const event = { ...step, index: run.steps.length };
      run.steps.push(step);
      operation.step(step);
      for (const notify of run.listeners) notify(event);
    };
    const finishOperation = (end: Parameters<TRunOperation["finish"]>[0]) =>
      operation.finish(end).catch(() => undefined);
    // The work runs inside its operation: a run nested in it on the same cluster (a restore's safety backup) joins it.
    const inside = {
      id: operation.id,
      target: operation.target,
      step: (step: string, detail: string) => operation.step({ step, detail, durationMs: 0 }),
    };
    run.work = operation.started.then(
      () =>
        currentOperation
          .run(inside, () => work(onStep))
          .then(
            async (result) => {
              await finishOperation({ state: "succeeded" });
              run.end({ ok: true, result });
            },
            async (error: unknown) => {
              await finishOperation({ state: "failed", error: message(error) });
              run.end({ ok: false, state: "failed", error: asError(error) });
            },
          ),
      async (error: unknown) => {
        await interruptRows(systemContext("operations"), [ref], message(error)).catch(() => undefined);
        run.end({ ok: false, state: "interrupted", error: asError(error) });
      },
    );
    return { ref, ended: run.ended as Promise<{ ok: true; result: T } | { ok: false; error: Error }> };
  };

  /**
   * A run's operation, then its row: refused before either is written when nothing can run it; the
   * row names its operation, and an operation whose row could not be written ends failed.
   */
  const beginRun = async (
    ctx: TRequestContext,
    request: {
      readonly kind: TOperationKind;
      readonly organization: TOrganizationSpec;
      /** The environment whose cluster the run holds. */
      readonly environment: TEnvironmentSpec;
      readonly params?: object;
    },
    insert: (operationId: number) => Promise<number>,
  ): Promise<{ id: number; operation: TRunOperation }> => {
    refuseToStart();
    const operation = await operations.operationFor(ctx, {
      organization: request.organization.metadata.name,
      environment: request.environment.name,
      target: clusterOf(request.organization, request.environment),
      kind: request.kind,
      params: request.params ?? {},
    });
    try {
      return { id: await insert(operation.id), operation };
    } catch (error) {
      await operation.finish({ state: "failed", error: message(error) }).catch(() => undefined);
      throw error;
    }
  };

  return {
    exclusive,
    refuseToStart,
    beginRun,
    launch,

    /**
     * Follows a run: `onEvent` hears each step after the first `after` (those already done at
     * once), then the promise settles with how the run ended. A run this carehost runs is heard
     * as it happens; one another replica runs, by reading its row every second. `signal` (the
     * follower went away) stops the following, never the run.
     */
    follow: async (
      ctx: TRequestContext,
      kind: TRunKind,
      id: number,
      after: number,
      onEvent: (event: TRunEvent) => void,
      signal: AbortSignal,
    ): Promise<TRunEnd | undefined> => {
      await visibleRun(ctx, kind, id);
      const running = live.get(keyOf(kind, id));
      if (running !== undefined) {
        running.steps.slice(after).forEach((step, index) => onEvent({ ...step, index: after + index }));
        if (running.finished) return running.ended;
        const listener = (event: TRunEvent) => onEvent(event);
        running.listeners.add(listener);
        const gone = new Promise<undefined>((resolve) =>
          signal.addEventListener("abort", () => resolve(undefined), { once: true }),
        );
        try {
          return await Promise.race([running.ended, gone]);
        } finally {
          running.listeners.delete(listener);
        }
      }
      let heard = after;
      for (;;) {
        const view = await runView(kind, id);
        view.steps.slice(heard).forEach((step, index) => onEvent({ ...step, index: heard + index }));
        heard = Math.max(heard, view.steps.length);
        if (view.state !== "running" || view.result !== null) {
          if (view.result !== null) return { ok: true, result: view.result };
          return {
            ok: false,
            state: view.state === "interrupted" ? "interrupted" : "failed",
            error:
              view.state === "interrupted" ? interruptedError() : new DomainError(view.error ?? `the ${kind} failed`),
          };
        }
        if (stopping || signal.aborted) return undefined;
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
    },

    /**
     * carehost is stopping: no new run starts, every run going is marked interrupted and audited
     * (its followers hear so at once), and the commands they wait for are ended. The runs get
     * `graceMs` to unwind; what they leave half-done, the next start repairs as after a SIGKILL.
     */
    shutdown: async (graceMs = 8000): Promise<number> => {
      stopping = true;
      const going = [...live.values()].filter((run) => !run.finished);
      const interrupted = await interruptRows(systemContext("shutdown"), going);
      await operations.interruptHeld(interruptedError().message);
      for (const run of going) run.end({ ok: false, state: "interrupted", error: interruptedError() });
      // The registry is the process's: a process runs one carehost (tests that start two in one process stop them with nothing going).
      if (going.length > 0) endCommands();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled(going.map((run) => run.work)),
        new Promise((resolve) => (timer = setTimeout(resolve, graceMs))),
      ]);
      clearTimeout(timer);
      return interrupted;
    },
  };
};

export type TRecoveryLive = ReturnType<typeof recoveryLiveFactory>;
