// Alert rules as code: the rules carehost ships, each a PromQL condition over the series of
// monitor-metrics.ts with a threshold, a for-duration, a severity and a runbook page of its own
// (docs/runbooks/<rule>.md), and the spec's overrides of them (monitoring.rules). Rendered as a
// Prometheus rules file (one group per organization, every selector pinned to its organization, and
// one group of the platform's own) and, for the Kubernetes target, inside a PrometheusRule. Pure.
//
// Each rule is defined once with both its PromQL condition and `check`, the same condition over a
// probe round, which carehost's own evaluation (monitor-alert-evaluator.ts) runs: the two sit side by
// side so that a change to one is made beside the other. No test yet holds them to agree (promtool test rules would).
import { stringify } from "yaml";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import type { TEnvironmentReading, TProbeRound } from "./monitor-probes.js";

export const ALERT_SEVERITIES = ["critical", "warning", "info"] as const;
export type TAlertSeverity = (typeof ALERT_SEVERITIES)[number];

export const RUNBOOK_BASE = "https://github.com/carehost/carehost/blob/main/docs/runbooks/";

/** Where a rule's condition holds in a round: the series it holds for and its value there. */
export type TRuleHit = {
  /** "" when the series is not one environment's (a shared cluster's connections, the platform's own). */
  readonly environment: string;
  readonly instance: string;
  readonly value: number;
  /** Labels that tell two hits of one rule in one environment apart (a certificate's component). */
  readonly labels?: Readonly<Record<string, string>>;
};

export type TRuleCheckInput = {
  /** The organization's readings (every organization's for a platform rule). */
  readonly readings: readonly TEnvironmentReading[];
  readonly round: TProbeRound;
  readonly threshold: number;
  /** When the condition is evaluated: PromQL's time(). */
  readonly now: Date;
  /**
   * How much a counter rose within the last `windowSeconds`, as PromQL's increase() (a reset counts
   * from zero); 0 until the rounds kept reach back into the window.
   */
  readonly increase: (series: string, current: number, windowSeconds: number) => number;
};

const hit = (reading: TEnvironmentReading, value: number): TRuleHit => ({
  environment: reading.environment,
  instance: reading.instance,
  value,
});

const groupBy = <T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> => {
  const groups = new Map<string, T[]>();
  for (const item of items) groups.set(key(item), [...(groups.get(key(item)) ?? []), item]);
  return groups;
};

type TShippedRule = {
  readonly name: string;
  /** The rule's condition; `sel` pins every selector to one organization ("" for the platform's group). */
  readonly expr: (sel: string, threshold: number) => string;
  readonly threshold: number;
  /** What the threshold means, for the spec's documentation and the alert's description. */
  readonly thresholdMeans: string;
  readonly for: string;
  readonly severity: TAlertSeverity;
  readonly summary: string;
  /** "organization": one per organization; "platform": carehost's own signals, once. */
  readonly scope: "organization" | "platform";
  /** The condition of `expr` over one probe round. */
  readonly check: (input: TRuleCheckInput) => readonly TRuleHit[];
};

const s = (sel: string) => (sel === "" ? "" : `{${sel}}`);

export const SHIPPED_RULES = [
  {
    name: "PostgresDown",
    expr: (sel) => `pg_up${s(sel)} == 0`,
    threshold: 0,
    thresholdMeans: "unused",
    for: "1m",
    severity: "critical",
    summary: "PostgreSQL of {{ $labels.organization }}/{{ $labels.environment }} ({{ $labels.instance }}) is down",
    scope: "organization",
    check: ({ readings }) => readings.filter((r) => r.postgres !== null && !r.postgres.up).map((r) => hit(r, 0)),
  },
  {
    name: "PostgresConnectionsNearLimit",
    expr: (sel, threshold) =>
      `sum by (organization, instance) (pg_stat_activity_count${s(sel)}) / max by (organization, instance) (pg_settings_max_connections${s(sel)}) > ${threshold}`,
    threshold: 0.8,
    thresholdMeans: "fraction of max_connections in use",
    for: "5m",
    severity: "warning",
    summary:
      "{{ $labels.organization }} cluster {{ $labels.instance }} uses over {{ $value | humanizePercentage }} of max_connections",
    scope: "organization",
    check: ({ readings, threshold }) =>
      [
        ...groupBy(
          readings.filter((r) => r.postgres?.maxConnections != null),
          (r) => r.instance,
        ),
      ].flatMap(([instance, group]) => {
        const used = group.reduce((sum, r) => sum + (r.postgres?.connections ?? 0), 0);
        const value = used / (group[0]!.postgres!.maxConnections as number);
        // An instance shared by several environments is no one environment's alert.
        const environment = group.length === 1 ? group[0]!.environment : "";
        return value > threshold ? [{ environment, instance, value }] : [];
      }),
  },
  {
    name: "PostgresLongTransaction",
    expr: (sel, threshold) => `pg_stat_activity_max_tx_duration${s(sel)} > ${threshold}`,
    threshold: 900,
    thresholdMeans: "seconds a transaction has been open",
    for: "2m",
    severity: "warning",
    summary:
      "A transaction on {{ $labels.organization }}/{{ $labels.environment }} has been open for {{ $value | humanizeDuration }}",
    scope: "organization",
    check: ({ readings, threshold }) =>
      readings
        .filter((r) => (r.postgres?.longestTransactionSeconds ?? 0) > threshold)
        .map((r) => hit(r, r.postgres!.longestTransactionSeconds!)),
  },
  {
    name: "PostgresDeadlocks",
    expr: (sel, threshold) => `increase(pg_stat_database_deadlocks${s(sel)}[15m]) > ${threshold}`,
    threshold: 3,
    thresholdMeans: "deadlocks within 15 minutes",
    for: "0m",
    severity: "warning",
    summary: "{{ $labels.organization }}/{{ $labels.environment }} had {{ $value }} deadlocks in 15 minutes",
    scope: "organization",
    check: ({ readings, threshold, increase }) =>
      readings.flatMap((r) => {
        if (r.postgres?.deadlocks == null) return [];
        const value = increase(`deadlocks/${r.organization}/${r.environment}`, r.postgres.deadlocks, 15 * 60);
        return value > threshold ? [hit(r, value)] : [];
      }),
  },
  {
    name: "WalArchivingFailing",
    // The last attempt failed after the last success: the archiver is stuck on a segment.
    expr: (sel) =>
      `pg_stat_archiver_last_failed_time_seconds${s(sel)} > pg_stat_archiver_last_archive_time_seconds${s(sel)}`,
    threshold: 0,
    thresholdMeans: "unused",
    for: "1m",
    severity: "critical",
    summary: "WAL archiving of {{ $labels.organization }}/{{ $labels.environment }} is failing",
    scope: "organization",
    check: ({ readings }) =>
      readings
        .filter(
          (r) =>
            r.archiving?.lastFailedAt != null &&
            r.archiving.lastFailedAt.getTime() > (r.archiving.lastArchivedAt?.getTime() ?? 0),
        )
        .map((r) => hit(r, r.archiving!.lastFailedAt!.getTime() / 1000)),
  },
  {
    name: "RecoveryPointObjectiveAtRisk",
    expr: (sel, threshold) =>
      `carehost_wal_archive_lag_seconds${s(sel)} > carehost_backup_rpo_seconds${s(sel)} * ${threshold}`,
    threshold: 1,
    thresholdMeans: "fraction of the RPO the archive lag may reach",
    for: "0m",
    severity: "critical",
    summary:
      "A restore of {{ $labels.organization }}/{{ $labels.environment }} now would lose more than its RPO allows",
    scope: "organization",
    check: ({ readings, threshold }) =>
      readings
        .filter((r) => r.archiving !== null && r.backup !== null)
        .filter((r) => r.archiving!.archiveLagSeconds > r.backup!.rpoSeconds * threshold)
        .map((r) => hit(r, r.archiving!.archiveLagSeconds)),
  },
  {
    name: "BackupStale",
    expr: (sel, threshold) =>
      `pgbackrest_backup_since_last_completion_seconds${s(sel)} > carehost_backup_schedule_interval_seconds${s(sel)} + ${threshold}`,
    threshold: 3600,
    thresholdMeans: "seconds past the longest scheduled gap between backups",
    for: "10m",
    severity: "critical",
    summary: "{{ $labels.organization }}/{{ $labels.environment }} has no completed backup within its schedule",
    scope: "organization",
    check: ({ readings, threshold, now }) =>
      readings.flatMap((r) => {
        if (r.backup === null) return [];
        // Counted from the last backup that completed, never from a newer run that failed.
        const age =
          r.backup.lastCompletedAt === null
            ? Infinity
            : Math.max(0, (now.getTime() - r.backup.lastCompletedAt.getTime()) / 1000);
        return age > r.backup.scheduledIntervalSeconds + threshold ? [hit(r, age)] : [];
      }),
  },
  {
    name: "BackupFailed",
    expr: (sel) => `carehost_backup_last_run_failed${s(sel)} == 1`,
    threshold: 0,
    thresholdMeans: "unused",
    for: "0m",
    severity: "warning",
    summary: "The last backup of {{ $labels.organization }}/{{ $labels.environment }} failed",
    scope: "organization",
    check: ({ readings }) => readings.filter((r) => r.backup?.lastRunFailed === true).map((r) => hit(r, 1)),
  },
  {
    name: "BackupVerificationFailed",
    expr: (sel) => `carehost_backup_verify_last_success${s(sel)} == 0`,
    threshold: 0,
    thresholdMeans: "unused",
    for: "0m",
    severity: "critical",
    summary: "The repositories of {{ $labels.organization }}/{{ $labels.environment }} failed verification",
    scope: "organization",
    check: ({ readings }) =>
      readings.filter((r) => r.backup?.lastVerification?.succeeded === false).map((r) => hit(r, 0)),
  },
  {
    name: "RestoreDrillFailed",
    expr: (sel) => `carehost_restore_drill_last_success${s(sel)} == 0`,
    threshold: 0,
    thresholdMeans: "unused",
    for: "0m",
    severity: "critical",
    summary:
      "The last restore drill of {{ $labels.organization }}/{{ $labels.environment }} failed or missed an objective",
    scope: "organization",
    check: ({ readings }) => readings.filter((r) => r.backup?.lastDrill?.succeeded === false).map((r) => hit(r, 0)),
  },
  {
    name: "RedisDown",
    expr: (sel) => `redis_up${s(sel)} == 0`,
    threshold: 0,
    thresholdMeans: "unused",
    for: "1m",
    severity: "critical",
    summary: "Redis of {{ $labels.organization }}/{{ $labels.environment }} ({{ $labels.instance }}) is down",
    scope: "organization",
    check: ({ readings }) => readings.filter((r) => r.redis !== null && !r.redis.up).map((r) => hit(r, 0)),
  },
  {
    name: "RedisMemoryNearLimit",
    expr: (sel, threshold) => `redis_memory_used_bytes${s(sel)} / (redis_memory_max_bytes${s(sel)} > 0) > ${threshold}`,
    threshold: 0.9,
    thresholdMeans: "fraction of maxmemory in use",
    for: "5m",
    severity: "warning",
    summary:
      "Redis of {{ $labels.organization }}/{{ $labels.environment }} uses {{ $value | humanizePercentage }} of maxmemory",
    scope: "organization",
    check: ({ readings, threshold }) =>
      readings.flatMap((r) => {
        const used = r.redis?.usedMemoryBytes;
        const max = r.redis?.maxMemoryBytes;
        if (used == null || max == null || max <= 0) return [];
        return used / max > threshold ? [hit(r, used / max)] : [];
      }),
  },
  {
    name: "RedisEvictingKeys",
    expr: (sel, threshold) => `increase(redis_evicted_keys_total${s(sel)}[10m]) > ${threshold}`,
    threshold: 0,
    thresholdMeans: "keys evicted within 10 minutes",
    for: "0m",
    severity: "warning",
    summary: "Redis of {{ $labels.organization }}/{{ $labels.environment }} evicts keys: sessions are being lost",
    scope: "organization",
    check: ({ readings, threshold, increase }) =>
      readings.flatMap((r) => {
        if (r.redis?.evictedKeys == null) return [];
        const value = increase(`evicted/${r.organization}/${r.environment}`, r.redis.evictedKeys, 10 * 60);
        return value > threshold ? [hit(r, value)] : [];
      }),
  },
  {
    name: "CertificateExpiringSoon",
    expr: (sel, threshold) => `x509_cert_not_after${s(sel)} - time() < ${threshold} * 86400`,
    threshold: 21,
    thresholdMeans: "days before expiry",
    for: "0m",
    severity: "warning",
    summary:
      "The {{ $labels.component }} certificate of {{ $labels.organization }} ({{ $labels.instance }}) expires in {{ $value | humanizeDuration }}",
    scope: "organization",
    check: ({ readings, threshold, now }) =>
      readings.flatMap((r) =>
        r.certificates
          .map((certificate) => ({ certificate, left: (certificate.notAfter.getTime() - now.getTime()) / 1000 }))
          .filter(({ left }) => left < threshold * 86400)
          .map(({ certificate, left }) => ({
            environment: r.environment,
            instance: certificate.instance,
            value: left,
            labels: { component: certificate.component },
          })),
      ),
  },
  {
    name: "RepeatedFailedSignIns",
    expr: (_sel, threshold) => `sum(increase(carehost_auth_failed_total[15m])) > ${threshold}`,
    threshold: 20,
    thresholdMeans: "refused sign-ins and tokens within 15 minutes",
    for: "0m",
    severity: "warning",
    summary: "{{ $value }} sign-ins or tokens were refused by carehost in 15 minutes",
    scope: "platform",
    check: ({ round, threshold, increase }) => {
      const value = increase("auth/failed", round.audit.failedSignIns, 15 * 60);
      return value > threshold ? [{ environment: "", instance: "", value }] : [];
    },
  },
  {
    name: "PrivilegeChanged",
    expr: (_sel, threshold) => `sum by (event) (increase(carehost_privilege_changes_total[10m])) > ${threshold}`,
    threshold: 0,
    thresholdMeans: "privilege changes within 10 minutes",
    for: "0m",
    severity: "info",
    summary: "carehost recorded {{ $labels.event }}: someone's access changed",
    scope: "platform",
    check: ({ round, threshold, increase }) =>
      Object.entries(round.audit.privilegeChanges).flatMap(([event, count]) => {
        const value = increase(`privilege/${event}`, count, 10 * 60);
        return value > threshold ? [{ environment: "", instance: "", value, labels: { event } }] : [];
      }),
  },
  {
    name: "MonitoringProbesStale",
    expr: (_sel, threshold) => `time() - carehost_probe_last_round_timestamp_seconds > ${threshold}`,
    threshold: 300,
    thresholdMeans: "seconds since the last probe round",
    for: "0m",
    severity: "critical",
    summary: "carehost has not probed its environments for {{ $value | humanizeDuration }}: every other alert is blind",
    scope: "platform",
    // carehost evaluates right after a round, so in process this fires only for a round that is
    // itself late; the rule is Prometheus's watch on carehost.
    check: ({ round, threshold, now }) => {
      const value = (now.getTime() - round.at.getTime()) / 1000;
      return value > threshold ? [{ environment: "", instance: "", value }] : [];
    },
  },
] as const satisfies readonly TShippedRule[];

export type TRuleName = (typeof SHIPPED_RULES)[number]["name"];
export const RULE_NAMES = SHIPPED_RULES.map((rule) => rule.name) as [TRuleName, ...TRuleName[]];

/**
 * How long a firing alert's condition must stay clear before it resolves, unless the spec says
 * otherwise: a condition that comes and goes within it fires and resolves once, not at each turn.
 * Prometheus's keep_firing_for, which the rendered rules carry too.
 */
export const DEFAULT_RESOLVE_AFTER = "5m";

const DURATION_UNITS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400 };
/** A Prometheus duration of the form the spec accepts (30s, 5m, 2h, 1d) in seconds. */
export const durationSeconds = (duration: string): number => {
  const match = /^(\d+)([smhd])$/.exec(duration);
  if (match === null) throw new Error(`${JSON.stringify(duration)} is not a Prometheus duration`);
  return Number(match[1]) * DURATION_UNITS[match[2]!]!;
};

type TRuleOverride = NonNullable<NonNullable<TOrganizationSpec["monitoring"]>["rules"]>[number];

/** A shipped rule as one organization's spec sets it. */
export type TEffectiveRule = {
  readonly name: TRuleName;
  readonly scope: "organization" | "platform";
  readonly threshold: number;
  readonly for: string;
  readonly resolveAfter: string;
  readonly severity: TAlertSeverity;
  readonly labels: Readonly<Record<string, string>>;
  readonly summary: string;
  readonly description: string;
  readonly runbookUrl: string;
  readonly expr: (sel: string) => string;
  readonly check: TShippedRule["check"];
};

const effectiveRule = (shipped: TShippedRule, override: TRuleOverride | undefined): TEffectiveRule | undefined => {
  if (override?.enabled === false) return undefined;
  const threshold = override?.threshold ?? shipped.threshold;
  return {
    name: shipped.name as TRuleName,
    scope: shipped.scope,
    threshold,
    for: override?.for ?? shipped.for,
    resolveAfter: override?.resolveAfter ?? DEFAULT_RESOLVE_AFTER,
    severity: override?.severity ?? shipped.severity,
    // The spec's labels first: severity and the source are carehost's, which routes read.
    labels: { ...(override?.labels ?? {}), severity: override?.severity ?? shipped.severity, source: "carehost" },
    summary: shipped.summary,
    description:
      shipped.thresholdMeans === "unused"
        ? shipped.summary
        : `${shipped.summary} (threshold: ${threshold}, ${shipped.thresholdMeans})`,
    runbookUrl: runbookUrl(shipped.name),
    expr: (sel) => shipped.expr(sel, threshold),
    check: shipped.check,
  };
};

/** The organization's rules (its spec's overrides applied), or carehost's own when `spec` is null. */
export function effectiveRules(spec: TOrganizationSpec | null): TEffectiveRule[] {
  const overrides = new Map((spec?.monitoring?.rules ?? []).map((override) => [override.rule, override]));
  return (SHIPPED_RULES as readonly TShippedRule[])
    .filter((rule) => rule.scope === (spec === null ? "platform" : "organization"))
    .map((rule) => effectiveRule(rule, overrides.get(rule.name as TRuleName)))
    .filter((rule): rule is TEffectiveRule => rule !== undefined);
}

/** One rule of a Prometheus rules file. */
export type TPrometheusRule = {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly keep_firing_for?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: { readonly summary: string; readonly description: string; readonly runbook_url: string };
};
export type TPrometheusRuleGroup = { readonly name: string; readonly rules: readonly TPrometheusRule[] };

export const runbookUrl = (rule: string) => `${RUNBOOK_BASE}${rule}.md`;

const prometheusRuleOf = (rule: TEffectiveRule, sel: string): TPrometheusRule => ({
  alert: rule.name,
  expr: rule.expr(sel),
  for: rule.for,
  ...(durationSeconds(rule.resolveAfter) > 0 ? { keep_firing_for: rule.resolveAfter } : {}),
  labels: rule.labels,
  annotations: { summary: rule.summary, description: rule.description, runbook_url: rule.runbookUrl },
});

/** The organization's group: every shipped per-organization rule with the spec's overrides, pinned to it. */
export function organizationRuleGroup(spec: TOrganizationSpec): TPrometheusRuleGroup {
  const organization = spec.metadata.name;
  return {
    name: `carehost-${organization}`,
    rules: effectiveRules(spec).map((rule) => prometheusRuleOf(rule, `organization="${organization}"`)),
  };
}

/** carehost's own signals (sign-ins, privilege changes, the probes themselves), once per carehost. */
export function platformRuleGroup(): TPrometheusRuleGroup {
  return { name: "carehost-platform", rules: effectiveRules(null).map((rule) => prometheusRuleOf(rule, "")) };
}

/** A Prometheus rules file for these organizations (and the platform's group when asked). */
export function prometheusRuleGroups(
  specs: readonly TOrganizationSpec[],
  options: { platform: boolean },
): { groups: TPrometheusRuleGroup[] } {
  return {
    groups: [
      ...[...specs].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)).map(organizationRuleGroup),
      ...(options.platform ? [platformRuleGroup()] : []),
    ],
  };
}

/** The rules file Prometheus loads (`rule_files:`), as YAML; `promtool check rules` accepts it. */
export function renderPrometheusRulesFile(specs: readonly TOrganizationSpec[], options: { platform: boolean }): string {
  return `# Rendered by carehost from the shipped alert rules and each spec's monitoring.rules; do not edit.\n${stringify(prometheusRuleGroups(specs, options), { lineWidth: 0 })}`;
}
