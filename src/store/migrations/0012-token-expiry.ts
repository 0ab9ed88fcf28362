import type { TMigration } from "./index.js";

// Every API token expires (HIPAA §164.312(d): a credential that outlives its purpose is a standing
// risk). A token issued before lifetimes existed gets the default lifetime of its owner's role,
// counted from the upgrade, so nothing in use stops working the moment carehost is upgraded. The
// days are written out rather than read from identity-tokens.ts: a shipped migration never changes.
export const tokenExpiryMigration: TMigration = {
  id: 12,
  name: "token-expiry",
  sql: `
UPDATE auth_tokens AS t
   SET expires_at = now() + CASE u.role WHEN 'auditor' THEN interval '90 days'
                                        WHEN 'viewer' THEN interval '90 days'
                                        ELSE interval '30 days' END
  FROM users AS u
 WHERE u.id = t.user_id AND t.expires_at IS NULL;
ALTER TABLE auth_tokens ALTER COLUMN expires_at SET NOT NULL;
`,
};
