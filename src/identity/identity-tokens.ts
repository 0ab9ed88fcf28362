import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { TRole } from "../lib/request-context.js";
import type { TSessionLimits, TTokenKind } from "./identity-types.js";

// A token reads `chp_<id>_<secret>`: the prefix lets secret scanners recognise a leaked token, the
// id (hex, so it never contains the separator) finds its row by primary key without scanning, and
// only the secret proves possession.
const tokenPrefix = "chp";
const tokenPattern = /^chp_([0-9a-f]{24})_([A-Za-z0-9_-]{43})$/;

export type TMintedToken = { readonly id: string; readonly token: string; readonly secretSha256: string };

// SHA-256 rather than argon2: the secret is 256 random bits, so there is nothing to guess from a
// stolen hash and no need for a slow hash, and checking it on every request stays cheap.
const sha256Hex = (secret: string): string => createHash("sha256").update(secret).digest("hex");

export const mintToken = (): TMintedToken => {
  const id = randomBytes(12).toString("hex");
  const secret = randomBytes(32).toString("base64url");
  return { id, token: `${tokenPrefix}_${id}_${secret}`, secretSha256: sha256Hex(secret) };
};

/** Accepts the token itself or an Authorization header value; anything else is undefined. */
export const parseToken = (bearer: string | undefined): { id: string; secret: string } | undefined => {
  const value = bearer?.trim().replace(/^bearer\s+/i, "");
  const match = value ? tokenPattern.exec(value) : null;
  return match ? { id: match[1]!, secret: match[2]! } : undefined;
};

/** Compares in constant time so response timing does not leak how much of a guess was right. */
export const secretMatches = (secret: string, storedSha256Hex: string): boolean => {
  const presented = Buffer.from(sha256Hex(secret), "hex");
  const stored = Buffer.from(storedSha256Hex, "hex");
  return presented.length === stored.length && timingSafeEqual(presented, stored);
};

/**
 * How long an API token lives, by its owner's role: the default when none is asked for, and the
 * most that may be asked. The more a role may change, the sooner its tokens end; an auditor's or a
 * viewer's evidence export may run for a year. README's configuration table lists these.
 */
export const apiTokenLifetimeDays: Readonly<Record<TRole, { readonly default: number; readonly max: number }>> = {
  "platform-admin": { default: 30, max: 90 },
  operator: { default: 30, max: 90 },
  approver: { default: 30, max: 90 },
  auditor: { default: 90, max: 365 },
  viewer: { default: 90, max: 365 },
};

export type TTokenState = {
  readonly kind: TTokenKind;
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly lastUsedAt: Date | null;
  readonly revokedAt: Date | null;
  readonly userDisabledAt: Date | null;
};

/** Why a token no longer works, or undefined while it does. The reason is for logs, never the caller. */
export const tokenRejection = (token: TTokenState, now: Date, limits: TSessionLimits): string | undefined => {
  if (token.revokedAt) return "revoked";
  if (token.userDisabledAt) return "user disabled";
  if (token.expiresAt.getTime() <= now.getTime()) return "expired";
  if (token.kind === "session") {
    // The absolute lifetime as the rules say now, not only as they said at sign-in: a spec that
    // shortens identity.sessionMaxHours ends the sessions already older than it.
    if (now.getTime() - token.createdAt.getTime() >= limits.absoluteHours * 3_600_000) return "lifetime over";
    const lastActive = (token.lastUsedAt ?? token.createdAt).getTime();
    if (now.getTime() - lastActive > limits.idleMinutes * 60_000) return "idle";
  }
  return undefined;
};

// Writing last_used_at on every request would turn each read into a write; minute precision is
// enough for the idle timeout and for access reviews.
export const lastUsedPrecisionMs = 60_000;
export const shouldRecordUse = (lastUsedAt: Date | null, now: Date): boolean =>
  !lastUsedAt || now.getTime() - lastUsedAt.getTime() >= lastUsedPrecisionMs;
