// Backups, verification, restores and restore drills as people and the scheduler ask for them:
// authorized, recorded (backup_runs, restore_drills) and audited with size, duration and result. A
// drill that fails or misses an objective is an alert: it shows in `status` until a drill passes.
import type { TAuditEvent } from "../audit/audit-types.js";
import { authorize } from "../identity/identity-permissions.js";
import type { TAuditAppend } from "../identity/identity-types.js";
import { NotFoundError, ValidationError } from "../lib/errors.js";
import { systemContext } from "../lib/request-context.js";
import { serialQueueByKey } from "../lib/serial-queue.js";
import type { TRequestContext } from "../lib/request-context.js";
import type { TLocalRuntime } from "../runtime/local/local-runtime.js";
import type { TBackupType, TRestoreTarget } from "../runtime/local/local-recovery.js";
import type { TRestoreStep } from "../runtime/local/local-runtime.js";
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
  audit: { append: TAuditAppend };
  now?: () => Date;
};

export type TBackupRun = {
  id: number; organization: string; environment: string; kind: string; trigger: string; status: string;
  label: string | null; databaseBytes: number | null; repositoryBytes: number | null; durationMs: number | null; error: string | null; startedAt: Date; finishedAt: Date | null;
};
export type TDrillRun = {
  id: number; organization: string; environment: string; trigger: string; status: string; backupLabel: string | null;
  rtoSeconds: number | null; rpoSeconds: number | null; rtoObjectiveMinutes: number; rpoObjectiveMinutes: number; problems: string[]; error: string | null; startedAt: Date; finishedAt: Date | null;
};
export type TRestoreRun = {
  id: number; organization: string; environment: string; target: string; destination: string; status: string;
  steps: TRestoreStep[]; durationMs: number | null; error: string | null; startedAt: Date; finishedAt: Date | null;
};
type TTrigger = "schedule" | "manual";
type TBackedUp = TEnvironmentSpec & { backup: Extract<TEnvironmentSpec["backup"], { enabled: true }> };

const VERIFY_INTERVAL_MS = 24 * 3600 * 1000;
/** Why a run left "running" by a stopped carehost failed; what it half-made, the reconcile at the next start removes or finishes. */
const INTERRUPTED = "interrupted: carehost stopped before it finished";
const message = (error: unknown) => (error instanceof Error ? error.message : String(error)).slice(0, 500);

export const recoveryServiceFactory = ({ db, runtime: configuredRuntime, latestSpecs, audit, now = () => new Date() }: TRecoveryServiceDeps) => {
  const runtimeOrRefuse = () => {
    if (configuredRuntime === undefined) throw new ValidationError("this carehost runs no environments (CAREHOST_RUNTIME=none), so it has nothing to back up or restore");
    return configuredRuntime;
  };
  /** The environment by name; --org is needed only when two organizations share a name. */
  const locate = async (environmentName: string, organizationName?: string): Promise<{ organization: TOrganizationSpec; environment: TBackedUp }> => {
    const matches = (await latestSpecs())
      .filter((spec) => organizationName === undefined || spec.metadata.name === organizationName)
      .flatMap((organization) => organization.environments.filter((environment) => environment.name === environmentName).map((environment) => ({ organization, environment })));
    if (matches.length === 0) throw new NotFoundError(`no recorded environment is named ${JSON.stringify(environmentName)}${organizationName === undefined ? "" : ` in ${organizationName}`}`);
    if (matches.length > 1) throw new ValidationError(`environment ${JSON.stringify(environmentName)} exists in ${matches.map((match) => match.organization.metadata.name).join(" and ")}; pass --org`);
    const [match] = matches as [{ organization: TOrganizationSpec; environment: TEnvironmentSpec }];
    if (!match.environment.backup.enabled) throw new ValidationError(`environment ${JSON.stringify(environmentName)} has backups disabled (backup.enabled: false)`);
    return match as { organization: TOrganizationSpec; environment: TBackedUp };
  };

  const targetNamed = (organization: string, environment: string) => `environment/${organization}/${environment}`;
  const target = (organization: TOrganizationSpec, environment: TEnvironmentSpec) => targetNamed(organization.metadata.name, environment.name);

  // pgBackRest takes a lock per stanza and refuses a second backup meanwhile; environments of one
  // organization may share a cluster, so its backups, restores and drills run one after another.
  const queue = serialQueueByKey();
  const exclusive = <T>(organization: TOrganizationSpec, operation: () => Promise<T>): Promise<T> => queue(organization.metadata.name, operation);

  const runBackup = (ctx: TRequestContext, organization: TOrganizationSpec, environment: TBackedUp, kind: TBackupType, trigger: TTrigger) =>
    exclusive(organization, () => runBackupNow(ctx, organization, environment, kind, trigger));

  const runBackupNow = async (ctx: TRequestContext, organization: TOrganizationSpec, environment: TBackedUp, kind: TBackupType, trigger: TTrigger) => {
    const inserted = await db.query<{ id: number }>(
      "INSERT INTO backup_runs (organization, environment, kind, trigger, status, started_at) VALUES ($1, $2, $3, $4, 'running', $5) RETURNING id",
      [organization.metadata.name, environment.name, kind, trigger, now()],
    );
    const id = inserted.rows[0]!.id;
    try {
      const result = await runtimeOrRefuse().backup(organization, environment.name, kind);
      await db.query(
        "UPDATE backup_runs SET status = 'succeeded', label = $2, database_bytes = $3, repository_bytes = $4, duration_ms = $5, finished_at = $6 WHERE id = $1",
        [id, result.label, result.databaseBytes, result.repositoryBytes, result.durationMs, now()],
      );
      await audit.append(ctx, {
        type: "backup.completed",
        outcome: "success",
        target: target(organization, environment),
        payload: {
          environment: environment.name, kind, label: result.label, databaseBytes: result.databaseBytes, repositoryBytes: result.repositoryBytes, durationMs: result.durationMs,
          filestoreFiles: result.filestore.files, filestoreBytes: result.filestore.bytes, filestoreBytesAdded: result.filestore.bytesAdded,
          ...(result.skippedRepositories.length === 0 ? {} : { skippedRepositories: result.skippedRepositories.map(({ name, type, reason }) => ({ name, type, reason })) }),
        },
      });
      await runExpire(ctx, organization, environment);
      return { id, ...result };
    } catch (error) {
      await db.query("UPDATE backup_runs SET status = 'failed', error = $2, finished_at = $3 WHERE id = $1", [id, message(error), now()]);
      await audit.append(ctx, { type: "backup.failed", outcome: "failure", target: target(organization, environment), payload: { environment: environment.name, kind, reason: message(error) } });
      throw error;
    }
  };

  /** Expires what the retention tiers no longer keep; a failure is audited and left for the next backup to retry. */
  const runExpire = async (ctx: TRequestContext, organization: TOrganizationSpec, environment: TBackedUp) => {
    try {
      const result = await runtimeOrRefuse().expire(organization, environment.name);
      await audit.append(ctx, {
        type: "backup.expired",
        outcome: "success",
        target: target(organization, environment),
        payload: { environment: environment.name, expired: result.expired, reclaimedBytes: result.reclaimedBytes, filestoreSnapshots: result.filestoreSnapshots, retention: environment.backup.retention, durationMs: result.durationMs },
      });
    } catch (error) {
      await audit.append(ctx, { type: "backup.expired", outcome: "failure", target: target(organization, environment), payload: { environment: environment.name, reason: message(error) } });
    }
  };

  /** A scheduled `pgbackrest verify` and `restic check --read-data`, recorded as a backup run of kind verify. */
  const runVerify = (ctx: TRequestContext, organization: TOrganizationSpec, environment: TBackedUp, trigger: TTrigger) =>
    exclusive(organization, async () => {
      const started = now();
      const inserted = await db.query<{ id: number }>(
        "INSERT INTO backup_runs (organization, environment, kind, trigger, status, started_at) VALUES ($1, $2, 'verify', $3, 'running', $4) RETURNING id",
        [organization.metadata.name, environment.name, trigger, started],
      );
      const id = inserted.rows[0]!.id;
      const result = await runtimeOrRefuse().verify(organization, environment.name).catch((error: unknown) => ({ ok: false, output: message(error) }));
      const durationMs = Math.max(0, now().getTime() - started.getTime());
      await db.query("UPDATE backup_runs SET status = $2, error = $3, duration_ms = $4, finished_at = $5 WHERE id = $1", [
        id, result.ok ? "succeeded" : "failed", result.ok ? null : result.output.slice(-500), durationMs, now(),
      ]);
      await audit.append(ctx, { type: "backup.verified", outcome: result.ok ? "success" : "failure", target: target(organization, environment), payload: { environment: environment.name, ok: result.ok, durationMs } });
      return { environment: environment.name, ok: result.ok, output: result.output.slice(-4000) };
    });

  /** A filestore snapshot between database backups (kind filestore); nothing is recorded when nothing changed. */
  const runFilestoreSnapshot = (ctx: TRequestContext, organization: TOrganizationSpec, environment: TBackedUp) =>
    exclusive(organization, async () => {
      const started = now();
      try {
        const result = await runtimeOrRefuse().snapshotFilestore(organization, environment.name);
        if (result === undefined) return;
        await db.query(
          "INSERT INTO backup_runs (organization, environment, kind, trigger, status, label, database_bytes, repository_bytes, duration_ms, started_at, finished_at) VALUES ($1, $2, 'filestore', 'schedule', 'succeeded', $3, $4, $5, $6, $7, $8)",
          [organization.metadata.name, environment.name, result.snapshotId, result.bytes, result.bytesAdded, result.durationMs, started, now()],
        );
        await audit.append(ctx, {
          type: "backup.completed",
          outcome: "success",
          target: target(organization, environment),
          payload: { environment: environment.name, kind: "filestore", label: result.snapshotId, filestoreFiles: result.files, filestoreBytes: result.bytes, filestoreBytesAdded: result.bytesAdded, durationMs: result.durationMs },
        });
      } catch (error) {
        await db.query(
          "INSERT INTO backup_runs (organization, environment, kind, trigger, status, error, started_at, finished_at) VALUES ($1, $2, 'filestore', 'schedule', 'failed', $3, $4, $5)",
          [organization.metadata.name, environment.name, message(error), started, now()],
        );
        await audit.append(ctx, { type: "backup.failed", outcome: "failure", target: target(organization, environment), payload: { environment: environment.name, kind: "filestore", reason: message(error) } });
      }
    });

  /**
   * Runs a restore as a recorded run: the row is "running" before anything is touched, so a
   * carehost killed midway leaves a trace the next start turns into an audited failure; a restore
   * that fails is audited with its reason (restore.completed is the caller's, with its details).
   */
  const recordRestore = async <T extends { steps: readonly TRestoreStep[]; durationMs: number }>(
    ctx: TRequestContext,
    organization: TOrganizationSpec,
    environment: TBackedUp,
    described: string,
    destination: string,
    restore: () => Promise<T>,
  ): Promise<T> => {
    const inserted = await db.query<{ id: number }>(
      "INSERT INTO restore_runs (organization, environment, target, destination, status, started_at) VALUES ($1, $2, $3, $4, 'running', $5) RETURNING id",
      [organization.metadata.name, environment.name, described, destination, now()],
    );
    const id = inserted.rows[0]!.id;
    try {
      const result = await restore();
      await db.query("UPDATE restore_runs SET status = 'succeeded', steps = $2, duration_ms = $3, finished_at = $4 WHERE id = $1", [id, JSON.stringify(result.steps), result.durationMs, now()]);
      return result;
    } catch (error) {
      await db.query("UPDATE restore_runs SET status = 'failed', error = $2, finished_at = $3 WHERE id = $1", [id, message(error), now()]);
      await audit.append(ctx, { type: "restore.failed", outcome: "failure", target: target(organization, environment), payload: { environment: environment.name, target: described, destination, reason: message(error) } });
      throw error;
    }
  };

  const runDrill = (ctx: TRequestContext, organization: TOrganizationSpec, environment: TBackedUp, trigger: TTrigger): Promise<TDrillRun> =>
    exclusive(organization, () => runDrillNow(ctx, organization, environment, trigger));

  const runDrillNow = async (ctx: TRequestContext, organization: TOrganizationSpec, environment: TBackedUp, trigger: TTrigger): Promise<TDrillRun> => {
    const objectives = { rto: environment.backup.rtoMinutes, rpo: environment.backup.rpoMinutes };
    const inserted = await db.query<{ id: number }>(
      "INSERT INTO restore_drills (organization, environment, trigger, status, rto_objective_minutes, rpo_objective_minutes, started_at) VALUES ($1, $2, $3, 'running', $4, $5, $6) RETURNING id",
      [organization.metadata.name, environment.name, trigger, objectives.rto, objectives.rpo, now()],
    );
    const id = inserted.rows[0]!.id;
    try {
      const drill = await runtimeOrRefuse().drill(organization, environment.name);
      const problems = [
        ...(drill.amcheckPassed ? [] : [`pg_amcheck found problems: ${drill.amcheckOutput.slice(-300)}`]),
        ...drill.databasesMissing.map((database) => `database ${database} is missing from the restore`),
        ...(drill.rtoSeconds > objectives.rto * 60 ? [`achieved RTO ${Math.round(drill.rtoSeconds)} s exceeds the objective of ${objectives.rto} min`] : []),
        ...(drill.rpoSeconds === null ? ["the achieved RPO could not be measured (no heartbeat in the restore)"] : drill.rpoSeconds > objectives.rpo * 60 ? [`achieved RPO ${Math.round(drill.rpoSeconds)} s exceeds the objective of ${objectives.rpo} min`] : []),
      ];
      const status = problems.length === 0 ? "passed" : "failed";
      await db.query(
        "UPDATE restore_drills SET status = $2, backup_label = $3, rto_seconds = $4, rpo_seconds = $5, details = $6, finished_at = $7 WHERE id = $1",
        [id, status, drill.backupLabel, drill.rtoSeconds, drill.rpoSeconds, JSON.stringify({ problems, tables: drill.tables }), now()],
      );
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
      await audit.append(ctx, event);
      return (await drillRows("WHERE id = $1", [id]))[0]!;
    } catch (error) {
      await db.query("UPDATE restore_drills SET status = 'failed', error = $2, finished_at = $3 WHERE id = $1", [id, message(error), now()]);
      await audit.append(ctx, { type: "drill.failed", outcome: "failure", target: target(organization, environment), payload: { environment: environment.name, reason: message(error) } });
      throw error;
    }
  };

  const backupRows = async (where: string, params: readonly TSqlValue[]): Promise<TBackupRun[]> =>
    (
      await db.query<{ id: number; organization: string; environment: string; kind: string; trigger: string; status: string; label: string | null; database_bytes: number | null; repository_bytes: number | null; duration_ms: number | null; error: string | null; started_at: Date; finished_at: Date | null }>(
        `SELECT * FROM backup_runs ${where} ORDER BY started_at DESC, id DESC LIMIT 200`,
        params,
      )
    ).rows.map((row) => ({
      id: row.id, organization: row.organization, environment: row.environment, kind: row.kind, trigger: row.trigger, status: row.status, label: row.label,
      databaseBytes: row.database_bytes, repositoryBytes: row.repository_bytes, durationMs: row.duration_ms, error: row.error, startedAt: row.started_at, finishedAt: row.finished_at,
    }));

  const drillRows = async (where: string, params: readonly TSqlValue[]): Promise<TDrillRun[]> =>
    (
      await db.query<{ id: number; organization: string; environment: string; trigger: string; status: string; backup_label: string | null; rto_seconds: number | null; rpo_seconds: number | null; rto_objective_minutes: number; rpo_objective_minutes: number; details: { problems?: string[] } | null; error: string | null; started_at: Date; finished_at: Date | null }>(
        `SELECT * FROM restore_drills ${where} ORDER BY started_at DESC, id DESC LIMIT 200`,
        params,
      )
    ).rows.map((row) => ({
      id: row.id, organization: row.organization, environment: row.environment, trigger: row.trigger, status: row.status, backupLabel: row.backup_label,
      rtoSeconds: row.rto_seconds, rpoSeconds: row.rpo_seconds, rtoObjectiveMinutes: row.rto_objective_minutes, rpoObjectiveMinutes: row.rpo_objective_minutes,
      problems: row.details?.problems ?? (row.error === null ? [] : [row.error]), error: row.error, startedAt: row.started_at, finishedAt: row.finished_at,
    }));

  const restoreRows = async (where: string, params: readonly TSqlValue[]): Promise<TRestoreRun[]> =>
    (
      await db.query<{ id: number; organization: string; environment: string; target: string; destination: string; status: string; steps: TRestoreStep[] | null; duration_ms: number | null; error: string | null; started_at: Date; finished_at: Date | null }>(
        `SELECT * FROM restore_runs ${where} ORDER BY started_at DESC, id DESC LIMIT 200`,
        params,
      )
    ).rows.map((row) => ({
      id: row.id, organization: row.organization, environment: row.environment, target: row.target, destination: row.destination, status: row.status,
      steps: row.steps ?? [], durationMs: row.duration_ms, error: row.error, startedAt: row.started_at, finishedAt: row.finished_at,
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
      throw new ValidationError(`${name} is a production environment: its data is its own, restored only from its own backups (carehost restore ${into.name} --in-place)`);
    }
    const copyFrom = into.dataSource?.copyFrom;
    if (copyFrom !== undefined && copyFrom !== source.name) {
      throw new ValidationError(
        `${name} declares dataSource.copyFrom: ${JSON.stringify(copyFrom)}; restoring ${JSON.stringify(source.name)} into it would load data the spec does not declare for it: restore ${JSON.stringify(copyFrom)} into it, or change its dataSource`,
      );
    }
    if (into.dataSource?.deidentify === true && source.dataClass === "phi") {
      throw new ValidationError(`${name} declares dataSource.deidentify: true, and a restore copies ${JSON.stringify(source.name)}'s PHI as it is (carehost does not de-identify); load it through your de-identification process instead`);
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

  return {
    backup: async (ctx: TRequestContext, input: { environment: string; organization?: string; kind: TBackupType }) => {
      await authorize(ctx, "backup:run", audit, `environment/${input.environment}`);
      const { organization, environment } = await locate(input.environment, input.organization);
      return runBackup(ctx, organization, environment, input.kind, "manual");
    },

    verify: async (ctx: TRequestContext, input: { environment: string; organization?: string }) => {
      await authorize(ctx, "backup:run", audit, `environment/${input.environment}`);
      const { organization, environment } = await locate(input.environment, input.organization);
      return runVerify(ctx, organization, environment, "manual");
    },

    drill: async (ctx: TRequestContext, input: { environment: string; organization?: string }) => {
      await authorize(ctx, "restore:run", audit, `environment/${input.environment}`);
      const { organization, environment } = await locate(input.environment, input.organization);
      return runDrill(ctx, organization, environment, "manual");
    },

    /**
     * Restores to a point in time: into a new copy, in place, or into another declared environment.
     * A copy holds the source's data class; PHI goes only into a PHI-classed declared environment.
     * Replacing a declared environment's data (in place, or --into it) needs that environment's
     * maintenance window or a stated emergency, and takes a safety backup of it first when it is
     * backed up, so the restore itself can be undone. `onStep` hears of each step (secrets,
     * PostgreSQL, filestore, …) the moment it completes, so a caller can show progress.
     */
    restore: async (
      ctx: TRequestContext,
      input: { environment: string; organization?: string; target: TRestoreTarget; into?: string; inPlace?: boolean; emergencyReason?: string },
      onStep: (step: TRestoreStep) => void = () => undefined,
    ) => {
      await authorize(ctx, "restore:run", audit, `environment/${input.environment}`);
      const { organization, environment } = await locate(input.environment, input.organization);
      if ((input.into === undefined) === (input.inPlace !== true)) throw new ValidationError("say where to restore: --into <new copy or declared environment>, or --in-place");
      const described = input.target.kind === "time" ? input.target.time.toISOString() : input.target.kind === "lsn" ? `lsn ${input.target.lsn}` : "latest";
      const declared = input.into === undefined ? environment : organization.environments.find((candidate) => candidate.name === input.into);
      if (input.into !== undefined && declared !== undefined && environment.dataClass === "phi" && declared.dataClass !== "phi") {
        throw new ValidationError(`environment ${JSON.stringify(environment.name)} holds PHI; it may be restored only into a PHI-classed environment, and ${JSON.stringify(declared.name)} is dataClass ${declared.dataClass}`);
      }
      if (input.into !== undefined && declared === undefined) {
        const into = input.into;
        const result = await recordRestore(ctx, organization, environment, described, `copy ${into}`, () =>
          exclusive(organization, () => runtimeOrRefuse().restore(organization, environment.name, input.target, { kind: "copy", name: into }, onStep)),
        );
        await audit.append(ctx, {
          type: "restore.completed",
          outcome: "success",
          target: target(organization, environment),
          payload: { environment: environment.name, target: described, into, dataClass: environment.dataClass, port: result.port, filestoreFiles: result.filestoreFiles, steps: result.steps.map((step) => step.step), durationMs: result.durationMs },
        });
        return { environment: environment.name, target: described, ...result };
      }
      const replaced = declared!;
      if (input.into !== undefined) refuseUndeclaredSource(environment, replaced);
      const at = now();
      const slot = activeSlot(replaced.maintenanceWindow!, at);
      const emergency = input.emergencyReason?.trim();
      const what = input.into === undefined ? `an in-place restore of ${JSON.stringify(environment.name)}` : `a restore of ${JSON.stringify(environment.name)} into ${JSON.stringify(replaced.name)}`;
      if (slot === undefined && (emergency === undefined || emergency.length < 10)) {
        throw new ValidationError(
          `${what} replaces the data of ${JSON.stringify(replaced.name)}: run it inside its maintenance window (${replaced.maintenanceWindow!.timeZone}), or state the emergency with --emergency "<reason of at least 10 characters>"`,
        );
      }
      if (slot === undefined) {
        await audit.append(ctx, {
          type: "restore.emergency",
          outcome: "success",
          target: target(organization, replaced),
          payload: { environment: replaced.name, target: described, reason: emergency!.slice(0, 500), ...(replaced.name === environment.name ? {} : { source: environment.name }) },
        });
      }
      // The target's own backups undo the restore; a target without backups has nothing to undo with.
      const safety = replaced.backup.enabled ? await runBackup(ctx, organization, replaced as TBackedUp, "incr", "manual") : undefined;
      const destination = input.into === undefined ? ({ kind: "in-place" } as const) : ({ kind: "environment", name: replaced.name } as const);
      const result = await recordRestore(ctx, organization, environment, described, input.into === undefined ? "in place" : `environment ${replaced.name}`, () =>
        exclusive(organization, () => runtimeOrRefuse().restore(organization, environment.name, input.target, destination, onStep)),
      );
      const outcome = { filestoreFiles: result.filestoreFiles, steps: result.steps.map((step) => step.step), durationMs: result.durationMs };
      await audit.append(ctx, {
        type: "restore.completed",
        outcome: "success",
        target: target(organization, environment),
        payload: input.into === undefined
          ? { environment: environment.name, target: described, inPlace: true, safetyBackup: safety!.label, emergency: slot === undefined, ...outcome }
          : { environment: environment.name, target: described, intoEnvironment: replaced.name, safetyBackup: safety?.label ?? null, emergency: slot === undefined, ...outcome },
      });
      const over = input.into === undefined ? {} : { into: replaced.name };
      if (safety === undefined) return { environment: environment.name, target: described, ...over, ...result };
      return { environment: environment.name, target: described, safetyBackup: safety.label, ...over, ...result };
    },

    listBackups: async (ctx: TRequestContext, environment?: string) => {
      await authorize(ctx, "backup:read", audit);
      return environment === undefined ? backupRows("", []) : backupRows("WHERE environment = $1", [environment]);
    },

    listRestores: async (ctx: TRequestContext, environment?: string) => {
      await authorize(ctx, "backup:read", audit);
      return environment === undefined ? restoreRows("", []) : restoreRows("WHERE environment = $1", [environment]);
    },

    listDrills: async (ctx: TRequestContext, environment?: string) => {
      await authorize(ctx, "backup:read", audit);
      return environment === undefined ? drillRows("", []) : drillRows("WHERE environment = $1", [environment]);
    },

    /** Last backup and last drill per environment, for status (no authorization: status checks its own). */
    summaries: async () => {
      const backups = await backupRows("WHERE id IN (SELECT max(id) FROM backup_runs WHERE kind IN ('full', 'diff', 'incr') GROUP BY organization, environment)", []);
      const verifications = await backupRows("WHERE id IN (SELECT max(id) FROM backup_runs WHERE kind = 'verify' GROUP BY organization, environment)", []);
      const drills = await drillRows("WHERE id IN (SELECT max(id) FROM restore_drills GROUP BY organization, environment)", []);
      return { backups, drills, verifications };
    },

    /** Runs what the schedules say is due: a first full backup at once, then full/diff/incr and drills on their cron. */
    runDue: async (): Promise<number> => {
      if (configuredRuntime === undefined) return 0;
      const ctx = systemContext("scheduler");
      const at = now();
      let started = 0;
      for (const organization of await latestSpecs()) {
        for (const environment of organization.environments.filter((item): item is TBackedUp => item.backup.enabled)) {
          // Only a succeeded run counts: a failed one is retried at the next pass.
          const latest = (kind: string) =>
            backupRows("WHERE organization = $1 AND environment = $2 AND kind = $3 AND status = 'succeeded'", [organization.metadata.name, environment.name, kind]).then((rows) => rows[0]);
          const lastFull = await latest("full");
          if (lastFull === undefined) {
            // No full backup yet (a new environment, or every attempt failed): take one now; diff and incr need it as their base.
            started += 1;
            await runBackup(ctx, organization, environment, "full", "schedule").catch(() => undefined);
            continue;
          }
          const schedules: [TBackupType, string | undefined][] = [["full", environment.backup.schedule.full], ["diff", environment.backup.schedule.differential], ["incr", environment.backup.schedule.incremental]];
          let ranThisPass = false;
          for (const [kind, cron] of schedules) {
            if (cron === undefined || ranThisPass) continue;
            const last = kind === "full" ? lastFull : await latest(kind);
            const fired = lastFiring(cron, at);
            // Any newer backup of a larger kind covers a smaller one's slot (a full covers a diff).
            const covering = [lastFull, ...(kind === "incr" ? [await latest("diff")] : []), last].filter((run) => run !== undefined).map((run) => run.startedAt);
            if (fired === undefined || covering.some((time) => time >= fired)) continue;
            started += 1;
            ranThisPass = true;
            await runBackup(ctx, organization, environment, kind, "schedule").catch(() => undefined);
          }
          // The filestore between database backups: a snapshot every quarter of the RPO when it changed.
          const lastFilestore = (await backupRows("WHERE organization = $1 AND environment = $2 AND kind = 'filestore'", [organization.metadata.name, environment.name]))[0];
          const lastSnapshotAt = Math.max(lastFull.startedAt.getTime(), lastFilestore?.startedAt.getTime() ?? 0);
          if (!ranThisPass && at.getTime() - lastSnapshotAt >= archiveTimeoutSeconds(environment.backup.rpoMinutes) * 1000) {
            await runFilestoreSnapshot(ctx, organization, environment);
          }
          // Repository verification once a day: a backup counts only while what holds it reads back whole.
          const lastVerify = await latest("verify").then(async (succeeded) => succeeded ?? (await backupRows("WHERE organization = $1 AND environment = $2 AND kind = 'verify'", [organization.metadata.name, environment.name]))[0]);
          if (lastVerify === undefined || at.getTime() - lastVerify.startedAt.getTime() >= VERIFY_INTERVAL_MS) {
            started += 1;
            await runVerify(ctx, organization, environment, "schedule");
          }
          const drillCron = environment.backup.restoreDrill?.schedule;
          const fired = drillCron === undefined ? undefined : lastFiring(drillCron, at);
          const lastDrill = (await drillRows("WHERE organization = $1 AND environment = $2", [organization.metadata.name, environment.name]))[0];
          if (fired !== undefined && lastFull !== undefined && (lastDrill === undefined || lastDrill.startedAt < fired)) {
            started += 1;
            await runDrill(ctx, organization, environment, "schedule").catch(() => undefined);
          }
        }
      }
      return started;
    },

    /**
     * Runs left "running" by a carehost that stopped midway are failures, not backups: each is
     * marked failed and audited, so the log tells of every run that was started.
     */
    markInterrupted: async (): Promise<number> => {
      const ctx = systemContext("startup");
      const reason = INTERRUPTED;
      const at = now();
      const backups = await db.query<{ organization: string; environment: string; kind: "full" | "diff" | "incr" | "verify" | "filestore" }>(
        "UPDATE backup_runs SET status = 'failed', error = $2, finished_at = $1 WHERE status = 'running' RETURNING organization, environment, kind",
        [at, reason],
      );
      for (const run of backups.rows) {
        await audit.append(ctx, { type: "backup.failed", outcome: "failure", target: targetNamed(run.organization, run.environment), payload: { environment: run.environment, kind: run.kind, reason } });
      }
      const drills = await db.query<{ organization: string; environment: string }>(
        "UPDATE restore_drills SET status = 'failed', error = $2, finished_at = $1 WHERE status = 'running' RETURNING organization, environment",
        [at, reason],
      );
      for (const run of drills.rows) {
        await audit.append(ctx, { type: "drill.failed", outcome: "failure", target: targetNamed(run.organization, run.environment), payload: { environment: run.environment, reason } });
      }
      const restores = await db.query<{ organization: string; environment: string; target: string; destination: string }>(
        "UPDATE restore_runs SET status = 'failed', error = $2, finished_at = $1 WHERE status = 'running' RETURNING organization, environment, target, destination",
        [at, reason],
      );
      for (const run of restores.rows) {
        await audit.append(ctx, {
          type: "restore.failed",
          outcome: "failure",
          target: targetNamed(run.organization, run.environment),
          payload: { environment: run.environment, target: run.target, destination: run.destination, reason },
        });
      }
      return backups.rows.length + drills.rows.length + restores.rows.length;
    },
  };
};

export type TRecoveryService = ReturnType<typeof recoveryServiceFactory>;
