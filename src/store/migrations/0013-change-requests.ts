import type { TMigration } from "./index.js";

// Change requests: what a change to an organization's spec would do (its plan, the rendered files'
// diffs, what restarts, how it was classified), who asked and why, who approved it and when, when
// it may apply and when it did. An approval row per approver; the trigger keeps a requester from
// approving their own change even if a future code path forgets to, and the primary key keeps one
// person from counting twice.
export const changeRequestsMigration: TMigration = {
  id: 13,
  name: "change-requests",
  sql: `
CREATE TABLE change_requests (
  id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  org_name            text        NOT NULL,
  kind                text        NOT NULL CHECK (kind IN ('standard', 'normal', 'emergency')),
  state               text        NOT NULL
                        CHECK (state IN ('pending', 'approved', 'scheduled', 'applied', 'failed', 'denied', 'cancelled')),
  reason              text        NOT NULL,
  ticket              text,
  requested_by        text        NOT NULL,
  requester_id        text        NOT NULL,
  requested_at        timestamptz NOT NULL,
  source              text        NOT NULL,
  file_name           text        NOT NULL,
  spec_digest         text        NOT NULL,
  base_revision_id    bigint      NOT NULL REFERENCES spec_revisions (id),
  confirm_destroy     jsonb       NOT NULL DEFAULT '[]',
  assessment          jsonb       NOT NULL,
  plan                jsonb       NOT NULL,
  approvals_required  integer     NOT NULL CHECK (approvals_required >= 1),
  rollback_of         bigint      REFERENCES change_requests (id),
  scheduled_for       timestamptz,
  applied_revision_id bigint      REFERENCES spec_revisions (id),
  applied_by          text,
  applied_at          timestamptz,
  closed_by           text,
  closed_at           timestamptz,
  close_reason        text,
  failure             text,
  reviewed_at         timestamptz,
  escalated_at        timestamptz,
  pre_change_backup   jsonb,
  post_change_posture jsonb
);
CREATE INDEX change_requests_org ON change_requests (org_name, id DESC);
CREATE INDEX change_requests_scheduled ON change_requests (scheduled_for) WHERE state = 'scheduled';

CREATE TABLE change_approvals (
  change_id    bigint      NOT NULL REFERENCES change_requests (id),
  approver     text        NOT NULL,
  approver_id  text        NOT NULL,
  role         text        NOT NULL,
  approved_at  timestamptz NOT NULL,
  PRIMARY KEY (change_id, approver_id)
);

CREATE FUNCTION change_approval_not_by_requester() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM change_requests WHERE id = NEW.change_id AND requester_id = NEW.approver_id) THEN
    RAISE EXCEPTION 'change request % cannot be approved by its requester', NEW.change_id;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER change_approvals_not_by_requester BEFORE INSERT ON change_approvals
  FOR EACH ROW EXECUTE FUNCTION change_approval_not_by_requester();
`,
};
