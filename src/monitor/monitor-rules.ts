// Alert rules as code: the rules carehost ships, each a PromQL condition over the series of
// monitor-metrics.ts with a threshold, a for-duration, a severity and a runbook page of its own
// (docs/runbooks/<rule>.md), and the spec's overrides of them (monitoring.rules). Rendered as a
// Prometheus rules file (one group per organization, every selector pinned to its organization, and
// one group of the platform's own) and, for the Kubernetes target, inside a PrometheusRule. Pure.
import { stringify } from "yaml";
import type { TOrganizationSpec } from "../spec/spec-schema.js";

export const ALERT_SEVERITIES = ["critical", "warning", "info"] as const;
export type TAlertSeverity = (typeof ALERT_SEVERITIES)[number];

export const RUNBOOK_BASE = "https://github.com/carehost/carehost/blob/main/docs/runbooks/";

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
  },
] as const satisfies readonly TShippedRule[];

export type TRuleName = (typeof SHIPPED_RULES)[number]["name"];
export const RULE_NAMES = SHIPPED_RULES.map((rule) => rule.name) as [TRuleName, ...TRuleName[]];

/** One rule of a Prometheus rules file. */
export type TPrometheusRule = {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: { readonly summary: string; readonly description: string; readonly runbook_url: string };
};
export type TPrometheusRuleGroup = { readonly name: string; readonly rules: readonly TPrometheusRule[] };

export const runbookUrl = (rule: string) => `${RUNBOOK_BASE}${rule}.md`;

const ruleOf = (
  shipped: TShippedRule,
  sel: string,
  override: NonNullable<NonNullable<TOrganizationSpec["monitoring"]>["rules"]>[number] | undefined,
): TPrometheusRule | undefined => {
  if (override?.enabled === false) return undefined;
  const threshold = override?.threshold ?? shipped.threshold;
  return {
    alert: shipped.name,
    expr: shipped.expr(sel, threshold),
    for: override?.for ?? shipped.for,
    // The spec's labels first: severity and the source are carehost's, which routes read.
    labels: { ...(override?.labels ?? {}), severity: override?.severity ?? shipped.severity, source: "carehost" },
    annotations: {
      summary: shipped.summary,
      description:
        shipped.thresholdMeans === "unused"
          ? shipped.summary
          : `${shipped.summary} (threshold: ${threshold}, ${shipped.thresholdMeans})`,
      runbook_url: runbookUrl(shipped.name),
    },
  };
};

/** The organization's group: every shipped per-organization rule with the spec's overrides, pinned to it. */
export function organizationRuleGroup(spec: TOrganizationSpec): TPrometheusRuleGroup {
  const organization = spec.metadata.name;
  const overrides = new Map((spec.monitoring?.rules ?? []).map((override) => [override.rule, override]));
  return {
    name: `carehost-${organization}`,
    rules: SHIPPED_RULES.filter((rule) => rule.scope === "organization")
      .map((rule) => ruleOf(rule, `organization="${organization}"`, overrides.get(rule.name)))
      .filter((rule): rule is TPrometheusRule => rule !== undefined),
  };
}

/** carehost's own signals (sign-ins, privilege changes, the probes themselves), once per carehost. */
export function platformRuleGroup(): TPrometheusRuleGroup {
  return {
    name: "carehost-platform",
    rules: SHIPPED_RULES.filter((rule) => rule.scope === "platform")
      .map((rule) => ruleOf(rule, "", undefined))
      .filter((rule): rule is TPrometheusRule => rule !== undefined),
  };
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
