import type { TMigration } from "./index.js";

// A change to a production environment's data tier (its database, backups or Redis) is followed by
// a restore drill of that environment; its result belongs to the change request, beside the
// pre-change backup and the posture read after.
export const changeDrillsMigration: TMigration = {
  id: 15,
  name: "change-drills",
  sql: `ALTER TABLE change_requests ADD COLUMN post_change_drills jsonb;`,
};
