import type { TMigration } from "./index.js";

// Desired state as recorded by `carehost apply`: every applied spec is kept as a revision, and
// the environments table is the current desired state derived from the newest revision.
export const coreMigration: TMigration = {
  id: 1,
  name: "core",
  sql: `
CREATE TABLE spec_revisions (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  org_name    text        NOT NULL,
  digest      text        NOT NULL,
  source      text        NOT NULL,
  spec        jsonb       NOT NULL,
  applied_by  text        NOT NULL,
  applied_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX spec_revisions_org ON spec_revisions (org_name, id DESC);

CREATE TABLE environments (
  org_name     text        NOT NULL,
  name         text        NOT NULL,
  spec         jsonb       NOT NULL,
  spec_digest  text        NOT NULL,
  revision_id  bigint      NOT NULL REFERENCES spec_revisions (id),
  status       text        NOT NULL DEFAULT 'recorded',
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_name, name)
);
`,
};
