// Emergency changes: applied at once with a named reason, outside the window; an ALERT in
// `carehost status` and an audit entry until people other than the requester approve them within
// 24 hours, and escalated (audited, shown in status) once 24 hours pass without it.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { createAuditHarness } from "../../test/audit-fixtures.js";
import { createGovernedServices, OUTSIDE_WINDOWS, userContext } from "../../test/change-fixtures.js";
import { forEachStoreKind } from "../../test/test-databases.js";
import { auditServiceFactory } from "../audit/audit-service.js";
import { formatStatus } from "../cli/cli-server-commands.js";
import { ForbiddenError } from "../lib/errors.js";
import { systemContext } from "../lib/request-context.js";
import { statusServiceFactory } from "../server/status-service.js";

const alice = userContext("alice", "operator");
const bob = userContext("bob", "approver");
const dana = userContext("dana", "approver");
const auditor = userContext("erin", "auditor");
const scheduler = systemContext("change-scheduler");
const HOUR_MS = 3_600_000;

forEachStoreKind((kind, createDatabase) => {
  void describe(`emergency changes (${kind})`, () => {
    void it("apply at once outside the window, alert until approved retrospectively by others within 24 h, and escalate when not", async () => {
      const harness = await createAuditHarness(createDatabase);
      let now = OUTSIDE_WINDOWS;
      try {
        const services = createGovernedServices(harness, { now: () => now });
        const status = statusServiceFactory({
          environments: services.environments,
          auditHead: auditServiceFactory({ log: harness.log, db: harness.db }).head,
          audit: harness.log,
          version: "test",
          url: () => "http://127.0.0.1:0",
          store: kind,
          startedAt: new Date(),
          changeAlerts: services.changes.alerts,
          now: () => now,
        });
        const statusText = async () => formatStatus(await status.status(auditor)).join("\n");
        const demo = await readFile("examples/northwind-health.yaml", "utf8");
        await services.environments.apply(alice, { source: demo, fileName: "org.yaml" });

        // Monday 07:00 in New York, outside prod's Sunday window: an emergency applies anyway.
        const first = await services.changes.create(alice, {
          source: demo.replace(/workers: 9\b/, "workers: 11"),
          fileName: "org.yaml",
          reason: "order entry saturated during the flu clinic",
          emergency: true,
        });
        assert.deepEqual(
          [first.request.kind, first.request.state, first.applied?.revisionId, first.request.appliedAt?.toISOString()],
          ["emergency", "applied", 2, OUTSIDE_WINDOWS.toISOString()],
        );
        const reviewBy = new Date(OUTSIDE_WINDOWS.getTime() + 24 * HOUR_MS).toISOString();
        assert.equal(first.request.reviewBy?.toISOString(), reviewBy);
        const flagged = (await harness.log.list({ type: "change.emergency_applied", limit: 10 })).map(
          (item) => item.entry,
        );
        assert.deepEqual(
          flagged.map((entry) => entry.payload),
          [{ changeRequest: 1, reason: "order entry saturated during the flu clinic", reviewBy }],
        );
        assert.match(
          await statusText(),
          new RegExp(
            `^ {2}ALERT {2}emergency change #1 by alice applied at ${OUTSIDE_WINDOWS.toISOString()} without approval \\(0 of 2 approval\\(s\\)\\); approve it retrospectively by ${reviewBy}: carehost change approve 1$`,
            "m",
          ),
        );

        // Retrospective approval: never the requester; two others within the 24 hours close it.
        await assert.rejects(services.changes.approve(alice, 1), ForbiddenError);
        now = new Date(OUTSIDE_WINDOWS.getTime() + 2 * HOUR_MS);
        assert.match((await services.changes.approve(bob, 1)).alert ?? "", /\(1 of 2 approval\(s\)\)/);
        const reviewed = await services.changes.approve(dana, 1);
        assert.equal(reviewed.reviewedAt?.toISOString(), now.toISOString());
        assert.equal(reviewed.alert, null);
        assert.doesNotMatch(await statusText(), /ALERT/);
        assert.deepEqual(
          (await harness.log.list({ type: "change.emergency_reviewed", limit: 10 })).map((item) => item.entry.payload),
          [{ changeRequest: 1, late: false }],
        );
        assert.deepEqual(
          (await harness.log.list({ type: "change.approved", limit: 10 })).map(
            (item) => item.entry.payload.retrospective,
          ),
          [true, true],
        );

        // A second emergency nobody approves: escalated once its 24 hours are over, and only once.
        const second = await services.changes.create(alice, {
          source: demo.replace(/workers: 9\b/, "workers: 12"),
          fileName: "org.yaml",
          reason: "still saturated",
          emergency: true,
        });
        const appliedAt = now;
        now = new Date(appliedAt.getTime() + 24 * HOUR_MS - 60_000);
        assert.deepEqual(await services.changes.runDue(scheduler), { applied: [], failed: [], escalated: [] });
        assert.match(await statusText(), /ALERT {2}emergency change #2 .* without approval/);
        now = new Date(appliedAt.getTime() + 24 * HOUR_MS);
        // Two replicas' ticks at once: the change is escalated by one of them, and audited once.
        const ticks = await Promise.all([services.changes.runDue(scheduler), services.changes.runDue(scheduler)]);
        assert.deepEqual(
          ticks.flatMap((tick) => tick.escalated),
          [second.request.id],
        );
        assert.deepEqual((await services.changes.runDue(scheduler)).escalated, [], "escalated once");
        const escalated = (await harness.log.list({ type: "change.emergency_escalated", limit: 10 })).map(
          (item) => item.entry,
        );
        assert.deepEqual(
          escalated.map((entry) => [entry.outcome, entry.payload]),
          [
            [
              "failure",
              {
                changeRequest: 2,
                appliedAt: appliedAt.toISOString(),
                reviewBy: now.toISOString(),
                approvals: 0,
                approvalsRequired: 2,
              },
            ],
          ],
        );
        const report = await status.status(auditor);
        assert.deepEqual(
          report.organizations[0]!.changeAlerts.map((alert) => [alert.changeRequest, alert.escalated]),
          [[2, true]],
        );
        assert.match(
          await statusText(),
          /^ {2}ALERT {2}emergency change #2 by alice applied at \S+ was not approved within 24 h \(0 of 2 approval\(s\)\): ESCALATED; carehost change approve 2$/m,
        );

        // Approved late, it is closed, and the log says it was late.
        await services.changes.approve(bob, 2);
        await services.changes.approve(dana, 2);
        assert.doesNotMatch(await statusText(), /ALERT/);
        assert.deepEqual(
          (await harness.log.list({ type: "change.emergency_reviewed", limit: 10 })).map((item) => item.entry.payload),
          [
            { changeRequest: 1, late: false },
            { changeRequest: 2, late: true },
          ],
        );
        assert.equal((await harness.log.verify()).ok, true);
      } finally {
        await harness.dispose();
      }
    });
  });
});
