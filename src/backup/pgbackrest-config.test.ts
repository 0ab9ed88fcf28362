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
});
const s3: TS3Repository = { name: "offsite", type: "s3", bucket: "carehost-backups", region: "eu-central-1", path: "/acme", endpoint: { host: "s3.eu-central-1.amazonaws.com", port: 443, pathStyle: false } };

void describe("pgbackrest.conf: S3 repositories", () => {
  void it("writes bucket, region, endpoint and port; path-style URIs and a CA file only when given; keys only as environment variable names", () => {
    const aws = renderPgbackrestConf(input([{ name: "local", type: "posix", path: "/srv/carehost/backups/acme" }, s3]));
    const lines = aws.text.split("\n");
    for (const line of ["repo2-type=s3", "repo2-s3-bucket=carehost-backups", "repo2-s3-region=eu-central-1", "repo2-s3-endpoint=s3.eu-central-1.amazonaws.com", "repo2-storage-port=443", "repo2-path=/acme", "repo2-cipher-type=aes-256-cbc"]) {
      assert.ok(lines.includes(line), `missing ${line}`);
    }
    assert.ok(!aws.text.includes("uri-style") && !aws.text.includes("ca-file"));
    assert.deepEqual(aws.secretEnvironmentNames, ["PGBACKREST_REPO1_CIPHER_PASS", "PGBACKREST_REPO2_CIPHER_PASS", "PGBACKREST_REPO2_S3_KEY", "PGBACKREST_REPO2_S3_KEY_SECRET"]);
    const compatible = renderPgbackrestConf(input([{ ...s3, endpoint: { host: "minio.internal", port: 9000, pathStyle: true }, caFile: "/srv/carehost/minio-ca.pem" }])).text.split("\n");
    for (const line of ["repo1-s3-endpoint=minio.internal", "repo1-storage-port=9000", "repo1-s3-uri-style=path", "repo1-storage-ca-file=/srv/carehost/minio-ca.pem"]) assert.ok(compatible.includes(line), `missing ${line}`);
  });

  void it("refuses a value that would add a line or an option to the file", () => {
    assert.throws(() => renderPgbackrestConf(input([{ ...s3, region: "eu-central-1\nrepo1-s3-verify-tls=n" }])), /region "eu-central-1\\nrepo1-s3-verify-tls=n" is not a plain value/);
    assert.throws(() => renderPgbackrestConf(input([{ ...s3, endpoint: { ...s3.endpoint, host: "evil host" } }])), /endpoint host "evil host"/);
    assert.throws(() => renderPgbackrestConf(input([{ ...s3, caFile: "ca.pem\nrepo1-type=posix" }])), /is not a plain absolute path/);
  });
});
