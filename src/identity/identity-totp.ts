// TOTP (RFC 6238) through the maintained `otpauth` library: carehost only picks the parameters,
// keeps the secret sealed, and remembers the last time step it accepted so that a code seen once
// (over a shoulder, in a phishing proxy's log) never signs in again.
import { Secret, TOTP } from "otpauth";

export type TTotpAlgorithm = "SHA1" | "SHA256" | "SHA512";

export type TTotpParameters = {
  readonly algorithm: TTotpAlgorithm;
  readonly digits: number;
  readonly periodSeconds: number;
};

/**
 * What carehost enrols: SHA-1, 6 digits, 30 s. Every authenticator app reads these from the
 * otpauth:// URI, and several ignore any other algorithm or length in it and then show wrong codes.
 */
export const enrolledTotp: TTotpParameters = { algorithm: "SHA1", digits: 6, periodSeconds: 30 };

/** Time steps either side of now a code is accepted from: a clock a little off, or a code typed as it turns. */
export const TOTP_WINDOW_STEPS = 1;

/** A new random secret (160 bits, RFC 4226's recommended length), base32 as authenticator apps take it. */
export const newTotpSecret = (): string => new Secret({ size: 20 }).base32;

const totpOf = (secretBase32: string, parameters: TTotpParameters, label = "carehost") =>
  new TOTP({
    issuer: "carehost",
    label,
    secret: Secret.fromBase32(secretBase32),
    algorithm: parameters.algorithm,
    digits: parameters.digits,
    period: parameters.periodSeconds,
  });

/** The otpauth:// URI an authenticator app scans (as a QR code) or takes pasted. */
export const totpUri = (secretBase32: string, username: string, parameters: TTotpParameters = enrolledTotp): string =>
  totpOf(secretBase32, parameters, username).toString();

/** The time step (RFC 6238's T) that `at` falls in. */
export const totpStepAt = (at: Date, parameters: TTotpParameters = enrolledTotp): number =>
  Math.floor(at.getTime() / 1000 / parameters.periodSeconds);

/** The code for `at`: what an authenticator app shows then. */
export const totpCodeAt = (secretBase32: string, at: Date, parameters: TTotpParameters = enrolledTotp): string =>
  totpOf(secretBase32, parameters).generate({ timestamp: at.getTime() });

const codePattern = (digits: number) => new RegExp(`^[0-9]{${digits}}$`);

/**
 * The time step a code is valid for within ±TOTP_WINDOW_STEPS of `at`, or undefined. Spaces and
 * dashes people type between groups are ignored; anything else that is not the right number of
 * digits is simply not a code. The caller accepts the step only if it is later than the last one
 * accepted, which makes each code single-use.
 */
export const totpStepOf = (
  secretBase32: string,
  code: string,
  at: Date,
  parameters: TTotpParameters = enrolledTotp,
): number | undefined => {
  const typed = code.replace(/[\s-]/g, "");
  if (!codePattern(parameters.digits).test(typed)) return undefined;
  const delta = totpOf(secretBase32, parameters).validate({
    token: typed,
    timestamp: at.getTime(),
    window: TOTP_WINDOW_STEPS,
  });
  return delta === null ? undefined : totpStepAt(at, parameters) + delta;
};
