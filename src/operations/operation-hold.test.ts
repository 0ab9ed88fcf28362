import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { createAuditHarness, type TAuditHarness } from "../../test/audit-fixtures.js";
import { createGovernedServices, INSIDE_PROD_WINDOW, userContext } from "../../test/change-fixtures.js";
import { testDatabaseFactories } from "../../test/test-databases.js";
import { systemContext } from "../lib/request-context.js";
import { operationHoldFactory } from "./operation-hold.js";
import { operationStoreFactory } from "./operation-store.js";

// Work this process does itself is an operation: reserved before it touches anything, started once
// its target is free, joined by work nested in it on the same target, ended as the work ended.
void describe("operations this process holds itself", () => {
  let harness: TAuditHarness;
  before(async () => {
    harness = await createAuditHarness(testDatabaseFactories.postgres);
  });
  after(async () => {
    await harness.dispose();
  });
  const ctx = systemContext("test");
  const request = { organization: "held", target: "organization/held", kind: "apply" as const };

  void it("waits for its target, joins itself when nested, and ends as its work ended", async () => {
    const store = operationStoreFactory(harness.db);
    const [one, two] = [
      operationHoldFactory({ store, workerId: "replica-1", pollMs: 20 }),
      operationHoldFactory({ store, workerId: "replica-2", pollMs: 20 }),
    ];
    const order: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const first = one.within(ctx, request, async (operation) => {
      order.push("first started");
      // Nested work on the same target joins the operation rather than waiting for itself.
      await one.within(ctx, request, async (nested) => {
        assert.equal(nested.id, operation.id);
        nested.step("nested", "joined");
      });
      await held;
      order.push("first done");
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const second = two.within(ctx, request, async () => {
      order.push("second started");
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(order, ["first started"], "another replica's work on the target waits");
    release();
    await Promise.all([first, second]);
    assert.deepEqual(order, ["first started", "first done", "second started"]);
    const ended = (await store.list({ organizations: ["held"] })).sort((a, b) => a.id - b.id);
    assert.deepEqual(
      ended.map((operation) => [operation.state, operation.leaseOwner, operation.steps.map((step) => step.step)]),
      [
        ["succeeded", null, ["nested"]],
        ["succeeded", null, []],
      ],
    );
    await assert.rejects(
      one.within(ctx, request, async () => {
        throw new Error("the reconcile failed");
      }),
      /the reconcile failed/,
    );
    const [failed] = await store.list({ organizations: ["held"] });
    assert.deepEqual([failed?.state, failed?.error], ["failed", "the reconcile failed"]);
  });

  void it("records an apply as an operation on its organization, with its steps", async () => {
    const services = createGovernedServices(harness, { now: () => INSIDE_PROD_WINDOW });
    const source = await readFile("examples/northwind-health.yaml", "utf8");
    const organization = "held-apply";
    const applied = await services.environments.apply(userContext("alice", "platform-admin"), {
      source: source.replace("name: northwind-health", `name: ${organization}`),
      fileName: "org.yaml",
    });
    const [operation] = await operationStoreFactory(harness.db).list({ organizations: [organization] });
    assert.deepEqual(
      [operation?.kind, operation?.target, operation?.state, operation?.requestedBy],
      ["apply", `organization/${organization}`, "succeeded", "alice"],
    );
    assert.deepEqual(
      operation?.steps.map((step) => `${step.step}: ${step.detail}`),
      [`revision: #${applied.revisionId} recorded`, "reconcile: 0 action(s)"],
    );
  });
});
