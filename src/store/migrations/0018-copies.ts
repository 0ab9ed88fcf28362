import type { TMigration } from "./index.js";

// Every copy of an environment's data carehost makes, so none outlives its purpose unseen: a
// restored copy beside the source (kind 'copy', a cluster of its own) and the data a restore put
// into another declared environment (kind 'environment'). A row is written when the restore
// completes, with the data class the copy holds: 'deidentified' only once its verification passed
// (CH-DATA-001 reads it here, not in the spec). A PHI copy expires; the scheduler tears it down at
// expires_at, `carehost copies remove` before. A removed copy keeps its row (removed_at, by whom,
// why): the record of where PHI went outlives the copy.
export const copiesMigration: TMigration = {
  id: 18,
  name: "copies",
  sql: `
CREATE TABLE copies (
  id                 bigserial   PRIMARY KEY,
  organization       text        NOT NULL,
  name               text        NOT NULL,
  kind               text        NOT NULL CHECK (kind IN ('copy', 'environment')),
  source_environment text        NOT NULL,
  source_data_class  text        NOT NULL CHECK (source_data_class IN ('phi', 'confidential', 'internal', 'public')),
  restored_to        text        NOT NULL,
  data_class         text        NOT NULL CHECK (data_class IN ('phi', 'deidentified', 'confidential', 'internal', 'public')),
  restore_run_id     bigint      NOT NULL,
  owner              text        NOT NULL,
  port               integer,
  verification       jsonb,
  created_at         timestamptz NOT NULL,
  expires_at         timestamptz,
  removed_at         timestamptz,
  removed_by         text,
  removal_reason     text,
  CHECK (data_class <> 'deidentified' OR verification IS NOT NULL),
  CHECK ((removed_at IS NULL) = (removed_by IS NULL))
);
CREATE UNIQUE INDEX copies_live_name ON copies (organization, name) WHERE removed_at IS NULL;
CREATE INDEX copies_expiry ON copies (expires_at) WHERE removed_at IS NULL AND expires_at IS NOT NULL;
`,
};
