import type { TMigration } from "./index.js";

// Who may do what where (HIPAA §164.308(a)(4) information access management, §164.312(a)(1)
// access control): a role binding gives a user a role over one organization, or over every one
// ('*'). Authorization reads the bindings, never users.role alone, so an operator of one
// organization cannot touch another's. The later identity work adds its scopes (entity,
// environment), just-in-time elevation (expires_at) and access reviews as columns of these rows.
// Users that exist when this runs keep what they could do before: their role over every
// organization, narrowed with `carehost user revoke`.
export const roleBindingsMigration: TMigration = {
  id: 9,
  name: "role-bindings",
  sql: `
CREATE TABLE role_bindings (
  id             uuid        PRIMARY KEY,
  user_id        uuid        NOT NULL REFERENCES users (id),
  role           text        NOT NULL
                 CHECK (role IN ('platform-admin', 'operator', 'approver', 'auditor', 'viewer')),
  organization   text        NOT NULL CHECK (organization = '*' OR organization ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  created_at     timestamptz NOT NULL,
  created_by     text        NOT NULL,
  revoked_at     timestamptz,
  revoked_by     text
);
CREATE UNIQUE INDEX role_bindings_active ON role_bindings (user_id, role, organization) WHERE revoked_at IS NULL;
CREATE INDEX role_bindings_organization ON role_bindings (organization) WHERE revoked_at IS NULL;
INSERT INTO role_bindings (id, user_id, role, organization, created_at, created_by)
  SELECT gen_random_uuid(), id, role, '*', created_at, 'migration:role-bindings' FROM users;
`,
};
