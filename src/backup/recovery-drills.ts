// Restore drills as recorded runs: the drill's row and steps, and what it found held against the
// environment's RTO and RPO objectives (a drill that misses one, or finds damage, is a failed
// drill: an alert in `status` until a drill passes).
import type { TAuditEvent } from "../audit/audit-types.js";
import type { TRequestContext } from "../lib/request-context.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import type { TBackedUp, TRecoveryContext } from "./recovery-context.js";
import type { TDrillOutcome } from "./recovery-driver.js";
import { unwrap } from "./recovery-live.js";
import type { TRecoveryLive } from "./recovery-live.js";
import type { TRecoveryRunEnd } from "./recovery-run-end.js";
import { message } from "./recovery-runs.js";
import type { TDrillRun, TRecoveryRuns, TRunStep, TStartedRun, TTrigger } from "./recovery-runs.js";

export const recoveryDrillsFactory = ({
  db,
  now,
  runtimeOrRefuse,
  target,
  exclusive,
  beginRun,
  launch,
  endRow,
  endCompleted,
  drillRows,
}: Pick<TRecoveryContext, "db" | "now" | "runtimeOrRefuse" | "target"> &
  Pick<TRecoveryLive, "exclusive" | "beginRun" | "launch"> &
  TRecoveryRunEnd &
  Pick<TRecoveryRuns, "drillRows">) => {
  const startDrill = async (
    ctx: TRequestContext,
    organization: TOrganizationSpec,
    environment: TBackedUp,
    trigger: TTrigger,
  ): Promise<TStartedRun<TDrillRun>> => {
    const { id, operation } = await beginRun(
      ctx,
      { kind: "drill", organization, environment, params: { trigger } },
      async (operationId) =>
        (
          await db.query<{ id: number }>(
            "INSERT INTO restore_drills (organization, environment, trigger, status, rto_objective_minutes, rpo_objective_minutes, started_at, operation_id) VALUES ($1, $2, $3, 'running', $4, $5, $6, $7) RETURNING id",
            [
              organization.metadata.name,
              environment.name,
              trigger,
              environment.backup.rtoMinutes,
              environment.backup.rpoMinutes,
              now(),
              operationId,
            ],
          )
        ).rows[0]!.id,
    );
    return launch({ id, kind: "drill", target: target(organization, environment) }, operation, (onStep) =>
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
    let drill: TDrillOutcome;
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
  return { startDrill, runDrill };
};

export type TRecoveryDrills = ReturnType<typeof recoveryDrillsFactory>;
