// Runs left "running" by a carehost that stopped are interrupted, and audited as such: at start-up
// those a killed carehost could not mark (markInterrupted: the runs whose operation no live lease
// holds, so another replica's runs go on), those of an operation another replica found with its
// lease run out (markInterruptedFor), at a stop those it was running (interruptRows, from
// shutdown), every row with its entry in one transaction.
import type { TAuditEvent } from "../audit/audit-types.js";
import { systemContext } from "../lib/request-context.js";
import type { TRequestContext } from "../lib/request-context.js";
import type { TRecoveryContext } from "./recovery-context.js";
import { COMPLETED_UNRECORDED, INTERRUPTED } from "./recovery-runs.js";
import type { TRunKind, TRunRef } from "./recovery-runs.js";

export const recoveryInterruptionFactory = ({
  audit,
  now,
  targetNamed,
}: Pick<TRecoveryContext, "audit" | "now" | "targetNamed">) => {
  /**
   * Every run left "running" that `only` selects (all when absent) is interrupted, and audited as
   * such. A run whose work had completed when recording its end failed (its error begins with
   * COMPLETED_UNRECORDED, which endCompleted writes on the "running" row) keeps that error and is
   * audited as recovery.completion_unrecorded: it neither failed nor was stopped.
   */
  const interruptRows = async (
    ctx: TRequestContext,
    only: readonly TRunRef[] | { readonly operation: number } | "orphaned",
    reason = INTERRUPTED,
  ): Promise<number> => {
    const at = now();
    const selected = (kinds: readonly TRunKind[]): { where: string; params: readonly (string | number)[] } => {
      if (only === "orphaned")
        return {
          where: ` AND (operation_id IS NULL OR operation_id NOT IN (SELECT id FROM operations WHERE state IN ('pending', 'running') AND lease_expires_at > now()))`,
          params: [],
        };
      if (!Array.isArray(only))
        return { where: " AND operation_id = $3", params: [(only as { operation: number }).operation] };
      const ids = (only as readonly TRunRef[]).filter((run) => kinds.includes(run.kind)).map((run) => run.id);
      return {
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

  return {
    interruptRows,

    /**
     * Runs left "running" by a carehost that stopped midway (killed, so it could not say so) are
     * interrupted, not backups: each is marked and audited, so the log tells of every run started.
     * Only those whose operation no live lease holds: a replica's runs are that replica's.
     */
    markInterrupted: async (): Promise<number> => interruptRows(systemContext("startup"), "orphaned"),

    /** The runs of an operation found with its lease run out (its replica died), interrupted with its reason. */
    markInterruptedFor: async (operation: { readonly id: number; readonly error: string | null }): Promise<number> =>
      interruptRows(systemContext("operations"), { operation: operation.id }, operation.error ?? INTERRUPTED),
  };
};

export type TRecoveryInterruption = ReturnType<typeof recoveryInterruptionFactory>;
