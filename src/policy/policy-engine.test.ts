import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { PolicyViolation, ValidationError } from "../lib/errors.js";
import { loadSpecText } from "../spec/spec-loader.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import { SPEC_CONTROLS } from "./policy-catalog-spec.js";
import {
  assertNoMandatoryViolations,
  evaluatePolicy,
  formatPosture,
  formatViolation,
  PENDING_NOTE,
} from "./policy-engine.js";
import type { TPostureReport } from "./policy-engine.js";
import {
  exceptionDigest,
  exceptionExpiresAt,
  isExceptionActive,
  MAX_EXCEPTION_DAYS,
  validatePolicyExceptions,
} from "./policy-exceptions.js";
import type { TExceptionApprovals, TPolicyException } from "./policy-exceptions.js";
import type { TAnyControl, TSpecControl } from "./policy-types.js";

const EXAMPLE_PATH = fileURLToPath(new URL("../../examples/northwind-health.yaml", import.meta.url));
const NOW = new Date("2026-01-15T12:00:00Z");
const ISO_LINE =
  'CH-ISO-001 [164.308(a)(4), 164.312(a)(1)] environment "prod": PHI production must be dedicated (hosting: shared)';

function demoSpec(): TOrganizationSpec {
  const result = loadSpecText(readFileSync(EXAMPLE_PATH, "utf8"), EXAMPLE_PATH);
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result.spec;
}

/** The demo with production moved to shared hosting (fails CH-ISO-001) and its image by tag (fails advisory CH-SUP-001). */
function sharedProductionSpec(): TOrganizationSpec {
  const organization = demoSpec();
  const prod = organization.environments.find((environment) => environment.name === "prod");
  if (prod === undefined) throw new Error("no prod");
  prod.hosting = "shared";
  prod.odoo.image = "registry.northwind-health.example/odoo/odoo:17.0";
  return organization;
}

/** carehost's records for these exceptions: each proposed by alice, approved by bob. */
const approvedBy = (...exceptions: TPolicyException[]): TExceptionApprovals =>
  new Map(
    exceptions.map((exception, index) => [
      exceptionDigest(exception),
      { id: index + 1, proposedBy: "alice", approvedBy: "bob", approvedAt: "2026-01-10T09:00:00.000Z" },
    ]),
  );

/** The exceptions given count as approved unless `approvals` says otherwise. */
function evaluateSpec(
  organization: TOrganizationSpec,
  exceptions: readonly TPolicyException[] | readonly unknown[] = [],
  controls: readonly TAnyControl[] = SPEC_CONTROLS,
  now = NOW,
  approvals: TExceptionApprovals = approvedBy(...(exceptions as TPolicyException[])),
): TPostureReport {
  return evaluatePolicy({
    controls,
    subjects: { spec: organization.environments.map((environment) => ({ organization, environment })) },
    exceptions,
    approvals,
    now,
  });
}

const isoException = (overrides: Partial<TPolicyException> = {}): TPolicyException => ({
  controlId: "CH-ISO-001",
  environment: "prod",
  owner: "ciso@northwind-health.example",
  reason: "dedicated cluster on order; migration planned for February",
  expires: "2026-02-28",
  ...overrides,
});

function detailsOf(fn: () => unknown): readonly { path?: string; message: string }[] {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ValidationError, String(error));
    return error.details;
  }
  assert.fail("expected a ValidationError");
}

void describe("evaluatePolicy", () => {
  void it("reports a mandatory violation as the exact line plan prints", () => {
    const report = evaluateSpec(sharedProductionSpec());
    assert.deepEqual(
      report.mandatoryViolations.map((violation) => violation.line),
      [ISO_LINE],
    );
    assert.deepEqual(report.mandatoryViolations[0], {
      controlId: "CH-ISO-001",
      environment: "prod",
      message: "PHI production must be dedicated (hosting: shared)",
      line: ISO_LINE,
    });
  });

  void it("lists advisory failures as failures but not as violations", () => {
    const report = evaluateSpec(sharedProductionSpec());
    const advisory = report.results.find(
      (result) => result.controlId === "CH-SUP-001" && result.environment === "prod",
    );
    assert.equal(advisory?.status, "fail");
    assert.equal(advisory?.enforcement, "advisory");
    assert.equal(report.summary.fail, 2);
  });

  void it("orders results by environment, then control id, whatever the input order", () => {
    const organization = demoSpec();
    const forward = evaluateSpec(organization);
    const shuffledSubjects = [...organization.environments]
      .reverse()
      .map((environment) => ({ organization, environment }));
    const backward = evaluatePolicy({
      controls: [...SPEC_CONTROLS].reverse(),
      subjects: { spec: shuffledSubjects },
      now: NOW,
    });
    assert.deepEqual(backward, forward);
    const keys = forward.results.map((result) => `${result.environment} ${result.controlId}`);
    assert.deepEqual(keys, [...keys].sort());
    assert.deepEqual(
      [...new Set(forward.results.map((result) => result.environment))],
      ["prod", "staging", "training"],
    );
    assert.equal(forward.results.length, SPEC_CONTROLS.length * 3);
  });

  void it("summarizes statuses and round-trips as JSON", () => {
    const report = evaluateSpec(demoSpec());
    const { pass, fail, pending, excepted, notApplicable, notEnforced } = report.summary;
    assert.equal(pass + fail + pending + excepted + notApplicable + notEnforced, report.results.length);
    assert.equal(fail, 0);
    assert.ok(pass > 0 && notApplicable > 0);
    // Without carehost's sign-in to read (offline), the identity controls are gaps, not passes.
    assert.deepEqual(
      [
        ...new Set(
          report.results.filter((result) => result.status === "not-enforced").map((result) => result.controlId),
        ),
      ],
      ["CH-IAM-001", "CH-IAM-002", "CH-IAM-003", "CH-IAM-004"],
    );
    assert.equal(notEnforced, report.results.filter((result) => result.status === "not-enforced").length);
    assert.deepEqual(report.mandatoryViolations, [], "a gap is not a violation");
    assert.deepEqual(JSON.parse(JSON.stringify(report)), report);
    assert.equal(report.evaluatedAt, "2026-01-15T12:00:00.000Z");
  });

  void it("fails a control whose check throws, naming the error", () => {
    const broken: TSpecControl = {
      id: "CH-TST-001",
      title: "A control with a bug",
      citations: ["164.312(b)"],
      severity: "low",
      enforcement: "mandatory",
      subject: "spec",
      appliesTo: () => true,
      check: () => {
        throw new Error("boom");
      },
    };
    const report = evaluateSpec(demoSpec(), [], [broken]);
    assert.deepEqual(
      report.mandatoryViolations.map((violation) => violation.line),
      ["prod", "staging", "training"].map(
        (name) => `CH-TST-001 [164.312(b)] environment "${name}": the check could not run: boom`,
      ),
    );
  });

  void it("rejects a catalog with duplicate or malformed ids", () => {
    const [first] = SPEC_CONTROLS;
    assert.ok(first);
    const details = detailsOf(() => evaluateSpec(demoSpec(), [], [first, first, { ...first, id: "ISO-1" }]));
    assert.deepEqual(
      details.map((detail) => detail.message),
      ["control id CH-ISO-001 is used twice", 'control id "ISO-1" does not match CH-<AREA>-NNN'],
    );
  });

  void it("rejects two subjects of one kind for the same environment", () => {
    const organization = demoSpec();
    const [prod] = organization.environments;
    assert.ok(prod);
    assert.throws(
      () =>
        evaluatePolicy({
          controls: SPEC_CONTROLS,
          subjects: {
            spec: [
              { organization, environment: prod },
              { organization, environment: prod },
            ],
          },
          now: NOW,
        }),
      /two spec subjects for environment "prod"/,
    );
  });
});

void describe("formatViolation", () => {
  void it("writes id, citations, environment and message", () => {
    assert.equal(
      formatViolation(
        { controlId: "CH-ISO-001", citations: ["164.308(a)(4)", "164.312(a)(1)"], environment: "prod" },
        "PHI production must be dedicated (hosting: shared)",
      ),
      ISO_LINE,
    );
  });
});

void describe("assertNoMandatoryViolations", () => {
  void it("passes a clean report", () => {
    assert.doesNotThrow(() => assertNoMandatoryViolations(evaluateSpec(demoSpec())));
  });

  void it("throws PolicyViolation with one detail per violation", () => {
    const organization = sharedProductionSpec();
    organization.identity.mfaRequired = false;
    assert.throws(
      () => assertNoMandatoryViolations(evaluateSpec(organization)),
      (error: unknown) => {
        assert.ok(error instanceof PolicyViolation);
        assert.equal(error.message, "2 mandatory control violations");
        assert.deepEqual(error.details, [
          {
            message:
              'CH-IAM-001 [164.312(d), 90 FR 898] environment "prod": an organization holding PHI must require MFA for every sign-in (identity.mfaRequired: false)',
          },
          { message: ISO_LINE },
        ]);
        return true;
      },
    );
  });
});

void describe("documented exceptions", () => {
  void it("an approved, active exception turns the failure into excepted, still listed with owner, reason, expiry and approver", () => {
    const exception = isoException();
    const report = evaluateSpec(sharedProductionSpec(), [exception]);
    const result = report.results.find(
      (candidate) => candidate.controlId === "CH-ISO-001" && candidate.environment === "prod",
    );
    assert.equal(result?.status, "excepted");
    assert.deepEqual(result?.messages, ["PHI production must be dedicated (hosting: shared)"]);
    assert.deepEqual(result?.exception, exception);
    assert.deepEqual(report.mandatoryViolations, []);
    assert.equal(report.summary.excepted, 1);
    assert.doesNotThrow(() => assertNoMandatoryViolations(report));
    const text = formatPosture(report);
    assert.match(text, /excepted\s+CH-ISO-001/);
    assert.match(
      text,
      /excepted until 2026-02-28, owner ciso@northwind-health\.example, approved by bob at 2026-01-10T09:00:00\.000Z: dedicated cluster on order/,
    );
    assert.equal(result?.approval?.approvedBy, "bob");
  });

  void it("an exception nobody approved is pending: the control fails, a mandatory violation, and says what it awaits", () => {
    const exception = isoException();
    for (const [approvals, hint] of [
      [new Map(), /pending until approved: not proposed yet: apply proposes it/],
      [
        new Map([[exceptionDigest(exception), { id: 7, proposedBy: "alice" }]]),
        /pending until approved: exception #7, proposed by alice, awaits approval by someone else \(carehost exception approve northwind-health 7\)/,
      ],
    ] as const) {
      const report = evaluateSpec(sharedProductionSpec(), [exception], SPEC_CONTROLS, NOW, approvals);
      const result = report.results.find(
        (candidate) => candidate.controlId === "CH-ISO-001" && candidate.environment === "prod",
      );
      assert.equal(result?.status, "pending");
      assert.deepEqual(result?.exception, exception);
      assert.deepEqual(
        report.mandatoryViolations.map((violation) => violation.line),
        [`${ISO_LINE} ${PENDING_NOTE}`],
      );
      assert.equal(report.summary.pending, 1);
      assert.equal(report.summary.excepted, 0);
      assert.deepEqual(report.pendingExceptions, [exception]);
      assert.throws(() => assertNoMandatoryViolations(report), PolicyViolation);
      const text = formatPosture(report, "northwind-health");
      assert.match(text, /^ {2}PENDING {7}CH-ISO-001 /m);
      assert.match(text, hint);
      assert.match(text, / 0 excepted, /);
      assert.match(text, /pending exception: CH-ISO-001 environment "prod" until 2026-02-28/);
    }
  });

  void it("an approval covers one version: a changed reason, expiry, owner or scope is pending again", () => {
    const approved = isoException();
    for (const changed of [
      isoException({ reason: "dedicated cluster on order; migration planned for June" }),
      isoException({ expires: "2026-03-31" }),
      isoException({ owner: "someone-else@northwind-health.example" }),
    ]) {
      const report = evaluateSpec(sharedProductionSpec(), [changed], SPEC_CONTROLS, NOW, approvedBy(approved));
      assert.equal(
        report.results.find((result) => result.controlId === "CH-ISO-001" && result.environment === "prod")?.status,
        "pending",
        JSON.stringify(changed),
      );
    }
    // Nor to another environment or control: the scope is part of the version.
    for (const scope of [{ environment: "staging" }, { controlId: "CH-IAM-001" }])
      assert.notEqual(exceptionDigest(isoException(scope)), exceptionDigest(approved));
  });

  void it("an approvedBy written into a recorded exception approves nothing", () => {
    const exception = { ...isoException(), approvedBy: "cto@northwind-health.example" };
    const report = evaluateSpec(sharedProductionSpec(), [exception], SPEC_CONTROLS, NOW, new Map());
    assert.equal(report.summary.pending, 1);
    assert.equal(report.summary.excepted, 0);
  });

  void it("an expired exception does not apply, and is reported", () => {
    const exception = isoException({ expires: "2026-01-14" });
    const report = evaluateSpec(sharedProductionSpec(), [exception]);
    assert.deepEqual(
      report.mandatoryViolations.map((violation) => violation.line),
      [ISO_LINE],
    );
    const result = report.results.find(
      (candidate) => candidate.controlId === "CH-ISO-001" && candidate.environment === "prod",
    );
    assert.equal(result?.status, "fail");
    assert.deepEqual(result?.expiredException, exception);
    assert.deepEqual(report.expiredExceptions, [exception]);
    const text = formatPosture(report);
    assert.match(text, /exception expired 2026-01-14 \(owner ciso@northwind-health\.example\); it no longer applies/);
    assert.match(text, /expired exception: CH-ISO-001 environment "prod" expired 2026-01-14/);
  });

  void it("a renewed exception applies next to the expired one it replaced", () => {
    const report = evaluateSpec(sharedProductionSpec(), [
      isoException({ expires: "2025-12-31" }),
      isoException({ expires: "2026-03-31" }),
    ]);
    assert.deepEqual(report.mandatoryViolations, []);
    assert.equal(
      report.results.find((result) => result.controlId === "CH-ISO-001" && result.environment === "prod")?.exception
        ?.expires,
      "2026-03-31",
    );
    assert.deepEqual(
      report.expiredExceptions.map((exception) => exception.expires),
      ["2025-12-31"],
    );
  });

  void it("a bare date is valid through the end of that day (UTC)", () => {
    assert.equal(exceptionExpiresAt("2026-01-15").toISOString(), "2026-01-16T00:00:00.000Z");
    assert.ok(isExceptionActive(isoException({ expires: "2026-01-15" }), new Date("2026-01-15T23:59:59Z")));
    assert.ok(!isExceptionActive(isoException({ expires: "2026-01-15" }), new Date("2026-01-16T00:00:00Z")));
    assert.ok(!isExceptionActive(isoException({ expires: "2026-01-15T12:00:00Z" }), NOW));
  });

  void it("an exception for a control that passes is listed as unused, and changes nothing", () => {
    const exception = isoException();
    const report = evaluateSpec(demoSpec(), [exception]);
    assert.deepEqual(report.unusedExceptions, [exception]);
    assert.equal(report.summary.excepted, 0);
    assert.match(formatPosture(report), /unused exception: CH-ISO-001 environment "prod"/);
  });

  void it("an exception does not cover another environment or another control", () => {
    const report = evaluateSpec(sharedProductionSpec(), [
      isoException({ controlId: "CH-IAM-001" }),
      isoException({ environment: "staging" }),
    ]);
    assert.deepEqual(
      report.mandatoryViolations.map((violation) => violation.line),
      [ISO_LINE],
    );
  });

  void it("invalid exceptions on record stop the evaluation, naming the field", () => {
    const details = detailsOf(() =>
      evaluateSpec(sharedProductionSpec(), [
        isoException({ controlId: "CH-XYZ-999" }),
        { ...isoException(), reason: "" },
        { controlId: "CH-ISO-001", environment: "prod", owner: "a@b.example", expires: "2026-02-01" },
        isoException({ expires: "next month" }),
        isoException({ environment: "qa" }),
        { ...isoException(), skip: true },
      ]),
    );
    assert.deepEqual(details, [
      { path: "exceptions[0].controlId", message: '"CH-XYZ-999" is not a control of the catalog' },
      { path: "exceptions[1].reason", message: "reason must not be empty" },
      { path: "exceptions[2].reason", message: "reason is required" },
      {
        path: "exceptions[3].expires",
        message: '"next month" is not an ISO date (2026-03-31) or date-time with a zone',
      },
      { path: "exceptions[4].environment", message: '"qa" is not an environment of the organization' },
      { path: "exceptions[5]", message: "unknown field(s) skip" },
    ]);
  });
});

void describe("validatePolicyExceptions for a new exception", () => {
  const options = {
    controlIds: new Set(SPEC_CONTROLS.map((control) => control.id)),
    environmentNames: new Set(["prod"]),
    now: NOW,
    purpose: "register",
  } as const;

  void it("accepts a complete, future, bounded exception", () => {
    assert.deepEqual(validatePolicyExceptions([isoException()], options), [isoException()]);
  });

  void it("refuses a past expiry, a date that does not exist, an expiry beyond a year, and a duplicate", () => {
    const details = detailsOf(() =>
      validatePolicyExceptions(
        [
          isoException({ controlId: "CH-IAM-001", expires: "2026-01-14" }),
          isoException({ controlId: "CH-IAM-002", expires: "2026-02-30" }),
          isoException({ controlId: "CH-NET-001", expires: "2027-06-01" }),
          isoException(),
          isoException(),
        ],
        options,
      ),
    );
    assert.deepEqual(details, [
      { path: "exceptions[0].expires", message: "2026-01-14 is in the past; an exception must expire in the future" },
      {
        path: "exceptions[1].expires",
        message: '"2026-02-30" is not an ISO date (2026-03-31) or date-time with a zone',
      },
      {
        path: "exceptions[2].expires",
        message: `2027-06-01 is more than ${MAX_EXCEPTION_DAYS} days away; exceptions are reviewed at least yearly`,
      },
      {
        path: "exceptions[4].controlId",
        message: 'CH-ISO-001 for environment "prod" is already excepted by exceptions[3]',
      },
    ]);
  });

  void it("refuses a missing owner and input that is not a list", () => {
    const { owner: _owner, ...withoutOwner } = isoException();
    assert.deepEqual(
      detailsOf(() => validatePolicyExceptions([withoutOwner], options)),
      [{ path: "exceptions[0].owner", message: "owner is required" }],
    );
    assert.deepEqual(
      detailsOf(() => validatePolicyExceptions({}, options)),
      [{ path: "exceptions", message: "must be a list of exceptions" }],
    );
  });
});

void describe("formatPosture", () => {
  void it("shows each environment with pass, fail, excepted, not enforced and n.a. per control", () => {
    const report = evaluateSpec(sharedProductionSpec());
    const text = formatPosture(report);
    const lines = text.split("\n");
    assert.match(
      lines[0] ?? "",
      /^environment "prod": \d+ pass, 2 fail, 0 pending, 0 excepted, 4 not enforced, \d+ n\.a\.$/,
    );
    assert.ok(
      lines.some((line) =>
        /^ {2}FAIL {10}CH-ISO-001 +critical {2}PHI and confidential production environments use dedicated hosting$/.test(
          line,
        ),
      ),
      text,
    );
    assert.ok(
      lines.some((line) => line.trim() === "- PHI production must be dedicated (hosting: shared)"),
      text,
    );
    assert.ok(
      lines.some((line) => /FAIL +CH-SUP-001 .*\(advisory\)$/.test(line)),
      text,
    );
    assert.ok(
      lines.some((line) => /^ {2}NOT ENFORCED {2}CH-IAM-001 +critical /.test(line)),
      text,
    );
    assert.ok(
      lines.some((line) => line.trim().startsWith("- what carehost enforces at sign-in is read from its server")),
      "the reason of a gap is shown",
    );
    assert.ok(
      lines.some((line) => /^ {2}n\.a\. +CH-ISO-001 /.test(line)),
      text,
    );
    assert.ok(lines.includes('environment "staging": ' + text.split('environment "staging": ')[1]?.split("\n")[0]));
    assert.match(
      lines[lines.length - 1] ?? "",
      /^total: \d+ pass, 2 fail, 0 pending, 0 excepted, \d+ not enforced, \d+ n\.a\.; 1 mandatory violation\(s\)$/,
    );
  });
});
