import type { TMigration } from "./index.js";

// Backups and restore drills as carehost ran them: what, when, how big, how long, and the result.
// A run is inserted as "running" before it starts, so a carehost killed midway leaves a row that
// the next start marks "failed" (interrupted) instead of a backup nobody knows about.
export const recoveryMigration: TMigration = {
  id: 5,
  name: "recovery",
  sql: `
CREATE TABLE backup_runs (
  id                bigserial   PRIMARY KEY,
  organization      text        NOT NULL,
  environment       text        NOT NULL,
  kind              text        NOT NULL CHECK (kind IN ('full', 'diff', 'incr', 'verify')),
  trigger           text        NOT NULL CHECK (trigger IN ('schedule', 'manual')),
  status            text        NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
  label             text,
  database_bytes    bigint,
  repository_bytes  bigint,
  duration_ms       bigint,
  error             text,
  started_at        timestamptz NOT NULL DEFAULT now(),
  finished_at       timestamptz
);
CREATE INDEX backup_runs_environment ON backup_runs (organization, environment, kind, started_at DESC);

CREATE TABLE restore_drills (
  id                     bigserial   PRIMARY KEY,
  organization           text        NOT NULL,
  environment            text        NOT NULL,
  trigger                text        NOT NULL CHECK (trigger IN ('schedule', 'manual')),
  status                 text        NOT NULL CHECK (status IN ('running', 'passed', 'failed')),
  backup_label           text,
  rto_seconds            double precision,
  rpo_seconds            double precision,
  rto_objective_minutes  integer     NOT NULL,
  rpo_objective_minutes  integer     NOT NULL,
  details                jsonb,
  error                  text,
  started_at             timestamptz NOT NULL DEFAULT now(),
  finished_at            timestamptz
);
CREATE INDEX restore_drills_environment ON restore_drills (organization, environment, started_at DESC);
`,
};
