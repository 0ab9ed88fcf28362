// Where an alert goes and what is sent: the spec's routes chosen by severity and entity, and the
// payloads of each kind of route: Alertmanager's webhook payload (version 4, what an Alertmanager
// sends its receivers), the alert list Alertmanager's own API takes (POST /api/v2/alerts), and an
// email. Pure.
import { createHash } from "node:crypto";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import type { TAlertSeverity } from "./monitor-rules.js";
import type { TAlert, TAlertEvent, TDestination } from "./monitor-alert-types.js";

type TDestinationFields = {
  webhook?: string | undefined;
  alertmanager?: string | undefined;
  email?: string[] | undefined;
};

export const destinationsOf = (fields: TDestinationFields): TDestination[] => [
  ...(fields.webhook === undefined ? [] : [{ kind: "webhook" as const, destination: fields.webhook }]),
  ...(fields.alertmanager === undefined ? [] : [{ kind: "alertmanager" as const, destination: fields.alertmanager }]),
  ...(fields.email === undefined ? [] : [{ kind: "email" as const, destination: fields.email.join(",") }]),
];

const unique = (destinations: readonly TDestination[]): TDestination[] => {
  const seen = new Set<string>();
  return destinations.filter((item) => {
    const key = `${item.kind} ${item.destination}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
};

/** Every route of the spec the alert matches (a route without a severity or entity takes all), each destination once. */
export const routeAlert = (
  spec: TOrganizationSpec,
  alert: { severity: TAlertSeverity; entity: string | null },
): TDestination[] =>
  unique(
    (spec.monitoring?.routes ?? [])
      .filter(
        (route) =>
          (route.match.severity === undefined || route.match.severity.includes(alert.severity)) &&
          (route.match.entity === undefined || route.match.entity === alert.entity),
      )
      .flatMap(destinationsOf),
  );

/** Alertmanager's fingerprint shape (16 hex digits) over the sorted label set. */
export const fingerprintOf = (labels: Readonly<Record<string, string>>): string =>
  createHash("sha256")
    .update(JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b))))
    .digest("hex")
    .slice(0, 16);

const humanizeDuration = (seconds: number): string => {
  if (!Number.isFinite(seconds)) return "forever";
  const s = Math.abs(seconds);
  if (s >= 86400) return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  if (s >= 3600) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m ${Math.floor(s % 60)}s`;
  return `${s.toFixed(s < 10 ? 1 : 0)}s`;
};

/** Expands the small part of Prometheus's template language the shipped summaries use. */
export const expandTemplate = (template: string, labels: Readonly<Record<string, string>>, value: number | null) =>
  template.replace(/\{\{\s*\$(labels\.([a-zA-Z_]\w*)|value)\s*(?:\|\s*(\w+)\s*)?\}\}/g, (_all, _what, label, fn) => {
    if (label !== undefined) return labels[label as string] ?? "";
    if (value === null) return "";
    if (fn === "humanizePercentage") return `${(value * 100).toFixed(1)}%`;
    if (fn === "humanizeDuration") return humanizeDuration(value);
    return Number.isInteger(value) ? String(value) : value.toFixed(3);
  });

const iso = (date: Date | null) => (date ?? new Date(0)).toISOString();

/** One alert as Alertmanager's webhook lists it. */
const webhookAlert = (alert: TAlert, event: TAlertEvent, generatorURL: string) => ({
  status: event === "resolved" ? ("resolved" as const) : ("firing" as const),
  labels: { ...alert.labels },
  annotations: { ...alert.annotations },
  startsAt: iso(alert.firedAt ?? alert.pendingSince),
  // Alertmanager's zero time for an alert that has not ended.
  endsAt: event === "resolved" ? iso(alert.resolvedAt) : "0001-01-01T00:00:00Z",
  generatorURL,
  fingerprint: alert.fingerprint,
});

const common = (records: readonly Readonly<Record<string, string>>[]) =>
  Object.fromEntries(
    Object.entries(records[0] ?? {}).filter(([key, value]) => records.every((record) => record[key] === value)),
  );

/**
 * Alertmanager's webhook payload, version 4: one notification for one alert (carehost groups by the
 * alert's own labels, so the group is the alert). An escalation is sent as firing, with
 * `escalated: "true"` among the common annotations.
 */
export const webhookPayload = (
  alert: TAlert,
  event: TAlertEvent,
  options: { receiver: string; externalURL: string },
) => {
  const annotations = event === "escalated" ? { ...alert.annotations, escalated: "true" } : { ...alert.annotations };
  const alerts = [{ ...webhookAlert(alert, event, `${options.externalURL}/api/alerts/${alert.id}`), annotations }];
  const groupLabels = {
    alertname: alert.rule,
    ...(alert.organization === "" ? {} : { organization: alert.organization }),
    ...(alert.environment === "" ? {} : { environment: alert.environment }),
  };
  return {
    version: "4" as const,
    groupKey: `{}:{${Object.entries(groupLabels)
      .map(([key, value]) => `${key}="${value}"`)
      .join(", ")}}`,
    truncatedAlerts: 0,
    status: alerts[0]!.status,
    receiver: options.receiver,
    groupLabels,
    commonLabels: common(alerts.map((item) => item.labels)),
    commonAnnotations: common(alerts.map((item) => item.annotations)),
    externalURL: options.externalURL,
    alerts,
  };
};

/** The body of Alertmanager's POST /api/v2/alerts (postableAlerts): a resolved alert carries its end. */
export const alertmanagerAlerts = (alert: TAlert, event: TAlertEvent, externalURL: string) => [
  {
    labels: { ...alert.labels },
    annotations: event === "escalated" ? { ...alert.annotations, escalated: "true" } : { ...alert.annotations },
    startsAt: iso(alert.firedAt ?? alert.pendingSince),
    ...(event === "resolved" ? { endsAt: iso(alert.resolvedAt) } : {}),
    generatorURL: `${externalURL}/api/alerts/${alert.id}`,
  },
];

export const emailMessage = (alert: TAlert, event: TAlertEvent, externalURL: string) => {
  const where = [alert.organization, alert.environment].filter((part) => part !== "").join("/") || "carehost";
  const word = event === "resolved" ? "RESOLVED" : event === "escalated" ? "ESCALATED" : "FIRING";
  const subject = `[${word}] ${alert.rule} ${where} (${alert.severity})`;
  const lines = [
    alert.annotations.summary ?? alert.rule,
    "",
    alert.annotations.description ?? "",
    "",
    `Runbook: ${alert.annotations.runbook_url ?? ""}`,
    `Alert: #${alert.id}, fired ${iso(alert.firedAt)}${event === "resolved" ? `, resolved ${iso(alert.resolvedAt)}` : ""}`,
    ...(event === "escalated" ? ["Nobody has acknowledged it: carehost alerts ack " + String(alert.id)] : []),
    "",
    "Labels:",
    ...Object.entries(alert.labels).map(([key, value]) => `  ${key}=${value}`),
    "",
    `${externalURL}/api/alerts/${alert.id}`,
  ];
  return { subject, text: `${lines.join("\n")}\n` };
};
