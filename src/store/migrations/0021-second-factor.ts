import type { TMigration } from "./index.js";

// A second factor for local users (HIPAA §164.312(d); the 2025 NPRM makes MFA mandatory): one TOTP
// secret per user, sealed under the master key like every other secret (secrets-envelope.ts, as
// secret "identity/totp/<user id>/<enrolment id>" version 1), never in the clear; the last time
// step accepted, so a code signs in once; ten recovery codes, stored as SHA-256 of 80 random bits.
// A sign-in whose password was right waits on a ticket (stored as the SHA-256 of its 256 random
// bits) until the second factor passes: only then is a session issued. The session records which
// factor it passed, so minting an API token can insist on one.
export const secondFactorMigration: TMigration = {
  id: 21,
  name: "second-factor",
  sql: `
CREATE TABLE user_totp (
  user_id        uuid        PRIMARY KEY REFERENCES users (id),
  enrolment_id   uuid        NOT NULL,
  ciphertext     bytea       NOT NULL,
  iv             bytea       NOT NULL,
  tag            bytea       NOT NULL,
  wrapped_key    bytea       NOT NULL,
  wrap_iv        bytea       NOT NULL,
  wrap_tag       bytea       NOT NULL,
  master_key_id  text        NOT NULL,
  created_at     timestamptz NOT NULL,
  -- NULL until the user typed a first code from it: an enrolment begun but never confirmed.
  confirmed_at   timestamptz,
  last_step      bigint,
  CHECK (confirmed_at IS NOT NULL OR last_step IS NULL)
);

CREATE TABLE user_recovery_codes (
  user_id        uuid        NOT NULL REFERENCES users (id),
  code_sha256    text        NOT NULL CHECK (code_sha256 ~ '^[0-9a-f]{64}$'),
  created_at     timestamptz NOT NULL,
  used_at        timestamptz,
  PRIMARY KEY (user_id, code_sha256)
);

CREATE TABLE sign_in_tickets (
  secret_sha256      text        PRIMARY KEY CHECK (secret_sha256 ~ '^[0-9a-f]{64}$'),
  user_id            uuid        NOT NULL REFERENCES users (id),
  -- The password step's attempt: counted as failed until the second factor passes.
  login_attempt_id   bigint      NOT NULL,
  break_glass_reason text,
  created_at         timestamptz NOT NULL,
  created_from       text        NOT NULL,
  expires_at         timestamptz NOT NULL,
  failures           integer     NOT NULL DEFAULT 0,
  ended_at           timestamptz
);
CREATE INDEX sign_in_tickets_user ON sign_in_tickets (user_id) WHERE ended_at IS NULL;

ALTER TABLE auth_tokens ADD COLUMN second_factor text CHECK (second_factor IN ('totp', 'recovery-code', 'provider'));
`,
};
