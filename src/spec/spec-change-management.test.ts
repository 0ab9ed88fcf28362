import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { formatSpecError, loadSpecText } from "./spec-loader.js";

const demo = readFileSync("examples/northwind-health.yaml", "utf8");
const withBlock = (block: string) => `${demo}\nchangeManagement:\n${block}`;
const errorsOf = (text: string) => {
  const result = loadSpecText(text, "org.yaml");
  assert.equal(result.ok, false, "the spec should be refused");
  return result.ok
    ? []
    : result.errors.map((error) => ({ path: error.path, message: error.message, line: formatSpecError(error) }));
};

void describe("spec: changeManagement", () => {
  void it("is optional, and a full block parses as written (defaults are resolved by governance, not stored)", () => {
    const plain = loadSpecText(demo, "org.yaml");
    assert.ok(plain.ok);
    assert.equal(plain.spec.changeManagement, undefined, "no default is written into the recorded spec");
    const result = loadSpecText(
      withBlock(`  approvalsRequired: 3
  standardChanges:
    - environments: non-production
    - environment: prod
      fields: [odoo.workers, odoo.cronWorkers, backup.retention]
  freezes:
    - from: "2026-12-20T00:00:00-05:00"
      to: "2027-01-04T00:00:00Z"
      reason: year-end close
`),
      "org.yaml",
    );
    assert.ok(result.ok, JSON.stringify(!result.ok && result.errors));
    assert.deepEqual(result.spec.changeManagement, {
      approvalsRequired: 3,
      standardChanges: [
        { environments: "non-production" },
        { environment: "prod", fields: ["odoo.workers", "odoo.cronWorkers", "backup.retention"] },
      ],
      freezes: [{ from: "2026-12-20T00:00:00-05:00", to: "2027-01-04T00:00:00Z", reason: "year-end close" }],
    });
  });

  void it("names the field path of every bad value", () => {
    const errors = errorsOf(
      withBlock(`  approvalsRequired: 0
  standardChanges:
    - environments: everything
    - environment: prod
      fields: [odoo.wrkers]
    - environment: prod
    - environment: nowhere
      fields: [odoo.workers]
    - environments: non-production
      environment: prod
      fields: [odoo]
  freezes:
    - from: 2026-12-20
      to: "2026-12-21T00:00:00Z"
      reason: close
    - from: "2027-01-04T00:00:00Z"
      to: "2026-12-20T00:00:00Z"
      reason: backwards
    - from: "2027-01-04T00:00:00Z"
      to: "2027-01-05T00:00:00Z"
      reason: ""
  approver: bob
`),
    );
    const byPath = (path: string) => errors.filter((error) => error.path === path).map((error) => error.message);
    assert.deepEqual(byPath("changeManagement.approvalsRequired"), [
      "approvalsRequired 0 must be at least 1 (someone other than the requester)",
    ]);
    assert.deepEqual(byPath("changeManagement.standardChanges[0].environments"), [
      '"everything" is not a class of environments (write "non-production")',
    ]);
    assert.deepEqual(byPath("changeManagement.standardChanges[1].fields[0]"), [
      '"odoo.wrkers" is not a field of an environment (a dotted path such as odoo.workers or backup.retention)',
    ]);
    assert.deepEqual(byPath("changeManagement.standardChanges[2].fields"), [
      'environment "prod" needs the fields whose change is standard, e.g. [odoo.workers]',
    ]);
    assert.deepEqual(byPath("changeManagement.standardChanges[3].environment"), [
      'environment "nowhere" is not declared in environments (declared: prod, staging, training)',
    ]);
    assert.deepEqual(byPath("changeManagement.standardChanges[4]"), [
      "a standard change names either environments: non-production or one environment with its fields",
    ]);
    assert.match(byPath("changeManagement.freezes[0].from")[0] ?? "", /is not an ISO 8601 date-time with a zone/);
    assert.deepEqual(byPath("changeManagement.freezes[1].to"), [
      "the freeze ends (2026-12-20T00:00:00Z) before it begins (2027-01-04T00:00:00Z)",
    ]);
    assert.deepEqual(byPath("changeManagement.freezes[2].reason"), ["must not be empty"]);
    assert.ok(
      errors.some((error) => error.path === "changeManagement.approver"),
      JSON.stringify(errors),
    );
    // Each error points at its line in the file.
    assert.ok(
      errors.every((error) => /^org\.yaml:\d+:\d+ {2}changeManagement/.test(error.line)),
      JSON.stringify(errors),
    );
  });
});
