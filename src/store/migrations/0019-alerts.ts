import type { TMigration } from "./index.js";

// carehost's own alerting: an alert per rule and series (organization × environment × instance,
// and a certificate's component) from the round its condition first held until it resolves; the
// partial unique index keeps one open alert per series however many replicas evaluate. Silences
// name an owner, a reason and an expiry. Every notification an alert owes a route is a delivery
// row, written with the state change that owes it and retried until delivered or given up on
// (recorded, audited), never dropped.
export const alertsMigration: TMigration = {
  id: 19,
  name: "alerts",
  sql: `
CREATE TABLE alerts (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  fingerprint      text        NOT NULL,
  rule             text        NOT NULL,
  org_name         text        NOT NULL,
  environment      text        NOT NULL,
  instance         text        NOT NULL,
  entity           text,
  severity         text        NOT NULL CHECK (severity IN ('critical', 'warning', 'info')),
  labels           jsonb       NOT NULL,
  annotations      jsonb       NOT NULL,
  state            text        NOT NULL CHECK (state IN ('pending', 'firing', 'resolved')),
  value            double precision,
  pending_since    timestamptz NOT NULL,
  fired_at         timestamptz,
  clear_since      timestamptz,
  resolved_at      timestamptz,
  notified_at      timestamptz,
  acknowledged_by  text,
  acknowledged_at  timestamptz,
  escalated_at     timestamptz,
  evaluated_at     timestamptz NOT NULL
);
CREATE UNIQUE INDEX alerts_open ON alerts (fingerprint) WHERE state <> 'resolved';
CREATE INDEX alerts_org ON alerts (org_name, id DESC);

CREATE TABLE alert_silences (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  rule         text        NOT NULL,
  org_name     text        NOT NULL,
  environment  text,
  owner        text        NOT NULL,
  reason       text        NOT NULL,
  created_at   timestamptz NOT NULL,
  expires_at   timestamptz NOT NULL CHECK (expires_at > created_at),
  ended_at     timestamptz,
  ended_by     text
);
CREATE INDEX alert_silences_active ON alert_silences (org_name, rule) WHERE ended_at IS NULL;

CREATE TABLE alert_deliveries (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  alert_id        bigint      NOT NULL REFERENCES alerts (id),
  event           text        NOT NULL CHECK (event IN ('firing', 'resolved', 'escalated')),
  route_kind      text        NOT NULL CHECK (route_kind IN ('webhook', 'alertmanager', 'email')),
  destination     text        NOT NULL,
  state           text        NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
  attempts        integer     NOT NULL DEFAULT 0,
  last_error      text,
  created_at      timestamptz NOT NULL,
  next_attempt_at timestamptz NOT NULL,
  delivered_at    timestamptz
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_id);
`,
};
