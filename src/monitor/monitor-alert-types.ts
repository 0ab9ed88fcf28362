// What carehost's own alerting holds: an alert per rule and series, silences, and the deliveries
// an alert owes its routes.
import type { TAlertSeverity } from "./monitor-rules.js";

export type TAlertState = "pending" | "firing" | "resolved";
export type TAlertEvent = "firing" | "resolved" | "escalated";
export const ROUTE_KINDS = ["webhook", "alertmanager", "email"] as const;
export type TRouteKind = (typeof ROUTE_KINDS)[number];

/** One place a notification goes: a webhook URL, an Alertmanager's base URL, or email addresses (comma-separated). */
export type TDestination = { readonly kind: TRouteKind; readonly destination: string };

export type TAlert = {
  readonly id: number;
  readonly fingerprint: string;
  readonly rule: string;
  /** "" for carehost's own (platform) alerts. */
  readonly organization: string;
  readonly environment: string;
  readonly instance: string;
  readonly entity: string | null;
  readonly severity: TAlertSeverity;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly state: TAlertState;
  readonly value: number | null;
  readonly pendingSince: Date;
  readonly firedAt: Date | null;
  /** While firing: since when the condition has been clear (the alert resolves once that lasts resolveAfter). */
  readonly clearSince: Date | null;
  readonly resolvedAt: Date | null;
  readonly notifiedAt: Date | null;
  readonly acknowledgedBy: string | null;
  readonly acknowledgedAt: Date | null;
  readonly escalatedAt: Date | null;
  readonly evaluatedAt: Date;
};

export type TSilence = {
  readonly id: number;
  readonly rule: string;
  readonly organization: string;
  /** null: every environment of the organization. */
  readonly environment: string | null;
  readonly owner: string;
  readonly reason: string;
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly endedAt: Date | null;
  readonly endedBy: string | null;
};

export type TDelivery = {
  readonly id: number;
  readonly alertId: number;
  readonly event: TAlertEvent;
  readonly kind: TRouteKind;
  readonly destination: string;
  readonly state: "pending" | "delivered" | "failed";
  readonly attempts: number;
  readonly lastError: string | null;
  readonly createdAt: Date;
  readonly deliveredAt: Date | null;
};

export const silenceCovers = (
  silence: TSilence,
  alert: Pick<TAlert, "rule" | "organization" | "environment">,
  at: Date,
) =>
  silence.endedAt === null &&
  silence.expiresAt > at &&
  silence.rule === alert.rule &&
  silence.organization === alert.organization &&
  (silence.environment === null || silence.environment === alert.environment);
