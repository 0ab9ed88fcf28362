import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { runtimeTestSpec } from "../../test/runtime-fixtures.js";
import {
  AUDIT_APPEND_INJECTED,
  refuseAuditAppends,
  createAuditHarness,
  recordChangeThrough,
} from "../../test/audit-fixtures.js";
import { forEachStoreKind, testDatabaseFactories, withTestDatabase } from "../../test/test-databases.js";
import { readHeadSize } from "../audit/audit-store.js";
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
      const append = async () => undefined;
      const audit = { append, recordChange: recordChangeThrough(db, append) };
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

forEachStoreKind((kind, createDatabase) => {
  void describe(`secrets set and rotate on ${kind}: a version commits only with its audit entry`, () => {
    void it("keeps no new version when the append of its secret.rotated fails, and writes both on success", async () => {
      const harness = await createAuditHarness(createDatabase);
      try {
        const secrets = secretsServiceFactory({
          db: harness.db,
          masterKey: masterKeyFrom(randomBytes(32), "env"),
          audit: harness.log,
          authorizeReveal: async () => undefined,
        });
        const spec = runtimeTestSpec(ORG);
        const admin = secretsAdminServiceFactory({ secrets, audit: harness.log, latestSpecs: async () => [spec] });
        const ctx = systemContext("test");
        const keyName = `backup/${ORG}/backup-offsite-azure-key`;
        const master = `runtime/${ORG}/odoo-master`;
        await secrets.ensure(master, () => "first master password");
        await secrets.ensure(`${master}-hash`, () => "$pbkdf2-sha512$first");
        assert.equal((await admin.set(ctx, keyName, randomBytes(64).toString("base64"))).version, 1);
        const versions = async () =>
          Object.fromEntries((await secrets.list()).map((secret) => [secret.name, secret.currentVersion]));
        const before = await versions();
        const head = await readHeadSize(harness.db);

        // The append itself fails, as a full disk or a lost connection would make it.
        const allowAuditAppends = await refuseAuditAppends(harness.database);
        const injected = AUDIT_APPEND_INJECTED;
        await assert.rejects(admin.set(ctx, keyName, randomBytes(64).toString("base64")), injected);
        await assert.rejects(admin.rotate(ctx, master), injected);
        assert.deepEqual(await versions(), before, "a version was written without its entry");
        assert.equal(await secrets.current(master), "first master password");
        assert.equal(await readHeadSize(harness.db), head);

        await allowAuditAppends();
        assert.equal((await admin.rotate(ctx, master)).version, 2);
        assert.deepEqual(
          (await harness.log.list({ type: "secret.rotated", limit: 10 })).map((item) => item.entry.payload),
          [
            { secretName: keyName, version: 1 },
            { secretName: master, version: 2 },
            { secretName: `${master}-hash`, version: 2 },
          ],
        );
        assert.equal((await harness.log.verify()).ok, true);
      } finally {
        await harness.dispose();
      }
    });
  });
});
