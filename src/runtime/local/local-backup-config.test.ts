import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { runtimeTestSpec } from "../../../test/runtime-fixtures.js";
import { clusterPassphrase } from "../../backup/backup-passphrase.js";
import { azureEndpointOf, clusterBackupOf } from "./local-backup-config.js";
import { filestoreRepositoriesOf } from "./local-filestore.js";

void describe("Azure endpoints of the spec", () => {
  void it("reads Azurite's as path-style and a sovereign cloud's as host-style, with the port", () => {
    assert.deepEqual(
      azureEndpointOf({
        name: "offsite",
        account: "devstoreaccount1",
        endpoint: "https://127.0.0.1:10000/devstoreaccount1",
      }),
      { host: "127.0.0.1", port: 10000, pathStyle: true },
    );
    assert.deepEqual(
      azureEndpointOf({
        name: "offsite",
        account: "northwind",
        endpoint: "https://northwind.blob.core.usgovcloudapi.net",
      }),
      { host: "northwind.blob.core.usgovcloudapi.net", port: 443, pathStyle: false },
    );
  });

  void it("refuses an endpoint that names neither the account's host nor the account, naming the repository and the value", () => {
    assert.throws(
      () => azureEndpointOf({ name: "offsite", account: "northwind", endpoint: "https://backups.example.org/other" }),
      /endpoint "https:\/\/backups\.example\.org\/other" of Azure repository "offsite" names neither the account's host nor the account: give https:\/\/northwind\.<blob service domain>/,
    );
  });
});

void describe("a cluster's backup passphrases", () => {
  const spec = runtimeTestSpec("acme-health");
  const prod = spec.environments.find((environment) => environment.name === "prod")!;
  const local = spec.backupRepositories.filter((repository) => repository.name === "local");
  const stored: Record<string, string> = {
    "backup/acme-health/backup-local-cipher": "the repository's passphrase",
    "runtime/acme-health/postgres/dedicated-prod/admin": "admin",
  };
  const secrets = {
    ensure: async () => undefined,
    current: async (name: string) => stored[name] ?? Promise.reject(new Error(`no ${name}`)),
  };
  const backupOfCluster = async (record: object) => {
    const home = await mkdtemp(join(tmpdir(), "carehost-keys-"));
    try {
      await writeFile(join(home, "instance.json"), JSON.stringify(record));
      const cluster = { name: "dedicated-prod", directory: home, port: 5999, version: 15, owner: undefined };
      const placement = {
        name: "dedicated-prod",
        version: 15,
        environments: [
          {
            ...prod,
            backup: { ...(prod.backup as Extract<typeof prod.backup, { enabled: true }>), repositories: ["local"] },
          },
        ],
      };
      const backup = await clusterBackupOf({
        organization: "acme-health",
        home,
        allowedRoots: [],
        placement,
        cluster,
        repositories: local,
        secrets,
        createSecrets: false,
      });
      assert.ok(backup);
      return { backup, filestore: filestoreRepositoriesOf(backup, join(home, "cache"))[0]! };
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  };

  void it("gives a cluster its own passphrase and filestore repository in each repository", async () => {
    const { backup, filestore } = await backupOfCluster({
      port: 5999,
      createdAt: "2026-11-30T00:00:00Z",
      backupPassphrases: "per-cluster",
    });
    const own = clusterPassphrase("the repository's passphrase", {
      organization: "acme-health",
      repository: "local",
      stanza: "dedicated-prod",
    });
    assert.equal(backup.access.env.PGBACKREST_REPO1_CIPHER_PASS, own);
    assert.equal(filestore.env.RESTIC_PASSWORD, own);
    assert.match(filestore.location, /\/filestore\/dedicated-prod$/);
  });

  void it("keeps the repository's passphrase and the shared filestore repository for a cluster created before", async () => {
    const { backup, filestore } = await backupOfCluster({ port: 5999, createdAt: "2026-11-01T00:00:00Z" });
    assert.equal(backup.access.env.PGBACKREST_REPO1_CIPHER_PASS, "the repository's passphrase");
    assert.equal(filestore.env.RESTIC_PASSWORD, "the repository's passphrase");
    assert.match(filestore.location, /\/filestore$/);
  });
});
