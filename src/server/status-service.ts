// `carehost status`: one read that tells an operator what carehost holds right now.
import type { TEnvironmentService } from "../environments/environment-service.js";
import { authorize } from "../identity/identity-permissions.js";
import type { TAuditAppend } from "../identity/identity-types.js";
import type { TRequestContext } from "../lib/request-context.js";
import type { TStoreKind } from "../store/store-types.js";
import type { TBackupRun, TDrillRun } from "../backup/recovery-runs.js";
import { archivingAlert } from "../backup/wal-archiving.js";
import type { TWalArchiving } from "../backup/wal-archiving.js";
import type { TEnvironmentSpec } from "../spec/spec-schema.js";
import type { TAlert as TMonitorAlert } from "../monitor/monitor-alert-types.js";

const isFailure = (status: string | undefined) => status === "failed" || status === "interrupted";

/** WAL archiving of a backed-up environment's cluster as `status` shows it (see backup/wal-archiving.ts for the lag). */
export type TArchivingStatus = {
  lastArchivedWal: string | null;
  lastArchivedAt: string | null;
  failedCount: number;
  lastFailedWal: string | null;
  lastFailedAt: string | null;
  currentWalLsn: string | null;
  archiveLagSeconds: number;
};

/** A PostgreSQL cluster or Redis instance on this host, where it listens and whether it runs. */
export type TInstanceStatus = {
  instance: string;
  host: string;
  port: number | null;
  state: "running" | "stopped" | "absent";
};

/** The newest backup run of an environment; `ageSeconds` is counted at the time of the report. */
export type TBackupStatus = {
  kind: string;
  status: string;
  label: string | null;
  startedAt: string;
  finishedAt: string | null;
  ageSeconds: number;
};
/** The last backup that completed, which a restore can use: a newer run may have failed. */
export type TSuccessfulBackupStatus = {
  kind: string;
  label: string | null;
  finishedAt: string;
  ageSeconds: number;
};
/** An alert carehost's own evaluation holds firing (carehost alerts). */
export type TFiringAlertStatus = {
  id: number;
  rule: string;
  environment: string;
  instance: string;
  severity: string;
  summary: string;
  firedAt: string;
  acknowledgedBy: string | null;
};
/** The newest restore drill, with what it measured against the objectives. */
export type TDrillStatus = {
  status: string;
  startedAt: string;
  ageSeconds: number;
  rtoSeconds: number | null;
  rtoObjectiveMinutes: number;
  rpoSeconds: number | null;
  rpoObjectiveMinutes: number;
  problems: string[];
};
export const ALERT_KINDS = [
  "drill-failed",
  "backup-failed",
  "verification-failed",
  "archiving",
  "repository-skipped",
] as const;
export type TAlert = { kind: (typeof ALERT_KINDS)[number]; message: string };

export type TStatusReport = {
  version: string;
  url: string;
  store: TStoreKind;
  uptimeSeconds: number;
  audit: { treeSize: number; lastCheckpoint: { treeSize: number; time: string } | null };
  /** carehost's own alerts firing (failed sign-ins, privilege changes), for a caller over every organization. */
  platformAlerts: TFiringAlertStatus[];
  organizations: {
    name: string;
    revision: { id: number; digest: string; appliedBy: string; appliedAt: string };
    /** Emergency changes awaiting their retrospective approval (an ALERT), or escalated past 24 h without it. */
    changeAlerts: { changeRequest: number; escalated: boolean; message: string }[];
    /** Live copies of its environments' data (carehost copies); one of PHI past its expiry is an ALERT. */
    copies: {
      name: string;
      kind: "copy" | "environment";
      sourceEnvironment: string;
      restoredTo: string;
      dataClass: string;
      owner: string;
      expiresAt: string | null;
      pastExpiry: boolean;
    }[];
    /** The organization's alerts firing now (carehost alerts lists them with their deliveries). */
    firingAlerts: TFiringAlertStatus[];
    environments: {
      name: string;
      entity: string;
      tier: TEnvironmentSpec["tier"];
      dataClass: TEnvironmentSpec["dataClass"];
      hosting: TEnvironmentSpec["hosting"];
      status: string;
      /** What runs on this host; null when carehost runs no runtime (CAREHOST_RUNTIME=none). */
      runtime: {
        postgres: TInstanceStatus;
        redis: TInstanceStatus | null;
        app: { state: "not-deployed"; detail: string };
        drift: number;
      } | null;
      /**
       * Last backup and drill, and WAL archiving read from the running cluster (null without a
       * runtime or while the cluster is not running); an alert while the last drill failed or missed
       * an objective, while archiving fails or lags behind the RPO, and while a declared repository is skipped.
       */
      recovery: {
        lastBackup: TBackupStatus | null;
        /** The backup's age is this one's: the newest run may have failed. */
        lastSuccessfulBackup: TSuccessfulBackupStatus | null;
        lastDrill: TDrillStatus | null;
        archiving: TArchivingStatus | null;
        alerts: TAlert[];
      } | null;
    }[];
  }[];
};

const instanceState = (state: string): TInstanceStatus["state"] =>
  state === "running" || state === "stopped" ? state : "absent";

type TStatusServiceDeps = {
  environments: Pick<TEnvironmentService, "listEnvironments" | "latestRevisions" | "runtimeStatus">;
  auditHead: () => Promise<TStatusReport["audit"]>;
  audit: { append: TAuditAppend };
  version: string;
  url: () => string;
  store: TStoreKind;
  startedAt: Date;
  recoverySummaries?: () => Promise<{
    backups: TBackupRun[];
    completedBackups: TBackupRun[];
    drills: TDrillRun[];
    verifications: TBackupRun[];
  }>;
  firingAlerts?: (ctx: TRequestContext) => Promise<TMonitorAlert[]>;
  changeAlerts?: (
    ctx: TRequestContext,
  ) => Promise<{ organization: string; changeRequest: number; escalated: boolean; message: string }[]>;
  /** The caller's live copies (copies-lifecycle list). */
  copies?: (ctx: TRequestContext) => Promise<
    {
      organization: string;
      name: string;
      kind: "copy" | "environment";
      sourceEnvironment: string;
      restoredTo: string;
      dataClass: string;
      owner: string;
      expiresAt: Date | null;
    }[]
  >;
  now?: () => Date;
};

export const statusServiceFactory = ({
  environments,
  auditHead,
  audit,
  version,
  url,
  store,
  startedAt,
  recoverySummaries,
  changeAlerts,
  copies,
  firingAlerts,
  now = () => new Date(),
}: TStatusServiceDeps) => ({
  status: async (ctx: TRequestContext): Promise<TStatusReport> => {
    // Every part below is read for the caller's organizations only.
    await authorize(ctx, "status:read", audit, "status:read", "some-organization");
    const [revisions, recorded, head, runtimes] = await Promise.all([
      environments.latestRevisions(ctx),
      environments.listEnvironments(ctx),
      auditHead(),
      environments.runtimeStatus(ctx),
    ]);
    const summaries = (await recoverySummaries?.()) ?? {
      backups: [],
      completedBackups: [],
      drills: [],
      verifications: [],
    };
    const changes = (await changeAlerts?.(ctx)) ?? [];
    const liveCopies = (await copies?.(ctx)) ?? [];
    const firing = (await firingAlerts?.(ctx)) ?? [];
    const firingOf = (organization: string): TFiringAlertStatus[] =>
      firing
        .filter((alert) => alert.organization === organization)
        .map((alert) => ({
          id: alert.id,
          rule: alert.rule,
          environment: alert.environment,
          instance: alert.instance,
          severity: alert.severity,
          summary: alert.annotations.summary ?? alert.rule,
          firedAt: (alert.firedAt ?? alert.pendingSince).toISOString(),
          acknowledgedBy: alert.acknowledgedBy,
        }));
    const runtimeEnvironment = (organization: string, name: string) =>
      runtimes
        .find((item) => item.organization === organization)
        ?.environments.find((item) => item.environment === name);
    const archivingOf = (organization: string, name: string): TWalArchiving | null =>
      runtimeEnvironment(organization, name)?.archiving ?? null;
    const recoveryOf = (organization: string, name: string, objectives: TEnvironmentSpec["backup"]) => {
      if (!objectives.enabled) return null;
      const archiving = archivingOf(organization, name);
      const backup = summaries.backups.find((item) => item.organization === organization && item.environment === name);
      const completed = summaries.completedBackups.find(
        (item) => item.organization === organization && item.environment === name,
      );
      const drill = summaries.drills.find((item) => item.organization === organization && item.environment === name);
      const verification = summaries.verifications.find(
        (item) => item.organization === organization && item.environment === name,
      );
      const ageSeconds = (at: Date) => Math.max(0, Math.round((now().getTime() - at.getTime()) / 1000));
      const alerts: TAlert[] = [];
      // An interrupted run did not do what it was for either (its error says it was interrupted).
      if (isFailure(drill?.status))
        alerts.push({
          kind: "drill-failed",
          message: `last restore drill failed: ${drill!.problems.join("; ") || "see carehost drills"}`,
        });
      else if (isFailure(backup?.status))
        alerts.push({ kind: "backup-failed", message: `last backup failed: ${backup!.error ?? ""}` });
      else if (isFailure(verification?.status))
        alerts.push({
          kind: "verification-failed",
          message: `last repository verification failed: ${verification!.error ?? "see carehost verify"}`,
        });
      const archivingProblem = archiving === null ? null : archivingAlert(archiving, objectives.rpoMinutes);
      if (archivingProblem !== null) alerts.push({ kind: "archiving", message: archivingProblem });
      // A declared repository the runtime skips holds none of the backups: say so until it is written.
      for (const repository of runtimeEnvironment(organization, name)?.backupRepositories?.skipped ?? []) {
        alerts.push({
          kind: "repository-skipped",
          message: `backups are not written to repository ${repository.name} (${repository.type}): ${repository.reason}`,
        });
      }
      return {
        lastBackup:
          backup === undefined
            ? null
            : {
                kind: backup.kind,
                status: backup.status,
                label: backup.label,
                startedAt: backup.startedAt.toISOString(),
                finishedAt: backup.finishedAt?.toISOString() ?? null,
                ageSeconds: ageSeconds(backup.startedAt),
              },
        lastSuccessfulBackup:
          completed === undefined
            ? null
            : {
                kind: completed.kind,
                label: completed.label,
                finishedAt: (completed.finishedAt ?? completed.startedAt).toISOString(),
                ageSeconds: ageSeconds(completed.finishedAt ?? completed.startedAt),
              },
        lastDrill:
          drill === undefined
            ? null
            : {
                status: drill.status,
                startedAt: drill.startedAt.toISOString(),
                ageSeconds: ageSeconds(drill.startedAt),
                rtoSeconds: drill.rtoSeconds,
                rtoObjectiveMinutes: drill.rtoObjectiveMinutes,
                rpoSeconds: drill.rpoSeconds,
                rpoObjectiveMinutes: drill.rpoObjectiveMinutes,
                problems: drill.problems,
              },
        archiving:
          archiving === null
            ? null
            : {
                lastArchivedWal: archiving.lastArchivedWal,
                lastArchivedAt: archiving.lastArchivedAt?.toISOString() ?? null,
                failedCount: archiving.failedCount,
                lastFailedWal: archiving.lastFailedWal,
                lastFailedAt: archiving.lastFailedAt?.toISOString() ?? null,
                currentWalLsn: archiving.currentWalLsn,
                archiveLagSeconds: archiving.archiveLagSeconds,
              },
        alerts,
      };
    };
    const runtimeOf = (organization: string, name: string) => {
      const found = runtimeEnvironment(organization, name);
      if (found === undefined) return null;
      // The local runtime listens on loopback only.
      const instance = (item: { instance: string; port: number | null; state: string }): TInstanceStatus => ({
        instance: item.instance,
        host: "127.0.0.1",
        port: item.port,
        state: instanceState(item.state),
      });
      return {
        postgres: instance(found.postgres),
        redis: found.redis === null ? null : instance(found.redis),
        app: found.app,
        drift: found.drift.length,
      };
    };
    return {
      version,
      url: url(),
      store,
      uptimeSeconds: Math.round((now().getTime() - startedAt.getTime()) / 1000),
      audit: head,
      platformAlerts: firingOf(""),
      organizations: revisions.map((revision) => ({
        name: revision.organization,
        revision: {
          id: revision.id,
          digest: revision.digest,
          appliedBy: revision.appliedBy,
          appliedAt: revision.appliedAt.toISOString(),
        },
        changeAlerts: changes
          .filter((alert) => alert.organization === revision.organization)
          .map(({ organization: _organization, ...alert }) => alert),
        copies: liveCopies
          .filter((copy) => copy.organization === revision.organization)
          .map((copy) => ({
            name: copy.name,
            kind: copy.kind,
            sourceEnvironment: copy.sourceEnvironment,
            restoredTo: copy.restoredTo,
            dataClass: copy.dataClass,
            owner: copy.owner,
            expiresAt: copy.expiresAt?.toISOString() ?? null,
            pastExpiry: copy.expiresAt !== null && copy.expiresAt.getTime() <= now().getTime(),
          })),
        firingAlerts: firingOf(revision.organization),
        environments: recorded
          .filter((environment) => environment.organization === revision.organization)
          .map((environment) => ({
            name: environment.name,
            entity: environment.spec.entity,
            tier: environment.spec.tier,
            dataClass: environment.spec.dataClass,
            hosting: environment.spec.hosting,
            status: environment.status,
            runtime: runtimeOf(revision.organization, environment.name),
            recovery: recoveryOf(revision.organization, environment.name, environment.spec.backup),
          })),
      })),
    };
  },
});

export type TStatusService = ReturnType<typeof statusServiceFactory>;
