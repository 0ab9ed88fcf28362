// Odoo's master password hash: passlib's pbkdf2_sha512 format, which Odoo verifies with passlib
// ("$pbkdf2-sha512$<rounds>$<salt>$<checksum>", both in passlib's adapted base64, ab64).
import { pbkdf2Sync, randomBytes } from "node:crypto";

/** Rounds Odoo 19.0 itself uses when it hashes the master password (ODOO.md). */
export const ODOO_ADMIN_PASSWORD_ROUNDS = 600_000;

/** passlib's ab64: standard base64 with "." for "+" and no padding. */
const ab64 = (bytes: Buffer) => bytes.toString("base64").replace(/\+/g, ".").replace(/=+$/, "");
const fromAb64 = (text: string) => Buffer.from(text.replace(/\./g, "+"), "base64");

export function hashOdooAdminPassword(
  password: string,
  salt: Buffer = randomBytes(16),
  rounds = ODOO_ADMIN_PASSWORD_ROUNDS,
): string {
  const checksum = pbkdf2Sync(password, salt, rounds, 64, "sha512");
  return `$pbkdf2-sha512$${rounds}$${ab64(salt)}$${ab64(checksum)}`;
}

export function verifyOdooAdminPassword(password: string, hash: string): boolean {
  const match = /^\$pbkdf2-sha512\$(\d+)\$([./A-Za-z0-9]+)\$([./A-Za-z0-9]+)$/.exec(hash);
  if (match === null) return false;
  const [, rounds, salt, checksum] = match as unknown as [string, string, string, string];
  const expected = fromAb64(checksum);
  return pbkdf2Sync(password, fromAb64(salt), Number(rounds), expected.length, "sha512").equals(expected);
}
