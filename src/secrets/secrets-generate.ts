// Values carehost generates for itself. Only the generator ever sees them before sealing.
import { randomBytes } from "node:crypto";
import { ValidationError } from "../lib/errors.js";

/** A random password: `bytes` bytes from the CSPRNG as base64url (no padding, safe in URLs and DSNs). */
export const generatePassword = (bytes = 24): string => {
  if (!Number.isInteger(bytes) || bytes < 16 || bytes > 1024) {
    throw new ValidationError(`a generated password needs between 16 and 1024 random bytes, not ${bytes}`);
  }
  return randomBytes(bytes).toString("base64url");
};
