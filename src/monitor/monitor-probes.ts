// Probe rounds: every environment of every recorded organization read at once (its PostgreSQL,
// WAL archiving, Redis, backups and drills, the certificates carehost issued for it) plus the
// failed sign-ins and privilege changes in the audit log. A round runs on its own timer, at the
// supervisor's interval, and its result is kept for /metrics: a scrape reads the last round and
// never touches a database of a tenant, so Prometheus scraping every few seconds costs nothing.
import type { TBackupRun, TDrillRun } from "../backup/recovery-runs.js";
import { archiveLagSeconds } from "../backup/wal-archiving.js";
import type { TOrganizationProbe } from "../runtime/runtime-types.js";
import { longestCronGapMinutes, parseCron } from "../spec/cron.js";
import type { TCronSchedule } from "../spec/cron.js";
import { instanceNameOf } from "../spec/spec-hosting.js";
import type { TEnvironmentSpec, TOrganizationSpec } from "../spec/spec-schema.js";
import { databaseNameOf } from "../runtime/local/local-placement.js";
import type { TAuditCounter, TAuditCounts } from "./monitor-audit-counts.js";

export type TEnvironmentReading = {
  readonly organization: string;
  readonly environment: string;
  readonly tier: TEnvironmentSpec["tier"];
  /** The PostgreSQL cluster (and Redis instance) the environment is placed in: dedicated-<env> or shared. */
  readonly instance: string;
  /** Null when carehost runs no runtime on this host (CAREHOST_RUNTIME=none): nothing is there to read. */
  readonly postgres: {
    readonly up: boolean;
    readonly maxConnections: number | null;
    readonly connections: number | null;
    readonly longestTransactionSeconds: number | null;
    readonly databaseSizeBytes: number | null;
    readonly deadlocks: number | null;
  } | null;
  /** pg_stat_archiver of the environment's cluster while it runs, for a backed-up environment. */
  readonly archiving: {
    readonly archivedCount: number;
    readonly failedCount: number;
    readonly lastArchivedAt: Date | null;
    readonly lastFailedAt: Date | null;
    readonly archiveLagSeconds: number;
  } | null;
  readonly redis: {
    readonly up: boolean;
    readonly usedMemoryBytes: number | null;
    readonly maxMemoryBytes: number | null;
    readonly evictedKeys: number | null;
    readonly connectedClients: number | null;
  } | null;
  /** Null for an environment with backups disabled. */
  readonly backup: {
    readonly rpoSeconds: number;
    /** The longest gap between two scheduled backups: a completed backup older than this (plus a run's time) is overdue. */
    readonly scheduledIntervalSeconds: number;
    readonly lastCompletedAt: Date | null;
    readonly lastRunFailed: boolean;
    readonly lastVerification: { readonly at: Date; readonly succeeded: boolean } | null;
    readonly lastDrill: { readonly at: Date; readonly succeeded: boolean } | null;
  } | null;
  readonly certificates: readonly { readonly component: string; readonly instance: string; readonly notAfter: Date }[];
};

export type TProbeRound = {
  readonly at: Date;
  readonly durationSeconds: number;
  readonly environments: readonly TEnvironmentReading[];
  readonly audit: TAuditCounts;
};

export type TRecoverySummaries = {
  backups: TBackupRun[];
  completedBackups: TBackupRun[];
  drills: TDrillRun[];
  verifications: TBackupRun[];
};

type TMonitorProbesDeps = {
  latestSpecs: () => Promise<TOrganizationSpec[]>;
  /** The runtime's probe (one that runs nothing here reports nothing). */
  probeRuntime: (spec: TOrganizationSpec) => Promise<TOrganizationProbe>;
  recoverySummaries?: () => Promise<TRecoverySummaries>;
  auditCounts: Pick<TAuditCounter, "read">;
  now?: () => Date;
  /** Told of every round once it is the latest (carehost's alert evaluation); its failure is reported, never the round's. */
  onRound?: (round: TProbeRound) => Promise<void>;
  onError: (error: unknown) => void;
};

const isFailure = (status: string) => status === "failed" || status === "interrupted";

const scheduledIntervalSeconds = (backup: Extract<TEnvironmentSpec["backup"], { enabled: true }>): number => {
  const schedules = [backup.schedule.full, backup.schedule.differential, backup.schedule.incremental]
    .filter((expression): expression is string => expression !== undefined)
    .map((expression) => parseCron(expression))
    .filter((parsed): parsed is { ok: true; schedule: TCronSchedule } => parsed.ok)
    .map((parsed) => parsed.schedule);
  const minutes = longestCronGapMinutes(schedules);
  return Number.isFinite(minutes) ? minutes * 60 : 0;
};

export const monitorProbesFactory = ({
  latestSpecs,
  probeRuntime,
  recoverySummaries,
  auditCounts,
  now = () => new Date(),
  onRound,
  onError,
}: TMonitorProbesDeps) => {
  let latest: TProbeRound | undefined;
  let round: Promise<TProbeRound> | undefined;
  let timer: NodeJS.Timeout | undefined;

  const readingsOf = (
    spec: TOrganizationSpec,
    probe: TOrganizationProbe | undefined,
    summaries: TRecoverySummaries,
    at: Date,
  ): TEnvironmentReading[] =>
    spec.environments.map((environment) => {
      const organization = spec.metadata.name;
      const instance = instanceNameOf(environment);
      const cluster = probe?.clusters.find((item) => item.instance === instance);
      const database = cluster?.databases.find((item) => item.database === databaseNameOf(environment));
      const redis = environment.redis.enabled ? probe?.redis.find((item) => item.instance === instance) : undefined;
      const ofEnvironment = <T extends { organization: string; environment: string }>(runs: readonly T[]) =>
        runs.find((run) => run.organization === organization && run.environment === environment.name);
      const lastRun = ofEnvironment(summaries.backups);
      const completed = ofEnvironment(summaries.completedBackups);
      const verification = ofEnvironment(summaries.verifications);
      const drill = ofEnvironment(summaries.drills);
      const archiver = environment.backup.enabled ? (cluster?.archiver ?? null) : null;
      return {
        organization,
        environment: environment.name,
        tier: environment.tier,
        instance,
        postgres:
          probe === undefined
            ? null
            : {
                up: cluster?.up ?? false,
                maxConnections: cluster?.maxConnections ?? null,
                connections: database?.connections ?? null,
                longestTransactionSeconds: database?.longestTransactionSeconds ?? null,
                databaseSizeBytes: database?.sizeBytes ?? null,
                deadlocks: database?.deadlocks ?? null,
              },
        archiving:
          archiver === null
            ? null
            : {
                archivedCount: archiver.archivedCount,
                failedCount: archiver.failedCount,
                lastArchivedAt: archiver.lastArchivedAt,
                lastFailedAt: archiver.lastFailedAt,
                archiveLagSeconds: archiveLagSeconds(archiver, at),
              },
        redis:
          probe === undefined || !environment.redis.enabled
            ? null
            : {
                up: redis?.up ?? false,
                usedMemoryBytes: redis?.usedMemoryBytes ?? null,
                maxMemoryBytes: redis?.maxMemoryBytes ?? null,
                evictedKeys: redis?.evictedKeys ?? null,
                connectedClients: redis?.connectedClients ?? null,
              },
        backup: !environment.backup.enabled
          ? null
          : {
              rpoSeconds: environment.backup.rpoMinutes * 60,
              scheduledIntervalSeconds: scheduledIntervalSeconds(environment.backup),
              lastCompletedAt: completed?.finishedAt ?? completed?.startedAt ?? null,
              lastRunFailed: lastRun !== undefined && isFailure(lastRun.status),
              lastVerification:
                verification === undefined || verification.status === "running"
                  ? null
                  : {
                      at: verification.finishedAt ?? verification.startedAt,
                      succeeded: verification.status === "succeeded",
                    },
              lastDrill:
                drill === undefined || drill.status === "running"
                  ? null
                  : { at: drill.finishedAt ?? drill.startedAt, succeeded: drill.status === "passed" },
            },
        certificates: (probe?.certificates ?? [])
          .filter(
            (certificate) =>
              certificate.component === "ca" ||
              (certificate.component === "postgres" && certificate.instance === instance) ||
              (certificate.component === "redis" && environment.redis.enabled && certificate.instance === instance),
          )
          .map(({ component, instance: of, notAfter }) => ({ component, instance: of, notAfter })),
      };
    });

  const probeNow = async (): Promise<TProbeRound> => {
    const started = process.hrtime.bigint();
    const specs = await latestSpecs();
    const empty: TRecoverySummaries = { backups: [], completedBackups: [], drills: [], verifications: [] };
    const [summaries, audit, probes] = await Promise.all([
      recoverySummaries?.() ?? Promise.resolve(empty),
      auditCounts.read(),
      Promise.all(
        specs.map(async (spec) => {
          try {
            return await probeRuntime(spec);
          } catch (error) {
            // One organization whose CA or secrets cannot be read is reported down, not the whole round.
            onError(error);
            return { organization: spec.metadata.name, clusters: [], redis: [], certificates: [] };
          }
        }),
      ),
    ]);
    const at = now();
    const environments = specs.flatMap((spec, index) => readingsOf(spec, probes[index], summaries, at));
    latest = {
      at,
      durationSeconds: Number(process.hrtime.bigint() - started) / 1e9,
      environments,
      audit,
    };
    if (onRound !== undefined) await onRound(latest).catch(onError);
    return latest;
  };

  /** One round, joined by whoever asks while it runs. */
  const probeOnce = (): Promise<TProbeRound> => (round ??= probeNow().finally(() => (round = undefined)));

  return {
    probeOnce,
    /** The last completed round; a first scrape before any waits for one. */
    latest: async (): Promise<TProbeRound> => latest ?? probeOnce(),
    start: (intervalMs: number) => {
      timer = setInterval(() => void probeOnce().catch(onError), intervalMs);
      timer.unref();
    },
    stop: async () => {
      if (timer !== undefined) clearInterval(timer);
      await round?.catch(() => undefined);
    },
  };
};

export type TMonitorProbes = ReturnType<typeof monitorProbesFactory>;
