import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Secret } from "otpauth";
import { enrolledTotp, newTotpSecret, totpCodeAt, totpStepAt, totpStepOf, totpUri } from "./identity-totp.js";
import type { TTotpAlgorithm } from "./identity-totp.js";

// RFC 6238 Appendix B: the seeds of the reference implementation (20, 32 and 64 ASCII bytes for
// HMAC-SHA1, -SHA256 and -SHA512), 8 digits, 30-second steps, and the codes its table lists.
const seeds: Record<TTotpAlgorithm, string> = {
  SHA1: "12345678901234567890",
  SHA256: "12345678901234567890123456789012",
  SHA512: "1234567890123456789012345678901234567890123456789012345678901234",
};
const appendixB: readonly { seconds: number; codes: Record<TTotpAlgorithm, string> }[] = [
  { seconds: 59, codes: { SHA1: "94287082", SHA256: "46119246", SHA512: "90693936" } },
  { seconds: 1111111109, codes: { SHA1: "07081804", SHA256: "68084774", SHA512: "25091201" } },
  { seconds: 1111111111, codes: { SHA1: "14050471", SHA256: "67062674", SHA512: "99943326" } },
  { seconds: 1234567890, codes: { SHA1: "89005924", SHA256: "91819424", SHA512: "93441116" } },
  { seconds: 2000000000, codes: { SHA1: "69279037", SHA256: "90698825", SHA512: "38618901" } },
  { seconds: 20000000000, codes: { SHA1: "65353130", SHA256: "77737706", SHA512: "47863826" } },
];

void describe("TOTP (RFC 6238)", () => {
  for (const algorithm of ["SHA1", "SHA256", "SHA512"] as const) {
    void it(`gives and accepts the Appendix B codes for HMAC-${algorithm}`, () => {
      const secret = Secret.fromLatin1(seeds[algorithm]).base32;
      const parameters = { algorithm, digits: 8, periodSeconds: 30 };
      for (const { seconds, codes } of appendixB) {
        const at = new Date(seconds * 1000);
        assert.equal(totpCodeAt(secret, at, parameters), codes[algorithm], `${algorithm} at ${seconds}`);
        assert.equal(totpStepOf(secret, codes[algorithm], at, parameters), Math.floor(seconds / 30));
      }
    });
  }

  void it("accepts a code one step either side of now, and no further", () => {
    const secret = newTotpSecret();
    const at = new Date("2030-01-01T00:00:15Z");
    const step = totpStepAt(at);
    for (const offset of [-1, 0, 1]) {
      const code = totpCodeAt(secret, new Date(at.getTime() + offset * 30_000));
      assert.equal(totpStepOf(secret, code, at), step + offset, `offset ${offset}`);
    }
    for (const offset of [-2, 2]) {
      const code = totpCodeAt(secret, new Date(at.getTime() + offset * 30_000));
      assert.equal(totpStepOf(secret, code, at), undefined, `offset ${offset}`);
    }
  });

  void it("ignores spaces and dashes between digits, and takes nothing else for a code", () => {
    const secret = newTotpSecret();
    const at = new Date("2030-01-01T00:00:00Z");
    const code = totpCodeAt(secret, at);
    assert.equal(totpStepOf(secret, `${code.slice(0, 3)} ${code.slice(3)}`, at), totpStepAt(at));
    assert.equal(totpStepOf(secret, `${code.slice(0, 3)}-${code.slice(3)}`, at), totpStepAt(at));
    for (const notACode of ["", "12345", "1234567", "abcdef", `${code}0`])
      assert.equal(totpStepOf(secret, notACode, at), undefined, JSON.stringify(notACode));
  });

  void it("enrols SHA-1, 6 digits, 30 s in an otpauth:// URI naming carehost and the user", () => {
    const secret = newTotpSecret();
    assert.match(secret, /^[A-Z2-7]{32}$/);
    const uri = new URL(totpUri(secret, "alice"));
    assert.equal(uri.protocol, "otpauth:");
    assert.equal(uri.host, "totp");
    assert.equal(decodeURIComponent(uri.pathname), "/carehost:alice");
    assert.equal(uri.searchParams.get("secret"), secret);
    assert.equal(uri.searchParams.get("issuer"), "carehost");
    assert.equal(uri.searchParams.get("algorithm"), enrolledTotp.algorithm);
    assert.equal(uri.searchParams.get("digits"), "6");
    assert.equal(uri.searchParams.get("period"), "30");
  });
});
