// When approved changes to production apply: inside every production window they touch, across
// daylight-saving changes in America/New_York (a slot at 01:30 on fall-back Sunday, which occurs
// twice; one at 02:30 on spring-forward Sunday, which does not occur; a slot the change lengthens
// or shortens on the wall clock), applied by the scheduler's pass when the window opens, and never
// during a freeze but as an emergency.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { createAuditHarness } from "../../test/audit-fixtures.js";
import type { TAuditHarness } from "../../test/audit-fixtures.js";
import { createGovernedServices, userContext } from "../../test/change-fixtures.js";
import type { TGovernedServices } from "../../test/change-fixtures.js";
import { testDatabaseFactories } from "../../test/test-databases.js";
import { PolicyViolation } from "../lib/errors.js";
import { systemContext } from "../lib/request-context.js";

const alice = userContext("alice", "operator");
const approvers = [userContext("bob", "approver"), userContext("dana", "approver")];
const scheduler = systemContext("change-scheduler");
const at = (iso: string) => new Date(iso);

/** The demo with production's window replaced (Sunday, New York) and a changeManagement block appended. */
const demoWith = async (start: string, durationMinutes: number, changeManagement = "") =>
  `${(await readFile("examples/northwind-health.yaml", "utf8")).replace(
    'start: "02:00"\n          durationMinutes: 240',
    `start: "${start}"\n          durationMinutes: ${durationMinutes}`,
  )}${changeManagement}`;

const withOrganization = async (
  source: string,
  start: Date,
  body: (context: {
    services: TGovernedServices;
    harness: TAuditHarness;
    setNow: (at: Date) => void;
    approvedChange: (field?: string) => Promise<number>;
  }) => Promise<void>,
) => {
  const harness = await createAuditHarness(testDatabaseFactories.pglite);
  let now = start;
  try {
    const services = createGovernedServices(harness, { now: () => now });
    await services.environments.apply(alice, { source, fileName: "org.yaml" });
    let workers = 9;
    const approvedChange = async () => {
      workers += 1;
      const { request } = await services.changes.create(alice, {
        source: source.replace(/workers: 9\b/, `workers: ${workers}`),
        fileName: "org.yaml",
        reason: `workers ${workers}`,
      });
      for (const approver of approvers) await services.changes.approve(approver, request.id);
      return request.id;
    };
    await body({ services, harness, setNow: (next) => (now = next), approvedChange });
  } finally {
    await harness.dispose();
  }
};

void describe("maintenance windows of change requests, across DST in America/New_York", () => {
  void it("01:30 on fall-back Sunday (it occurs twice): the window opens at the first 01:30 (EDT) and the second does not reopen it", async () => {
    await withOrganization(
      await demoWith("01:30", 60),
      at("2026-10-31T16:00:00Z"),
      async ({ services, setNow, approvedChange }) => {
        const id = await approvedChange();
        const scheduled = await services.changes.apply(alice, id);
        assert.equal(scheduled.request.state, "scheduled");
        assert.equal(scheduled.request.scheduledFor?.toISOString(), "2026-11-01T05:30:00.000Z", "01:30 EDT");
        setNow(at("2026-11-01T05:29:00Z"));
        assert.deepEqual((await services.changes.runDue(scheduler)).applied, []);
        setNow(at("2026-11-01T05:30:00Z"));
        assert.deepEqual((await services.changes.runDue(scheduler)).applied, [id]);

        // Approved at 01:35 EST, after the slot's 60 elapsed minutes ended at the second 01:30: next Sunday, 01:30 EST.
        setNow(at("2026-11-01T06:35:00Z"));
        const late = await approvedChange();
        const next = await services.changes.apply(alice, late);
        assert.equal(next.request.scheduledFor?.toISOString(), "2026-11-08T06:30:00.000Z");
      },
    );
  });

  void it("02:30 on spring-forward Sunday (it does not occur): the window opens at 03:30 EDT, read with the offset before the gap", async () => {
    await withOrganization(
      await demoWith("02:30", 60),
      at("2026-03-07T16:00:00Z"),
      async ({ services, setNow, approvedChange }) => {
        const id = await approvedChange();
        assert.equal(
          (await services.changes.apply(alice, id)).request.scheduledFor?.toISOString(),
          "2026-03-08T07:30:00.000Z",
        );
        setNow(at("2026-03-08T06:30:00Z"));
        assert.deepEqual((await services.changes.runDue(scheduler)).applied, [], "01:30 EST is not 02:30");
        setNow(at("2026-03-08T07:30:10Z"));
        assert.deepEqual((await services.changes.runDue(scheduler)).applied, [id]);
        assert.equal((await services.changes.show(alice, id)).appliedAt?.toISOString(), "2026-03-08T07:30:10.000Z");
      },
    );
  });

  void it("a slot across a change keeps its elapsed minutes: longer on the wall clock in spring, shorter in autumn", async () => {
    // 00:30 for 180 minutes: on 8 March until 04:30 EDT (08:30Z); on 1 November until 02:30 EST (07:30Z).
    await withOrganization(
      await demoWith("00:30", 180),
      at("2026-03-08T08:29:00Z"),
      async ({ services, setNow, approvedChange }) => {
        const spring = await approvedChange();
        assert.notEqual((await services.changes.apply(alice, spring)).applied, null, "04:29 EDT is still inside");
        setNow(at("2026-03-08T08:30:00Z"));
        const afterSpring = await approvedChange();
        assert.equal(
          (await services.changes.apply(alice, afterSpring)).request.scheduledFor?.toISOString(),
          "2026-03-15T04:30:00.000Z",
        );
        await services.changes.cancel(alice, afterSpring, "not needed");
        setNow(at("2026-11-01T07:29:00Z"));
        const autumn = await approvedChange();
        assert.notEqual((await services.changes.apply(alice, autumn)).applied, null, "02:29 EST is still inside");
        setNow(at("2026-11-01T07:30:00Z"));
        const afterAutumn = await approvedChange();
        assert.equal(
          (await services.changes.apply(alice, afterAutumn)).request.scheduledFor?.toISOString(),
          "2026-11-08T05:30:00.000Z",
        );
      },
    );
  });

  const FREEZE = `
changeManagement:
  freezes:
    - from: "2026-12-20T00:00:00-05:00"
      to: "2027-01-04T00:00:00-05:00"
      reason: year-end close
`;
  const frozen = (error: unknown) => {
    assert.ok(error instanceof PolicyViolation, String(error));
    assert.equal(
      error.message,
      "changes to northwind-health are frozen until 2027-01-04T00:00:00-05:00 (year-end close); only an emergency change applies during a freeze: carehost change create FILE --emergency --reason '…'",
    );
    return true;
  };

  void it("a freeze refuses every change, standard ones too, naming the freeze and its end; a scheduled change waits it out, then takes the next window", async () => {
    const source = await demoWith("02:00", 240, FREEZE);
    // Monday 14 December 2026, before the freeze.
    await withOrganization(
      source,
      at("2026-12-14T12:00:00Z"),
      async ({ services, harness, setNow, approvedChange }) => {
        const waiting = await approvedChange();
        assert.equal(
          (await services.changes.apply(alice, waiting)).request.scheduledFor?.toISOString(),
          "2026-12-20T07:00:00.000Z",
          "prod's next window, which the freeze covers",
        );
        // Sunday 20 December, 02:30 EST: the window is open, the freeze holds.
        setNow(at("2026-12-20T07:30:00Z"));
        assert.deepEqual(await services.changes.runDue(scheduler), { applied: [], failed: [], escalated: [] });
        assert.equal((await services.changes.show(alice, waiting)).state, "scheduled");
        await assert.rejects(
          services.environments.apply(alice, {
            source: source.replace("workers: 3", "workers: 4"),
            fileName: "org.yaml",
          }),
          frozen,
        );
        const refused = await approvedChange();
        await assert.rejects(services.changes.apply(alice, refused), frozen);
        assert.equal((await services.changes.show(alice, refused)).state, "approved", "refused, not closed");
        assert.ok(
          (await harness.log.list({ type: "change.refused", limit: 10 })).some((item) =>
            /frozen until/.test(String(item.entry.payload.reason)),
          ),
        );
        // The last Sunday of the freeze: still held.
        setNow(at("2027-01-03T08:00:00Z"));
        assert.deepEqual((await services.changes.runDue(scheduler)).applied, []);
        // Monday after the freeze, outside the window: moved to the next opening, then applied there.
        setNow(at("2027-01-04T06:00:00Z"));
        assert.deepEqual((await services.changes.runDue(scheduler)).applied, []);
        assert.equal(
          (await services.changes.show(alice, waiting)).scheduledFor?.toISOString(),
          "2027-01-10T07:00:00.000Z",
        );
        setNow(at("2027-01-10T07:00:00Z"));
        assert.deepEqual(await services.changes.runDue(scheduler), { applied: [waiting], failed: [], escalated: [] });
        // The change refused during the freeze was measured from the revision before: stale now.
        await assert.rejects(
          services.changes.apply(alice, refused),
          /is stale: it was measured from revision 1, and revision 2/,
        );
      },
    );
  });

  void it("an emergency change applies during a freeze and outside every window", async () => {
    const source = await demoWith("02:00", 240, FREEZE);
    // Wednesday 23 December 2026, 10:00 EST.
    await withOrganization(source, at("2026-12-23T15:00:00Z"), async ({ services }) => {
      const emergency = await services.changes.create(alice, {
        source: source.replace("cronWorkers: 2", "cronWorkers: 3"),
        fileName: "org.yaml",
        reason: "cron backlog is delaying claims",
        emergency: true,
      });
      assert.deepEqual([emergency.request.kind, emergency.request.state], ["emergency", "applied"]);
      assert.equal(emergency.applied?.revisionId, 2);
    });
  });
});
