import type { TAuditEvent } from "../audit/audit-types.js";
import type { TRequestContext, TRole } from "../lib/request-context.js";

// Services depend on the audit log only through its append, typed by the event catalogue so a
// payload that does not match its event's schema fails to compile; tests pass a recording fake.
export type TAuditAppend = (ctx: TRequestContext, event: TAuditEvent) => Promise<unknown>;

export type TIdentityAudit = { append: TAuditAppend };

export type TIdentityAuditEventType =
  | "auth.login.succeeded"
  | "auth.login.break_glass"
  | "auth.login.failed"
  | "auth.login.rate_limited"
  | "auth.logout"
  | "auth.token_rejected"
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
  readonly expiresAt: Date | null;
  readonly lastUsedAt: Date | null;
};

export type TLoginLimits = {
  /** Failed log-ins allowed per username in the window (a success starts the count again). */
  readonly perUsername: number;
  /** Failed log-ins allowed per source address in the window (a success does not reset it). */
  readonly perSourceAddress: number;
  readonly windowSeconds: number;
};

export type TSessionLimits = {
  /** A session ends this long after log-in, however active it is. */
  readonly absoluteHours: number;
  /** A session ends after this long without a request (HIPAA automatic logoff). */
  readonly idleMinutes: number;
};
