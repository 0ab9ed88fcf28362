// Backups, verification, restores and restore drills as people and the scheduler ask for them:
// authorized, recorded (backup_runs, restore_runs, restore_drills) and audited with size, duration
// and result. A drill that fails or misses an objective is an alert: it shows in `status` until a
// drill passes. Each is a run of the server's, not of the request that asked for it: it is refused
// or started at once (start*), then followed by its id, step by step, to its result; a client that
// goes away changes nothing, and a stopping carehost marks it interrupted (shutdown).
//
// This file composes the service from its parts, one responsibility each:
//   recovery-context.ts       deps, the driver or its refusal, the environment a request names
//   recovery-runs.ts          run records: types, rows, listings, one run's view
//   recovery-run-end.ts       ending a run's row with its audit entries
//   recovery-live.ts          a cluster's runs in turn, launch, follow, shutdown
//   recovery-operations.ts    the operation each run belongs to (the cluster it holds, its lease)
//   recovery-interruption.ts  runs a stopped carehost left "running"
//   recovery-backups.ts       backup (with expiry), verify, filestore snapshot
//   recovery-restores.ts      restore into a copy, in place, into another environment
//   recovery-drills.ts        restore drills against the objectives
//   recovery-schedule.ts      what the schedules say is due, run or enqueued
// The runtime it drives is a TRecoveryDriver (recovery-driver.ts).
import type { TRequestContext } from "../lib/request-context.js";
import { recoveryBackupsFactory } from "./recovery-backups.js";
import { recoveryContextFactory } from "./recovery-context.js";
import type { TRecoveryServiceDeps } from "./recovery-context.js";
import type { TBackupType } from "./recovery-driver.js";
import { recoveryDrillsFactory } from "./recovery-drills.js";
import { recoveryInterruptionFactory } from "./recovery-interruption.js";
import { recoveryLiveFactory } from "./recovery-live.js";
import { recoveryRestoresFactory } from "./recovery-restores.js";
import { recoveryRunEndFactory } from "./recovery-run-end.js";
import { recoveryRunsFactory } from "./recovery-runs.js";
import { recoveryScheduleFactory } from "./recovery-schedule.js";

export const recoveryServiceFactory = (deps: TRecoveryServiceDeps) => {
  const context = recoveryContextFactory(deps);
  const { locate } = context;
  const runs = recoveryRunsFactory(context);
  const interruption = recoveryInterruptionFactory(context);
  const live = recoveryLiveFactory({ ...context, ...runs, ...interruption });
  const runEnd = recoveryRunEndFactory(context);
  const { startBackup, runBackup, startVerify, runVerify, runFilestoreSnapshot } = recoveryBackupsFactory({
    ...context,
    ...live,
    ...runEnd,
  });
  const { startDrill, runDrill } = recoveryDrillsFactory({ ...context, ...live, ...runEnd, ...runs });
  const { startRestore, restore } = recoveryRestoresFactory({ ...context, ...live, ...runEnd, runBackup });
  const schedule = recoveryScheduleFactory({
    ...context,
    ...runs,
    runBackup,
    runVerify,
    runFilestoreSnapshot,
    runDrill,
  });

  return {
    /** Starts a backup and answers at once with the run; `backup` waits for its result. */
    startBackup: async (
      ctx: TRequestContext,
      input: { environment: string; organization?: string; kind: TBackupType },
    ) => {
      const { organization, environment } = await locate(ctx, "backup:run", input.environment, input.organization);
      return startBackup(ctx, organization, environment, input.kind, "manual");
    },
    backup: async (ctx: TRequestContext, input: { environment: string; organization?: string; kind: TBackupType }) => {
      const { organization, environment } = await locate(ctx, "backup:run", input.environment, input.organization);
      return runBackup(ctx, organization, environment, input.kind, "manual");
    },

    startVerify: async (ctx: TRequestContext, input: { environment: string; organization?: string }) => {
      const { organization, environment } = await locate(ctx, "backup:run", input.environment, input.organization);
      return startVerify(ctx, organization, environment, "manual");
    },
    verify: async (ctx: TRequestContext, input: { environment: string; organization?: string }) => {
      const { organization, environment } = await locate(ctx, "backup:run", input.environment, input.organization);
      return runVerify(ctx, organization, environment, "manual");
    },

    startDrill: async (ctx: TRequestContext, input: { environment: string; organization?: string }) => {
      const { organization, environment } = await locate(ctx, "restore:run", input.environment, input.organization);
      return startDrill(ctx, organization, environment, "manual");
    },
    drill: async (ctx: TRequestContext, input: { environment: string; organization?: string }) => {
      const { organization, environment } = await locate(ctx, "restore:run", input.environment, input.organization);
      return runDrill(ctx, organization, environment, "manual");
    },

    startRestore,
    restore,

    run: runs.visibleRun,
    follow: live.follow,
    shutdown: live.shutdown,

    listBackups: runs.listBackups,
    listRestores: runs.listRestores,
    listDrills: runs.listDrills,
    summaries: runs.summaries,

    runDue: schedule.runDue,
    runDueFor: schedule.runDueFor,
    scheduledOperationsFor: schedule.scheduledOperationsFor,
    runScheduled: schedule.runScheduled,

    markInterrupted: interruption.markInterrupted,
    markInterruptedFor: interruption.markInterruptedFor,
  };
};

export type TRecoveryService = ReturnType<typeof recoveryServiceFactory>;
