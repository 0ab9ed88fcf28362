import type { TMigration } from "./index.js";

// A scheduled filestore snapshot that finds no file added or removed takes none, and says so with
// a row of its own ('unchanged'): the scheduler counts it as the last look, so it does not queue
// another every pass until a file changes.
export const filestoreChecksMigration: TMigration = {
  id: 16,
  name: "filestore-checks",
  sql: `ALTER TABLE backup_runs DROP CONSTRAINT backup_runs_status_check;
ALTER TABLE backup_runs ADD CONSTRAINT backup_runs_status_check CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted', 'unchanged'));`,
};
