import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { clusterPassphrase, PASSPHRASE_SALT, passphraseInfo } from "./backup-passphrase.js";

const run = promisify(execFile);

void describe("backup passphrases: one per cluster and repository, derived from the repository's", () => {
  const scope = { organization: "northwind-health", repository: "offsite", stanza: "dedicated-prod" };

  void it("differs for every cluster, repository and organization, and is the same every time", () => {
    const passphrase = clusterPassphrase("repository secret", scope);
    assert.match(passphrase, /^[0-9a-f]{64}$/);
    assert.equal(clusterPassphrase("repository secret", scope), passphrase);
    const others = [
      clusterPassphrase("repository secret", { ...scope, stanza: "shared" }),
      clusterPassphrase("repository secret", { ...scope, repository: "local" }),
      clusterPassphrase("repository secret", { ...scope, organization: "acme-health" }),
      clusterPassphrase("another secret", scope),
    ];
    assert.equal(new Set([passphrase, ...others]).size, 5);
  });

  void it("can be derived by hand with OpenSSL, as the README shows for a restore on a new host", async () => {
    const { stdout } = await run("openssl", [
      "kdf", "-keylen", "32", "-kdfopt", "digest:SHA256", "-kdfopt", "key:repository secret",
      "-kdfopt", `salt:${PASSPHRASE_SALT}`, "-kdfopt", `info:${passphraseInfo(scope)}`, "HKDF",
    ]);
    assert.equal(stdout.trim().replaceAll(":", "").toLowerCase(), clusterPassphrase("repository secret", scope));
  });
});
