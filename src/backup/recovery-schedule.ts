// The scheduler's side of recovery: what the spec's schedules say is due for an environment
// (dueWorkFor), run one after another by a pass (runDueFor, runDue), or enqueued as operations for
// any replica's worker to claim (scheduledOperationsFor) and run if still due when claimed
// (runScheduled).
import { systemContext } from "../lib/request-context.js";
import { nextCronRun, parseCron } from "../spec/cron.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import { archiveTimeoutSeconds } from "./pgbackrest-config.js";
import type { TRecoveryBackups } from "./recovery-backups.js";
import { clusterOf } from "./recovery-context.js";
import type { TBackedUp, TRecoveryContext } from "./recovery-context.js";
import type { TBackupType } from "./recovery-driver.js";
import type { TRecoveryDrills } from "./recovery-drills.js";
import type { TRecoveryRuns } from "./recovery-runs.js";

const VERIFY_INTERVAL_MS = 24 * 3600 * 1000;
/** A scheduled backup, verification or drill not finished within this is failed and its cluster freed. */
const SCHEDULED_DEADLINE_SECONDS = 6 * 3600;

/** One piece of work a schedule says is due. */
type TDueWork =
  | { readonly kind: "backup"; readonly backupType: TBackupType }
  | { readonly kind: "filestore-snapshot" | "verify" | "drill" };

/** A due piece of work as the operation queue records it (operation-types' TOperationRequest, less who asked). */
export type TScheduledOperation = {
  readonly organization: string;
  readonly environment: string;
  readonly target: string;
  readonly kind: TDueWork["kind"];
  readonly params: Readonly<Record<string, unknown>>;
  readonly dedupeKey: string;
  readonly deadlineSeconds: number;
};

export const recoveryScheduleFactory = ({
  latestSpecs,
  now,
  runsRecovery,
  backupRows,
  drillRows,
  runBackup,
  runVerify,
  runFilestoreSnapshot,
  runDrill,
}: Pick<TRecoveryContext, "latestSpecs" | "now" | "runsRecovery"> &
  Pick<TRecoveryRuns, "backupRows" | "drillRows"> &
  Pick<TRecoveryBackups, "runBackup" | "runVerify" | "runFilestoreSnapshot"> &
  Pick<TRecoveryDrills, "runDrill">) => {
  /** The most recent time `cron` fired at or before `at` (searching back up to 8 days). */
  const lastFiring = (cron: string, at: Date): Date | undefined => {
    const parsed = parseCron(cron);
    if (!parsed.ok) return undefined;
    let next = nextCronRun(parsed.schedule, new Date(at.getTime() - 8 * 24 * 3600 * 1000));
    let last: Date | undefined;
    while (next !== undefined && next <= at) {
      last = next;
      next = nextCronRun(parsed.schedule, next);
    }
    return last;
  };

  /**
   * What the schedules say is due for one environment at `at`: a backup (a full first, while none
   * succeeded; then the largest kind whose slot fired), else a filestore snapshot every quarter of
   * the RPO, then a verification once a day and a drill when its schedule fired.
   */
  const dueWorkFor = async (organization: TOrganizationSpec, environment: TBackedUp, at: Date): Promise<TDueWork[]> => {
    // Only a succeeded run counts: a failed one is retried at the next pass.
    const latest = (kind: string) =>
      backupRows("WHERE organization = $1 AND environment = $2 AND kind = $3 AND status = 'succeeded'", [
        organization.metadata.name,
        environment.name,
        kind,
      ]).then((rows) => rows[0]);
    const lastFull = await latest("full");
    // No full backup yet (a new environment, or every attempt failed): take one now; diff and incr need it as their base.
    if (lastFull === undefined) return [{ kind: "backup", backupType: "full" }];
    const due: TDueWork[] = [];
    const schedules: [TBackupType, string | undefined][] = [
      ["full", environment.backup.schedule.full],
      ["diff", environment.backup.schedule.differential],
      ["incr", environment.backup.schedule.incremental],
    ];
    for (const [kind, cron] of schedules) {
      if (cron === undefined) continue;
      const last = kind === "full" ? lastFull : await latest(kind);
      const fired = lastFiring(cron, at);
      // Any newer backup of a larger kind covers a smaller one's slot (a full covers a diff).
      const covering = [lastFull, ...(kind === "incr" ? [await latest("diff")] : []), last]
        .filter((run) => run !== undefined)
        .map((run) => run.startedAt);
      if (fired === undefined || covering.some((time) => time >= fired)) continue;
      due.push({ kind: "backup", backupType: kind });
      break;
    }
    // The filestore between database backups: a snapshot every quarter of the RPO when it changed.
    const lastFilestore = (
      await backupRows("WHERE organization = $1 AND environment = $2 AND kind = 'filestore'", [
        organization.metadata.name,
        environment.name,
      ])
    )[0];
    const lastSnapshotAt = Math.max(lastFull.startedAt.getTime(), lastFilestore?.startedAt.getTime() ?? 0);
    if (
      due.length === 0 &&
      at.getTime() - lastSnapshotAt >= archiveTimeoutSeconds(environment.backup.rpoMinutes) * 1000
    )
      due.push({ kind: "filestore-snapshot" });
    // Repository verification once a day: a backup counts only while what holds it reads back whole.
    const lastVerify = await latest("verify").then(
      async (succeeded) =>
        succeeded ??
        (
          await backupRows("WHERE organization = $1 AND environment = $2 AND kind = 'verify'", [
            organization.metadata.name,
            environment.name,
          ])
        )[0],
    );
    if (lastVerify === undefined || at.getTime() - lastVerify.startedAt.getTime() >= VERIFY_INTERVAL_MS)
      due.push({ kind: "verify" });
    const drillCron = environment.backup.restoreDrill?.schedule;
    const fired = drillCron === undefined ? undefined : lastFiring(drillCron, at);
    const lastDrill = (
      await drillRows("WHERE organization = $1 AND environment = $2", [organization.metadata.name, environment.name])
    )[0];
    if (fired !== undefined && (lastDrill === undefined || lastDrill.startedAt < fired)) due.push({ kind: "drill" });
    return due;
  };

  /**
   * Runs one piece of due work as the scheduler (inside the worker's operation when a worker
   * claimed it: the run joins it); rejects with a failed run's error (recorded on its run already).
   */
  const runDueWork = async (
    organization: TOrganizationSpec,
    environment: TBackedUp,
    work: TDueWork,
  ): Promise<unknown> => {
    const ctx = systemContext("scheduler");
    if (work.kind === "backup") return runBackup(ctx, organization, environment, work.backupType, "schedule");
    if (work.kind === "filestore-snapshot") return runFilestoreSnapshot(ctx, organization, environment);
    if (work.kind === "verify") return runVerify(ctx, organization, environment, "schedule");
    return runDrill(ctx, organization, environment, "schedule");
  };

  const backedUp = (organization: TOrganizationSpec) =>
    organization.environments.filter((item): item is TBackedUp => item.backup.enabled);

  /** The backups, verifications and drills the schedules say are due for one organization, run one after another. */
  const runDueFor = async (organization: TOrganizationSpec): Promise<number> => {
    if (!runsRecovery) return 0;
    let started = 0;
    for (const environment of backedUp(organization)) {
      for (const work of await dueWorkFor(organization, environment, now())) {
        started += work.kind === "filestore-snapshot" ? 0 : 1;
        // A failed run is recorded (and audited) as failed; the next pass retries it.
        await runDueWork(organization, environment, work).catch(() => undefined);
      }
    }
    return started;
  };

  /**
   * What is due for one organization, as operations for the queue (one per environment and kind of
   * work, by dedupe key): replicas ticking at once add each once, and the worker that claims it runs it.
   */
  const scheduledOperationsFor = async (organization: TOrganizationSpec): Promise<TScheduledOperation[]> => {
    if (!runsRecovery) return [];
    const operations: TScheduledOperation[] = [];
    for (const environment of backedUp(organization)) {
      for (const work of await dueWorkFor(organization, environment, now())) {
        const kind = work.kind === "filestore-snapshot" ? "filestore-snapshot" : work.kind;
        operations.push({
          organization: organization.metadata.name,
          environment: environment.name,
          target: clusterOf(organization, environment),
          kind,
          params: work.kind === "backup" ? { backupType: work.backupType } : {},
          dedupeKey: `schedule:${kind}:${organization.metadata.name}/${environment.name}`,
          deadlineSeconds: SCHEDULED_DEADLINE_SECONDS,
        });
      }
    }
    return operations;
  };

  /**
   * Runs a scheduled operation a worker claimed, if it is still due: another replica's run of the
   * same slot may have ended between the tick that queued it and this claim.
   */
  const runScheduled = async (
    // The queued operation as the worker claimed it: what it names, not how it was queued.
    operation: Pick<TScheduledOperation, "organization" | "params"> & {
      readonly environment: string | null;
      readonly kind: string;
    },
  ): Promise<{ ran: boolean; reason?: string; result?: unknown }> => {
    const organization = (await latestSpecs()).find((spec) => spec.metadata.name === operation.organization);
    const environment =
      organization === undefined
        ? undefined
        : backedUp(organization).find((item) => item.name === operation.environment);
    if (organization === undefined || environment === undefined)
      return { ran: false, reason: `${operation.organization}/${operation.environment} no longer has backups` };
    const due = (await dueWorkFor(organization, environment, now())).find(
      (work) =>
        work.kind === operation.kind &&
        (work.kind !== "backup" || work.backupType === (operation.params as { backupType?: string }).backupType),
    );
    if (due === undefined) return { ran: false, reason: "no longer due: a run since the tick covered it" };
    // Inside the worker's operation, which holds the cluster: the run joins it.
    const result = await runDueWork(organization, environment, due);
    // A verification that found damage and a drill that failed ran, and failed at what they are for.
    const outcome = result as { ok?: boolean; status?: string; error?: string | null } | undefined;
    if (outcome?.ok === false)
      throw new Error(`${operation.kind} of ${operation.environment} found damage: carehost backups lists it`);
    if (outcome?.status === "failed")
      throw new Error(
        `${operation.kind} of ${operation.environment} failed: ${outcome.error ?? "carehost drills lists it"}`,
      );
    return { ran: true, result };
  };

  return {
    /** Runs what the schedules say is due: a first full backup at once, then full/diff/incr and drills on their cron. */
    runDue: async (): Promise<number> => {
      const counts = await Promise.all((await latestSpecs()).map(runDueFor));
      return counts.reduce((sum, count) => sum + count, 0);
    },

    runDueFor,
    scheduledOperationsFor,
    runScheduled,
  };
};
