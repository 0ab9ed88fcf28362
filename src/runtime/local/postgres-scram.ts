// SCRAM-SHA-256 verifiers computed here, as psql's \password does, so a role's password is sent
// to PostgreSQL already hashed: with pgaudit or log_statement = all, the statement text lands in
// the server log, and it must never hold the password itself (RFC 5802, RFC 7677).
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";

const ITERATIONS = 4096;

const keysFor = (password: string, salt: Buffer, iterations: number) => {
  // carehost's generated passwords are ASCII, which SASLprep leaves unchanged.
  const salted = pbkdf2Sync(password.normalize("NFKC"), salt, iterations, 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  return {
    storedKey: createHash("sha256").update(clientKey).digest(),
    serverKey: createHmac("sha256", salted).update("Server Key").digest(),
  };
};

export function scramVerifier(password: string, salt: Buffer = randomBytes(16), iterations = ITERATIONS): string {
  const { storedKey, serverKey } = keysFor(password, salt, iterations);
  return `SCRAM-SHA-256$${iterations}:${salt.toString("base64")}$${storedKey.toString("base64")}:${serverKey.toString("base64")}`;
}

/** Whether pg_authid.rolpassword is a SCRAM verifier of `password` (false for md5, null or another password). */
export function scramVerifierMatches(verifier: string | null, password: string): boolean {
  const match = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(verifier ?? "");
  if (match === null) return false;
  const [, iterations, salt, storedKey] = match as unknown as [string, string, string, string];
  const expected = Buffer.from(storedKey, "base64");
  const actual = keysFor(password, Buffer.from(salt, "base64"), Number(iterations)).storedKey;
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
