// Evaluates a catalog of controls against the subjects of each environment and produces the
// posture report: one result per control and environment, in a fixed order, with the lines
// `plan` prints and `posture` shows. Pure: the caller reads the spec, renders artifacts and reads
// live state; the engine never does I/O and never reads the clock (`now` is an argument).
import { PolicyViolation, ValidationError } from "../lib/errors.js";
import {
  NO_APPROVALS,
  exceptionDigest,
  isExceptionActive,
  isExceptionApproved,
  validatePolicyExceptions,
} from "./policy-exceptions.js";
import type { TExceptionApproval, TExceptionApprovals, TPolicyException } from "./policy-exceptions.js";
import { CONTROL_ID_PATTERN } from "./policy-types.js";
import type {
  TAnyControl,
  TControlReport,
  TEnforcement,
  TFailure,
  TFailureDetail,
  TSeverity,
  TSubjectKind,
  TSubjects,
} from "./policy-types.js";

/**
 * "not-enforced": declared, but carehost does not enforce it yet; a gap, never a pass and never a violation.
 * "pending": failed, with an exception that awaits approval; a failure (a violation when mandatory) until approved.
 */
export type TControlStatus = "pass" | "fail" | "pending" | "excepted" | "not-applicable" | "not-enforced";

export type TControlResult = {
  readonly controlId: string;
  readonly title: string;
  readonly citations: readonly string[];
  readonly severity: TSeverity;
  readonly enforcement: TEnforcement;
  readonly subject: TSubjectKind;
  readonly environment: string;
  readonly status: TControlStatus;
  /** What failed; kept when the failure is excepted, so the accepted risk stays visible. */
  readonly messages: readonly string[];
  readonly failures: readonly TFailure[];
  /** The approved, active exception that turned a failure into "excepted", or the one a "pending" failure awaits. */
  readonly exception?: TPolicyException;
  /** carehost's record of that exception: who proposed it and, for "excepted", who approved it and when. */
  readonly approval?: TExceptionApproval;
  /** An exception for this control and environment that has expired and no longer applies. */
  readonly expiredException?: TPolicyException;
};

export type TPolicyViolationLine = {
  readonly controlId: string;
  readonly environment: string;
  readonly message: string;
  readonly line: string;
};

export type TPostureReport = {
  readonly evaluatedAt: string;
  readonly results: readonly TControlResult[];
  readonly summary: {
    readonly pass: number;
    readonly fail: number;
    readonly pending: number;
    readonly excepted: number;
    readonly notApplicable: number;
    readonly notEnforced: number;
  };
  /** Failures of mandatory controls without an approved, active exception (pending ones included): these stop a plan. */
  readonly mandatoryViolations: readonly TPolicyViolationLine[];
  /** Exceptions past their expiry; they no longer apply and should be renewed or removed. */
  readonly expiredExceptions: readonly TPolicyException[];
  /** Active exceptions whose control did not fail: candidates for removal. */
  readonly unusedExceptions: readonly TPolicyException[];
  /** Active exceptions nobody but their proposer has approved: they do not apply yet. */
  readonly pendingExceptions: readonly TPolicyException[];
};

/** One subject per environment and kind; a kind that is absent is not evaluated (plan has no live state). */
export type TPolicySubjects = { readonly [K in TSubjectKind]?: readonly TSubjects[K][] };

export type TEvaluatePolicyInput = {
  readonly controls: readonly TAnyControl[];
  readonly subjects: TPolicySubjects;
  /** Exceptions on record; they are validated here (unknown control or environment is an error). */
  readonly exceptions?: readonly unknown[];
  /** carehost's approvals by exception digest; an exception without one is pending (none: nothing is approved). */
  readonly approvals?: TExceptionApprovals;
  readonly now: Date;
};

const SUBJECT_KINDS: readonly TSubjectKind[] = ["spec", "artifact", "live", "manifest"];

const compareText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** `CH-ISO-001 [164.308(a)(4), 164.312(a)(1)] environment "prod": PHI production must be dedicated (hosting: shared)` */
export function formatViolation(
  result: Pick<TControlResult, "controlId" | "citations" | "environment">,
  message: string,
): string {
  return `${result.controlId} [${result.citations.join(", ")}] environment ${JSON.stringify(result.environment)}: ${message}`;
}

function checkCatalog(controls: readonly TAnyControl[]): void {
  const seen = new Set<string>();
  const details = [];
  for (const control of controls) {
    if (!CONTROL_ID_PATTERN.test(control.id))
      details.push({
        path: control.id,
        message: `control id ${JSON.stringify(control.id)} does not match CH-<AREA>-NNN`,
      });
    if (seen.has(control.id)) details.push({ path: control.id, message: `control id ${control.id} is used twice` });
    seen.add(control.id);
  }
  if (details.length > 0) throw new ValidationError("invalid control catalog", details);
}

/** Subjects by environment name, one per kind; a second subject for the same environment and kind is an error. */
function subjectsByEnvironment(subjects: TPolicySubjects): Map<string, Partial<TSubjects>> {
  const byEnvironment = new Map<string, Partial<TSubjects>>();
  for (const kind of SUBJECT_KINDS) {
    for (const subject of subjects[kind] ?? []) {
      const name = subject.environment.name;
      const entry = byEnvironment.get(name) ?? {};
      if (entry[kind] !== undefined)
        throw new ValidationError(`two ${kind} subjects for environment ${JSON.stringify(name)}`);
      (entry as Record<TSubjectKind, unknown>)[kind] = subject;
      byEnvironment.set(name, entry);
    }
  }
  return byEnvironment;
}

function runCheck(
  control: TAnyControl,
  subject: TSubjects[TSubjectKind],
): { failures: TFailure[]; notApplicable?: string; notEnforced?: string[] } {
  const failures: TFailure[] = [];
  let notApplicable: string | undefined;
  const notEnforced: string[] = [];
  const report: TControlReport = {
    fail: (message: string, detail: TFailureDetail = {}) => void failures.push({ message, ...detail }),
    notApplicable: (reason: string) => {
      notApplicable = reason;
    },
    notEnforced: (reason: string) => void notEnforced.push(reason),
  };
  try {
    // The engine pairs each control with a subject of its own kind (see evaluatePolicy).
    (control.check as (subject: TSubjects[TSubjectKind], report: TControlReport) => void)(subject, report);
  } catch (error) {
    // A control that cannot run has not shown the environment to be safe: fail closed.
    failures.push({ message: `the check could not run: ${error instanceof Error ? error.message : String(error)}` });
  }
  // A failure outweighs a gap, and a gap a claim of not-applicable: fail closed.
  if (failures.length > 0) return { failures };
  if (notEnforced.length > 0) return { failures, notEnforced };
  return notApplicable === undefined ? { failures } : { failures, notApplicable };
}

export function evaluatePolicy({
  controls,
  subjects,
  exceptions = [],
  approvals = NO_APPROVALS,
  now,
}: TEvaluatePolicyInput): TPostureReport {
  checkCatalog(controls);
  const byEnvironment = subjectsByEnvironment(subjects);
  const validExceptions = validatePolicyExceptions(exceptions, {
    controlIds: new Set(controls.map((control) => control.id)),
    environmentNames: new Set(byEnvironment.keys()),
    now,
    purpose: "evaluate",
  });
  const exceptionsFor = (controlId: string, environment: string) =>
    validExceptions.filter((exception) => exception.controlId === controlId && exception.environment === environment);
  const usedExceptions = new Set<TPolicyException>();

  const results: TControlResult[] = [];
  const environmentNames = [...byEnvironment.keys()].sort(compareText);
  const orderedControls = [...controls].sort((a, b) => compareText(a.id, b.id));
  for (const environmentName of environmentNames) {
    const environmentSubjects = byEnvironment.get(environmentName) ?? {};
    for (const control of orderedControls) {
      const subject = environmentSubjects[control.subject];
      if (subject === undefined) continue;
      const base = {
        controlId: control.id,
        title: control.title,
        citations: control.citations,
        severity: control.severity,
        enforcement: control.enforcement,
        subject: control.subject,
        environment: environmentName,
      };
      if (!control.appliesTo(subject.environment)) {
        results.push({ ...base, status: "not-applicable", messages: [], failures: [] });
        continue;
      }
      const { failures, notApplicable, notEnforced } = runCheck(control, subject);
      if (notEnforced !== undefined) {
        // Not a violation (nothing in the spec can fix it) but never a pass: the reason goes with it.
        results.push({ ...base, status: "not-enforced", messages: notEnforced, failures: [] });
        continue;
      }
      if (notApplicable !== undefined) {
        results.push({ ...base, status: "not-applicable", messages: [notApplicable], failures: [] });
        continue;
      }
      const messages = failures.map((failure) => failure.message);
      if (failures.length === 0) {
        results.push({ ...base, status: "pass", messages, failures });
        continue;
      }
      const candidates = exceptionsFor(control.id, environmentName);
      const latestFirst = (a: TPolicyException, b: TPolicyException) => compareText(b.expires, a.expires);
      const active = candidates.filter((exception) => isExceptionActive(exception, now)).sort(latestFirst);
      const approved = active.find((exception) => isExceptionApproved(exception, approvals));
      const awaiting = active[0];
      const expired = candidates.filter((exception) => !isExceptionActive(exception, now)).sort(latestFirst)[0];
      const approvalOf = (exception: TPolicyException) => {
        const approval = approvals.get(exceptionDigest(exception));
        return approval === undefined ? {} : { approval };
      };
      if (approved !== undefined) {
        usedExceptions.add(approved);
        results.push({ ...base, status: "excepted", messages, failures, exception: approved, ...approvalOf(approved) });
      } else if (awaiting !== undefined) {
        usedExceptions.add(awaiting);
        results.push({ ...base, status: "pending", messages, failures, exception: awaiting, ...approvalOf(awaiting) });
      } else {
        results.push({
          ...base,
          status: "fail",
          messages,
          failures,
          ...(expired === undefined ? {} : { expiredException: expired }),
        });
      }
    }
  }

  const count = (status: TControlStatus) => results.filter((result) => result.status === status).length;
  const mandatoryViolations = results
    .filter((result) => (result.status === "fail" || result.status === "pending") && result.enforcement === "mandatory")
    .flatMap((result) =>
      result.messages.map((message) => ({
        controlId: result.controlId,
        environment: result.environment,
        message,
        line: formatViolation(result, result.status === "pending" ? `${message} ${PENDING_NOTE}` : message),
      })),
    );
  return {
    evaluatedAt: now.toISOString(),
    results,
    summary: {
      pass: count("pass"),
      fail: count("fail"),
      pending: count("pending"),
      excepted: count("excepted"),
      notApplicable: count("not-applicable"),
      notEnforced: count("not-enforced"),
    },
    mandatoryViolations,
    expiredExceptions: validExceptions.filter((exception) => !isExceptionActive(exception, now)),
    unusedExceptions: validExceptions.filter(
      (exception) => isExceptionActive(exception, now) && !usedExceptions.has(exception),
    ),
    pendingExceptions: validExceptions.filter(
      (exception) => isExceptionActive(exception, now) && !isExceptionApproved(exception, approvals),
    ),
  };
}

/** Throws PolicyViolation (CLI exit 3, HTTP 422) with one detail per mandatory violation. */
export function assertNoMandatoryViolations(report: TPostureReport): void {
  const violations = report.mandatoryViolations;
  if (violations.length === 0) return;
  const noun = violations.length === 1 ? "violation" : "violations";
  throw new PolicyViolation(
    `${violations.length} mandatory control ${noun}`,
    violations.map((violation) => ({ message: violation.line })),
  );
}

/** Appended to a pending failure's violation line: the exception is there, its approval is not. */
export const PENDING_NOTE = "(its exception awaits approval by someone other than its proposer)";

const STATUS_LABEL: Record<TControlStatus, string> = {
  pass: "pass",
  fail: "FAIL",
  pending: "PENDING",
  excepted: "excepted",
  "not-applicable": "n.a.",
  "not-enforced": "NOT ENFORCED",
};
const LABEL_WIDTH = Math.max(...Object.values(STATUS_LABEL).map((label) => label.length));

/** `3 pass, 1 fail, 0 pending, 0 excepted, 2 not enforced, 4 n.a.`: every verdict, the gaps apart from the passes. */
export const formatTally = (summary: TPostureReport["summary"]): string =>
  `${summary.pass} pass, ${summary.fail} fail, ${summary.pending} pending, ${summary.excepted} excepted, ${summary.notEnforced} not enforced, ${summary.notApplicable} n.a.`;

/** The line under an excepted or pending result: the exception, and where its approval stands. */
function describeException({ exception, approval }: TControlResult, organization: string): string {
  if (exception === undefined) return "";
  const { owner, reason, expires } = exception;
  if (approval?.approvedBy !== undefined)
    return `excepted until ${expires}, owner ${owner}, approved by ${approval.approvedBy} at ${approval.approvedAt ?? "?"}: ${reason}`;
  const proposal =
    approval === undefined
      ? "not proposed yet: apply proposes it, then someone other than whoever applied it approves it"
      : `exception #${approval.id}, proposed by ${approval.proposedBy}, awaits approval by someone else (carehost exception approve ${organization} ${approval.id})`;
  return `pending until approved: ${proposal}; until ${expires}, owner ${owner}: ${reason}`;
}

/** The posture as text: one block per environment, one line per control, failures and exceptions spelled out. */
export function formatPosture(report: TPostureReport, organization = "<organization>"): string {
  const lines: string[] = [];
  const environments = [...new Set(report.results.map((result) => result.environment))];
  const idWidth = Math.max(0, ...report.results.map((result) => result.controlId.length));
  for (const environment of environments) {
    const results = report.results.filter((result) => result.environment === environment);
    const tally = (status: TControlStatus) => results.filter((result) => result.status === status).length;
    if (lines.length > 0) lines.push("");
    const summary = {
      pass: tally("pass"),
      fail: tally("fail"),
      pending: tally("pending"),
      excepted: tally("excepted"),
      notApplicable: tally("not-applicable"),
      notEnforced: tally("not-enforced"),
    };
    lines.push(`environment ${JSON.stringify(environment)}: ${formatTally(summary)}`);
    for (const result of results) {
      const enforcement = result.enforcement === "advisory" ? " (advisory)" : "";
      lines.push(
        `  ${STATUS_LABEL[result.status].padEnd(LABEL_WIDTH)}  ${result.controlId.padEnd(idWidth)}  ${result.severity.padEnd(8)}  ${result.title}${enforcement}`,
      );
      const indent = " ".repeat(2 + LABEL_WIDTH + 2 + idWidth + 2);
      const shown = result.status !== "pass" && result.status !== "not-applicable";
      for (const message of shown ? result.messages : []) lines.push(`${indent}- ${message}`);
      if (result.exception !== undefined) lines.push(`${indent}${describeException(result, organization)}`);
      if (result.expiredException !== undefined)
        lines.push(
          `${indent}exception expired ${result.expiredException.expires} (owner ${result.expiredException.owner}); it no longer applies`,
        );
    }
  }
  if (lines.length > 0) lines.push("");
  lines.push(`total: ${formatTally(report.summary)}; ${report.mandatoryViolations.length} mandatory violation(s)`);
  for (const exception of report.expiredExceptions) {
    lines.push(
      `expired exception: ${exception.controlId} environment ${JSON.stringify(exception.environment)} expired ${exception.expires} (owner ${exception.owner})`,
    );
  }
  for (const exception of report.pendingExceptions) {
    lines.push(
      `pending exception: ${exception.controlId} environment ${JSON.stringify(exception.environment)} until ${exception.expires} (owner ${exception.owner}) awaits approval`,
    );
  }
  for (const exception of report.unusedExceptions) {
    lines.push(
      `unused exception: ${exception.controlId} environment ${JSON.stringify(exception.environment)} (control does not fail; remove it)`,
    );
  }
  return lines.join("\n");
}
