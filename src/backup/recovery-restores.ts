// Restores as recorded runs: into a new copy, in place, or into another declared environment.
// What is refused (PHI into an environment not classed PHI, data a declared environment's
// dataSource does not name, replacing an environment's data outside its maintenance window without
// a stated emergency) is refused before the run starts; over an environment, its safety backup
// comes first.
import type { TAuditEvent } from "../audit/audit-types.js";
import { insertCopy } from "../copies/copies-store.js";
import type { TCopyDataClass, TCopyRecord } from "../copies/copies-store.js";
import { PolicyViolation, ValidationError } from "../lib/errors.js";
import { actorName, type TRequestContext } from "../lib/request-context.js";
import { activeSlot } from "../spec/maintenance-window.js";
import { DEFAULT_PHI_COPY_HOURS } from "../spec/spec-schema.js";
import type { TEnvironmentSpec, TOrganizationSpec } from "../spec/spec-schema.js";
import type { TRecoveryBackups } from "./recovery-backups.js";
import type { TBackedUp, TRecoveryContext } from "./recovery-context.js";
import type {
  TDeidentified,
  TDeidentifyRequest,
  TRestoreOutcome,
  TRestoreStep,
  TRestoreTarget,
} from "./recovery-driver.js";
import type { TRecoveryLive } from "./recovery-live.js";
import type { TRecoveryRunEnd } from "./recovery-run-end.js";
import { message } from "./recovery-runs.js";
import type { TRunEvent, TRunStep, TStartedRun } from "./recovery-runs.js";

export const recoveryRestoresFactory = ({
  db,
  audit,
  now,
  runtimeOrRefuse,
  locate,
  target,
  exclusive,
  beginRun,
  launch,
  endRow,
  endCompleted,
  runBackup,
}: Pick<TRecoveryContext, "db" | "audit" | "now" | "runtimeOrRefuse" | "locate" | "target"> &
  Pick<TRecoveryLive, "exclusive" | "beginRun" | "launch"> &
  TRecoveryRunEnd &
  Pick<TRecoveryBackups, "runBackup">) => {
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
  };

  type TRestored = TRestoreOutcome & { environment: string; target: string };
  /** Over a declared environment, its name; with its safety backup when it is backed up. */
  type TRestoreResult = TRestored | (TRestored & { into?: string; safetyBackup: string });
  type TRestoreInput = {
    environment: string;
    organization?: string;
    target: TRestoreTarget;
    into?: string;
    inPlace?: boolean;
    emergencyReason?: string;
    /** Neutralize and de-identify the data in a scratch copy, verify it, and only then swap it in. */
    deidentify?: boolean;
    /** How long a new copy holding PHI lives, in hours; at most the spec's copies.maxPhiHours. */
    expiresInHours?: number;
  };

  /** Counts and names of what a de-identified restore did, for its entry (never a value). */
  const deidentifiedSummary = (deidentified: TDeidentified) => ({
    rows: deidentified.tables.reduce((sum, table) => sum + table.rows, 0),
    tables: deidentified.tables.length,
    attachmentsReplaced: deidentified.attachmentsReplaced,
    filesRemoved: deidentified.filesRemoved,
    checks: deidentified.verification.checks.map((check) => check.name),
    sampled: deidentified.verification.sampled,
    scannedColumns: deidentified.verification.scannedColumns,
  });

  /**
   * Records where the data went, in the copies table, with the class it holds now: "deidentified"
   * only with a verification the driver reports passed. A PHI copy gets its expiry.
   */
  const recordCopy = async (
    ctx: TRequestContext,
    organization: TOrganizationSpec,
    source: TEnvironmentSpec,
    copy: {
      name: string;
      kind: "copy" | "environment";
      restoredTo: string;
      runId: number;
      port: number | null;
      deidentified: TDeidentified | undefined;
      dataClass: TCopyDataClass;
      expiresAt: Date | null;
    },
  ): Promise<TCopyRecord> => {
    const { result } = await audit.recordChange(ctx, async (tx) => {
      const recorded = await insertCopy(tx, {
        organization: organization.metadata.name,
        name: copy.name,
        kind: copy.kind,
        sourceEnvironment: source.name,
        sourceDataClass: source.dataClass,
        restoredTo: copy.restoredTo,
        dataClass: copy.dataClass,
        restoreRunId: copy.runId,
        owner: actorName(ctx.actor),
        port: copy.port,
        verification: copy.deidentified?.verification ?? null,
        createdAt: now(),
        expiresAt: copy.expiresAt,
      });
      return {
        result: recorded,
        events: [
          {
            type: "copy.created",
            outcome: "success",
            target: `copy/${organization.metadata.name}/${copy.name}`,
            payload: {
              name: copy.name,
              kind: copy.kind,
              source: source.name,
              restoredTo: copy.restoredTo,
              dataClass: copy.dataClass,
              restoreRun: copy.runId,
              expiresAt: copy.expiresAt?.toISOString() ?? null,
              ...(copy.deidentified === undefined
                ? {}
                : { verifiedChecks: copy.deidentified.verification.checks.map((check) => check.name) }),
            },
          },
        ],
      };
    });
    return result;
  };

  /** What the copy holds once restored: de-identified when verified, else the source's class. */
  const dataClassOf = (source: TEnvironmentSpec, deidentified: TDeidentified | undefined): TCopyDataClass =>
    deidentified !== undefined && deidentified.verification.ok ? "deidentified" : source.dataClass;

  /** A policy refusal (exit 3), audited as denied before it is thrown. */
  const refuse = async (
    ctx: TRequestContext,
    organization: TOrganizationSpec,
    source: TEnvironmentSpec,
    into: string,
    described: string,
    reason: string,
  ): Promise<never> => {
    await audit.append(ctx, {
      type: "restore.refused",
      outcome: "denied",
      target: target(organization, source),
      payload: { environment: source.name, target: described, into, reason: reason.slice(0, 500) },
    });
    throw new PolicyViolation(reason, [{ path: "deidentify", message: reason }]);
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
    const deidentify: TDeidentifyRequest | undefined =
      input.deidentify === true
        ? { odooVersion: environment.odoo.version, extraTables: environment.deidentify?.tables ?? [] }
        : undefined;
    if (deidentify !== undefined && input.into === undefined)
      throw new ValidationError(
        "--deidentify makes a copy (--into <new copy or declared environment>); an in-place restore brings back the environment's own data",
      );
    if (
      input.into !== undefined &&
      declared !== undefined &&
      deidentify === undefined &&
      environment.dataClass === "phi"
    ) {
      if (declared.dataClass !== "phi")
        await refuse(
          ctx,
          organization,
          environment,
          declared.name,
          described,
          `CH-DATA-001 [164.308(a)(4), 164.312(a)(1)] environment ${JSON.stringify(environment.name)} holds PHI; it may be restored only into a PHI-classed environment, and ${JSON.stringify(declared.name)} is dataClass ${declared.dataClass}: add --deidentify for a verified de-identified copy`,
        );
      if (declared.dataSource?.deidentify === true)
        await refuse(
          ctx,
          organization,
          environment,
          declared.name,
          described,
          `CH-DATA-001 [164.308(a)(4), 164.312(a)(1)] environment ${JSON.stringify(declared.name)} declares dataSource.deidentify: true; PHI of ${JSON.stringify(environment.name)} goes into it only de-identified: add --deidentify`,
        );
    }
    const maxPhiHours = organization.copies?.maxPhiHours ?? DEFAULT_PHI_COPY_HOURS;
    if (input.expiresInHours !== undefined && (input.expiresInHours < 1 || input.expiresInHours > maxPhiHours))
      throw new ValidationError(
        `--expires-in-hours ${input.expiresInHours}: a copy of PHI lives between 1 and ${maxPhiHours} hours (copies.maxPhiHours)`,
      );
    const phiCopyHours = input.expiresInHours ?? Math.min(DEFAULT_PHI_COPY_HOURS, maxPhiHours);
    /**
     * The run's operation, holding the cluster whose data the restore writes (`holder`: the source's
     * for a copy, the replaced environment's otherwise), then its "running" row with the entries
     * that must exist once it does (an emergency's reason).
     */
    const begin = async (destination: string, holder: TEnvironmentSpec, events: readonly TAuditEvent[] = []) => {
      const { id, operation } = await beginRun(
        ctx,
        {
          kind: "restore",
          organization,
          environment: holder,
          params: { source: environment.name, target: described, destination },
        },
        async (operationId) =>
          (
            await audit.recordChange(ctx, async (tx) => {
              const inserted = await tx.query<{ id: number }>(
                "INSERT INTO restore_runs (organization, environment, target, destination, status, started_at, operation_id) VALUES ($1, $2, $3, $4, 'running', $5, $6) RETURNING id",
                [organization.metadata.name, environment.name, described, destination, now(), operationId],
              );
              return { result: inserted.rows[0]!.id, events };
            })
          ).result,
      );
      return { id, described, destination, operation };
    };
    if (input.into !== undefined && declared === undefined) {
      const into = input.into;
      const row = await begin(`copy ${into}`, environment);
      return launch(
        { id: row.id, kind: "restore", target: target(organization, environment) },
        row.operation,
        async (onStep) => {
          const recorded = { copy: undefined as TCopyRecord | undefined };
          const answer = <T extends object>(result: T) => ({
            environment: environment.name,
            target: described,
            ...result,
            ...(recorded.copy === undefined
              ? {}
              : { dataClass: recorded.copy.dataClass, expiresAt: recorded.copy.expiresAt?.toISOString() ?? null }),
          });
          const result = await recordRestore(
            ctx,
            organization,
            environment,
            { ...row, onStep },
            (recordStep) =>
              exclusive(organization, environment, async () => {
                const restored = await runtimeOrRefuse().restore(
                  organization,
                  environment.name,
                  input.target,
                  { kind: "copy", name: into, ...(deidentify === undefined ? {} : { deidentify }) },
                  recordStep,
                );
                const dataClass = dataClassOf(environment, restored.deidentified);
                try {
                  recorded.copy = await recordCopy(ctx, organization, environment, {
                    name: into,
                    kind: "copy",
                    restoredTo: described,
                    runId: row.id,
                    port: restored.port,
                    deidentified: restored.deidentified,
                    dataClass,
                    expiresAt: dataClass === "phi" ? new Date(now().getTime() + phiCopyHours * 3_600_000) : null,
                  });
                } catch (error) {
                  // A copy nobody recorded would hold its data unseen and never expire: it goes.
                  await runtimeOrRefuse()
                    .removeCopy(organization, into)
                    .catch(() => undefined);
                  throw error;
                }
                return restored;
              }),
            answer,
            (restored) => ({
              type: "restore.completed",
              outcome: "success",
              target: target(organization, environment),
              payload: {
                environment: environment.name,
                target: described,
                into,
                dataClass: recorded.copy?.dataClass ?? environment.dataClass,
                port: restored.port,
                filestoreFiles: restored.filestoreFiles,
                steps: restored.steps.map((step) => step.step),
                durationMs: restored.durationMs,
                ...(restored.deidentified === undefined
                  ? {}
                  : { deidentified: deidentifiedSummary(restored.deidentified) }),
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
      replaced,
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
      row.operation,
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
              safetyBackup.label = // Part of the restore's operation, which already holds the cluster (it joins it).
                (await runBackup(ctx, organization, replaced as TBackedUp, "incr", "manual")).label;
            // The cluster whose data is replaced is the one held; the source's archive is only read.
            const restored = await exclusive(organization, replaced, () =>
              runtimeOrRefuse().restore(
                organization,
                environment.name,
                input.target,
                destination.kind === "environment" && deidentify !== undefined
                  ? { ...destination, deidentify }
                  : destination,
                recordStep,
              ),
            );
            // Where the data came from and what class it is now, for CH-DATA-001 and carehost copies.
            if (destination.kind === "environment")
              await recordCopy(ctx, organization, environment, {
                name: replaced.name,
                kind: "environment",
                restoredTo: described,
                runId: row.id,
                port: restored.port,
                deidentified: restored.deidentified,
                dataClass: dataClassOf(environment, restored.deidentified),
                expiresAt: null,
              });
            return restored;
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
                      ...(restored.deidentified === undefined
                        ? {}
                        : { deidentified: deidentifiedSummary(restored.deidentified) }),
                    },
            };
          },
        );
        return answer(result);
      },
      listener,
    );
  };

  return {
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
  };
};
