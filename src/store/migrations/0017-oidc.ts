import type { TMigration } from "./index.js";

// Single sign-on through an organization's OpenID Connect provider (HIPAA §164.312(d) person
// authentication, §164.312(a)(2)(i) unique user identification).
//
// oidc_identities links a carehost user to the provider's account: (issuer, subject) is what the
// provider guarantees stable and unique, never the email address, which can be reassigned.
//
// oidc_logins holds a sign-in between its start and its callback: the state, nonce and PKCE
// verifier never leave the server except as the state (and the verifier's hash) in the redirect.
// A row is consumed by the first callback that names its state, so a replayed callback finds it
// used; it is only looked up by the SHA-256 of the state, so the table alone does not let anyone
// complete someone else's sign-in.
export const oidcMigration: TMigration = {
  id: 17,
  name: "oidc",
  sql: `
CREATE TABLE oidc_identities (
  issuer         text        NOT NULL,
  subject        text        NOT NULL,
  user_id        uuid        NOT NULL REFERENCES users (id),
  email          text        NOT NULL,
  created_at     timestamptz NOT NULL,
  last_login_at  timestamptz NOT NULL,
  PRIMARY KEY (issuer, subject)
);
CREATE INDEX oidc_identities_user ON oidc_identities (user_id);

CREATE TABLE oidc_logins (
  state_sha256   text        PRIMARY KEY CHECK (state_sha256 ~ '^[0-9a-f]{64}$'),
  organization   text        NOT NULL,
  issuer         text        NOT NULL,
  client_id      text        NOT NULL,
  nonce          text        NOT NULL,
  code_verifier  text        NOT NULL,
  redirect_uri   text        NOT NULL,
  created_from   text        NOT NULL,
  created_at     timestamptz NOT NULL,
  expires_at     timestamptz NOT NULL,
  consumed_at    timestamptz
);
CREATE INDEX oidc_logins_source ON oidc_logins (created_from, created_at) WHERE consumed_at IS NULL;
CREATE INDEX oidc_logins_expiry ON oidc_logins (expires_at);
`,
};
