import { randomBytes } from "node:crypto";
import { argon2id, hash, needsRehash, verify } from "argon2";
import { ValidationError } from "../lib/errors.js";

// OWASP Password Storage Cheat Sheet, argon2id first option: 19 MiB memory, 2 iterations,
// 1 lane. Memory-hard so GPU guessing is expensive, ~50 ms per hash here so log-in stays quick.
// Raising these later is safe: hashes carry their own parameters and are upgraded at log-in.
export const argon2Parameters = { type: argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export const passwordPolicy = { minLength: 12, maxLength: 256 } as const;

export const hashPassword = (password: string): Promise<string> => hash(password, argon2Parameters);

/** False for a wrong password and for a hash that cannot be parsed: callers answer the same way. */
export const verifyPassword = async (passwordHash: string, password: string): Promise<boolean> => {
  try {
    return await verify(passwordHash, password);
  } catch {
    return false;
  }
};

export const passwordHashIsOutdated = (passwordHash: string): boolean => needsRehash(passwordHash, argon2Parameters);

// Unknown users and users without a password are checked against this so that every failed
// log-in costs one argon2 verification and timing does not reveal which usernames exist.
let dummyHash: Promise<string> | undefined;
export const dummyPasswordHash = (): Promise<string> => (dummyHash ??= hashPassword(generatePassword()));

/** 18 random bytes (144 bits) as 24 base64url characters: unguessable, and copyable in one go. */
export const generatePassword = (): string => randomBytes(18).toString("base64url");

/** Rules for passwords a person chooses (generated ones satisfy them by construction). */
export const checkPasswordPolicy = (password: string, username: string): void => {
  const problems: string[] = [];
  if (password.length < passwordPolicy.minLength)
    problems.push(`must be at least ${passwordPolicy.minLength} characters`);
  // argon2 accepts any length, but hashing megabytes on request is a cheap denial of service.
  if (password.length > passwordPolicy.maxLength)
    problems.push(`must be at most ${passwordPolicy.maxLength} characters`);
  if (password.toLowerCase() === username.toLowerCase()) problems.push("must not be the username");
  if (problems.length > 0) {
    throw new ValidationError(
      "password does not meet the policy",
      problems.map((message) => ({ path: "password", message })),
    );
  }
};
