import type { TMigration } from "./index.js";

// Local users, their credentials, and every log-in attempt (HIPAA §164.312(a)(2)(i) unique user
// identification, §164.312(d) person authentication, §164.308(a)(5)(ii)(C) log-in monitoring).
// Timestamps are written by the service's clock, not DEFAULT now(), so every replica and every
// test applies the same notion of "now" to expiry and rate-limit windows.
export const identityMigration: TMigration = {
  id: 3,
  name: "identity",
  sql: `
CREATE TABLE users (
  id             uuid        PRIMARY KEY,
  username       text        NOT NULL UNIQUE CHECK (username = lower(username)),
  role           text        NOT NULL
                 CHECK (role IN ('platform-admin', 'operator', 'approver', 'auditor', 'viewer')),
  -- NULL means the user cannot log in with a password (e.g. future OIDC-only users).
  password_hash  text        CHECK (password_hash LIKE '$argon2id$%'),
  created_at     timestamptz NOT NULL,
  created_by     text        NOT NULL,
  disabled_at    timestamptz,
  disabled_by    text
);

-- One row ever: the unique key makes "create the first admin" happen exactly once even when
-- several replicas start at the same moment, and keeps it from re-running if admin is renamed.
CREATE TABLE identity_bootstrap (
  singleton      boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
  -- Checked at commit: the marker is claimed first (deciding the race), the admin row follows.
  admin_user_id  uuid        NOT NULL REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED,
  created_at     timestamptz NOT NULL
);

CREATE TABLE auth_tokens (
  id             text        PRIMARY KEY,
  user_id        uuid        NOT NULL REFERENCES users (id),
  kind           text        NOT NULL CHECK (kind IN ('session', 'api')),
  name           text,
  secret_sha256  text        NOT NULL CHECK (secret_sha256 ~ '^[0-9a-f]{64}$'),
  created_at     timestamptz NOT NULL,
  created_from   text        NOT NULL,
  expires_at     timestamptz,
  last_used_at   timestamptz,
  revoked_at     timestamptz,
  revoked_by     text,
  CHECK ((kind = 'api') = (name IS NOT NULL)),
  CHECK (kind = 'api' OR expires_at IS NOT NULL)
);
CREATE INDEX auth_tokens_user ON auth_tokens (user_id) WHERE revoked_at IS NULL;
CREATE UNIQUE INDEX auth_tokens_api_name ON auth_tokens (user_id, name) WHERE kind = 'api' AND revoked_at IS NULL;

-- Counted by every replica, so the limit holds for the deployment rather than per process.
CREATE TABLE login_attempts (
  id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  username       text        NOT NULL,
  source_address text        NOT NULL,
  outcome        text        NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'rate_limited')),
  attempted_at   timestamptz NOT NULL
);
CREATE INDEX login_attempts_username ON login_attempts (username, attempted_at);
CREATE INDEX login_attempts_source ON login_attempts (source_address, attempted_at) WHERE outcome = 'failed';
`,
};
