// `carehost status`: one read that tells an operator what carehost holds right now.
import type { TEnvironmentService } from "../environments/environment-service.js";
import { authorize } from "../identity/identity-permissions.js";
import type { TAuditAppend } from "../identity/identity-types.js";
import type { TRequestContext } from "../lib/request-context.js";
import type { TStoreKind } from "../store/store-types.js";
import type { TBackupRun, TDrillRun } from "../backup/recovery-service.js";
import { archivingAlert } from "../backup/wal-archiving.js";
import type { TWalArchiving } from "../backup/wal-archiving.js";
import type { TEnvironmentSpec } from "../spec/spec-schema.js";

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

export type TStatusReport = {
  version: string;
  url: string;
  store: TStoreKind;
  uptimeSeconds: number;
  audit: { treeSize: number; lastCheckpoint: { treeSize: number; time: string } | null };
  organizations: {
    name: string;
    revision: { id: number; digest: string; appliedBy: string; appliedAt: string };
    environments: {
      name: string;
      entity: string;
      tier: string;
      dataClass: string;
      hosting: string;
      status: string;
      /** What runs on this host; null when carehost runs no runtime (CAREHOST_RUNTIME=none). */
      runtime: { postgres: string; redis: string | null; app: string; drift: number } | null;
      /**
       * Last backup and drill, and WAL archiving read from the running cluster (null without a
       * runtime or while the cluster is not running); an alert while the last drill failed or missed
       * an objective, and while archiving fails or lags behind the RPO.
       */
      recovery: { lastBackup: string | null; lastDrill: string | null; archiving: TArchivingStatus | null; alert: string | null } | null;
    }[];
  }[];
};

type TStatusServiceDeps = {
  environments: Pick<TEnvironmentService, "listEnvironments" | "latestRevisions" | "runtimeStatus">;
  auditHead: () => Promise<TStatusReport["audit"]>;
  audit: { append: TAuditAppend };
  version: string;
  url: () => string;
  store: TStoreKind;
  startedAt: Date;
  recoverySummaries?: () => Promise<{ backups: TBackupRun[]; drills: TDrillRun[]; verifications: TBackupRun[] }>;
  now?: () => Date;
};

export const statusServiceFactory = ({ environments, auditHead, audit, version, url, store, startedAt, recoverySummaries, now = () => new Date() }: TStatusServiceDeps) => ({
  status: async (ctx: TRequestContext): Promise<TStatusReport> => {
    await authorize(ctx, "status:read", audit);
    const [revisions, recorded, head, runtimes] = await Promise.all([
      environments.latestRevisions(ctx),
      environments.listEnvironments(ctx),
      auditHead(),
      environments.runtimeStatus(ctx),
    ]);
    const summaries = (await recoverySummaries?.()) ?? { backups: [], drills: [], verifications: [] };
    const archivingOf = (organization: string, name: string): TWalArchiving | null =>
      runtimes.find((item) => item.organization === organization)?.environments.find((item) => item.environment === name)?.archiving ?? null;
    const recoveryOf = (organization: string, name: string, objectives: TEnvironmentSpec["backup"]) => {
      if (!objectives.enabled) return null;
      const archiving = archivingOf(organization, name);
      const backup = summaries.backups.find((item) => item.organization === organization && item.environment === name);
      const drill = summaries.drills.find((item) => item.organization === organization && item.environment === name);
      const verification = summaries.verifications.find((item) => item.organization === organization && item.environment === name);
      const age = (at: Date) => `${Math.round((now().getTime() - at.getTime()) / 60000)} min ago`;
      return {
        lastBackup: backup === undefined ? null : `${backup.kind} ${backup.status}${backup.label === null ? "" : ` ${backup.label}`}, ${age(backup.startedAt)}`,
        lastDrill:
          drill === undefined
            ? null
            : `${drill.status}, ${age(drill.startedAt)}: RTO ${drill.rtoSeconds === null ? "-" : `${drill.rtoSeconds.toFixed(1)} s`} (objective ${drill.rtoObjectiveMinutes} min), RPO ${drill.rpoSeconds === null ? "-" : `${drill.rpoSeconds.toFixed(1)} s`} (objective ${drill.rpoObjectiveMinutes} min)`,
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
        alert: [
          // An interrupted run did not do what it was for either (its error says it was interrupted).
          isFailure(drill?.status)
            ? `last restore drill failed: ${drill!.problems.join("; ") || "see carehost drills"}`
            : isFailure(backup?.status)
              ? `last backup failed: ${backup!.error ?? ""}`
              : isFailure(verification?.status)
                ? `last repository verification failed: ${verification.error ?? "see carehost verify"}`
                : null,
          archiving === null ? null : archivingAlert(archiving, objectives.rpoMinutes),
        ]
          .filter((alert) => alert !== null)
          .join("; ") || null,
      };
    };
    const runtimeOf = (organization: string, name: string) => {
      const found = runtimes.find((item) => item.organization === organization)?.environments.find((item) => item.environment === name);
      if (found === undefined) return null;
      const where = (instance: string, port: number | null) => `${instance} ${port === null ? "" : `127.0.0.1:${port} `}`;
      return {
        postgres: `${where(found.postgres.instance, found.postgres.port)}${found.postgres.state}`,
        redis: found.redis === null ? null : `${where(found.redis.instance, found.redis.port)}${found.redis.state}`,
        app: found.app.detail,
        drift: found.drift.length,
      };
    };
    return {
      version,
      url: url(),
      store,
      uptimeSeconds: Math.round((now().getTime() - startedAt.getTime()) / 1000),
      audit: head,
      organizations: revisions.map((revision) => ({
        name: revision.organization,
        revision: {
          id: revision.id,
          digest: revision.digest,
          appliedBy: revision.appliedBy,
          appliedAt: revision.appliedAt.toISOString(),
        },
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
