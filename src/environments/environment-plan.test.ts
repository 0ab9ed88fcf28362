import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { loadSpecText } from "../spec/spec-loader.js";
import type { TEnvironmentSpec } from "../spec/spec-schema.js";
import { diffFields, formatPlan, planEnvironments, planHasChanges } from "./environment-plan.js";

const demo = async (): Promise<TEnvironmentSpec[]> => {
  const result = loadSpecText(await readFile("examples/northwind-health.yaml", "utf8"), "northwind-health.yaml");
  assert.ok(result.ok);
  return result.spec.environments;
};

void describe("environment plan", () => {
  void it("creates every environment of a new organization", async () => {
    const environments = await demo();
    const plan = planEnvironments("northwind-health", "d", new Map(), environments);
    assert.deepEqual(
      plan.changes.map((change) => [change.action, change.name]),
      environments.map((environment) => ["create", environment.name]),
    );
    assert.match(formatPlan(plan), /\+ create environment "prod" \(production, phi, dedicated\)/);
    assert.match(formatPlan(plan), /3 to create, 0 to change, 0 to remove/);
  });

  void it("shows nothing to do for the recorded state", async () => {
    const environments = await demo();
    const recorded = new Map(environments.map((environment) => [environment.name, environment]));
    const plan = planEnvironments("northwind-health", "d", recorded, environments);
    assert.equal(planHasChanges(plan), false);
  });

  void it("names each changed field with its old and new value, and removals", async () => {
    const environments = await demo();
    const recorded = new Map(environments.map((environment) => [environment.name, environment]));
    const [prod] = environments;
    assert.ok(prod);
    const changed = { ...prod, odoo: { ...prod.odoo, workers: prod.odoo.workers + 2 } };
    const plan = planEnvironments("northwind-health", "d", recorded, [changed]);
    const change = plan.changes.find((item) => item.name === prod.name);
    assert.ok(change?.action === "change");
    assert.deepEqual(change.fields, [
      { path: "odoo.workers", before: prod.odoo.workers, after: prod.odoo.workers + 2 },
    ]);
    assert.notEqual(change.digest, change.previousDigest);
    assert.deepEqual(
      plan.changes.filter((item) => item.action === "remove").map((item) => item.name),
      environments
        .slice(1)
        .map((environment) => environment.name)
        .sort(),
    );
    assert.match(formatPlan(plan), new RegExp(`odoo.workers: ${prod.odoo.workers} → ${prod.odoo.workers + 2}`));
  });

  void it("compares arrays whole and reports added and removed keys", () => {
    assert.deepEqual(diffFields({ a: [1, 2] }, { a: [2, 1] }), [{ path: "a", before: [1, 2], after: [2, 1] }]);
    assert.deepEqual(diffFields({ a: 1 }, { b: 1 }), [
      { path: "a", before: 1, after: undefined },
      { path: "b", before: undefined, after: 1 },
    ]);
  });
});
