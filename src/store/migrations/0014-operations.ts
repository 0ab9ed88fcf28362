import type { TMigration } from "./index.js";

// Every state-changing action is an operation: a row written before anything is touched and
// claimed by one worker through this table (FOR UPDATE SKIP LOCKED), so replicas sharing one
// PostgreSQL run each operation exactly once. The partial unique indexes are the guarantees, not
// the claim query: at most one running operation per target (a cluster), and at most one open
// operation per dedupe key (the scheduler's "a backup of prod is already queued").
export const operationsMigration: TMigration = {
  id: 14,
  name: "operations",
  sql: `
CREATE TABLE operations (
  id                bigserial   PRIMARY KEY,
  organization      text        NOT NULL,
  environment       text,
  target            text        NOT NULL,
  kind              text        NOT NULL,
  params            jsonb       NOT NULL DEFAULT '{}'::jsonb,
  requested_by      text        NOT NULL,
  source            text,
  change_request    bigint,
  state             text        NOT NULL CHECK (state IN ('pending', 'scheduled', 'running', 'succeeded', 'failed', 'interrupted', 'cancelled')),
  not_before        timestamptz NOT NULL DEFAULT now(),
  deadline_seconds  integer     NOT NULL CHECK (deadline_seconds > 0),
  dedupe_key        text,
  lease_owner       text,
  lease_expires_at  timestamptz,
  attempts          integer     NOT NULL DEFAULT 0,
  cancel_requested  boolean     NOT NULL DEFAULT false,
  steps             jsonb       NOT NULL DEFAULT '[]'::jsonb,
  result            jsonb,
  error             text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  started_at        timestamptz,
  finished_at       timestamptz
);
CREATE UNIQUE INDEX operations_one_running_per_target ON operations (target) WHERE state = 'running';
CREATE UNIQUE INDEX operations_one_open_per_dedupe_key ON operations (dedupe_key)
  WHERE dedupe_key IS NOT NULL AND state IN ('pending', 'scheduled', 'running');
CREATE INDEX operations_claimable ON operations (not_before, id) WHERE state IN ('pending', 'scheduled');
CREATE INDEX operations_running_leases ON operations (lease_expires_at) WHERE state = 'running';
CREATE INDEX operations_organization ON operations (organization, environment, id DESC);
`,
};
