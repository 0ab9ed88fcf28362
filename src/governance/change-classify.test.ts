import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { planEnvironments } from "../environments/environment-plan.js";
import type { TRuntimeEffect } from "../runtime/runtime-types.js";
import { loadSpecText } from "../spec/spec-loader.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import { classifyChange } from "./change-classify.js";

const demo = readFileSync("examples/northwind-health.yaml", "utf8");
const load = (source: string): TOrganizationSpec => {
  const result = loadSpecText(source, "org.yaml");
  assert.ok(result.ok, JSON.stringify(!result.ok && result.errors));
  return result.spec;
};
const classify = (appliedSource: string, proposedSource: string, effects: readonly TRuntimeEffect[] = []) => {
  const applied = load(appliedSource);
  const proposed = load(proposedSource);
  const plan = planEnvironments(
    proposed.metadata.name,
    "digest",
    new Map(applied.environments.map((environment) => [environment.name, environment])),
    proposed.environments,
  );
  return classifyChange({ applied, proposed, plan, effects });
};
/** What the local runtime reports for prod's workers (max_connections is a postmaster setting). */
const restartProdPostgres: TRuntimeEffect = {
  target: "postgres/dedicated-prod",
  environments: ["prod"],
  component: "postgresql",
  action: "restart",
  reasons: ["max_connections"],
  line: "restarts prod's PostgreSQL: max_connections",
};
const reloadShared: TRuntimeEffect = {
  target: "postgres/shared",
  environments: ["staging", "training"],
  component: "postgresql",
  action: "restart",
  reasons: ["max_connections"],
  line: "restarts the shared PostgreSQL (staging, training): max_connections",
};
const standardWorkers = `
changeManagement:
  standardChanges:
    - environments: non-production
    - environment: prod
      fields: [odoo.workers, odoo.cronWorkers]
`;

void describe("classifying a change against the applied revision", () => {
  void it("a change to PHI production is normal and needs two approvals; its fields and production are named", () => {
    const assessment = classify(demo, demo.replace(/workers: 9\b/, "workers: 11"), [restartProdPostgres]);
    assert.equal(assessment.standard, false);
    assert.equal(assessment.approvalsRequired, 2);
    assert.deepEqual(assessment.production, ["prod"]);
    assert.deepEqual(assessment.environments, [
      { name: "prod", action: "change", production: true, dataClass: "phi", fields: ["odoo.workers"], standard: false },
    ]);
    assert.deepEqual(assessment.productionRestarts, ["restarts prod's PostgreSQL: max_connections"]);
    assert.deepEqual(assessment.reasons, [
      "production prod: odoo.workers is not a standard change",
      "restarts prod's PostgreSQL: max_connections: a change that restarts production waits for its maintenance window",
    ]);
  });

  void it("any change to a non-production environment is standard by default, even one that restarts its cluster", () => {
    const assessment = classify(demo, demo.replace("workers: 3", "workers: 4"), [reloadShared]);
    assert.equal(assessment.standard, true, assessment.reasons.join("; "));
    assert.deepEqual(assessment.production, []);
    assert.deepEqual(assessment.productionRestarts, []);
    assert.equal(assessment.approvalsRequired, 1);
  });

  void it("a listed field of production is standard, unless applying it restarts production", () => {
    const applied = `${demo}${standardWorkers}`;
    const cron = classify(applied, applied.replace("cronWorkers: 2", "cronWorkers: 3"));
    assert.equal(cron.standard, true, cron.reasons.join("; "));
    assert.deepEqual(cron.production, ["prod"]);
    const workers = classify(applied, applied.replace(/workers: 9\b/, "workers: 11"), [restartProdPostgres]);
    assert.equal(workers.standard, false);
    assert.deepEqual(workers.reasons, [
      "restarts prod's PostgreSQL: max_connections: a change that restarts production waits for its maintenance window",
    ]);
    // A field outside the list is not covered by the one beside it.
    const image = classify(
      applied,
      applied.replace("cronWorkers: 2", "cronWorkers: 3").replace("storageGi: 500", "storageGi: 600"),
    );
    assert.equal(image.standard, false);
    assert.deepEqual(image.environments[0]?.fields, ["database.storageGi", "odoo.cronWorkers"]);
  });

  void it("judges by the applied rules: a proposal that makes its own change standard is not standard", () => {
    const proposed = `${demo.replace("cronWorkers: 2", "cronWorkers: 3")}${standardWorkers}`;
    const assessment = classify(demo, proposed);
    assert.equal(assessment.standard, false);
    assert.deepEqual(assessment.organizationFields, ["changeManagement"]);
    assert.ok(assessment.reasons.includes("organization settings: changeManagement reach every environment"));
  });

  void it("lowering production's tier is a change to production; creating or removing production is never standard", () => {
    const lowered = classify(demo, demo.replace("tier: production", "tier: staging"));
    assert.deepEqual(lowered.production, ["prod"]);
    assert.equal(lowered.standard, false);
    assert.equal(lowered.approvalsRequired, 2);
    const applied = `${demo}${standardWorkers.replace("odoo.workers, odoo.cronWorkers", "odoo")}`;
    const renamed = demo
      .replace(/ {2}- name: prod\n/, "  - name: prod2\n")
      .replace("copyFrom: prod", "copyFrom: prod2");
    const removed = classify(applied, renamed);
    assert.ok(
      removed.reasons.includes("production prod: removing an environment is not a standard change"),
      removed.reasons.join("\n"),
    );
    assert.ok(
      removed.reasons.includes("production prod2: creating an environment is not a standard change"),
      removed.reasons.join("\n"),
    );
  });

  void it("approvalsRequired from the applied spec replaces the default; a shared cluster's restart reaching production counts as production", () => {
    const applied = `${demo}\nchangeManagement:\n  approvalsRequired: 3\n`;
    const shared = applied.replace("hosting: dedicated", "hosting: shared");
    const assessment = classify(shared, shared.replace("workers: 3", "workers: 4"), [
      {
        ...reloadShared,
        environments: ["prod", "staging", "training"],
        line: "restarts the shared PostgreSQL (prod, staging, training): max_connections",
      },
    ]);
    assert.equal(assessment.standard, false);
    assert.deepEqual(assessment.production, ["prod"]);
    assert.equal(assessment.approvalsRequired, 3);
  });
});
