import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { renderPgbackrestConf } from "./pgbackrest-config.js";
import type { TPgbackrestConfigInput, TS3Repository } from "./pgbackrest-config.js";

const input = (repositories: TPgbackrestConfigInput["repositories"]): TPgbackrestConfigInput => ({
  stanza: "dedicated-prod",
  dataDirectory: "/srv/carehost/pg/data",
  port: 5433,
  socketDirectory: "/srv/carehost/pg/run",
  adminUser: "carehost_admin",
  workDirectory: "/srv/carehost/pg/pgbackrest",
  repositories,
  retention: { daily: 14, weekly: 8, monthly: 12 },
});
const s3: TS3Repository = {
  name: "offsite",
  type: "s3",
  bucket: "carehost-backups",
  region: "eu-central-1",
  path: "/acme",
  endpoint: { host: "s3.eu-central-1.amazonaws.com", port: 443, pathStyle: false },
};

void describe("pgbackrest.conf: every repository", () => {
  void it("encrypts each repository with AES-256-CBC, compresses with Zstandard at level 1, archives asynchronously", () => {
    const lines = renderPgbackrestConf(
      input([{ name: "local", type: "posix", path: "/srv/carehost/backups/acme" }, s3]),
    ).text.split("\n");
    for (const line of [
      "repo1-cipher-type=aes-256-cbc",
      "repo2-cipher-type=aes-256-cbc",
      "compress-type=zst",
      "compress-level=1",
      "archive-async=y",
      // Kept by time long enough for every tier: 12 months of 31 days.
      "repo1-retention-full-type=time",
      "repo1-retention-full=372",
      "repo2-retention-full=372",
    ])
      assert.ok(lines.includes(line), `missing ${line}`);
  });
});

void describe("pgbackrest.conf: S3 repositories", () => {
  void it("writes bucket, region, endpoint and port; path-style URIs and a CA file only when given; keys only as environment variable names", () => {
    const aws = renderPgbackrestConf(input([{ name: "local", type: "posix", path: "/srv/carehost/backups/acme" }, s3]));
    const lines = aws.text.split("\n");
    for (const line of [
      "repo2-type=s3",
      "repo2-s3-bucket=carehost-backups",
      "repo2-s3-region=eu-central-1",
      "repo2-s3-endpoint=s3.eu-central-1.amazonaws.com",
      "repo2-storage-port=443",
      "repo2-path=/acme",
      "repo2-cipher-type=aes-256-cbc",
    ]) {
      assert.ok(lines.includes(line), `missing ${line}`);
    }
    assert.ok(!aws.text.includes("uri-style") && !aws.text.includes("ca-file"));
    assert.deepEqual(aws.secretEnvironmentNames, [
      "PGBACKREST_REPO1_CIPHER_PASS",
      "PGBACKREST_REPO2_CIPHER_PASS",
      "PGBACKREST_REPO2_S3_KEY",
      "PGBACKREST_REPO2_S3_KEY_SECRET",
    ]);
    const compatible = renderPgbackrestConf(
      input([
        {
          ...s3,
          endpoint: { host: "minio.internal", port: 9000, pathStyle: true },
          caFile: "/srv/carehost/minio-ca.pem",
        },
      ]),
    ).text.split("\n");
    for (const line of [
      "repo1-s3-endpoint=minio.internal",
      "repo1-storage-port=9000",
      "repo1-s3-uri-style=path",
      "repo1-storage-ca-file=/srv/carehost/minio-ca.pem",
    ])
      assert.ok(compatible.includes(line), `missing ${line}`);
  });

  void it("refuses a value that would add a line or an option to the file", () => {
    assert.throws(
      () => renderPgbackrestConf(input([{ ...s3, region: "eu-central-1\nrepo1-s3-verify-tls=n" }])),
      /region "eu-central-1\\nrepo1-s3-verify-tls=n" is not a plain value/,
    );
    assert.throws(
      () => renderPgbackrestConf(input([{ ...s3, endpoint: { ...s3.endpoint, host: "evil host" } }])),
      /endpoint host "evil host"/,
    );
    assert.throws(
      () => renderPgbackrestConf(input([{ ...s3, caFile: "ca.pem\nrepo1-type=posix" }])),
      /is not a plain absolute path/,
    );
  });
});

void describe("pgbackrest.conf: Azure repositories", () => {
  const azure = {
    name: "offsite",
    type: "azure",
    account: "northwind",
    container: "backups",
    path: "/northwind-health",
  } as const;

  void it("addresses a sovereign cloud by its blob endpoint (host-style), Azurite by host and path-style URIs, and Azure's public cloud by default", () => {
    const government = renderPgbackrestConf(
      input([{ ...azure, endpoint: { host: "northwind.blob.core.usgovcloudapi.net", port: 443, pathStyle: false } }]),
    ).text.split("\n");
    for (const line of [
      "repo1-type=azure",
      "repo1-azure-account=northwind",
      "repo1-azure-container=backups",
      "repo1-azure-endpoint=blob.core.usgovcloudapi.net",
      "repo1-storage-port=443",
    ]) {
      assert.ok(government.includes(line), `missing ${line}`);
    }
    // storage-host would switch pgBackRest to path-style URIs, which Azure refuses.
    assert.ok(!government.some((line) => line.includes("storage-host") || line.includes("uri-style")));
    const azurite = renderPgbackrestConf(
      input([{ ...azure, endpoint: { host: "127.0.0.1", port: 10000, pathStyle: true } }]),
    ).text.split("\n");
    for (const line of ["repo1-storage-host=127.0.0.1", "repo1-storage-port=10000", "repo1-azure-uri-style=path"])
      assert.ok(azurite.includes(line), `missing ${line}`);
    const publicCloud = renderPgbackrestConf(input([azure])).text;
    assert.ok(!/endpoint|storage-host|storage-port/.test(publicCloud), "pgBackRest's default, blob.core.windows.net");
  });

  void it("refuses a host-style endpoint that is not the account's", () => {
    assert.throws(
      () =>
        renderPgbackrestConf(
          input([{ ...azure, endpoint: { host: "backups.example.org", port: 443, pathStyle: false } }]),
        ),
      /does not begin with the account "northwind"/,
    );
  });
});
