// A scheduled change reaches production through the operation queue: each tick that finds its
// window open queues one apply operation (by dedupe key, however many replicas tick), one worker
// claims and applies it, and an apply operation that finds its change applied since does nothing.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { createAuditHarness } from "../../test/audit-fixtures.js";
import { createGovernedServices, userContext } from "../../test/change-fixtures.js";
import { testDatabaseFactories } from "../../test/test-databases.js";
import { systemContext } from "../lib/request-context.js";
import { operationServiceFactory } from "../operations/operation-service.js";
import { operationStoreFactory } from "../operations/operation-store.js";
import { operationWorkerFactory } from "../operations/operation-worker.js";
import type { TChangeRequest } from "./change-types.js";

const alice = userContext("alice", "operator");
const approvers = [userContext("bob", "approver"), userContext("dana", "approver")];
const scheduler = systemContext("change-scheduler");

void describe("scheduled changes through the operation queue", () => {
  void it("queues one apply operation however many ticks find the window open, and applies the change once", async () => {
    const harness = await createAuditHarness(testDatabaseFactories.pglite);
    // Outside the demo's windows (Tuesday and Thursday evenings, Sunday night for prod): Monday noon in New York.
    let now = new Date("2026-11-02T17:00:00Z");
    try {
      const services = createGovernedServices(harness, { now: () => now });
      const source = await readFile("examples/northwind-health.yaml", "utf8");
      await services.environments.apply(alice, { source, fileName: "org.yaml" });
      const { request } = await services.changes.create(alice, {
        source: source.replace(/workers: 9\b/, "workers: 11"),
        fileName: "org.yaml",
        reason: "more workers for month end",
      });
      for (const approver of approvers) await services.changes.approve(approver, request.id);
      const scheduled = await services.changes.apply(alice, request.id);
      assert.equal(scheduled.request.state, "scheduled");
      now = new Date(scheduled.request.scheduledFor!.getTime() + 60_000);

      const store = operationStoreFactory(harness.db);
      const operations = operationServiceFactory({ store, audit: harness.log });
      const enqueue = (due: TChangeRequest) =>
        operations.enqueueAsSystem(
          {
            organization: due.organization,
            target: `organization/${due.organization}`,
            kind: "apply",
            params: { changeRequest: due.id },
            changeRequest: due.id,
            dedupeKey: `change:${due.id}`,
            deadlineSeconds: 600,
          },
          "change-scheduler",
        );
      // Two replicas' ticks in the same minute.
      assert.deepEqual((await services.changes.runDue(scheduler, enqueue)).queued, [request.id]);
      assert.deepEqual((await services.changes.runDue(scheduler, enqueue)).queued, [request.id]);
      // The organization's first apply was an operation of its own; the change's is queued once.
      const queued = (await store.list()).filter((operation) => operation.changeRequest !== null);
      assert.equal(queued.length, 1);
      assert.equal(queued[0]?.changeRequest, request.id);
      assert.equal(queued[0]?.kind, "apply");

      const worker = operationWorkerFactory({
        store,
        handlers: { apply: ({ operation }) => services.changes.applyQueued(scheduler, operation.changeRequest!) },
        onError: (error) => {
          throw error;
        },
      });
      await worker.poll();
      await worker.idle();
      const [ran] = await store.list();
      assert.equal(ran?.state, "succeeded", ran?.error ?? "");
      assert.deepEqual(ran?.result, { changeRequest: request.id, outcome: "applied" });
      assert.equal((await services.changes.show(alice, request.id)).state, "applied");

      // An operation queued by a tick that read the change before it applied finds nothing to do.
      await store.enqueue({
        organization: "northwind-health",
        target: "organization/northwind-health",
        kind: "apply",
        changeRequest: request.id,
        requestedBy: "system:change-scheduler",
        dedupeKey: `change:${request.id}`,
        deadlineSeconds: 600,
      });
      await worker.poll();
      await worker.idle();
      const [stale] = await store.list();
      assert.deepEqual(stale?.result, { changeRequest: request.id, outcome: "not applied: it is applied and not due" });
      assert.equal((await services.changes.runDue(scheduler, enqueue)).queued?.length, 0);
    } finally {
      await harness.dispose();
    }
  });
});
