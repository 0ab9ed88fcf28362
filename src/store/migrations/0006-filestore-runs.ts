import type { TMigration } from "./index.js";

// Filestore snapshots taken between database backups are backup runs too (kind filestore).
export const filestoreRunsMigration: TMigration = {
  id: 6,
  name: "filestore-runs",
  sql: `
ALTER TABLE backup_runs DROP CONSTRAINT backup_runs_kind_check;
ALTER TABLE backup_runs ADD CONSTRAINT backup_runs_kind_check CHECK (kind IN ('full', 'diff', 'incr', 'verify', 'filestore'));
`,
};
