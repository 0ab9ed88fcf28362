// Run records: what a backup, verification, restore or drill run is (its row in backup_runs,
// restore_runs or restore_drills, its steps, how it ended), the rows read back for listings and
// `status`, and one run as a caller allowed to read its organization's runs sees it.
import { authorize, inScope, recordDenial, scopeOf } from "../identity/identity-permissions.js";
import type { TPermissionScope } from "../identity/identity-permissions.js";
import { ConflictError, NotFoundError } from "../lib/errors.js";
import type { TRequestContext } from "../lib/request-context.js";
import type { TSqlValue } from "../store/store-types.js";
import type { TRecoveryContext } from "./recovery-context.js";
import type { TRestoreStep } from "./recovery-driver.js";

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
export type TTrigger = "schedule" | "manual";

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

/** Why a run left "running" by a stopped carehost failed; what it half-made, the reconcile at the next start removes or finishes. */
export const INTERRUPTED = "interrupted: carehost stopped before it finished";
/** How the error of a run whose work completed, and whose completion could not be recorded, begins. */
export const COMPLETED_UNRECORDED = "completed, but its end could not be recorded: ";
export const interruptedError = () =>
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
export const message = (error: unknown) => (error instanceof Error ? error.message : String(error)).slice(0, 500);
export const asError = (error: unknown) => (error instanceof Error ? error : new Error(String(error)));
const TABLE_OF: Record<TRunKind, "backup_runs" | "restore_runs" | "restore_drills"> = {
  backup: "backup_runs",
  verify: "backup_runs",
  restore: "restore_runs",
  drill: "restore_drills",
};

export const recoveryRunsFactory = ({
  db,
  audit,
  targetNamed,
}: Pick<TRecoveryContext, "db" | "audit" | "targetNamed">) => {
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

  return {
    backupRows,
    drillRows,
    restoreRows,
    visibleRun,
    runView,

    listBackups: async (ctx: TRequestContext, environment?: string) =>
      backupRows(...(await listingWhere(ctx, environment))),

    listRestores: async (ctx: TRequestContext, environment?: string) =>
      restoreRows(...(await listingWhere(ctx, environment))),

    listDrills: async (ctx: TRequestContext, environment?: string) =>
      drillRows(...(await listingWhere(ctx, environment))),

    /** Last backup, last completed backup, last verification and last drill per environment, for status and monitoring (no authorization: they check their own). */
    summaries: async () => {
      const backups = await backupRows(
        "WHERE id IN (SELECT max(id) FROM backup_runs WHERE kind IN ('full', 'diff', 'incr') GROUP BY organization, environment)",
        [],
      );
      // The last backup that completed, which the backup's age is counted from (monitoring): the
      // newest run may be one that failed or is still going.
      const completedBackups = await backupRows(
        "WHERE id IN (SELECT max(id) FROM backup_runs WHERE kind IN ('full', 'diff', 'incr') AND status = 'succeeded' GROUP BY organization, environment)",
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
      return { backups, completedBackups, drills, verifications };
    },
  };
};

export type TRecoveryRuns = ReturnType<typeof recoveryRunsFactory>;
