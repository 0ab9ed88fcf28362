// Backups, verification, restores and restore drills as people and the scheduler ask for them:
// authorized, recorded (backup_runs, restore_runs, restore_drills) and audited with size, duration
// and result. A drill that fails or misses an objective is an alert: it shows in `status` until a
// drill passes. Each is a run of the server's, not of the request that asked for it: it is refused
// or started at once (start*), then followed by its id, step by step, to its result; a client that
// goes away changes nothing, and a stopping carehost marks it interrupted (shutdown).
import type { TAuditEvent } from "../audit/audit-types.js";
import { authorize, inScope, recordDenial, scopeOf } from "../identity/identity-permissions.js";
import type { Permission, TPermissionScope } from "../identity/identity-permissions.js";
import type { TChangeAudit } from "../identity/identity-types.js";
import { ConflictError, DomainError, NotFoundError, ValidationError } from "../lib/errors.js";
import { systemContext } from "../lib/request-context.js";
import { serialQueueByKey } from "../lib/serial-queue.js";
import type { TRequestContext } from "../lib/request-context.js";
import { instanceNameOf } from "../runtime/local/local-placement.js";
import type { TLocalRuntime } from "../runtime/local/local-runtime.js";
import type { TBackupType, TRestoreTarget } from "../runtime/local/local-recovery.js";
import type { TRestoreStep } from "../runtime/local/local-restore.js";
import { archiveTimeoutSeconds } from "./pgbackrest-config.js";
import { activeSlot } from "../spec/maintenance-window.js";
import { nextCronRun, parseCron } from "../spec/cron.js";
import type { TEnvironmentSpec, TOrganizationSpec } from "../spec/spec-schema.js";
import type { TSqlClient, TSqlValue } from "../store/store-types.js";

type TRecoveryServiceDeps = {
  db: Pick<TSqlClient, "query">;
  /** Absent with CAREHOST_RUNTIME=none: nothing runs here, so nothing can be backed up here. */
  runtime?: Pick<TLocalRuntime, "backup" | "verify" | "drill" | "restore" | "expire" | "snapshotFilestore">;
  latestSpecs: () => Promise<TOrganizationSpec[]>;
  /** Its recordChange must write to the database `db` is on: a run's row and its entry commit together there. */
  audit: TChangeAudit;
  now?: () => Date;
  /** Ends the commands runs are waiting for (runtime-command's endRunningCommands), when carehost stops. */
  endCommands?: () => number;
};

export type TBackupRun = {
  id: number;
  organization: string;
  environment: string;
  kind: string;
  trigger: string;
  status: string;
  label: string | null;
  databaseBytes: number | null;
  repositoryBytes: number | null;
  durationMs: number | null;
  error: string | null;
  startedAt: Date;
  finishedAt: Date | null;
};
export type TDrillRun = {
  id: number;
  organization: string;
  environment: string;
  trigger: string;
  status: string;
  backupLabel: string | null;
  rtoSeconds: number | null;
  rpoSeconds: number | null;
  rtoObjectiveMinutes: number;
  rpoObjectiveMinutes: number;
  problems: string[];
  error: string | null;
  startedAt: Date;
  finishedAt: Date | null;
};
export type TRestoreRun = {
  id: number;
  organization: string;
  environment: string;
  target: string;
  destination: string;
  status: string;
  steps: TRestoreStep[];
  durationMs: number | null;
  error: string | null;
  startedAt: Date;
  finishedAt: Date | null;
};
type TTrigger = "schedule" | "manual";

/**
 * What a run is, named as issue 16's operations will be: backups and verifications are held in
 * backup_runs, restores in restore_runs, drills in restore_drills; each table numbers its own.
 */
export const RUN_KINDS = ["backup", "verify", "restore", "drill"] as const;
export type TRunKind = (typeof RUN_KINDS)[number];
export type TRunState = "running" | "succeeded" | "failed" | "interrupted";
export type TRunStep = { readonly step: string; readonly detail: string; readonly durationMs: number };
export type TRunRef = { readonly id: number; readonly kind: TRunKind; readonly target: string };
export type TRunView = TRunRef & {
  organization: string;
  state: TRunState;
  steps: TRunStep[];
  result: unknown;
  error: string | null;
  startedAt: Date;
  finishedAt: Date | null;
};
/** A step as a follower hears it: `index` counts from 0, so a follower that reconnects asks for the steps after the last it saw. */
export type TRunEvent = TRunStep & { readonly index: number };
/** How a run ended: its result (a drill that missed an objective and a verify that found damage have one too), or why it has none. */
export type TRunEnd = { ok: true; result: unknown } | { ok: false; state: "failed" | "interrupted"; error: Error };
export type TStartedRun<T> = { ref: TRunRef; ended: Promise<{ ok: true; result: T } | { ok: false; error: Error }> };
type TLiveRun = TRunRef & {
  steps: TRunStep[];
  listeners: Set<(event: TRunEvent) => void>;
  ended: Promise<TRunEnd>;
  end: (outcome: TRunEnd) => void;
  finished: boolean;
  /** The work itself, which a stop does not wait for beyond its grace. */
  work: Promise<unknown>;
};
type TBackedUp = TEnvironmentSpec & { backup: Extract<TEnvironmentSpec["backup"], { enabled: true }> };

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

/** The operation target an environment's backups, restores and drills hold: its PostgreSQL cluster. */
export const clusterOf = (organization: TOrganizationSpec, environment: TEnvironmentSpec) =>
  `cluster/${organization.metadata.name}/${instanceNameOf(environment)}`;
/** Why a run left "running" by a stopped carehost failed; what it half-made, the reconcile at the next start removes or finishes. */
const INTERRUPTED = "interrupted: carehost stopped before it finished";
/** How the error of a run whose work completed, and whose completion could not be recorded, begins. */
const COMPLETED_UNRECORDED = "completed, but its end could not be recorded: ";
const interruptedError = () =>
  new ConflictError(
    `${INTERRUPTED}; once carehost is up again (its start repairs what the run left half-done), run it again`,
  );
/** SQL over a run table: the organizations of `scope`, and one environment when given. */
const runsWhere = (scope: TPermissionScope, environment: string | undefined): [string, readonly TSqlValue[]] => {
  const conditions: string[] = [];
  const params: TSqlValue[] = [];
  if (!scope.all) {
    params.push(scope.organizations);
    conditions.push(`organization = ANY($${params.length}::text[])`);
  }
  if (environment !== undefined) {
    params.push(environment);
    conditions.push(`environment = $${params.length}`);
  }
  return [conditions.length === 0 ? "" : `WHERE ${conditions.join(" AND ")}`, params];
};
const message = (error: unknown) => (error instanceof Error ? error.message : String(error)).slice(0, 500);
const asError = (error: unknown) => (error instanceof Error ? error : new Error(String(error)));
/** How long a finished run stays in memory, for a follower that reconnects to hear its error as it was thrown (its row says it in words). */
const KEEP_FINISHED_MS = 10 * 60 * 1000;
/** How often a follower of a run another carehost (a replica) runs reads its row again. */
const POLL_MS = 1000;
const TABLE_OF: Record<TRunKind, "backup_runs" | "restore_runs" | "restore_drills"> = {
  backup: "backup_runs",
  verify: "backup_runs",
  restore: "restore_runs",
  drill: "restore_drills",
};
const unwrap = <T>(outcome: { ok: true; result: T } | { ok: false; error: Error }): T => {
  if (!outcome.ok) throw outcome.error;
  return outcome.result;
};

export const recoveryServiceFactory = ({
  db,
  runtime: configuredRuntime,
  latestSpecs,
  audit,
  now = () => new Date(),
  endCommands = () => 0,
}: TRecoveryServiceDeps) => {
  const runtimeOrRefuse = () => {
    if (configuredRuntime === undefined)
      throw new ValidationError(
        "this carehost runs no environments (CAREHOST_RUNTIME=none), so it has nothing to back up or restore",
      );
    return configuredRuntime;
  };
  /** The environment by name; --org is needed only when two organizations share a name. */
  /**
   * The environment a request names, for a caller allowed `permission` on it. Naming the
   * organization is refused (403) before anything is looked up when the caller has no role there;
   * without it, only the caller's organizations are searched, so another organization's
   * environment is "not found" like one that does not exist (the refusal is audited all the same).
   */
  const targetNamed = (organization: string, environment: string) => `environment/${organization}/${environment}`;

  const locate = async (
    ctx: TRequestContext,
    permission: Permission,
    environmentName: string,
    organizationName?: string,
  ): Promise<{ organization: TOrganizationSpec; environment: TBackedUp }> => {
    await authorize(
      ctx,
      permission,
      audit,
      organizationName === undefined
        ? `environment/${environmentName}`
        : targetNamed(organizationName, environmentName),
      organizationName === undefined ? "some-organization" : { organization: organizationName },
    );
    const scope = scopeOf(ctx.actor, permission);
    const named = (await latestSpecs())
      .filter((spec) => organizationName === undefined || spec.metadata.name === organizationName)
      .flatMap((organization) =>
        organization.environments
          .filter((environment) => environment.name === environmentName)
          .map((environment) => ({ organization, environment })),
      );
    const matches = named.filter((match) => inScope(scope, match.organization.metadata.name));
    const hidden = named.find((match) => !inScope(scope, match.organization.metadata.name));
    if (matches.length === 0 && hidden !== undefined)
      await recordDenial(ctx, permission, audit, `environment/${environmentName}`, {
        organization: hidden.organization.metadata.name,
      });
    if (matches.length === 0)
      throw new NotFoundError(
        `no recorded environment is named ${JSON.stringify(environmentName)}${organizationName === undefined ? "" : ` in ${organizationName}`}`,
      );
    if (matches.length > 1)
      throw new ValidationError(
        `environment ${JSON.stringify(environmentName)} exists in ${matches.map((match) => match.organization.metadata.name).join(" and ")}; pass --org`,
      );
    const [match] = matches as [{ organization: TOrganizationSpec; environment: TEnvironmentSpec }];
    if (!match.environment.backup.enabled)
      throw new ValidationError(
        `environment ${JSON.stringify(environmentName)} has backups disabled (backup.enabled: false)`,
      );
    return match as { organization: TOrganizationSpec; environment: TBackedUp };
  };

  const target = (organization: TOrganizationSpec, environment: TEnvironmentSpec) =>
    targetNamed(organization.metadata.name, environment.name);

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
   * Runs `work` apart from whoever asked for it: its steps are kept for followers, its end is
   * heard through `ended`, which never rejects (a run nobody follows must not crash the server).
   */
  const launch = <T>(
    ref: TRunRef,
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
      for (const notify of run.listeners) notify(event);
    };
    run.work = work(onStep).then(
      (result) => run.end({ ok: true, result }),
      (error: unknown) => run.end({ ok: false, state: "failed", error: asError(error) }),
    );
    return { ref, ended: run.ended as Promise<{ ok: true; result: T } | { ok: false; error: Error }> };
  };

  /**
   * Ends a run's row with the audit events that say how it ended, in one transaction: the row's
   * end and its entries commit together or not at all, so the log never claims a result the table
   * lacks and the table never holds an ending the log was not told of (a row whose entry fails
   * stays "running", for the next start to turn into an audited interruption). Unless a stop of
   * carehost ended the row first: then the run is interrupted, its row says so and the stop audited
   * it, and what it went on to do is no one's result (false, and `events` are not written).
   */
  const endRow = async (
    ctx: TRequestContext,
    table: "backup_runs" | "restore_runs" | "restore_drills",
    id: number,
    set: string,
    params: readonly TSqlValue[],
    events: readonly TAuditEvent[],
  ): Promise<boolean> =>
    (
      await audit.recordChange(ctx, async (tx) => {
        const { rows } = await tx.query(
          `UPDATE ${table} SET ${set} WHERE id = $1 AND status = 'running' RETURNING id`,
          [id, ...params],
        );
        return { result: rows.length > 0, events: rows.length > 0 ? events : [] };
      })
    ).result;

  /**
   * Ends the row of a run whose work is done (the backup taken, the data restored, the drill
   * measured) with its `*.completed` entry. If that recording throws, the run is not recorded
   * failed: a restore in place has replaced the data by now, and an auditor reading "failed" would
   * believe it untouched. What is recorded instead says what happened, work completed and
   * recording failed:
   * - the row ends as the work did, with a recovery.completion_unrecorded entry in place of the
   *   one the log refused (a payload its guard refuses, say);
   * - when the log takes no entry at all, the row stays "running" (its ending never commits without
   *   an entry) with that note in its error, and the next start ends it interrupted with the same
   *   entry and note, not with `*.failed` and "carehost stopped".
   * Either way the caller hears that the work completed and its record did not, with the
   * recording's error as the cause, and is told not to run it again: a 409, whose words reach the
   * client, not a 500 that the API reports as "the run failed".
   */
  const endCompleted = async (
    ctx: TRequestContext,
    run: {
      table: "backup_runs" | "restore_runs" | "restore_drills";
      id: number;
      kind: "backup" | "restore" | "drill";
      organization: TOrganizationSpec;
      environment: TBackedUp;
    },
    set: string,
    params: readonly TSqlValue[],
    completed: TAuditEvent,
  ): Promise<void> => {
    let ended: boolean;
    try {
      ended = await endRow(ctx, run.table, run.id, set, params, [completed]);
    } catch (error) {
      const reason = `${COMPLETED_UNRECORDED}${completed.type} could not be written: ${message(error)}`.slice(0, 500);
      const unrecorded: TAuditEvent = {
        type: "recovery.completion_unrecorded",
        outcome: "failure",
        target: target(run.organization, run.environment),
        payload: { kind: run.kind, environment: run.environment.name, run: run.id, reason },
      };
      let recorded: string;
      try {
        recorded = (await endRow(ctx, run.table, run.id, set, params, [unrecorded]))
          ? `its end is recorded with a ${unrecorded.type} entry in place of ${completed.type}`
          : "a stop of carehost marked it interrupted meanwhile";
      } catch {
        // Not an ending (the row stays "running"): only what the next start will say of it.
        recorded = await db
          .query(`UPDATE ${run.table} SET error = $2 WHERE id = $1 AND status = 'running'`, [run.id, reason])
          .then(
            () => `it stays "running" until the next start of carehost records it as ${unrecorded.type}`,
            () => `it stays "running"; neither its end nor a note of it could be written`,
          );
      }
      throw new ConflictError(
        `the ${run.kind} of ${JSON.stringify(run.environment.name)} (run #${run.id}) completed, but ${completed.type} could not be written to the audit log (${message(error)}); ${recorded}. It need not be run again`,
        [],
        { cause: error },
      );
    }
    if (!ended) throw interruptedError();
  };

  const startBackup = async (
    ctx: TRequestContext,
    organization: TOrganizationSpec,
    environment: TBackedUp,
    kind: TBackupType,
    trigger: TTrigger,
  ): Promise<TStartedRun<Awaited<ReturnType<typeof runBackupNow>>>> => {
    refuseToStart();
    const inserted = await db.query<{ id: number }>(
      "INSERT INTO backup_runs (organization, environment, kind, trigger, status, started_at) VALUES ($1, $2, $3, $4, 'running', $5) RETURNING id",
      [organization.metadata.name, environment.name, kind, trigger, now()],
    );
    const id = inserted.rows[0]!.id;
    return launch({ id, kind: "backup", target: target(organization, environment) }, (onStep) =>
      exclusive(organization, environment, () => runBackupNow(ctx, organization, environment, kind, id, onStep)),
    );
  };
  const runBackup = async (
    ctx: TRequestContext,
    organization: TOrganizationSpec,
    environment: TBackedUp,
    kind: TBackupType,
    trigger: TTrigger,
  ) => unwrap(await (await startBackup(ctx, organization, environment, kind, trigger)).ended);

  const runBackupNow = async (
    ctx: TRequestContext,
    organization: TOrganizationSpec,
    environment: TBackedUp,
    kind: TBackupType,
    id: number,
    onStep: (step: TRunStep) => void,
  ) => {
    let result: Awaited<ReturnType<TLocalRuntime["backup"]>>;
    try {
      result = await runtimeOrRefuse().backup(organization, environment.name, kind);
    } catch (error) {
      await endRow(
        ctx,
        "backup_runs",
        id,
        "status = 'failed', error = $2, finished_at = $3",
        [message(error), now()],
        [
          {
            type: "backup.failed",
            outcome: "failure",
            target: target(organization, environment),
            payload: { environment: environment.name, kind, reason: message(error) },
          },
        ],
      );
      throw error;
    }
    // The backup exists from here on: nothing below records it failed (endCompleted says why).
    const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
    const steps: TRunStep[] = [
      {
        step: "backup",
        detail: `${result.label}: ${mb(result.databaseBytes)} database, ${mb(result.repositoryBytes)} written; filestore ${result.filestore.files} files, ${mb(result.filestore.bytesAdded)} added`,
        durationMs: result.durationMs,
      },
    ];
    steps.forEach(onStep);
    const completed: TAuditEvent = {
      type: "backup.completed",
      outcome: "success",
      target: target(organization, environment),
      payload: {
        environment: environment.name,
        kind,
        label: result.label,
        databaseBytes: result.databaseBytes,
        repositoryBytes: result.repositoryBytes,
        durationMs: result.durationMs,
        filestoreFiles: result.filestore.files,
        filestoreBytes: result.filestore.bytes,
        filestoreBytesAdded: result.filestore.bytesAdded,
        ...(result.skippedRepositories.length === 0
          ? {}
          : {
              skippedRepositories: result.skippedRepositories.map(({ name, type, reason }) => ({
                name,
                type,
                reason,
              })),
            }),
      },
    };
    await endCompleted(
      ctx,
      { table: "backup_runs", id, kind: "backup", organization, environment },
      "status = 'succeeded', label = $2, database_bytes = $3, repository_bytes = $4, duration_ms = $5, finished_at = $6, result = $7, steps = $8",
      [
        result.label,
        result.databaseBytes,
        result.repositoryBytes,
        result.durationMs,
        now(),
        JSON.stringify({ id, ...result }),
        JSON.stringify(steps),
      ],
      completed,
    );
    const expired = await runExpire(ctx, organization, environment);
    steps.push(expired);
    onStep(expired);
    await db.query("UPDATE backup_runs SET steps = $2 WHERE id = $1", [id, JSON.stringify(steps)]);
    return { id, ...result };
  };

  /**
   * Expires what the retention tiers no longer keep; a failure is audited and left for the next
   * backup to retry. Plain appends: expiry acts on the repositories, outside the database, and no
   * row records it but the backup run's steps.
   */
  const runExpire = async (
    ctx: TRequestContext,
    organization: TOrganizationSpec,
    environment: TBackedUp,
  ): Promise<TRunStep> => {
    const started = now();
    try {
      const result = await runtimeOrRefuse().expire(organization, environment.name);
      await audit.append(ctx, {
        type: "backup.expired",
        outcome: "success",
        target: target(organization, environment),
        payload: {
          environment: environment.name,
          expired: result.expired,
          reclaimedBytes: result.reclaimedBytes,
          filestoreSnapshots: result.filestoreSnapshots,
          retention: environment.backup.retention,
          durationMs: result.durationMs,
        },
      });
      const detail =
        result.expired.length === 0
          ? "nothing the retention tiers no longer keep"
          : `expired ${result.expired.join(", ")}, ${(result.reclaimedBytes / 1024 / 1024).toFixed(1)} MB reclaimed`;
      return { step: "expire", detail, durationMs: result.durationMs };
    } catch (error) {
      await audit.append(ctx, {
        type: "backup.expired",
        outcome: "failure",
        target: target(organization, environment),
        payload: { environment: environment.name, reason: message(error) },
      });
      return {
        step: "expire",
        detail: `failed, retried after the next backup: ${message(error)}`,
        durationMs: Math.max(0, now().getTime() - started.getTime()),
      };
    }
  };

  /** A scheduled `pgbackrest verify` and `restic check --read-data`, recorded as a backup run of kind verify. */
  const startVerify = async (
    ctx: TRequestContext,
    organization: TOrganizationSpec,
    environment: TBackedUp,
    trigger: TTrigger,
  ): Promise<TStartedRun<{ environment: string; ok: boolean; output: string }>> => {
    refuseToStart();
    const inserted = await db.query<{ id: number }>(
      "INSERT INTO backup_runs (organization, environment, kind, trigger, status, started_at) VALUES ($1, $2, 'verify', $3, 'running', $4) RETURNING id",
      [organization.metadata.name, environment.name, trigger, now()],
    );
    const id = inserted.rows[0]!.id;
    return launch({ id, kind: "verify", target: target(organization, environment) }, () =>
      exclusive(organization, environment, async () => {
        const started = now();
        const result = await runtimeOrRefuse()
          .verify(organization, environment.name)
          .catch((error: unknown) => ({ ok: false, output: message(error) }));
        const durationMs = Math.max(0, now().getTime() - started.getTime());
        const verified = { environment: environment.name, ok: result.ok, output: result.output.slice(-4000) };
        const ended = await endRow(
          ctx,
          "backup_runs",
          id,
          "status = $2, error = $3, duration_ms = $4, finished_at = $5, result = $6",
          [
            result.ok ? "succeeded" : "failed",
            result.ok ? null : result.output.slice(-500),
            durationMs,
            now(),
            JSON.stringify(verified),
          ],
          [
            {
              type: "backup.verified",
              outcome: result.ok ? "success" : "failure",
              target: target(organization, environment),
              payload: { environment: environment.name, ok: result.ok, durationMs },
            },
          ],
        );
        if (!ended) throw interruptedError();
        return verified;
      }),
    );
  };
  const runVerify = async (
    ctx: TRequestContext,
    organization: TOrganizationSpec,
    environment: TBackedUp,
    trigger: TTrigger,
  ) => unwrap(await (await startVerify(ctx, organization, environment, trigger)).ended);

  /** A filestore snapshot between database backups (kind filestore); nothing is recorded when nothing changed. */
  const runFilestoreSnapshot = (ctx: TRequestContext, organization: TOrganizationSpec, environment: TBackedUp) =>
    exclusive(organization, environment, async () => {
      const started = now();
      try {
        const result = await runtimeOrRefuse().snapshotFilestore(organization, environment.name);
        if (result === undefined) return;
        // The snapshot's row and its entry commit together.
        await audit.recordChange(ctx, async (tx) => {
          await tx.query(
            "INSERT INTO backup_runs (organization, environment, kind, trigger, status, label, database_bytes, repository_bytes, duration_ms, started_at, finished_at) VALUES ($1, $2, 'filestore', 'schedule', 'succeeded', $3, $4, $5, $6, $7, $8)",
            [
              organization.metadata.name,
              environment.name,
              result.snapshotId,
              result.bytes,
              result.bytesAdded,
              result.durationMs,
              started,
              now(),
            ],
          );
          return {
            result: undefined,
            events: [
              {
                type: "backup.completed",
                outcome: "success",
                target: target(organization, environment),
                payload: {
                  environment: environment.name,
                  kind: "filestore",
                  label: result.snapshotId,
                  filestoreFiles: result.files,
                  filestoreBytes: result.bytes,
                  filestoreBytesAdded: result.bytesAdded,
                  durationMs: result.durationMs,
                },
              },
            ],
          };
        });
      } catch (error) {
        await audit.recordChange(ctx, async (tx) => {
          await tx.query(
            "INSERT INTO backup_runs (organization, environment, kind, trigger, status, error, started_at, finished_at) VALUES ($1, $2, 'filestore', 'schedule', 'failed', $3, $4, $5)",
            [organization.metadata.name, environment.name, message(error), started, now()],
          );
          return {
            result: undefined,
            events: [
              {
                type: "backup.failed",
                outcome: "failure",
                target: target(organization, environment),
                payload: { environment: environment.name, kind: "filestore", reason: message(error) },
              },
            ],
          };
        });
      }
    });

  /**
   * Runs a restore as a recorded run: the row is "running" before anything is touched, so a
   * carehost killed midway leaves a trace the next start turns into an audited interruption; each
   * step is written to it as it completes; its success commits with the caller's restore.completed
   * (`completed`, with its details), a failure with restore.failed and its reason.
   */
  const recordRestore = async <T extends { steps: readonly TRestoreStep[]; durationMs: number }>(
    ctx: TRequestContext,
    organization: TOrganizationSpec,
    environment: TBackedUp,
    run: { id: number; described: string; destination: string; onStep: (step: TRunStep) => void },
    restore: (onStep: (step: TRestoreStep) => void) => Promise<T>,
    /** The run's result as its followers get it, recorded with its success so none sees a success without it. */
    answer: (result: T) => unknown,
    /** The restore.completed entry, written in the transaction that ends the row. */
    completed: (result: T) => TAuditEvent,
  ): Promise<T> => {
    const steps: TRestoreStep[] = [];
    let written = Promise.resolve();
    const onStep = (step: TRestoreStep) => {
      steps.push(step);
      run.onStep(step);
      const recorded = JSON.stringify(steps);
      written = written
        .then(() =>
          db.query("UPDATE restore_runs SET steps = $2 WHERE id = $1 AND status = 'running'", [run.id, recorded]),
        )
        .then(
          () => undefined,
          () => undefined,
        );
    };
    let result: T;
    try {
      result = await restore(onStep);
    } catch (error) {
      await written;
      await endRow(
        ctx,
        "restore_runs",
        run.id,
        "status = 'failed', error = $2, finished_at = $3",
        [message(error), now()],
        [
          {
            type: "restore.failed",
            outcome: "failure",
            target: target(organization, environment),
            payload: {
              environment: environment.name,
              target: run.described,
              destination: run.destination,
              reason: message(error),
            },
          },
        ],
      );
      throw error;
    }
    // The data is restored from here on: nothing below records the restore failed (endCompleted says why).
    await written;
    await endCompleted(
      ctx,
      { table: "restore_runs", id: run.id, kind: "restore", organization, environment },
      "status = 'succeeded', steps = $2, duration_ms = $3, finished_at = $4, result = $5",
      [JSON.stringify(result.steps), result.durationMs, now(), JSON.stringify(answer(result))],
      completed(result),
    );
    return result;
  };

  const startDrill = async (
    ctx: TRequestContext,
    organization: TOrganizationSpec,
    environment: TBackedUp,
    trigger: TTrigger,
  ): Promise<TStartedRun<TDrillRun>> => {
    refuseToStart();
    const inserted = await db.query<{ id: number }>(
      "INSERT INTO restore_drills (organization, environment, trigger, status, rto_objective_minutes, rpo_objective_minutes, started_at) VALUES ($1, $2, $3, 'running', $4, $5, $6) RETURNING id",
      [
        organization.metadata.name,
        environment.name,
        trigger,
        environment.backup.rtoMinutes,
        environment.backup.rpoMinutes,
        now(),
      ],
    );
    const id = inserted.rows[0]!.id;
    return launch({ id, kind: "drill", target: target(organization, environment) }, (onStep) =>
      exclusive(organization, environment, () => runDrillNow(ctx, organization, environment, id, onStep)),
    );
  };
  const runDrill = async (
    ctx: TRequestContext,
    organization: TOrganizationSpec,
    environment: TBackedUp,
    trigger: TTrigger,
  ): Promise<TDrillRun> => unwrap(await (await startDrill(ctx, organization, environment, trigger)).ended);

  const runDrillNow = async (
    ctx: TRequestContext,
    organization: TOrganizationSpec,
    environment: TBackedUp,
    id: number,
    onStep: (step: TRunStep) => void,
  ): Promise<TDrillRun> => {
    const objectives = { rto: environment.backup.rtoMinutes, rpo: environment.backup.rpoMinutes };
    const steps: TRunStep[] = [];
    let drill: Awaited<ReturnType<TLocalRuntime["drill"]>>;
    try {
      drill = await runtimeOrRefuse().drill(organization, environment.name, (step) => {
        steps.push(step);
        onStep(step);
      });
    } catch (error) {
      await endRow(
        ctx,
        "restore_drills",
        id,
        "status = 'failed', error = $2, finished_at = $3, steps = $4",
        [message(error), now(), JSON.stringify(steps)],
        [
          {
            type: "drill.failed",
            outcome: "failure",
            target: target(organization, environment),
            payload: { environment: environment.name, reason: message(error) },
          },
        ],
      );
      throw error;
    }
    // The drill ran to its end from here on: what it found is its result, never drill.failed (endCompleted says why).
    const problems = [
      ...(drill.amcheckPassed ? [] : [`pg_amcheck found problems: ${drill.amcheckOutput.slice(-300)}`]),
      ...drill.databasesMissing.map((database) => `database ${database} is missing from the restore`),
      ...(drill.rtoSeconds > objectives.rto * 60
        ? [`achieved RTO ${Math.round(drill.rtoSeconds)} s exceeds the objective of ${objectives.rto} min`]
        : []),
      ...(drill.rpoSeconds === null
        ? ["the achieved RPO could not be measured (no heartbeat in the restore)"]
        : drill.rpoSeconds > objectives.rpo * 60
          ? [`achieved RPO ${Math.round(drill.rpoSeconds)} s exceeds the objective of ${objectives.rpo} min`]
          : []),
    ];
    const status = problems.length === 0 ? "passed" : "failed";
    const event: TAuditEvent = {
      type: "drill.completed",
      outcome: status === "passed" ? "success" : "failure",
      target: target(organization, environment),
      payload: {
        environment: environment.name,
        backupLabel: drill.backupLabel,
        // Not "passed": the audit log refuses payload keys that look like "password".
        succeeded: status === "passed",
        rtoSeconds: Math.round(drill.rtoSeconds * 1000) / 1000,
        rpoSeconds: drill.rpoSeconds === null ? null : Math.round(drill.rpoSeconds * 1000) / 1000,
        rtoObjectiveMinutes: objectives.rto,
        rpoObjectiveMinutes: objectives.rpo,
        amcheckClean: drill.amcheckPassed,
        problems: problems.map((problem) => problem.slice(0, 500)).slice(0, 20),
      },
    };
    await endCompleted(
      ctx,
      { table: "restore_drills", id, kind: "drill", organization, environment },
      "status = $2, backup_label = $3, rto_seconds = $4, rpo_seconds = $5, details = $6, finished_at = $7, steps = $8",
      [
        status,
        drill.backupLabel,
        drill.rtoSeconds,
        drill.rpoSeconds,
        JSON.stringify({ problems, tables: drill.tables }),
        now(),
        JSON.stringify(steps),
      ],
      event,
    );
    return (await drillRows("WHERE id = $1", [id]))[0]!;
  };

  const backupRows = async (where: string, params: readonly TSqlValue[]): Promise<TBackupRun[]> =>
    (
      await db.query<{
        id: number;
        organization: string;
        environment: string;
        kind: string;
        trigger: string;
        status: string;
        label: string | null;
        database_bytes: number | null;
        repository_bytes: number | null;
        duration_ms: number | null;
        error: string | null;
        started_at: Date;
        finished_at: Date | null;
      }>(`SELECT * FROM backup_runs ${where} ORDER BY started_at DESC, id DESC LIMIT 200`, params)
    ).rows.map((row) => ({
      id: row.id,
      organization: row.organization,
      environment: row.environment,
      kind: row.kind,
      trigger: row.trigger,
      status: row.status,
      label: row.label,
      databaseBytes: row.database_bytes,
      repositoryBytes: row.repository_bytes,
      durationMs: row.duration_ms,
      error: row.error,
      startedAt: row.started_at,
      finishedAt: row.finished_at,
    }));

  const drillRows = async (where: string, params: readonly TSqlValue[]): Promise<TDrillRun[]> =>
    (
      await db.query<{
        id: number;
        organization: string;
        environment: string;
        trigger: string;
        status: string;
        backup_label: string | null;
        rto_seconds: number | null;
        rpo_seconds: number | null;
        rto_objective_minutes: number;
        rpo_objective_minutes: number;
        details: { problems?: string[] } | null;
        error: string | null;
        started_at: Date;
        finished_at: Date | null;
      }>(`SELECT * FROM restore_drills ${where} ORDER BY started_at DESC, id DESC LIMIT 200`, params)
    ).rows.map((row) => ({
      id: row.id,
      organization: row.organization,
      environment: row.environment,
      trigger: row.trigger,
      status: row.status,
      backupLabel: row.backup_label,
      rtoSeconds: row.rto_seconds,
      rpoSeconds: row.rpo_seconds,
      rtoObjectiveMinutes: row.rto_objective_minutes,
      rpoObjectiveMinutes: row.rpo_objective_minutes,
      problems: row.details?.problems ?? (row.error === null ? [] : [row.error]),
      error: row.error,
      startedAt: row.started_at,
      finishedAt: row.finished_at,
    }));

  const restoreRows = async (where: string, params: readonly TSqlValue[]): Promise<TRestoreRun[]> =>
    (
      await db.query<{
        id: number;
        organization: string;
        environment: string;
        target: string;
        destination: string;
        status: string;
        steps: TRestoreStep[] | null;
        duration_ms: number | null;
        error: string | null;
        started_at: Date;
        finished_at: Date | null;
      }>(`SELECT * FROM restore_runs ${where} ORDER BY started_at DESC, id DESC LIMIT 200`, params)
    ).rows.map((row) => ({
      id: row.id,
      organization: row.organization,
      environment: row.environment,
      target: row.target,
      destination: row.destination,
      status: row.status,
      steps: row.steps ?? [],
      durationMs: row.duration_ms,
      error: row.error,
      startedAt: row.started_at,
      finishedAt: row.finished_at,
    }));

  /**
   * What may be restored into another declared environment. A production environment's data is its
   * own (as the spec says of dataSource): it is restored only from its own backups, in place. A
   * declared dataSource is the environment's data lineage, which the platform team reviewed: data
   * from another environment, or PHI where the spec promises de-identification (which a restore does
   * not do), is refused rather than silently loaded.
   */
  const refuseUndeclaredSource = (source: TEnvironmentSpec, into: TEnvironmentSpec) => {
    const name = JSON.stringify(into.name);
    if (into.name === source.name) throw new ValidationError(`to restore ${name} over itself, use --in-place`);
    if (into.tier === "production") {
      throw new ValidationError(
        `${name} is a production environment: its data is its own, restored only from its own backups (carehost restore ${into.name} --in-place)`,
      );
    }
    const copyFrom = into.dataSource?.copyFrom;
    if (copyFrom !== undefined && copyFrom !== source.name) {
      throw new ValidationError(
        `${name} declares dataSource.copyFrom: ${JSON.stringify(copyFrom)}; restoring ${JSON.stringify(source.name)} into it would load data the spec does not declare for it: restore ${JSON.stringify(copyFrom)} into it, or change its dataSource`,
      );
    }
    if (into.dataSource?.deidentify === true && source.dataClass === "phi") {
      throw new ValidationError(
        `${name} declares dataSource.deidentify: true, and a restore copies ${JSON.stringify(source.name)}'s PHI as it is (carehost does not de-identify); load it through your de-identification process instead`,
      );
    }
  };

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

  type TRestored = Awaited<ReturnType<TLocalRuntime["restore"]>> & { environment: string; target: string };
  /** Over a declared environment, its name; with its safety backup when it is backed up. */
  type TRestoreResult = TRestored | (TRestored & { into?: string; safetyBackup: string });
  type TRestoreInput = {
    environment: string;
    organization?: string;
    target: TRestoreTarget;
    into?: string;
    inPlace?: boolean;
    emergencyReason?: string;
  };

  /**
   * Restores to a point in time: into a new copy, in place, or into another declared environment.
   * A copy holds the source's data class; PHI goes only into a PHI-classed declared environment.
   * Replacing a declared environment's data (in place, or --into it) needs that environment's
   * maintenance window or a stated emergency, and takes a safety backup of it first when it is
   * backed up, so the restore itself can be undone. What is refused is refused before the run
   * starts; the run then reports each step (secrets, PostgreSQL, filestore, …) the moment it completes.
   */
  const startRestore = async (
    ctx: TRequestContext,
    input: TRestoreInput,
    listener?: (event: TRunEvent) => void,
  ): Promise<TStartedRun<TRestoreResult>> => {
    const { organization, environment } = await locate(ctx, "restore:run", input.environment, input.organization);
    if ((input.into === undefined) === (input.inPlace !== true))
      throw new ValidationError("say where to restore: --into <new copy or declared environment>, or --in-place");
    const described =
      input.target.kind === "time"
        ? input.target.time.toISOString()
        : input.target.kind === "lsn"
          ? `lsn ${input.target.lsn}`
          : "latest";
    const declared =
      input.into === undefined
        ? environment
        : organization.environments.find((candidate) => candidate.name === input.into);
    if (
      input.into !== undefined &&
      declared !== undefined &&
      environment.dataClass === "phi" &&
      declared.dataClass !== "phi"
    ) {
      throw new ValidationError(
        `environment ${JSON.stringify(environment.name)} holds PHI; it may be restored only into a PHI-classed environment, and ${JSON.stringify(declared.name)} is dataClass ${declared.dataClass}`,
      );
    }
    /** The run's "running" row, with the entries that must exist once it does (an emergency's reason). */
    const begin = async (destination: string, events: readonly TAuditEvent[] = []) => {
      refuseToStart();
      const { result: id } = await audit.recordChange(ctx, async (tx) => {
        const inserted = await tx.query<{ id: number }>(
          "INSERT INTO restore_runs (organization, environment, target, destination, status, started_at) VALUES ($1, $2, $3, $4, 'running', $5) RETURNING id",
          [organization.metadata.name, environment.name, described, destination, now()],
        );
        return { result: inserted.rows[0]!.id, events };
      });
      return { id, described, destination };
    };
    if (input.into !== undefined && declared === undefined) {
      const into = input.into;
      const row = await begin(`copy ${into}`);
      return launch(
        { id: row.id, kind: "restore", target: target(organization, environment) },
        async (onStep) => {
          const answer = <T extends object>(result: T) => ({
            environment: environment.name,
            target: described,
            ...result,
          });
          const result = await recordRestore(
            ctx,
            organization,
            environment,
            { ...row, onStep },
            (recordStep) =>
              exclusive(organization, environment, () =>
                runtimeOrRefuse().restore(
                  organization,
                  environment.name,
                  input.target,
                  { kind: "copy", name: into },
                  recordStep,
                ),
              ),
            answer,
            (restored) => ({
              type: "restore.completed",
              outcome: "success",
              target: target(organization, environment),
              payload: {
                environment: environment.name,
                target: described,
                into,
                dataClass: environment.dataClass,
                port: restored.port,
                filestoreFiles: restored.filestoreFiles,
                steps: restored.steps.map((step) => step.step),
                durationMs: restored.durationMs,
              },
            }),
          );
          return answer(result);
        },
        listener,
      );
    }
    const replaced = declared!;
    if (input.into !== undefined) refuseUndeclaredSource(environment, replaced);
    const at = now();
    const slot = activeSlot(replaced.maintenanceWindow!, at);
    const emergency = input.emergencyReason?.trim();
    const what =
      input.into === undefined
        ? `an in-place restore of ${JSON.stringify(environment.name)}`
        : `a restore of ${JSON.stringify(environment.name)} into ${JSON.stringify(replaced.name)}`;
    if (slot === undefined && (emergency === undefined || emergency.length < 10)) {
      throw new ValidationError(
        `${what} replaces the data of ${JSON.stringify(replaced.name)}: run it inside its maintenance window (${replaced.maintenanceWindow!.timeZone}), or state the emergency with --emergency "<reason of at least 10 characters>"`,
      );
    }
    const row = await begin(
      input.into === undefined ? "in place" : `environment ${replaced.name}`,
      slot !== undefined
        ? []
        : [
            {
              type: "restore.emergency",
              outcome: "success",
              target: target(organization, replaced),
              payload: {
                environment: replaced.name,
                target: described,
                reason: emergency!.slice(0, 500),
                ...(replaced.name === environment.name ? {} : { source: environment.name }),
              },
            },
          ],
    );
    return launch(
      { id: row.id, kind: "restore", target: target(organization, environment) },
      async (onStep) => {
        const destination =
          input.into === undefined
            ? ({ kind: "in-place" } as const)
            : ({ kind: "environment", name: replaced.name } as const);
        // The target's own backups undo the restore; a target without backups has nothing to undo with.
        const safetyBackup = { label: undefined as string | undefined };
        const over = input.into === undefined ? {} : { into: replaced.name };
        const answer = <T extends object>(result: T) =>
          safetyBackup.label === undefined
            ? { environment: environment.name, target: described, ...over, ...result }
            : {
                environment: environment.name,
                target: described,
                safetyBackup: safetyBackup.label,
                ...over,
                ...result,
              };
        const result = await recordRestore(
          ctx,
          organization,
          environment,
          { ...row, onStep },
          async (recordStep) => {
            if (replaced.backup.enabled)
              safetyBackup.label = (await runBackup(ctx, organization, replaced as TBackedUp, "incr", "manual")).label;
            // The cluster whose data is replaced is the one held; the source's archive is only read.
            return exclusive(organization, replaced, () =>
              runtimeOrRefuse().restore(organization, environment.name, input.target, destination, recordStep),
            );
          },
          answer,
          (restored): TAuditEvent => {
            const safety = safetyBackup.label === undefined ? undefined : { label: safetyBackup.label };
            const outcome = {
              filestoreFiles: restored.filestoreFiles,
              steps: restored.steps.map((step) => step.step),
              durationMs: restored.durationMs,
            };
            return {
              type: "restore.completed",
              outcome: "success",
              target: target(organization, environment),
              payload:
                input.into === undefined
                  ? {
                      environment: environment.name,
                      target: described,
                      inPlace: true,
                      safetyBackup: safety!.label,
                      emergency: slot === undefined,
                      ...outcome,
                    }
                  : {
                      environment: environment.name,
                      target: described,
                      intoEnvironment: replaced.name,
                      safetyBackup: safety?.label ?? null,
                      emergency: slot === undefined,
                      ...outcome,
                    },
            };
          },
        );
        return answer(result);
      },
      listener,
    );
  };

  /** A run as its row records it, with its result once it has one. */
  const noSuchRun = (kind: TRunKind, id: number) =>
    new NotFoundError(
      `there is no ${kind} run #${id}; carehost ${kind === "verify" ? "backups" : `${kind}s`} lists them`,
    );

  /** A run, for a caller who may read its organization's runs: another organization's is "not found". */
  const visibleRun = async (ctx: TRequestContext, kind: TRunKind, id: number): Promise<TRunView> => {
    await authorize(ctx, "backup:read", audit, `run:${kind}/${id}`, "some-organization");
    const view = await runView(kind, id);
    if (inScope(scopeOf(ctx.actor, "backup:read"), view.organization)) return view;
    await recordDenial(ctx, "backup:read", audit, `run:${kind}/${id}`, { organization: view.organization });
    throw noSuchRun(kind, id);
  };

  /** The WHERE of a run listing: the caller's organizations only, and one environment when asked. */
  const listingWhere = async (
    ctx: TRequestContext,
    environment: string | undefined,
  ): Promise<[string, readonly TSqlValue[]]> => {
    await authorize(ctx, "backup:read", audit, "runs", "some-organization");
    return runsWhere(scopeOf(ctx.actor, "backup:read"), environment);
  };

  const runView = async (kind: TRunKind, id: number): Promise<TRunView> => {
    const table = TABLE_OF[kind];
    const { rows } = await db.query<{
      organization: string;
      environment: string;
      kind?: string;
      status: string;
      steps?: TRunStep[] | null;
      result?: unknown;
      error: string | null;
      started_at: Date;
      finished_at: Date | null;
    }>(`SELECT * FROM ${table} WHERE id = $1`, [id]);
    const row = rows[0];
    if (row === undefined || (table === "backup_runs" && (row.kind === "verify") !== (kind === "verify")))
      throw noSuchRun(kind, id);
    const state: TRunState = row.status === "passed" ? "succeeded" : (row.status as TRunState);
    // A drill that ran to its end has a result even when it failed (its problems); one that threw has its error.
    const result =
      kind === "drill"
        ? row.status !== "running" && row.error === null
          ? (await drillRows("WHERE id = $1", [id]))[0]
          : undefined
        : row.result;
    return {
      id,
      kind,
      target: targetNamed(row.organization, row.environment),
      organization: row.organization,
      state,
      steps: row.steps ?? [],
      result: result ?? null,
      error: row.error,
      startedAt: row.started_at,
      finishedAt: row.finished_at,
    };
  };

  /**
   * Every run left "running" that `only` selects (all when absent) is interrupted, and audited as
   * such. A run whose work had completed when recording its end failed (its error begins with
   * COMPLETED_UNRECORDED, which endCompleted writes on the "running" row) keeps that error and is
   * audited as recovery.completion_unrecorded: it neither failed nor was stopped.
   */
  const interruptRows = async (ctx: TRequestContext, only?: readonly TRunRef[]): Promise<number> => {
    const reason = INTERRUPTED;
    const at = now();
    const selected = (kinds: readonly TRunKind[]) => {
      const ids = only?.filter((run) => kinds.includes(run.kind)).map((run) => run.id);
      return ids === undefined
        ? { where: "", params: [] }
        : {
            where: ` AND id IN (${ids.length === 0 ? "NULL" : ids.map((_, index) => `$${index + 3}`).join(", ")})`,
            params: ids,
          };
    };
    const completedUnrecorded = (
      run: { id: number; organization: string; environment: string; error: string },
      kind: "backup" | "restore" | "drill",
    ): TAuditEvent | undefined =>
      run.error.startsWith(COMPLETED_UNRECORDED)
        ? {
            type: "recovery.completion_unrecorded",
            outcome: "failure",
            target: targetNamed(run.organization, run.environment),
            payload: { kind, environment: run.environment, run: run.id, reason: run.error.slice(0, 500) },
          }
        : undefined;
    // Every row this interrupts commits with its entry, or none does: a failed append leaves them "running" for the next try.
    const { result: interrupted } = await audit.recordChange(ctx, async (tx) => {
      const backupsOnly = selected(["backup", "verify"]);
      const backups = await tx.query<{
        id: number;
        organization: string;
        environment: string;
        kind: "full" | "diff" | "incr" | "verify" | "filestore";
        error: string;
      }>(
        `UPDATE backup_runs SET status = 'interrupted', error = COALESCE(error, $2), finished_at = $1 WHERE status = 'running'${backupsOnly.where} RETURNING id, organization, environment, kind, error`,
        [at, reason, ...backupsOnly.params],
      );
      const events: TAuditEvent[] = backups.rows.map(
        (run) =>
          completedUnrecorded(run, "backup") ?? {
            type: "backup.failed",
            outcome: "failure",
            target: targetNamed(run.organization, run.environment),
            payload: { environment: run.environment, kind: run.kind, reason },
          },
      );
      const drillsOnly = selected(["drill"]);
      const drills = await tx.query<{ id: number; organization: string; environment: string; error: string }>(
        `UPDATE restore_drills SET status = 'interrupted', error = COALESCE(error, $2), finished_at = $1 WHERE status = 'running'${drillsOnly.where} RETURNING id, organization, environment, error`,
        [at, reason, ...drillsOnly.params],
      );
      for (const run of drills.rows)
        events.push(
          completedUnrecorded(run, "drill") ?? {
            type: "drill.failed",
            outcome: "failure",
            target: targetNamed(run.organization, run.environment),
            payload: { environment: run.environment, reason },
          },
        );
      const restoresOnly = selected(["restore"]);
      const restores = await tx.query<{
        id: number;
        organization: string;
        environment: string;
        target: string;
        destination: string;
        error: string;
      }>(
        `UPDATE restore_runs SET status = 'interrupted', error = COALESCE(error, $2), finished_at = $1 WHERE status = 'running'${restoresOnly.where} RETURNING id, organization, environment, target, destination, error`,
        [at, reason, ...restoresOnly.params],
      );
      for (const run of restores.rows)
        events.push(
          completedUnrecorded(run, "restore") ?? {
            type: "restore.failed",
            outcome: "failure",
            target: targetNamed(run.organization, run.environment),
            payload: { environment: run.environment, target: run.target, destination: run.destination, reason },
          },
        );
      return { result: events.length, events };
    });
    return interrupted;
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

  /** Runs one piece of due work as the scheduler; rejects with a failed run's error (recorded on its run already). */
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
    if (configuredRuntime === undefined) return 0;
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
    if (configuredRuntime === undefined) return [];
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
    operation: TScheduledOperation,
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
    /** A restore, waited for; `onStep` hears of each step the moment it completes. */
    restore: async (
      ctx: TRequestContext,
      input: TRestoreInput,
      onStep: (step: TRestoreStep) => void = () => undefined,
    ) => {
      const started = await startRestore(ctx, input, (event) =>
        onStep({ step: event.step as TRestoreStep["step"], detail: event.detail, durationMs: event.durationMs }),
      );
      const outcome = await started.ended;
      if (!outcome.ok) throw outcome.error;
      return outcome.result;
    },

    run: visibleRun,

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

    listBackups: async (ctx: TRequestContext, environment?: string) =>
      backupRows(...(await listingWhere(ctx, environment))),

    listRestores: async (ctx: TRequestContext, environment?: string) =>
      restoreRows(...(await listingWhere(ctx, environment))),

    listDrills: async (ctx: TRequestContext, environment?: string) =>
      drillRows(...(await listingWhere(ctx, environment))),

    /** Last backup and last drill per environment, for status (no authorization: status checks its own). */
    summaries: async () => {
      const backups = await backupRows(
        "WHERE id IN (SELECT max(id) FROM backup_runs WHERE kind IN ('full', 'diff', 'incr') GROUP BY organization, environment)",
        [],
      );
      const verifications = await backupRows(
        "WHERE id IN (SELECT max(id) FROM backup_runs WHERE kind = 'verify' GROUP BY organization, environment)",
        [],
      );
      const drills = await drillRows(
        "WHERE id IN (SELECT max(id) FROM restore_drills GROUP BY organization, environment)",
        [],
      );
      return { backups, drills, verifications };
    },

    /** Runs what the schedules say is due: a first full backup at once, then full/diff/incr and drills on their cron. */
    runDue: async (): Promise<number> => {
      const counts = await Promise.all((await latestSpecs()).map(runDueFor));
      return counts.reduce((sum, count) => sum + count, 0);
    },

    runDueFor,
    scheduledOperationsFor,
    runScheduled,

    /**
     * Runs left "running" by a carehost that stopped midway (killed, so it could not say so) are
     * interrupted, not backups: each is marked and audited, so the log tells of every run started.
     */
    markInterrupted: async (): Promise<number> => interruptRows(systemContext("startup")),
  };
};

export type TRecoveryService = ReturnType<typeof recoveryServiceFactory>;
