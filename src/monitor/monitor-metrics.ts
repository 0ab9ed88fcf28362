// /metrics in Prometheus's text format, from the last probe round. Names are those of the exporters
// a platform team already has dashboards for (postgres_exporter, redis_exporter, pgbackrest_exporter,
// x509-certificate-exporter), labelled organization and environment (and instance: the cluster or
// Redis an environment is placed in, so the series of a shared cluster group by it); what carehost
// alone knows (RPO, drills, verifications, the audit log) is carehost_*. A registry per server
// instance: two carehosts in one process (tests, a bench) never mix their series, and prom-client's
// global registry is never touched.
import { Counter, Gauge, Registry } from "prom-client";
import type { TPermissionScope } from "../identity/identity-permissions.js";
import { inScope } from "../identity/identity-permissions.js";
import type { TProbeRound } from "./monitor-probes.js";

const ENVIRONMENT_LABELS = ["organization", "environment", "instance"] as const;
const DATABASE_LABELS = [...ENVIRONMENT_LABELS, "datname"] as const;

const seconds = (date: Date) => date.getTime() / 1000;

export const monitorMetricsFactory = () => {
  const registry = new Registry();
  const registers = [registry];
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Gauge<L>({ name, help, labelNames, registers });
  // Counters as the exporters type them; set from the cluster's own cumulative count every round.
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Counter<L>({ name, help, labelNames, registers });

  const metrics = {
    pgUp: gauge(
      "pg_up",
      "Whether the environment's PostgreSQL answered the last probe (1) or not (0).",
      ENVIRONMENT_LABELS,
    ),
    pgMaxConnections: gauge(
      "pg_settings_max_connections",
      "max_connections of the environment's cluster.",
      ENVIRONMENT_LABELS,
    ),
    pgActivity: gauge("pg_stat_activity_count", "Backends connected to the environment's database.", DATABASE_LABELS),
    pgMaxTransaction: gauge(
      "pg_stat_activity_max_tx_duration",
      "Age in seconds of the oldest open transaction on the environment's database (0: none).",
      DATABASE_LABELS,
    ),
    pgDatabaseSize: gauge("pg_database_size_bytes", "Size of the environment's database.", DATABASE_LABELS),
    pgDeadlocks: counter(
      "pg_stat_database_deadlocks",
      "Deadlocks detected in the environment's database since its statistics were reset.",
      DATABASE_LABELS,
    ),
    archived: counter(
      "pg_stat_archiver_archived_count",
      "WAL segments archived by the environment's cluster since its archiver statistics were reset.",
      ENVIRONMENT_LABELS,
    ),
    archiveFailed: counter(
      "pg_stat_archiver_failed_count",
      "Failed attempts to archive a WAL segment since the archiver statistics were reset.",
      ENVIRONMENT_LABELS,
    ),
    lastArchivedTime: gauge(
      "pg_stat_archiver_last_archive_time_seconds",
      "Unix time of the last WAL segment archived (0: none yet).",
      ENVIRONMENT_LABELS,
    ),
    lastFailedTime: gauge(
      "pg_stat_archiver_last_failed_time_seconds",
      "Unix time of the last failed archive attempt (0: none).",
      ENVIRONMENT_LABELS,
    ),
    lastArchiveAge: gauge(
      "pg_stat_archiver_last_archive_age",
      "Seconds since the last WAL segment was archived.",
      ENVIRONMENT_LABELS,
    ),
    archiveLag: gauge(
      "carehost_wal_archive_lag_seconds",
      "How long written WAL has waited to be archived (0 when every completed segment is archived): what a restore now would lose.",
      ENVIRONMENT_LABELS,
    ),
    redisUp: gauge("redis_up", "Whether the environment's Redis answered the last probe.", ENVIRONMENT_LABELS),
    redisUsed: gauge("redis_memory_used_bytes", "used_memory of the environment's Redis.", ENVIRONMENT_LABELS),
    redisMax: gauge(
      "redis_memory_max_bytes",
      "maxmemory of the environment's Redis (0: unlimited).",
      ENVIRONMENT_LABELS,
    ),
    redisEvicted: counter(
      "redis_evicted_keys_total",
      "Keys evicted by the environment's Redis because of maxmemory.",
      ENVIRONMENT_LABELS,
    ),
    redisClients: gauge("redis_connected_clients", "Clients connected to the environment's Redis.", ENVIRONMENT_LABELS),
    backupAge: gauge(
      "pgbackrest_backup_since_last_completion_seconds",
      "Seconds since the environment's last completed backup (+Inf: none ever completed).",
      ENVIRONMENT_LABELS,
    ),
    backupInterval: gauge(
      "carehost_backup_schedule_interval_seconds",
      "The longest gap between two backups the environment's schedules take.",
      ENVIRONMENT_LABELS,
    ),
    rpo: gauge(
      "carehost_backup_rpo_seconds",
      "The environment's recovery point objective (backup.rpoMinutes).",
      ENVIRONMENT_LABELS,
    ),
    backupRunFailed: gauge(
      "carehost_backup_last_run_failed",
      "Whether the environment's newest backup run failed or was interrupted (1) or not (0).",
      ENVIRONMENT_LABELS,
    ),
    verifySuccess: gauge(
      "carehost_backup_verify_last_success",
      "Whether the last verification of the environment's repositories succeeded.",
      ENVIRONMENT_LABELS,
    ),
    verifyAge: gauge(
      "carehost_backup_verify_since_last_seconds",
      "Seconds since the last verification ended.",
      ENVIRONMENT_LABELS,
    ),
    drillSuccess: gauge(
      "carehost_restore_drill_last_success",
      "Whether the environment's last restore drill succeeded and met its objectives.",
      ENVIRONMENT_LABELS,
    ),
    drillAge: gauge(
      "carehost_restore_drill_since_last_seconds",
      "Seconds since the last restore drill ended.",
      ENVIRONMENT_LABELS,
    ),
    certificateNotAfter: gauge(
      "x509_cert_not_after",
      "Unix time a certificate carehost issued for the environment expires (component: ca, postgres or redis).",
      [...ENVIRONMENT_LABELS, "component"],
    ),
    failedSignIns: counter(
      "carehost_auth_failed_total",
      "Refused sign-ins (wrong password or user) and refused tokens, from the audit log.",
      ["method"],
    ),
    privilegeChanges: counter(
      "carehost_privilege_changes_total",
      "Users created, role bindings granted or revoked, roles changed and users disabled, from the audit log.",
      ["event"],
    ),
    probeTime: gauge("carehost_probe_last_round_timestamp_seconds", "Unix time the last probe round ended.", []),
    probeDuration: gauge("carehost_probe_duration_seconds", "How long the last probe round took.", []),
  };

  const setFrom = (round: TProbeRound) => {
    registry.resetMetrics();
    const at = seconds(round.at);
    for (const reading of round.environments) {
      const labels = {
        organization: reading.organization,
        environment: reading.environment,
        instance: reading.instance,
      };
      const database = { ...labels, datname: reading.environment };
      const postgres = reading.postgres;
      if (postgres !== null) {
        metrics.pgUp.set(labels, postgres.up ? 1 : 0);
        if (postgres.maxConnections !== null) metrics.pgMaxConnections.set(labels, postgres.maxConnections);
        if (postgres.connections !== null) metrics.pgActivity.set(database, postgres.connections);
        if (postgres.longestTransactionSeconds !== null)
          metrics.pgMaxTransaction.set(database, postgres.longestTransactionSeconds);
        if (postgres.databaseSizeBytes !== null) metrics.pgDatabaseSize.set(database, postgres.databaseSizeBytes);
        if (postgres.deadlocks !== null) metrics.pgDeadlocks.inc(database, postgres.deadlocks);
      }
      const archiving = reading.archiving;
      if (archiving !== null) {
        metrics.archived.inc(labels, archiving.archivedCount);
        metrics.archiveFailed.inc(labels, archiving.failedCount);
        metrics.lastArchivedTime.set(labels, archiving.lastArchivedAt === null ? 0 : seconds(archiving.lastArchivedAt));
        metrics.lastFailedTime.set(labels, archiving.lastFailedAt === null ? 0 : seconds(archiving.lastFailedAt));
        if (archiving.lastArchivedAt !== null)
          metrics.lastArchiveAge.set(labels, Math.max(0, at - seconds(archiving.lastArchivedAt)));
        metrics.archiveLag.set(labels, archiving.archiveLagSeconds);
      }
      const redis = reading.redis;
      if (redis !== null) {
        metrics.redisUp.set(labels, redis.up ? 1 : 0);
        if (redis.usedMemoryBytes !== null) metrics.redisUsed.set(labels, redis.usedMemoryBytes);
        if (redis.maxMemoryBytes !== null) metrics.redisMax.set(labels, redis.maxMemoryBytes);
        if (redis.evictedKeys !== null) metrics.redisEvicted.inc(labels, redis.evictedKeys);
        if (redis.connectedClients !== null) metrics.redisClients.set(labels, redis.connectedClients);
      }
      const backup = reading.backup;
      if (backup !== null) {
        metrics.rpo.set(labels, backup.rpoSeconds);
        metrics.backupInterval.set(labels, backup.scheduledIntervalSeconds);
        metrics.backupAge.set(
          labels,
          backup.lastCompletedAt === null ? Infinity : Math.max(0, at - seconds(backup.lastCompletedAt)),
        );
        metrics.backupRunFailed.set(labels, backup.lastRunFailed ? 1 : 0);
        if (backup.lastVerification !== null) {
          metrics.verifySuccess.set(labels, backup.lastVerification.succeeded ? 1 : 0);
          metrics.verifyAge.set(labels, Math.max(0, at - seconds(backup.lastVerification.at)));
        }
        if (backup.lastDrill !== null) {
          metrics.drillSuccess.set(labels, backup.lastDrill.succeeded ? 1 : 0);
          metrics.drillAge.set(labels, Math.max(0, at - seconds(backup.lastDrill.at)));
        }
      }
      for (const certificate of reading.certificates)
        metrics.certificateNotAfter.set(
          { ...labels, instance: certificate.instance, component: certificate.component },
          seconds(certificate.notAfter),
        );
    }
    metrics.failedSignIns.inc({ method: "password" }, round.audit.failedSignInsBy.password);
    metrics.failedSignIns.inc({ method: "token" }, round.audit.failedSignInsBy.token);
    for (const [event, count] of Object.entries(round.audit.privilegeChanges))
      metrics.privilegeChanges.inc({ event }, count);
    metrics.probeTime.set(at);
    metrics.probeDuration.set(round.durationSeconds);
  };

  // Scrapes take turns: each resets and sets the registry before reading it out.
  let turn: Promise<unknown> = Promise.resolve();

  /**
   * The exposition of `round` for a caller whose metrics:read covers `scope`: another
   * organization's series are left out, and so are the platform's own (sign-ins, privilege
   * changes, probe rounds), which only a caller over every organization sees.
   */
  const render = (round: TProbeRound, scope: TPermissionScope): Promise<string> => {
    const rendered = turn.then(async () => {
      setFrom(round);
      const text = await registry.metrics();
      if (scope.all) return text;
      return text
        .split("\n")
        .filter((line) => {
          if (line === "" || line.startsWith("#")) return true;
          const organization = /[{,]organization="([^"]*)"/.exec(line)?.[1];
          return organization !== undefined && inScope(scope, organization);
        })
        .join("\n");
    });
    turn = rendered.catch(() => undefined);
    return rendered;
  };

  return { render, contentType: registry.contentType };
};

export type TMonitorMetrics = ReturnType<typeof monitorMetricsFactory>;
