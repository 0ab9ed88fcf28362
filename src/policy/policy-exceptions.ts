// Documented exceptions: a control that fails for an environment, accepted for a while by a named
// owner for a stated reason. The spec proposes an exception; it takes effect only once someone other
// than its proposer approves it in carehost (carehost exception approve), and each version needs its
// own approval: a changed reason, expiry, owner or scope is a new exception. An approved, active
// exception turns the failure into "excepted" (still listed, with owner, reason, expiry and approver);
// one awaiting approval leaves the control failing, shown as "pending"; an expired one no longer
// applies and is itself reported. There is no way to skip a control silently.
import { z } from "zod";
import { specDigest } from "../spec/spec-digest.js";
import { ValidationError } from "../lib/errors.js";
import type { TErrorDetail } from "../lib/errors.js";

/** An exception is reviewed at least yearly: a longer one is a permanent waiver in disguise. */
export const MAX_EXCEPTION_DAYS = 366;
const MS_PER_DAY = 24 * 60 * 60 * 1000;
const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

export type TPolicyException = {
  readonly controlId: string;
  readonly environment: string;
  /** Who answers for the accepted risk (a person, by email or user name). */
  readonly owner: string;
  readonly reason: string;
  /** ISO date (valid through the end of that day, UTC) or ISO date-time with a zone. */
  readonly expires: string;
};

/**
 * What carehost holds about one version of an exception: its proposal (by whoever applied the spec
 * that introduced it) and, once someone else gave it, the approval. Keyed by exceptionDigest.
 */
export type TExceptionApproval = {
  readonly id: number;
  readonly proposedBy: string;
  readonly approvedBy?: string;
  /** ISO 8601. */
  readonly approvedAt?: string;
};

export type TExceptionApprovals = ReadonlyMap<string, TExceptionApproval>;

/** No exception approved: what a verdict without carehost's records (validate, offline) sees. */
export const NO_APPROVALS: TExceptionApprovals = new Map();

/** One version of an exception: any change to what it covers or says needs a new approval. */
export const exceptionDigest = ({ controlId, environment, owner, reason, expires }: TPolicyException): string =>
  specDigest({ controlId, environment, owner, reason, expires });

export const isExceptionApproved = (exception: TPolicyException, approvals: TExceptionApprovals): boolean =>
  approvals.get(exceptionDigest(exception))?.approvedBy !== undefined;

const requiredText = (field: string) =>
  z
    .string({ error: `${field} is required` })
    .trim()
    .min(1, { error: `${field} must not be empty` });

const PolicyExceptionSchema = z.strictObject({
  controlId: requiredText("controlId"),
  environment: requiredText("environment"),
  owner: requiredText("owner"),
  reason: requiredText("reason"),
  expires: z
    .string({ error: "expires is required (an ISO date such as 2026-03-31)" })
    .refine(
      (value) => (DATE_ONLY.test(value) || DATE_TIME.test(value)) && !Number.isNaN(exceptionExpiresAt(value).getTime()),
      {
        error: (issue) => `${JSON.stringify(issue.input)} is not an ISO date (2026-03-31) or date-time with a zone`,
      },
    ),
  // Revisions recorded before approvals moved into carehost may carry it; it never approved anything
  // and is ignored (the spec schema refuses it in new specs).
  approvedBy: z.unknown().optional(),
});

/** The instant an exception stops applying. A bare date covers that whole day in UTC. */
export function exceptionExpiresAt(expires: string): Date {
  if (DATE_ONLY.test(expires)) {
    const start = new Date(`${expires}T00:00:00Z`);
    // Date accepts 2026-02-30 and rolls it over; a date that does not exist is invalid.
    if (Number.isNaN(start.getTime()) || start.toISOString().slice(0, 10) !== expires) return new Date(Number.NaN);
    return new Date(start.getTime() + MS_PER_DAY);
  }
  return new Date(expires);
}

export const isExceptionActive = (exception: TPolicyException, now: Date): boolean =>
  now.getTime() < exceptionExpiresAt(exception.expires).getTime();

export type TExceptionValidationOptions = {
  readonly controlIds: ReadonlySet<string>;
  /** When given, the environment must be one of these. */
  readonly environmentNames?: ReadonlySet<string>;
  readonly now: Date;
  /**
   * "register": a new exception must expire in the future, within MAX_EXCEPTION_DAYS.
   * "evaluate": exceptions on record may have expired since; the engine reports them.
   */
  readonly purpose: "register" | "evaluate";
};

/**
 * Validates exceptions and returns them typed. Every problem is a ValidationError detail whose
 * path names the field, e.g. exceptions[2].expires.
 */
export function validatePolicyExceptions(input: unknown, options: TExceptionValidationOptions): TPolicyException[] {
  const items: readonly unknown[] = Array.isArray(input) ? input : [];
  const details: TErrorDetail[] = [];
  if (!Array.isArray(input)) details.push({ path: "exceptions", message: "must be a list of exceptions" });
  const exceptions: TPolicyException[] = [];
  const seen = new Map<string, number>();
  items.forEach((item, index) => {
    const parsed = PolicyExceptionSchema.safeParse(item);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const field = issue.path.length > 0 ? `.${issue.path.map(String).join(".")}` : "";
        const message =
          issue.code === "unrecognized_keys" ? `unknown field(s) ${issue.keys.join(", ")}` : issue.message;
        details.push({ path: `exceptions[${index}]${field}`, message });
      }
      return;
    }
    const { approvedBy: _ignored, ...exception } = parsed.data;
    const at = (field: keyof TPolicyException, message: string) =>
      details.push({ path: `exceptions[${index}].${field}`, message });
    if (!options.controlIds.has(exception.controlId))
      at("controlId", `${JSON.stringify(exception.controlId)} is not a control of the catalog`);
    if (options.environmentNames !== undefined && !options.environmentNames.has(exception.environment)) {
      at("environment", `${JSON.stringify(exception.environment)} is not an environment of the organization`);
    }
    if (options.purpose === "register") {
      const expiresAt = exceptionExpiresAt(exception.expires);
      if (expiresAt.getTime() <= options.now.getTime())
        at("expires", `${exception.expires} is in the past; an exception must expire in the future`);
      else if (expiresAt.getTime() - options.now.getTime() > MAX_EXCEPTION_DAYS * MS_PER_DAY) {
        at(
          "expires",
          `${exception.expires} is more than ${MAX_EXCEPTION_DAYS} days away; exceptions are reviewed at least yearly`,
        );
      }
    }
    // On record, a renewed exception sits next to the expired one it replaced; a new one must not
    // duplicate another in the same batch.
    const key = `${exception.controlId}\n${exception.environment}`;
    const first = seen.get(key);
    if (options.purpose === "register" && first !== undefined)
      at(
        "controlId",
        `${exception.controlId} for environment ${JSON.stringify(exception.environment)} is already excepted by exceptions[${first}]`,
      );
    else seen.set(key, index);
    exceptions.push(exception);
  });
  if (details.length > 0) throw new ValidationError("invalid policy exceptions", details);
  return exceptions;
}
