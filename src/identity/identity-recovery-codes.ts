// Recovery codes: what a person types when the authenticator is lost. Ten at enrolment, each good
// once, shown once and stored only as a hash.
import { createHash, randomBytes } from "node:crypto";

export const RECOVERY_CODE_COUNT = 10;

// Crockford-like base32 without the letters people misread (I, L, O, U).
const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const groups = 4;
const groupLength = 4;

/**
 * 16 symbols of 5 bits: 80 random bits. That is why SHA-256 suffices where a password needs
 * argon2: nobody enumerates 2^80 candidates against a stolen hash, and checking a code stays cheap.
 */
export const newRecoveryCode = (): string => {
  const bytes = randomBytes(groups * groupLength);
  const symbols = [...bytes].map((byte) => alphabet[byte % 32]!);
  return Array.from({ length: groups }, (_, group) =>
    symbols.slice(group * groupLength, (group + 1) * groupLength).join(""),
  ).join("-");
};

export const newRecoveryCodes = (): string[] => Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);

/** The code as stored and compared: case, spaces and dashes as typed do not matter. */
const canonical = (code: string): string => code.replace(/[\s-]/g, "").toUpperCase();

const recoveryCodePattern = new RegExp(`^[${alphabet}]{${groups * groupLength}}$`);

/** Whether `typed` has the shape of a recovery code (never a TOTP code, which is all digits and shorter). */
export const looksLikeRecoveryCode = (typed: string): boolean => recoveryCodePattern.test(canonical(typed));

export const recoveryCodeSha256 = (code: string): string =>
  createHash("sha256")
    .update(`carehost-recovery-code/v1\0${canonical(code)}`)
    .digest("hex");
