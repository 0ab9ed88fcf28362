import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { clusterPassphrase, opensslDerivation } from "./backup-passphrase.js";

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

  void it("can be derived by hand with OpenSSL, by the command the README and Compose bundles show", async () => {
    const { stdout } = await run("sh", ["-c", opensslDerivation(scope)], {
      env: { ...process.env, REPOSITORY_PASSPHRASE: "repository secret" },
    });
    assert.equal(stdout, clusterPassphrase("repository secret", scope));
  });
});
