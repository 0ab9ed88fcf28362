// How a run's row ends: with the audit entries that say how, in one transaction (endRow), and, for
// a run whose work completed, never as failed when its completion entry cannot be written
// (endCompleted).
import type { TAuditEvent } from "../audit/audit-types.js";
import { ConflictError } from "../lib/errors.js";
import type { TRequestContext } from "../lib/request-context.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import type { TSqlValue } from "../store/store-types.js";
import type { TBackedUp, TRecoveryContext } from "./recovery-context.js";
import { COMPLETED_UNRECORDED, interruptedError, message } from "./recovery-runs.js";

export const recoveryRunEndFactory = ({ db, audit, target }: Pick<TRecoveryContext, "db" | "audit" | "target">) => {
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

  return { endRow, endCompleted };
};

export type TRecoveryRunEnd = ReturnType<typeof recoveryRunEndFactory>;
