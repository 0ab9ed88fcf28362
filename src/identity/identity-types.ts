import type { TAuditLog } from "../audit/audit-log.js";
import type { TAuditEvent } from "../audit/audit-types.js";
import type { TRequestContext, TRole } from "../lib/request-context.js";

// Services depend on the audit log only through its append, typed by the event catalogue so a
// payload that does not match its event's schema fails to compile; tests pass a recording fake.
export type TAuditAppend = (ctx: TRequestContext, event: TAuditEvent) => Promise<unknown>;

export type TIdentityAudit = { append: TAuditAppend };

/**
 * The audit log's recordChange (audit-log.ts): a state change and the events it returns commit in
 * one transaction. Services that change rows take it beside append, which is left for observations
 * (a refusal, a failed sign-in) and for actions outside the database.
 */
export type TRecordChange = TAuditLog["recordChange"];
export type TChangeAudit = TIdentityAudit & { recordChange: TRecordChange };

export type TIdentityAuditEventType =
  | "auth.login.succeeded"
  | "auth.login.break_glass"
  | "auth.login.failed"
  | "auth.login.rate_limited"
  | "auth.login.failures"
  | "auth.sso.succeeded"
  | "auth.sso.failed"
  | "auth.logout"
  | "auth.token_rejected"
  | "auth.mfa.challenged"
  | "auth.mfa.enrolled"
  | "auth.mfa.enrolment_started"
  | "auth.mfa.failed"
  | "auth.mfa.recovery_code_used"
  | "auth.mfa.reset"
  | "token.refused"
  | "user.created"
  | "user.access_granted"
  | "user.access_revoked"
  | "user.role_changed"
  | "user.disabled"
  | "token.created"
  | "token.revoked"
  | "access.denied";

/** A user as services and the API show it: never the password hash. */
export type TUser = {
  readonly id: string;
  readonly username: string;
  readonly role: TRole;
  /** The organizations the user's role bindings cover ("*" for every one), sorted. */
  readonly organizations: readonly string[];
  readonly disabled: boolean;
  readonly createdAt: Date;
  readonly createdBy: string;
};

export type TTokenKind = "session" | "api";

/** A token as listed: never the secret or its hash. */
export type TTokenInfo = {
  readonly id: string;
  readonly kind: TTokenKind;
  readonly name: string | null;
  readonly username: string;
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly lastUsedAt: Date | null;
};

// Limits slow a guesser without locking out the owner: failures count per (source address,
// username) and per source address, never per username alone, so a source that has not failed
// still signs in with the right password however many others guessed at that account.
export type TLoginLimits = {
  /** Failed sign-ins one source may make for one username before each further one waits (a success starts the count again). */
  readonly perSourceAndUsername: number;
  /** Failed sign-ins one source may make across usernames before each further one waits (a success does not reset it). */
  readonly perSource: number;
  /** The wait after the last allowed failure; it doubles with each further failure, up to maxDelaySeconds. */
  readonly baseDelaySeconds: number;
  readonly maxDelaySeconds: number;
  /** How long a failure counts, and how long one audit window lasts (its first failure audited, the rest summarised). */
  readonly windowSeconds: number;
};

export type TSessionLimits = {
  /** A session ends this long after log-in, however active it is. */
  readonly absoluteHours: number;
  /** A session ends after this long without a request (HIPAA automatic logoff). */
  readonly idleMinutes: number;
};

/** The second factor a session passed. */
export type TSecondFactor = "totp" | "recovery-code";
/** How a session passed its second factor: one of carehost's, or the identity provider's (the ID token's amr, RFC 8176). */
export type TSessionSecondFactor = TSecondFactor | "provider";

/** A signed-in session: the token is in it once and never again. */
export type TSession = {
  readonly kind: "session";
  readonly token: string;
  readonly expiresAt: Date;
  readonly user: TUser;
  /** The second factor this sign-in passed; null where none was asked. */
  readonly secondFactor: TSecondFactor | null;
  /** Issued by the enrolment this sign-in confirmed: shown once, stored hashed. */
  readonly recoveryCodes?: readonly string[];
  /** After a recovery code was used: how many unused ones are left. */
  readonly recoveryCodesLeft?: number;
};

/**
 * The password was right and a second factor is asked: no session yet. The ticket, presented with
 * a code (or a recovery code) within its lifetime, completes the sign-in. `enrolment` is there when
 * the user has no authenticator yet: the secret to add, whose first code confirms it.
 */
export type TSecondFactorChallenge = {
  readonly kind: "second-factor";
  readonly method: "totp" | "enrol";
  readonly ticket: string;
  readonly ticketExpiresAt: Date;
  readonly enrolment?: { readonly secret: string; readonly otpauthUri: string };
};

export type TLoginResult = TSession | TSecondFactorChallenge;
