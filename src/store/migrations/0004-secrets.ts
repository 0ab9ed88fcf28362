import type { TMigration } from "./index.js";

// Secrets carehost generates (database passwords, keys, certificates), envelope-encrypted: each
// version has its own data key, wrapped under the master key named by master_key_id, which lives
// outside the database. Several versions of one name are live during a rotation; retiring a
// version stamps retired_at and erases its key material, so a retired secret cannot be read back.
export const secretsMigration: TMigration = {
  id: 4,
  name: "secrets",
  sql: `
CREATE TABLE secrets (
  name           text        NOT NULL,
  version        integer     NOT NULL CHECK (version >= 1),
  ciphertext     bytea       NOT NULL,
  iv             bytea       NOT NULL,
  tag            bytea       NOT NULL,
  wrapped_key    bytea       NOT NULL,
  wrap_iv        bytea       NOT NULL,
  wrap_tag       bytea       NOT NULL,
  master_key_id  text        NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  retired_at     timestamptz,
  PRIMARY KEY (name, version)
);
`,
};
