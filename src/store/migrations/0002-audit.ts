import type { TMigration } from "./index.js";

// The audit log (src/audit). Append-only is enforced by the database itself: statement triggers
// refuse UPDATE, DELETE and TRUNCATE on entries, checkpoints and signing keys, so a bug or a
// stolen application credential cannot rewrite history; only someone who can disable triggers
// (a superuser) can, and `carehost audit verify` exists to catch exactly that.
//
// seq comes from audit_head, locked in the appending transaction, not from a sequence: a rolled
// back sequence value leaves a gap, and a gap must mean a deleted entry.
export const auditMigration: TMigration = {
  id: 2,
  name: "audit",
  sql: `
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END
$$;

CREATE FUNCTION audit_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'UPDATE' OR NEW.size < OLD.size THEN
    RAISE EXCEPTION 'audit_head only moves forward: % refused', TG_OP;
  END IF;
  RETURN NEW;
END
$$;

CREATE TABLE audit_head (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  size      bigint  NOT NULL CHECK (size >= 0)
);
INSERT INTO audit_head (singleton, size) VALUES (true, 0);

CREATE TABLE audit_entries (
  seq       bigint      PRIMARY KEY CHECK (seq >= 0),
  entry     text        NOT NULL,
  leaf_hash bytea       NOT NULL CHECK (octet_length(leaf_hash) = 32),
  type      text        NOT NULL,
  actor     text        NOT NULL,
  target    text,
  time      timestamptz NOT NULL
);
CREATE INDEX audit_entries_time ON audit_entries (time);
CREATE INDEX audit_entries_type_time ON audit_entries (type, time);
CREATE INDEX audit_entries_target_time ON audit_entries (target, time) WHERE target IS NOT NULL;

CREATE TABLE audit_signing_keys (
  key_id     text        PRIMARY KEY,
  public_key text        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE audit_checkpoints (
  tree_size bigint      PRIMARY KEY CHECK (tree_size >= 0),
  root_hash bytea       NOT NULL CHECK (octet_length(root_hash) = 32),
  time      timestamptz NOT NULL,
  signature bytea       NOT NULL,
  key_id    text        NOT NULL REFERENCES audit_signing_keys (key_id)
);

CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_entries
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_signing_keys_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_signing_keys
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_head_forward_only BEFORE UPDATE OR DELETE ON audit_head
  FOR EACH ROW EXECUTE FUNCTION audit_head_forward_only();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
`,
};
