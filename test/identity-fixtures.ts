// Helpers for driving carehost's sign-in in tests: a master key to seal TOTP secrets under, and
// the password step taken for what it is expected to give.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { TIdentityService } from "../src/identity/identity-service.js";
import type { TSecondFactorChallenge, TSession } from "../src/identity/identity-types.js";
import type { TRequestContext } from "../src/lib/request-context.js";
import { masterKeyFrom, type TMasterKey } from "../src/secrets/secrets-master-key.js";

export const testMasterKey = (): TMasterKey => masterKeyFrom(randomBytes(32), "env");

type TLogin = Pick<TIdentityService, "login">;
type TCredentials = Parameters<TIdentityService["login"]>[1];

/** The password step, where no second factor is asked: the session it gives. */
export const passwordSession = async (
  identity: TLogin,
  ctx: TRequestContext,
  credentials: TCredentials,
): Promise<TSession> => {
  const result = await identity.login(ctx, credentials);
  assert.equal(result.kind, "session", `${credentials.username} was asked for a second factor`);
  return result as TSession;
};

/** The password step, where a second factor is asked: the challenge it gives. */
export const passwordChallenge = async (
  identity: TLogin,
  ctx: TRequestContext,
  credentials: TCredentials,
): Promise<TSecondFactorChallenge> => {
  const result = await identity.login(ctx, credentials);
  assert.equal(result.kind, "second-factor", `${credentials.username} was not asked for a second factor`);
  return result as TSecondFactorChallenge;
};
