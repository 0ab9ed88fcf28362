// Backups and what goes with them, as recorded runs: a database backup with the filestores (its
// row and entries, then expiry of what the retention tiers no longer keep), a verification of the
// repositories (a backup run of kind verify), and a filestore snapshot between backups.
import type { TAuditEvent } from "../audit/audit-types.js";
import type { TRequestContext } from "../lib/request-context.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import type { TBackedUp, TRecoveryContext } from "./recovery-context.js";
import type { TBackupOutcome, TBackupType } from "./recovery-driver.js";
import { unwrap } from "./recovery-live.js";
import type { TRecoveryLive } from "./recovery-live.js";
import type { TRecoveryRunEnd } from "./recovery-run-end.js";
import { interruptedError, message } from "./recovery-runs.js";
import type { TRunStep, TStartedRun, TTrigger } from "./recovery-runs.js";

export const recoveryBackupsFactory = ({
  db,
  audit,
  now,
  runtimeOrRefuse,
  target,
  exclusive,
  beginRun,
  launch,
  endRow,
  endCompleted,
}: Pick<TRecoveryContext, "db" | "audit" | "now" | "runtimeOrRefuse" | "target"> &
  Pick<TRecoveryLive, "exclusive" | "beginRun" | "launch"> &
  TRecoveryRunEnd) => {
  const startBackup = async (
    ctx: TRequestContext,
    organization: TOrganizationSpec,
    environment: TBackedUp,
    kind: TBackupType,
    trigger: TTrigger,
  ): Promise<TStartedRun<Awaited<ReturnType<typeof runBackupNow>>>> => {
    const { id, operation } = await beginRun(
      ctx,
      { kind: "backup", organization, environment, params: { backupType: kind, trigger } },
      async (operationId) =>
        (
          await db.query<{ id: number }>(
            "INSERT INTO backup_runs (organization, environment, kind, trigger, status, started_at, operation_id) VALUES ($1, $2, $3, $4, 'running', $5, $6) RETURNING id",
            [organization.metadata.name, environment.name, kind, trigger, now(), operationId],
          )
        ).rows[0]!.id,
    );
    return launch({ id, kind: "backup", target: target(organization, environment) }, operation, (onStep) =>
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
    let result: TBackupOutcome;
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
    const { id, operation } = await beginRun(
      ctx,
      { kind: "verify", organization, environment, params: { trigger } },
      async (operationId) =>
        (
          await db.query<{ id: number }>(
            "INSERT INTO backup_runs (organization, environment, kind, trigger, status, started_at, operation_id) VALUES ($1, $2, 'verify', $3, 'running', $4, $5) RETURNING id",
            [organization.metadata.name, environment.name, trigger, now(), operationId],
          )
        ).rows[0]!.id,
    );
    return launch({ id, kind: "verify", target: target(organization, environment) }, operation, () =>
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

  /**
   * A filestore snapshot between database backups (kind filestore). When no file changed it takes
   * none and records the look as 'unchanged' (no audit entry: nothing changed), which the scheduler
   * counts as the last one, so the next is due a quarter of the RPO later, not at the next pass.
   */
  const runFilestoreSnapshot = (ctx: TRequestContext, organization: TOrganizationSpec, environment: TBackedUp) =>
    exclusive(organization, environment, async () => {
      const started = now();
      try {
        const result = await runtimeOrRefuse().snapshotFilestore(organization, environment.name);
        if (result === undefined) {
          await db.query(
            "INSERT INTO backup_runs (organization, environment, kind, trigger, status, duration_ms, started_at, finished_at) VALUES ($1, $2, 'filestore', 'schedule', 'unchanged', $3, $4, $5)",
            [organization.metadata.name, environment.name, now().getTime() - started.getTime(), started, now()],
          );
          return;
        }
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

  return { startBackup, runBackup, startVerify, runVerify, runFilestoreSnapshot };
};

export type TRecoveryBackups = ReturnType<typeof recoveryBackupsFactory>;
