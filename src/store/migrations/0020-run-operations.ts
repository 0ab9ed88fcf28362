import type { TMigration } from "./index.js";

// Every backup, verification, restore and drill run belongs to an operation (src/operations/): the
// row that holds its cluster while it runs. A start-up interrupts only the runs whose operation no
// live lease holds, so a replica restarting leaves another replica's runs alone.
export const runOperationsMigration: TMigration = {
  id: 20,
  name: "run-operations",
  sql: `ALTER TABLE backup_runs ADD COLUMN operation_id bigint;
ALTER TABLE restore_runs ADD COLUMN operation_id bigint;
ALTER TABLE restore_drills ADD COLUMN operation_id bigint;`,
};
