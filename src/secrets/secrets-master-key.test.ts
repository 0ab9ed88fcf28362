import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { chmod, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { inspect } from "node:util";
import { ValidationError } from "../lib/errors.js";
import { loadMasterKey, masterKeyEnvVariable, masterKeyFromEnv, masterKeyFromFile } from "./secrets-master-key.js";
import { generatePassword } from "./secrets-generate.js";

describe("master key", () => {
  let dir = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "carehost-master-key-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("creates a 32-byte key file with mode 0600 on first use and loads the same key afterwards", async () => {
    const path = join(dir, "nested", "master.key");
    const first = await masterKeyFromFile(path);
    assert.equal(first.created, true);
    const info = await stat(path);
    assert.equal(info.mode & 0o777, 0o600);
    assert.equal(info.size, 32);
    const second = await masterKeyFromFile(path);
    assert.equal(second.created, false);
    assert.equal(second.masterKey.keyId, first.masterKey.keyId);
    assert.deepEqual(second.masterKey.bytes, first.masterKey.bytes);
    assert.match(first.masterKey.keyId, /^[0-9a-f]{16}$/);
    assert.equal(first.masterKey.keyId, createHash("sha256").update(first.masterKey.bytes).digest("hex").slice(0, 16));
  });

  it("lets exactly one of several concurrent first uses create the key", async () => {
    const path = join(dir, "concurrent.key");
    const loaded = await Promise.all([1, 2, 3, 4].map(() => masterKeyFromFile(path)));
    assert.equal(loaded.filter((result) => result.created).length, 1);
    assert.equal(new Set(loaded.map((result) => result.masterKey.keyId)).size, 1);
  });

  it("refuses a key file readable by group or others, naming the path and the mode", async () => {
    const path = join(dir, "loose.key");
    await writeFile(path, randomBytes(32));
    await chmod(path, 0o644);
    await assert.rejects(masterKeyFromFile(path), (error: unknown) => {
      assert.ok(error instanceof ValidationError);
      assert.ok(error.message.includes(path), error.message);
      assert.match(error.message, /0644/);
      return true;
    });
  });

  it("refuses a key file of the wrong size", async () => {
    const path = join(dir, "short.key");
    await writeFile(path, randomBytes(16), { mode: 0o600 });
    await assert.rejects(masterKeyFromFile(path), /exactly 32 bytes, not 16/);
  });

  it("never prints the key bytes when the key object is logged or serialised", async () => {
    const { masterKey } = await masterKeyFromFile(join(dir, "quiet.key"));
    const hex = masterKey.bytes.toString("hex");
    const base64 = masterKey.bytes.toString("base64");
    for (const text of [
      inspect(masterKey, { showHidden: true }),
      JSON.stringify(masterKey),
      String(Object.keys(masterKey)),
    ]) {
      assert.ok(!text.includes(hex) && !text.includes(base64), text);
    }
    assert.match(inspect(masterKey), new RegExp(masterKey.keyId));
  });

  it("reads the key from the environment variable, which wins over the file", async () => {
    const bytes = randomBytes(32);
    const path = join(dir, "unused.key");
    const key = await loadMasterKey({ env: { [masterKeyEnvVariable]: bytes.toString("base64") }, filePath: path });
    assert.equal(key.source, "env");
    assert.deepEqual(key.bytes, bytes);
    await assert.rejects(stat(path), { code: "ENOENT" });
    const fromFile = await loadMasterKey({ env: {}, filePath: path });
    assert.equal(fromFile.source, "file");
  });

  it("refuses an environment key of the wrong length or not base64, naming the variable but never the value", () => {
    const candidates = [
      randomBytes(16).toString("base64"),
      randomBytes(33).toString("base64"),
      "not base64 at all!!-secretish",
      randomBytes(32).toString("base64url").slice(0, 43),
    ];
    for (const candidate of candidates) {
      assert.throws(
        () => masterKeyFromEnv(candidate),
        (error: unknown) => {
          assert.ok(error instanceof ValidationError);
          assert.ok(error.message.includes(masterKeyEnvVariable), error.message);
          assert.ok(!error.message.includes(candidate), "the message echoes the value");
          return true;
        },
      );
    }
  });
});

describe("generatePassword", () => {
  it("gives base64url of the requested number of random bytes", () => {
    const password = generatePassword();
    assert.match(password, /^[A-Za-z0-9_-]{32}$/);
    assert.equal(Buffer.from(password, "base64url").length, 24);
    assert.equal(Buffer.from(generatePassword(48), "base64url").length, 48);
    assert.notEqual(generatePassword(), generatePassword());
  });

  it("refuses too few bytes", () => {
    assert.throws(() => generatePassword(8), ValidationError);
    assert.throws(() => generatePassword(16.5), ValidationError);
  });
});
