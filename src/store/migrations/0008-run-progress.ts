import type { TMigration } from "./index.js";

// Backups, verifications, restores and drills run in the server, apart from the request that
// started them: a client follows a run by its id, step by step, and one that reconnects after the
// run ended reads its steps and result here (restore_runs had its steps already). A run a stopping carehost ended (SIGTERM), or one found still running at
// the next start (SIGKILL), is interrupted: neither succeeded nor failed on its own.
export const runProgressMigration: TMigration = {
  id: 8,
  name: "run-progress",
  sql: `
ALTER TABLE backup_runs ADD COLUMN steps jsonb;
ALTER TABLE backup_runs ADD COLUMN result jsonb;
ALTER TABLE restore_runs ADD COLUMN result jsonb;
ALTER TABLE restore_drills ADD COLUMN steps jsonb;
ALTER TABLE backup_runs DROP CONSTRAINT backup_runs_status_check;
ALTER TABLE backup_runs ADD CONSTRAINT backup_runs_status_check CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted'));
ALTER TABLE restore_runs DROP CONSTRAINT restore_runs_status_check;
ALTER TABLE restore_runs ADD CONSTRAINT restore_runs_status_check CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted'));
ALTER TABLE restore_drills DROP CONSTRAINT restore_drills_status_check;
ALTER TABLE restore_drills ADD CONSTRAINT restore_drills_status_check CHECK (status IN ('running', 'passed', 'failed', 'interrupted'));
`,
};
