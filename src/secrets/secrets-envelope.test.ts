import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { IntegrityError } from "../lib/errors.js";
import { open, seal, type TSealed } from "./secrets-envelope.js";
import { masterKeyFrom } from "./secrets-master-key.js";

const masterKey = masterKeyFrom(randomBytes(32), "env");
const value = "s3cr3t-Pässwörd-value-7f3a";

const flipFirstByte = (bytes: Buffer): Buffer => {
  const copy = Buffer.from(bytes);
  copy[0] = copy[0]! ^ 0x01;
  return copy;
};

const assertIntegrityFailure = (sealed: TSealed, key = masterKey, expectedName = sealed.name) => {
  assert.throws(
    () => open(key, sealed),
    (error: unknown) => {
      assert.ok(error instanceof IntegrityError, String(error));
      assert.match(error.message, new RegExp(`"${expectedName}"`));
      assert.ok(!error.message.includes(value), "the message contains the value");
      return true;
    },
  );
};

describe("secrets envelope", () => {
  it("round-trips a value, with a fresh IV and data key each time", () => {
    const first = seal(masterKey, "db/app", 1, value);
    const second = seal(masterKey, "db/app", 1, value);
    assert.equal(open(masterKey, first), value);
    assert.equal(open(masterKey, second), value);
    assert.notDeepEqual(first.ciphertext, second.ciphertext);
    assert.notDeepEqual(first.wrappedKey, second.wrappedKey);
    assert.equal(first.iv.length, 12);
    assert.equal(first.tag.length, 16);
    assert.equal(first.masterKeyId, masterKey.keyId);
  });

  it("never carries the value in clear", () => {
    const sealed = seal(masterKey, "db/app", 1, value);
    for (const bytes of [sealed.ciphertext, sealed.iv, sealed.tag, sealed.wrappedKey, sealed.wrapIv, sealed.wrapTag]) {
      assert.equal(bytes.indexOf(Buffer.from(value)), -1);
    }
  });

  for (const field of ["ciphertext", "iv", "tag", "wrappedKey", "wrapIv", "wrapTag"] as const) {
    it(`refuses a sealed secret whose ${field} was altered, naming the secret`, () => {
      const sealed = seal(masterKey, "db/app", 1, value);
      assertIntegrityFailure({ ...sealed, [field]: flipFirstByte(sealed[field]) });
    });
  }

  it("refuses a sealed secret moved to another name or version", () => {
    const sealed = seal(masterKey, "db/app", 1, value);
    assertIntegrityFailure({ ...sealed, name: "db/other" });
    assertIntegrityFailure({ ...sealed, version: 2 });
  });

  it("refuses a different master key, and one that merely claims the right key id", () => {
    const sealed = seal(masterKey, "db/app", 1, value);
    const otherKey = masterKeyFrom(randomBytes(32), "file");
    assertIntegrityFailure(sealed, otherKey);
    assertIntegrityFailure({ ...sealed, masterKeyId: otherKey.keyId }, otherKey);
  });

  it("refuses a truncated ciphertext", () => {
    const sealed = seal(masterKey, "db/app", 1, value);
    assertIntegrityFailure({ ...sealed, ciphertext: sealed.ciphertext.subarray(1) });
  });
});
