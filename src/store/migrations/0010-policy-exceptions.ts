import type { TMigration } from "./index.js";

// A spec proposes policy exceptions; carehost records who proposed each version (whoever applied
// the spec that introduced it) and who approved it, someone else, and when. A version is its digest
// (control, environment, owner, reason, expiry): a changed exception is a new row, never approved
// by the approval of the one it replaced. The CHECK keeps a proposer from being their own approver
// even if a future code path forgets to.
export const policyExceptionsMigration: TMigration = {
  id: 10,
  name: "policy-exceptions",
  sql: `
CREATE TABLE policy_exceptions (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  org_name     text        NOT NULL,
  digest       text        NOT NULL,
  control_id   text        NOT NULL,
  environment  text        NOT NULL,
  owner        text        NOT NULL,
  reason       text        NOT NULL,
  expires      text        NOT NULL,
  proposed_by  text        NOT NULL,
  proposer_id  text        NOT NULL,
  proposed_at  timestamptz NOT NULL DEFAULT now(),
  approved_by  text,
  approver_id  text,
  approved_at  timestamptz,
  UNIQUE (org_name, digest),
  CHECK ((approved_by IS NULL) = (approver_id IS NULL) AND (approved_by IS NULL) = (approved_at IS NULL)),
  CHECK (approver_id IS DISTINCT FROM proposer_id)
);
`,
};
