// Helpers for driving carehost's sign-in in tests: a master key to seal TOTP secrets under, and
// the password step taken for what it is expected to give.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { TIdentityService } from "../src/identity/identity-service.js";
import { enrolledTotp, totpCodeAt, totpStepAt } from "../src/identity/identity-totp.js";
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

/**
 * A person's authenticator app: enrols the secret a first sign-in hands out, and answers each
 * sign-in with a code of a time step not used before (now's, or the next one the ±1 window accepts),
 * as a person typing the code shown would.
 */
export const authenticatorApp = (now: () => Date) => {
  let secret: string | undefined;
  let lastStep = Number.NEGATIVE_INFINITY;
  const code = (): string => {
    if (secret === undefined) throw new Error("this authenticator has no secret enrolled");
    const current = totpStepAt(now());
    const step = [current, current + 1].find((candidate) => candidate > lastStep);
    if (step === undefined) throw new Error("every code of the window was used: advance the clock");
    lastStep = step;
    return totpCodeAt(secret, new Date(step * enrolledTotp.periodSeconds * 1000));
  };
  return {
    get secret(): string | undefined {
      return secret;
    },
    enrol: (enrolled: string): void => {
      secret = enrolled;
      lastStep = Number.NEGATIVE_INFINITY;
    },
    code,
    /** Password, then (where asked) the code, enrolling first where the server hands out a secret. */
    signIn: async (
      identity: Pick<TIdentityService, "login" | "completeSignIn">,
      ctx: TRequestContext,
      credentials: TCredentials,
    ): Promise<TSession> => {
      const result = await identity.login(ctx, credentials);
      if (result.kind === "session") return result;
      if (result.enrolment !== undefined) {
        secret = result.enrolment.secret;
        lastStep = Number.NEGATIVE_INFINITY;
      }
      return identity.completeSignIn(ctx, { ticket: result.ticket, code: code() });
    },
  };
};
