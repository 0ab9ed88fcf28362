// The alerts, silences and deliveries tables (migration 19). Every function takes the executor it
// runs on, so the evaluator's changes and their audit entries commit in one transaction.
import type { TSqlExecutor } from "../store/store-types.js";

type TQuery = Pick<TSqlExecutor, "query">;
import type { TAlertSeverity } from "./monitor-rules.js";
import type {
  TAlert,
  TAlertEvent,
  TAlertState,
  TDelivery,
  TDestination,
  TRouteKind,
  TSilence,
} from "./monitor-alert-types.js";

type TAlertRow = {
  id: number | string;
  fingerprint: string;
  rule: string;
  org_name: string;
  environment: string;
  instance: string;
  entity: string | null;
  severity: TAlertSeverity;
  labels: Record<string, string> | string;
  annotations: Record<string, string> | string;
  state: TAlertState;
  value: number | null;
  pending_since: Date;
  fired_at: Date | null;
  clear_since: Date | null;
  resolved_at: Date | null;
  notified_at: Date | null;
  acknowledged_by: string | null;
  acknowledged_at: Date | null;
  escalated_at: Date | null;
  evaluated_at: Date;
};

const json = <T>(value: T | string): T => (typeof value === "string" ? (JSON.parse(value) as T) : value);

const alertOf = (row: TAlertRow): TAlert => ({
  id: Number(row.id),
  fingerprint: row.fingerprint,
  rule: row.rule,
  organization: row.org_name,
  environment: row.environment,
  instance: row.instance,
  entity: row.entity,
  severity: row.severity,
  labels: json(row.labels),
  annotations: json(row.annotations),
  state: row.state,
  value: row.value === null ? null : Number(row.value),
  pendingSince: row.pending_since,
  firedAt: row.fired_at,
  clearSince: row.clear_since,
  resolvedAt: row.resolved_at,
  notifiedAt: row.notified_at,
  acknowledgedBy: row.acknowledged_by,
  acknowledgedAt: row.acknowledged_at,
  escalatedAt: row.escalated_at,
  evaluatedAt: row.evaluated_at,
});

type TSilenceRow = {
  id: number | string;
  rule: string;
  org_name: string;
  environment: string | null;
  owner: string;
  reason: string;
  created_at: Date;
  expires_at: Date;
  ended_at: Date | null;
  ended_by: string | null;
};
const silenceOf = (row: TSilenceRow): TSilence => ({
  id: Number(row.id),
  rule: row.rule,
  organization: row.org_name,
  environment: row.environment,
  owner: row.owner,
  reason: row.reason,
  createdAt: row.created_at,
  expiresAt: row.expires_at,
  endedAt: row.ended_at,
  endedBy: row.ended_by,
});

type TDeliveryRow = {
  id: number | string;
  alert_id: number | string;
  event: TAlertEvent;
  route_kind: TRouteKind;
  destination: string;
  state: TDelivery["state"];
  attempts: number;
  last_error: string | null;
  created_at: Date;
  delivered_at: Date | null;
};
const deliveryOf = (row: TDeliveryRow): TDelivery => ({
  id: Number(row.id),
  alertId: Number(row.alert_id),
  event: row.event,
  kind: row.route_kind,
  destination: row.destination,
  state: row.state,
  attempts: row.attempts,
  lastError: row.last_error,
  createdAt: row.created_at,
  deliveredAt: row.delivered_at,
});

export type TNewAlert = Omit<
  TAlert,
  "id" | "clearSince" | "resolvedAt" | "notifiedAt" | "acknowledgedBy" | "acknowledgedAt" | "escalatedAt"
>;

export const alertStore = {
  /** Serializes evaluations across replicas sharing one database (held to the transaction's end). */
  lockEvaluation: async (tx: TQuery) => {
    await tx.query("SELECT pg_advisory_xact_lock(7461290318)");
  },

  openAlerts: async (tx: TQuery): Promise<TAlert[]> =>
    (await tx.query<TAlertRow>("SELECT * FROM alerts WHERE state <> 'resolved' ORDER BY id")).rows.map(alertOf),

  insert: async (tx: TQuery, alert: TNewAlert): Promise<TAlert> =>
    alertOf(
      (
        await tx.query<TAlertRow>(
          `INSERT INTO alerts (fingerprint, rule, org_name, environment, instance, entity, severity, labels, annotations,
             state, value, pending_since, fired_at, evaluated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING *`,
          [
            alert.fingerprint,
            alert.rule,
            alert.organization,
            alert.environment,
            alert.instance,
            alert.entity,
            alert.severity,
            JSON.stringify(alert.labels),
            JSON.stringify(alert.annotations),
            alert.state,
            alert.value,
            alert.pendingSince,
            alert.firedAt,
            alert.evaluatedAt,
          ],
        )
      ).rows[0]!,
    ),

  /** Writes the fields that evaluation moves; the rest stay as they are. */
  update: async (tx: TQuery, alert: TAlert): Promise<void> => {
    await tx.query(
      `UPDATE alerts SET state = $2, value = $3, fired_at = $4, clear_since = $5, resolved_at = $6, notified_at = $7,
         escalated_at = $8, evaluated_at = $9, annotations = $10, severity = $11, labels = $12, entity = $13 WHERE id = $1`,
      [
        alert.id,
        alert.state,
        alert.value,
        alert.firedAt,
        alert.clearSince,
        alert.resolvedAt,
        alert.notifiedAt,
        alert.escalatedAt,
        alert.evaluatedAt,
        JSON.stringify(alert.annotations),
        alert.severity,
        JSON.stringify(alert.labels),
        alert.entity,
      ],
    );
  },

  /** A pending alert whose condition cleared before its for-duration never was an alert. */
  remove: async (tx: TQuery, id: number): Promise<void> => {
    await tx.query("DELETE FROM alerts WHERE id = $1 AND state = 'pending'", [id]);
  },

  get: async (tx: TQuery, id: number): Promise<TAlert | undefined> => {
    const row = (await tx.query<TAlertRow>("SELECT * FROM alerts WHERE id = $1", [id])).rows[0];
    return row === undefined ? undefined : alertOf(row);
  },

  list: async (tx: TQuery, options: { includeResolved: boolean; limit: number }): Promise<TAlert[]> =>
    (
      await tx.query<TAlertRow>(
        `SELECT * FROM alerts WHERE state = 'firing' OR ($1::boolean AND state = 'resolved') ORDER BY id DESC LIMIT $2`,
        [options.includeResolved, options.limit],
      )
    ).rows.map(alertOf),

  acknowledge: async (tx: TQuery, id: number, by: string, at: Date): Promise<void> => {
    await tx.query("UPDATE alerts SET acknowledged_by = $2, acknowledged_at = $3 WHERE id = $1", [id, by, at]);
  },

  activeSilences: async (tx: TQuery, at: Date): Promise<TSilence[]> =>
    (
      await tx.query<TSilenceRow>(
        "SELECT * FROM alert_silences WHERE ended_at IS NULL AND expires_at > $1 ORDER BY id",
        [at],
      )
    ).rows.map(silenceOf),

  insertSilence: async (tx: TQuery, silence: Omit<TSilence, "id" | "endedAt" | "endedBy">): Promise<TSilence> =>
    silenceOf(
      (
        await tx.query<TSilenceRow>(
          `INSERT INTO alert_silences (rule, org_name, environment, owner, reason, created_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *`,
          [
            silence.rule,
            silence.organization,
            silence.environment,
            silence.owner,
            silence.reason,
            silence.createdAt,
            silence.expiresAt,
          ],
        )
      ).rows[0]!,
    ),

  endSilence: async (tx: TQuery, id: number, by: string, at: Date): Promise<TSilence | undefined> => {
    const row = (
      await tx.query<TSilenceRow>(
        "UPDATE alert_silences SET ended_at = $3, ended_by = $2 WHERE id = $1 AND ended_at IS NULL RETURNING *",
        [id, by, at],
      )
    ).rows[0];
    return row === undefined ? undefined : silenceOf(row);
  },

  enqueue: async (
    tx: TQuery,
    alertId: number,
    event: TAlertEvent,
    destinations: readonly TDestination[],
    at: Date,
  ): Promise<void> => {
    for (const { kind, destination } of destinations)
      await tx.query(
        `INSERT INTO alert_deliveries (alert_id, event, route_kind, destination, state, created_at, next_attempt_at)
         VALUES ($1, $2, $3, $4, 'pending', $5, $5)`,
        [alertId, event, kind, destination, at],
      );
  },

  /**
   * Claims the deliveries due at `at` for `leaseMs`: their next attempt is pushed past the lease,
   * so another replica takes one over only if this one stops before recording how it went.
   */
  claimDue: async (tx: TQuery, at: Date, leaseMs: number, limit: number): Promise<TDelivery[]> =>
    (
      await tx.query<TDeliveryRow>(
        `UPDATE alert_deliveries SET next_attempt_at = $2
         WHERE id IN (SELECT id FROM alert_deliveries WHERE state = 'pending' AND next_attempt_at <= $1
                      ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
         RETURNING *`,
        [at, new Date(at.getTime() + leaseMs), limit],
      )
    ).rows
      .map(deliveryOf)
      .sort((a, b) => a.id - b.id),

  delivered: async (tx: TQuery, id: number, at: Date): Promise<void> => {
    await tx.query(
      "UPDATE alert_deliveries SET state = 'delivered', attempts = attempts + 1, delivered_at = $2 WHERE id = $1",
      [id, at],
    );
  },

  attemptFailed: async (tx: TQuery, id: number, error: string, next: Date | null): Promise<TDelivery> =>
    deliveryOf(
      (
        await tx.query<TDeliveryRow>(
          `UPDATE alert_deliveries SET attempts = attempts + 1, last_error = $2,
             state = CASE WHEN $3::timestamptz IS NULL THEN 'failed' ELSE 'pending' END,
             next_attempt_at = COALESCE($3::timestamptz, next_attempt_at)
           WHERE id = $1 RETURNING *`,
          [id, error, next],
        )
      ).rows[0]!,
    ),

  deliveriesOf: async (tx: TQuery, alertIds: readonly number[]): Promise<TDelivery[]> =>
    alertIds.length === 0
      ? []
      : (
          await tx.query<TDeliveryRow>(
            "SELECT * FROM alert_deliveries WHERE alert_id = ANY($1::bigint[]) ORDER BY id",
            [alertIds],
          )
        ).rows.map(deliveryOf),
};

export type TAlertStore = typeof alertStore;
