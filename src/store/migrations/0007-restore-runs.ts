import type { TMigration } from "./index.js";

// Restores as carehost ran them, like backups and drills: inserted "running" before anything is
// touched, so a carehost killed midway leaves a row the next start marks failed and audits,
// instead of a restore that happened to nobody's knowledge.
export const restoreRunsMigration: TMigration = {
  id: 7,
  name: "restore-runs",
  sql: `
CREATE TABLE restore_runs (
  id             bigserial   PRIMARY KEY,
  organization   text        NOT NULL,
  environment    text        NOT NULL,
  target         text        NOT NULL,
  destination    text        NOT NULL,
  status         text        NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
  steps          jsonb,
  duration_ms    bigint,
  error          text,
  started_at     timestamptz NOT NULL DEFAULT now(),
  finished_at    timestamptz
);
CREATE INDEX restore_runs_environment ON restore_runs (organization, environment, started_at DESC);
`,
};
