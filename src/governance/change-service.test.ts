// Change requests over a real store: carehost apply refuses a change to PHI production that needs
// approval and records a standard one as a change request; a normal change is recorded with its
// plan, approved by two others, scheduled outside its window and applied when it opens; a stale
// request refuses; rollback is a change request of its own, gated the same way.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { createAuditHarness } from "../../test/audit-fixtures.js";
import type { TAuditHarness } from "../../test/audit-fixtures.js";
import {
  createGovernedServices,
  INSIDE_PROD_WINDOW,
  OUTSIDE_WINDOWS,
  userContext,
} from "../../test/change-fixtures.js";
import type { TGovernedServices } from "../../test/change-fixtures.js";
import { forEachStoreKind } from "../../test/test-databases.js";
import type { TTestDatabase } from "../../test/test-databases.js";
import { ConflictError, NotFoundError, PolicyViolation } from "../lib/errors.js";
import { systemContext } from "../lib/request-context.js";

const alice = userContext("alice", "operator");
/** Requests and may approve (platform-admin), never her own. */
const carol = userContext("carol", "platform-admin");
const bob = userContext("bob", "approver");
const dana = userContext("dana", "approver");
const scheduler = systemContext("change-scheduler");

const demoSource = () => readFile("examples/northwind-health.yaml", "utf8");
const submit = (source: string, fileName = "northwind-health.yaml") => ({ source, fileName });

const withChanges = async (
  createDatabase: () => Promise<TTestDatabase>,
  body: (context: {
    harness: TAuditHarness;
    services: TGovernedServices;
    setNow: (at: Date) => void;
    count: (table: string) => Promise<number>;
    demo: string;
  }) => Promise<void>,
) => {
  const harness = await createAuditHarness(createDatabase);
  let now = OUTSIDE_WINDOWS;
  try {
    const services = createGovernedServices(harness, { now: () => now });
    const count = async (table: string) =>
      (await harness.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n;
    const demo = await demoSource();
    // The organization's first revision needs no approval: nothing runs yet.
    const first = await services.environments.apply(alice, submit(demo));
    assert.deepEqual([first.revisionId, first.changeRequest], [1, null]);
    await body({ harness, services, setNow: (at) => (now = at), count, demo });
  } finally {
    await harness.dispose();
  }
};

const ofType = async (harness: TAuditHarness, type: Parameters<TAuditHarness["log"]["list"]>[0]["type"]) =>
  (await harness.log.list({ type, limit: 100 })).map((item) => item.entry);

forEachStoreKind((kind, createDatabase) => {
  void describe(`change requests on ${kind}`, () => {
    void it("carehost apply refuses a change to PHI production, naming its fields and the command that asks for approval, and records nothing", async () => {
      await withChanges(createDatabase, async ({ harness, services, count, demo }) => {
        const workers = demo.replace(/workers: 9\b/, "workers: 11");
        await assert.rejects(
          services.environments.apply(alice, submit(workers, "examples/northwind-health.yaml")),
          (error: unknown) => {
            assert.ok(error instanceof PolicyViolation, String(error));
            assert.equal(
              error.message,
              "this change to production prod needs approval: carehost change create examples/northwind-health.yaml --reason '…'",
            );
            assert.deepEqual(
              error.details.map((detail) => detail.message),
              ["production prod: odoo.workers is not a standard change"],
            );
            return true;
          },
        );
        assert.deepEqual([await count("spec_revisions"), await count("change_requests")], [1, 0]);
        const denied = await ofType(harness, "spec.apply_denied");
        assert.equal(denied.length, 1);
        assert.match(String(denied[0]!.payload.reason), /needs approval: carehost change create/);
      });
    });

    void it("carehost apply records a standard change (any change outside production) as a change request of its own, applied", async () => {
      await withChanges(createDatabase, async ({ harness, services, demo }) => {
        const staging = demo.replace("workers: 3", "workers: 4");
        const applied = await services.environments.apply(alice, submit(staging));
        assert.equal(applied.revisionId, 2);
        assert.deepEqual(applied.changeRequest, { id: 1, kind: "standard" });
        const request = await services.changes.show(bob, 1);
        assert.equal(request.state, "applied");
        assert.equal(request.appliedRevisionId, 2);
        assert.equal(request.requestedBy, "alice");
        assert.deepEqual(
          request.assessment.environments.map((environment) => [environment.name, environment.fields]),
          [["staging", ["odoo.workers"]]],
        );
        assert.deepEqual(
          (await harness.log.list({ limit: 100 })).map((item) => item.entry.type).slice(-4),
          ["spec.applied", "environment.changed", "change.requested", "change.applied"],
          "the change request commits with its revision",
        );
      });
    });

    void it("a normal change: recorded with its plan, approved by two people other than the requester, scheduled outside its window, applied when it opens", async () => {
      await withChanges(createDatabase, async ({ harness, services, setNow, demo }) => {
        const workers = demo.replace(/workers: 9\b/, "workers: 11");
        const { request, applied } = await services.changes.create(alice, {
          ...submit(workers),
          reason: "flu season: more web workers",
          ticket: "CHG-1042",
        });
        assert.equal(applied, null);
        assert.deepEqual(
          [request.id, request.kind, request.state, request.approvalsRequired],
          [1, "normal", "pending", 2],
        );
        assert.equal(request.baseRevisionId, 1);
        assert.equal(request.ticket, "CHG-1042");
        assert.deepEqual(request.assessment.production, ["prod"]);
        const change = request.plan.plan.changes.find((item) => item.name === "prod");
        assert.ok(change?.action === "change");
        assert.deepEqual(change.fields, [{ path: "odoo.workers", before: 9, after: 11 }]);
        assert.equal(request.plan.verdict.summary.fail >= 0, true);
        assert.deepEqual(
          request.windows.map((window) => [window.environment, window.open, window.opensAt.toISOString()]),
          [["prod", false, "2026-11-29T07:00:00.000Z"]],
        );

        await assert.rejects(services.changes.apply(alice, 1), (error: unknown) => {
          assert.ok(error instanceof ConflictError, String(error));
          assert.match(error.message, /^change request #1 is pending: it needs 2 more approval\(s\)/);
          return true;
        });
        const once = await services.changes.approve(bob, 1);
        assert.deepEqual([once.state, once.approvals.map((approval) => approval.approver)], ["pending", ["bob"]]);
        const twice = await services.changes.approve(dana, 1);
        assert.equal(twice.state, "approved");
        assert.deepEqual(
          twice.approvals.map((approval) => [approval.approver, approval.role, approval.approvedAt.toISOString()]),
          [
            ["bob", "approver", OUTSIDE_WINDOWS.toISOString()],
            ["dana", "approver", OUTSIDE_WINDOWS.toISOString()],
          ],
        );

        // Monday morning: outside prod's Sunday window, so it waits for the window's opening.
        const scheduled = await services.changes.apply(alice, 1);
        assert.equal(scheduled.applied, null);
        assert.equal(scheduled.request.state, "scheduled");
        assert.equal(scheduled.request.scheduledFor?.toISOString(), "2026-11-29T07:00:00.000Z");
        assert.deepEqual((await services.changes.runDue(scheduler)).applied, [], "nothing is due before the window");
        assert.equal((await services.environments.latestRevisions(bob))[0]!.id, 1);

        setNow(new Date("2026-11-29T07:00:30Z"));
        assert.deepEqual(await services.changes.runDue(scheduler), { applied: [1], failed: [], escalated: [] });
        const done = await services.changes.show(bob, 1);
        assert.deepEqual(
          [done.state, done.appliedRevisionId, done.appliedBy],
          ["applied", 2, "system:change-scheduler"],
        );
        assert.equal((await services.environments.latestSpecs())[0]!.environments[0]!.odoo.workers, 11);
        const types = (await harness.log.list({ limit: 200 })).map((item) => item.entry.type);
        for (const type of ["change.requested", "change.approved", "change.scheduled", "change.applied"] as const)
          assert.ok(types.includes(type), `${type} in ${types.join(", ")}`);
        assert.equal((await harness.log.verify()).ok, true);
      });
    });

    void it("refuses to apply a stale change request, saying to recreate it", async () => {
      await withChanges(createDatabase, async ({ services, setNow, demo }) => {
        setNow(INSIDE_PROD_WINDOW);
        const first = await services.changes.create(alice, {
          ...submit(demo.replace(/workers: 9\b/, "workers: 11")),
          reason: "more workers",
        });
        const second = await services.changes.create(alice, {
          ...submit(demo.replace("cronWorkers: 2", "cronWorkers: 3")),
          reason: "more cron",
        });
        for (const approver of [bob, dana]) {
          await services.changes.approve(approver, first.request.id);
          await services.changes.approve(approver, second.request.id);
        }
        assert.notEqual((await services.changes.apply(alice, first.request.id)).applied, null);
        await assert.rejects(services.changes.apply(alice, second.request.id), (error: unknown) => {
          assert.ok(error instanceof ConflictError, String(error));
          assert.equal(
            error.message,
            "change request #2 is stale: it was measured from revision 1, and revision 2 has been applied since; recreate it: carehost change create northwind-health.yaml --reason '…'",
          );
          return true;
        });
        assert.equal((await services.changes.show(bob, 2)).state, "approved", "refused, not changed");
      });
    });

    void it("rollback is a change request that applies the revision before, gated as any other", async () => {
      await withChanges(createDatabase, async ({ services, setNow, demo }) => {
        setNow(INSIDE_PROD_WINDOW);
        const { request } = await services.changes.create(alice, {
          ...submit(demo.replace(/workers: 9\b/, "workers: 11")),
          reason: "more workers",
        });
        await services.changes.approve(bob, request.id);
        await services.changes.approve(dana, request.id);
        await services.changes.apply(alice, request.id);
        const rollback = await services.changes.rollback(alice, request.id, { reason: "latency got worse" });
        assert.deepEqual(
          [rollback.request.kind, rollback.request.state, rollback.request.rollbackOf, rollback.request.baseRevisionId],
          ["normal", "pending", request.id, 2],
        );
        const prod = rollback.request.plan.plan.changes.find((item) => item.name === "prod");
        assert.ok(prod?.action === "change");
        assert.deepEqual(prod.fields, [{ path: "odoo.workers", before: 11, after: 9 }]);
        await assert.rejects(
          services.changes.apply(alice, rollback.request.id),
          ConflictError,
          "it needs approval too",
        );
        await services.changes.approve(bob, rollback.request.id);
        await services.changes.approve(dana, rollback.request.id);
        const applied = await services.changes.apply(alice, rollback.request.id);
        assert.equal(applied.applied?.revisionId, 3);
        const revisions = await services.environments.latestRevisions(bob);
        const original = (await services.store.revision("northwind-health", 1))!;
        assert.equal(revisions[0]!.digest, original.digest, "revision 3 is revision 1 again");
        await assert.rejects(
          services.changes.rollback(alice, request.id, { reason: "again" }),
          (error: unknown) =>
            error instanceof ConflictError && /revision 3 was applied after change request #1/.test(error.message),
        );
      });
    });

    void it("refuses what the state machine does not allow, each refusal audited, never a 500", async () => {
      await withChanges(createDatabase, async ({ harness, services, demo }) => {
        const { request } = await services.changes.create(carol, {
          ...submit(demo.replace(/workers: 9\b/, "workers: 11")),
          reason: "more workers",
        });
        await assert.rejects(
          services.changes.deny(carol, request.id, "no"),
          /carol requested change request #1; a requester withdraws it with carehost change cancel 1/,
        );
        const denied = await services.changes.deny(bob, request.id, "not during the audit");
        assert.deepEqual(
          [denied.state, denied.closedBy, denied.closeReason],
          ["denied", "bob", "not during the audit"],
        );
        await assert.rejects(services.changes.approve(dana, request.id), /change request #1 is denied/);
        await assert.rejects(
          services.changes.apply(alice, request.id),
          /change request #1 is denied; only an approved change applies/,
        );
        await assert.rejects(
          services.changes.cancel(alice, request.id, "x"),
          /only a pending, approved or scheduled change is cancelled/,
        );
        await assert.rejects(services.changes.show(bob, 99), NotFoundError);
        await assert.rejects(
          services.changes.create(alice, { ...submit(demo), reason: "nothing" }),
          /changes nothing against revision 1/,
        );
        const withoutTraining = demo.slice(0, demo.indexOf("  - name: training"));
        await assert.rejects(
          services.changes.create(alice, { ...submit(withoutTraining), reason: "drop training" }),
          (error: unknown) => error instanceof PolicyViolation && /--confirm-destroy training/.test(error.message),
        );
        const second = await services.changes.create(alice, {
          ...submit(demo.replace("cronWorkers: 2", "cronWorkers: 3")),
          reason: "more cron",
        });
        const cancelled = await services.changes.cancel(alice, second.request.id, "wrong file");
        assert.equal(cancelled.state, "cancelled");
        const refusals = await ofType(harness, "change.refused");
        assert.deepEqual(
          refusals.map((entry) => entry.payload.action),
          ["deny", "approve", "apply", "cancel"],
        );
      });
    });
  });
});
