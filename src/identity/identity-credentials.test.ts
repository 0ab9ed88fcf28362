import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ValidationError } from "../lib/errors.js";
import {
  checkPasswordPolicy,
  generatePassword,
  hashPassword,
  passwordHashIsOutdated,
  verifyPassword,
} from "./identity-passwords.js";
import { mintToken, parseToken, secretMatches, shouldRecordUse, tokenRejection } from "./identity-tokens.js";

describe("identity passwords", () => {
  it("hashes with argon2id at the documented parameters and verifies", async () => {
    const password = generatePassword();
    const hash = await hashPassword(password);
    assert.match(hash, /^\$argon2id\$v=19\$m=19456,p=1,t=2\$/);
    assert.ok(!hash.includes(password));
    assert.equal(await verifyPassword(hash, password), true);
    assert.equal(await verifyPassword(hash, `${password}x`), false);
    assert.equal(await verifyPassword("not a hash", password), false);
    assert.equal(passwordHashIsOutdated(hash), false);
  });

  it("generates long, distinct, url-safe passwords", () => {
    const generated = new Set(Array.from({ length: 50 }, generatePassword));
    assert.equal(generated.size, 50);
    for (const password of generated) assert.match(password, /^[A-Za-z0-9_-]{24}$/);
  });

  it("refuses short passwords and the username as password", () => {
    assert.throws(() => checkPasswordPolicy("short", "alice"), ValidationError);
    assert.throws(() => checkPasswordPolicy("Alice.Example", "alice.example"), /does not meet the policy/);
    assert.throws(() => checkPasswordPolicy("x".repeat(257), "alice"), ValidationError);
    checkPasswordPolicy("correct horse battery", "alice");
  });
});

describe("identity tokens", () => {
  it("mints chp_<id>_<secret> and parses it back, with or without a Bearer prefix", () => {
    const minted = mintToken();
    assert.match(minted.token, /^chp_[0-9a-f]{24}_[A-Za-z0-9_-]{43}$/);
    const parsed = parseToken(minted.token);
    assert.equal(parsed?.id, minted.id);
    assert.deepEqual(parseToken(`Bearer ${minted.token}`), parsed);
    assert.ok(secretMatches(parsed!.secret, minted.secretSha256));
    assert.ok(!minted.token.includes(minted.secretSha256));
  });

  it("rejects malformed tokens and wrong secrets", () => {
    const minted = mintToken();
    for (const bad of [
      undefined,
      "",
      "chp_",
      minted.token.slice(0, -1),
      minted.token.replace("chp_", "ghp_"),
      `${minted.token}x`,
    ]) {
      assert.equal(parseToken(bad), undefined, String(bad));
    }
    const other = parseToken(mintToken().token)!;
    assert.equal(secretMatches(other.secret, minted.secretSha256), false);
  });

  it("ends sessions on expiry, idleness, revocation and a disabled user", () => {
    const limits = { absoluteHours: 12, idleMinutes: 30 };
    const createdAt = new Date("2030-01-01T00:00:00Z");
    const base = {
      kind: "session" as const,
      createdAt,
      expiresAt: new Date("2030-01-01T12:00:00Z"),
      lastUsedAt: null,
      revokedAt: null,
      userDisabledAt: null,
    };
    const at = (iso: string) => new Date(iso);
    assert.equal(tokenRejection(base, at("2030-01-01T00:29:00Z"), limits), undefined);
    assert.equal(tokenRejection(base, at("2030-01-01T00:31:00Z"), limits), "idle");
    assert.equal(
      tokenRejection({ ...base, lastUsedAt: at("2030-01-01T11:50:00Z") }, at("2030-01-01T12:00:00Z"), limits),
      "expired",
    );
    assert.equal(tokenRejection({ ...base, revokedAt: createdAt }, at("2030-01-01T00:01:00Z"), limits), "revoked");
    assert.equal(
      tokenRejection({ ...base, userDisabledAt: createdAt }, at("2030-01-01T00:01:00Z"), limits),
      "user disabled",
    );
    // API tokens have no idle timeout, but end at their expiry like sessions.
    const api = { ...base, kind: "api" as const, expiresAt: at("2030-03-01T00:00:00Z") };
    assert.equal(tokenRejection(api, at("2030-02-28T23:59:59Z"), limits), undefined);
    assert.equal(tokenRejection(api, at("2030-03-01T00:00:00Z"), limits), "expired");
  });

  it("records use at most once a minute", () => {
    const last = new Date("2030-01-01T00:00:00Z");
    assert.equal(shouldRecordUse(null, last), true);
    assert.equal(shouldRecordUse(last, new Date("2030-01-01T00:00:59Z")), false);
    assert.equal(shouldRecordUse(last, new Date("2030-01-01T00:01:00Z")), true);
  });
});
