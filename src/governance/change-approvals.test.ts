// Separation of duties on change requests, role by role: who may request a change, who may approve
// one, never the requester, never the same person twice, never carehost itself; the approvals
// count toward approvalsRequired, and the database refuses a requester's approval on its own.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { createAuditHarness } from "../../test/audit-fixtures.js";
import { createGovernedServices, OUTSIDE_WINDOWS, userContext } from "../../test/change-fixtures.js";
import { forEachStoreKind } from "../../test/test-databases.js";
import { ConflictError, ForbiddenError, NotFoundError } from "../lib/errors.js";
import type { TRole } from "../lib/request-context.js";
import { systemContext } from "../lib/request-context.js";

const ROLES = ["platform-admin", "operator", "approver", "auditor"] as const satisfies readonly TRole[];
/** Whose approval of someone else's change counts: the roles holding change:approve. */
const APPROVES_OTHERS: Record<(typeof ROLES)[number], boolean> = {
  "platform-admin": true,
  operator: false,
  approver: true,
  auditor: false,
};
/** Who may request a change at all (change:request). */
const REQUESTS: Record<(typeof ROLES)[number], boolean> = {
  "platform-admin": true,
  operator: true,
  approver: false,
  auditor: false,
};

forEachStoreKind((kind, createDatabase) => {
  void describe(`separation of duties on change requests (${kind})`, () => {
    void it("every role × own change and someone else's: only a role holding change:approve approves, never its own, never twice", async () => {
      const harness = await createAuditHarness(createDatabase);
      try {
        const services = createGovernedServices(harness, { now: () => OUTSIDE_WINDOWS });
        const demo = await readFile("examples/northwind-health.yaml", "utf8");
        const requester = userContext("alice", "operator");
        await services.environments.apply(requester, { source: demo, fileName: "org.yaml" });
        let workers = 10;
        const newChange = async (by = requester) => {
          workers += 1;
          const source = demo.replace(/workers: 9\b/, `workers: ${workers}`);
          return (await services.changes.create(by, { source, fileName: "org.yaml", reason: `workers ${workers}` }))
            .request;
        };

        for (const role of ROLES) {
          const person = userContext(`${role}-user`, role);
          // Their own change.
          if (REQUESTS[role]) {
            const own = await newChange(person);
            await assert.rejects(
              services.changes.approve(person, own.id),
              (error: unknown) =>
                error instanceof ForbiddenError &&
                (role === "platform-admin"
                  ? error.message ===
                    `${role}-user requested change request #${own.id}; someone other than its requester approves it`
                  : /is not allowed change:approve/.test(error.message)),
              `${role} approving its own change`,
            );
            assert.equal((await services.changes.show(requester, own.id)).approvals.length, 0);
          } else {
            await assert.rejects(newChange(person), ForbiddenError, `${role} requests no change`);
          }
          // Someone else's.
          const others = await newChange();
          if (APPROVES_OTHERS[role]) {
            const approved = await services.changes.approve(person, others.id);
            assert.deepEqual(
              approved.approvals.map((approval) => [approval.approver, approval.role]),
              [[`${role}-user`, role]],
              `${role}'s approval counts`,
            );
            assert.equal(approved.state, "pending", "one of the two a change to PHI production needs");
            await assert.rejects(
              services.changes.approve(person, others.id),
              (error: unknown) =>
                error instanceof ConflictError &&
                new RegExp(`^${role}-user already approved change request #${others.id} at `).test(error.message),
              `${role} approving twice`,
            );
          } else {
            await assert.rejects(services.changes.approve(person, others.id), ForbiddenError, `${role} approving`);
            assert.equal((await services.changes.show(requester, others.id)).approvals.length, 0);
          }
        }

        // Two different people make the two approvals; carehost itself never approves.
        const change = await newChange();
        await assert.rejects(services.changes.approve(systemContext("cli"), change.id), ForbiddenError);
        await services.changes.approve(userContext("bob", "approver"), change.id);
        const approved = await services.changes.approve(userContext("carol", "platform-admin"), change.id);
        assert.equal(approved.state, "approved");
        await assert.rejects(
          services.changes.approve(userContext("dana", "approver"), change.id),
          (error: unknown) =>
            error instanceof ConflictError && /is approved; only a pending change/.test(error.message),
        );
        // A role over another organization does not see this one's change at all.
        await assert.rejects(
          services.changes.approve(userContext("olga", "approver", ["another-org"]), change.id),
          (error: unknown) => error instanceof NotFoundError && error.message === `no change request #${change.id}`,
        );

        // Every refusal is in the audit log: the ones carehost explains and the missing permissions.
        const refused = (await harness.log.list({ type: "change.refused", limit: 100 })).map((item) => item.entry);
        assert.ok(refused.some((entry) => /someone other than its requester/.test(String(entry.payload.reason))));
        assert.ok(refused.some((entry) => /already approved/.test(String(entry.payload.reason))));
        const denied = (await harness.log.list({ type: "access.denied", limit: 100 })).map((item) => item.entry);
        assert.ok(
          denied.some((entry) => entry.payload.permission === "change:approve" && entry.payload.role === "operator"),
        );
        assert.ok(
          denied.some((entry) => entry.payload.permission === "change:request" && entry.payload.role === "auditor"),
        );

        // The database holds the rule too: a requester's approval written past the service is refused.
        await assert.rejects(
          harness.db.query(
            "INSERT INTO change_approvals (change_id, approver, approver_id, role, approved_at) VALUES ($1, 'alice', 'user:u_alice', 'operator', now())",
            [change.id],
          ),
          /cannot be approved by its requester/,
        );
      } finally {
        await harness.dispose();
      }
    });
  });
});
