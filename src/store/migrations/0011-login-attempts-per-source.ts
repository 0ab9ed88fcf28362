import type { TMigration } from "./index.js";

// Sign-in limits count failures per (source address, username) and per source address, never per
// username alone: a username's count let anyone lock its owner out from anywhere. And the audit
// log keeps the first failure of a window and one summary of the rest instead of one entry per
// guess, so each attempt remembers whether it was audited on its own ('recorded'), waits for its
// window's summary ('pending'), or was counted in one ('summarised'). audit_username is the
// username the entry is about, NULL for refusals of a source limited across usernames.
export const loginAttemptsPerSourceMigration: TMigration = {
  id: 11,
  name: "login-attempts-per-source",
  sql: `
DROP INDEX login_attempts_username;
CREATE INDEX login_attempts_source_username ON login_attempts (source_address, username, attempted_at);
ALTER TABLE login_attempts
  ADD COLUMN audit_state text NOT NULL DEFAULT 'recorded'
    CHECK (audit_state IN ('recorded', 'pending', 'summarised')),
  ADD COLUMN audit_username text,
  ADD COLUMN audit_window_start timestamptz,
  ADD CHECK (audit_state = 'recorded' OR audit_window_start IS NOT NULL);
CREATE INDEX login_attempts_audit_window ON login_attempts (source_address, audit_window_start);
CREATE INDEX login_attempts_pending_audit ON login_attempts (audit_window_start) WHERE audit_state = 'pending';
`,
};
