// How long a source must wait before its next sign-in attempt. Each count (one source for one
// username, one source across usernames) allows some failures; after the last allowed one every
// attempt waits baseDelaySeconds, doubled with each further failure up to maxDelaySeconds, counted
// from the latest failure. An attacker's guesses slow to a few per window, while the owner, signing
// in from a source that has not failed, is never made to wait.
import type { TLoginLimits } from "./identity-types.js";

export const defaultLoginLimits: TLoginLimits = {
  perSourceAndUsername: 5,
  perSource: 20,
  baseDelaySeconds: 30,
  maxDelaySeconds: 15 * 60,
  windowSeconds: 15 * 60,
};

/** Failures of one count still inside the window. */
export type TFailureCount = { readonly failures: number; readonly lastFailureAt: Date | null };

/** Whole seconds until `count` allows another attempt (0: it allows one now). */
export const loginWaitSeconds = (count: TFailureCount, allowed: number, limits: TLoginLimits, at: Date): number => {
  if (count.failures < allowed || count.lastFailureAt === null) return 0;
  const delaySeconds = Math.min(limits.maxDelaySeconds, limits.baseDelaySeconds * 2 ** (count.failures - allowed));
  const waitMs = count.lastFailureAt.getTime() + delaySeconds * 1000 - at.getTime();
  return waitMs > 0 ? Math.ceil(waitMs / 1000) : 0;
};
