import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { runtimeTestSpec } from "../../test/runtime-fixtures.js";
import { testDatabaseFactories, withTestDatabase } from "../../test/test-databases.js";
import { ValidationError } from "../lib/errors.js";
import { systemContext } from "../lib/request-context.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import { secretsAdminServiceFactory } from "./secrets-admin-service.js";
import { masterKeyFrom } from "./secrets-master-key.js";
import { secretsServiceFactory } from "./secrets-service.js";

const ORG = "keys-health";

void describe("secrets set: backup repository keys", () => {
  void it("stores an S3 key only in its two-line shape, naming the secret (never the value) when refused; an Azure key is one line", () =>
    withTestDatabase(testDatabaseFactories.pglite, async (db) => {
      const audit = { append: async () => undefined };
      const secrets = secretsServiceFactory({
        db,
        masterKey: masterKeyFrom(randomBytes(32), "env"),
        audit,
        authorizeReveal: async () => undefined,
      });
      const full = runtimeTestSpec(ORG);
      const spec: TOrganizationSpec = {
        ...full,
        backupRepositories: [
          ...full.backupRepositories,
          {
            name: "offsite-s3",
            type: "s3",
            bucket: "carehost-backups",
            region: "eu-central-1",
            keySecretRef: "offsite-s3-key",
          },
        ],
      };
      const admin = secretsAdminServiceFactory({ secrets, audit, latestSpecs: async () => [spec] });
      const ctx = systemContext("test");
      const s3Name = `backup/${ORG}/offsite-s3-key`;
      const secretAccessKey = randomBytes(30).toString("base64");

      for (const value of [
        secretAccessKey,
        `AKIAEXAMPLE:${secretAccessKey}`,
        `AKIAEXAMPLE\n${secretAccessKey}\nthird`,
      ]) {
        await assert.rejects(admin.set(ctx, s3Name, value), (error: unknown) => {
          assert.ok(error instanceof ValidationError);
          assert.ok(error.message.includes(JSON.stringify(s3Name)), error.message);
          assert.ok(!error.message.includes(secretAccessKey), "the message shows the secret access key");
          return true;
        });
      }
      assert.ok(!(await secrets.list()).some((item) => item.name === s3Name), "a refused value is not stored");

      assert.equal((await admin.set(ctx, s3Name, `AKIAEXAMPLE\n${secretAccessKey}\n`)).version, 1);
      assert.equal(await secrets.current(s3Name), `AKIAEXAMPLE\n${secretAccessKey}`);
      const azureName = `backup/${ORG}/backup-offsite-azure-key`;
      assert.equal((await admin.set(ctx, azureName, `${randomBytes(64).toString("base64")}\n`)).version, 1);
    }));
});
