import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { forEachStoreKind, withTestDatabase, type TTestDatabase } from "../../test/test-databases.js";
import { auditPayloadSchemas, type TAuditEvent } from "../audit/audit-types.js";
import { ConflictError, ForbiddenError, IntegrityError, NotFoundError, ValidationError } from "../lib/errors.js";
import { systemContext, type TRequestContext } from "../lib/request-context.js";
import type { TSqlClient } from "../store/store-types.js";
import { generatePassword } from "./secrets-generate.js";
import { masterKeyFrom, type TMasterKey } from "./secrets-master-key.js";
import { secretsServiceFactory } from "./secrets-service.js";

const operator: TRequestContext = {
  actor: {
    kind: "user",
    userId: "u-1",
    username: "olga",
    role: "operator",
    bindings: [{ role: "operator", organization: "*" }],
  },
  requestId: "req-1",
  sourceAddress: "203.0.113.7",
};
const viewer: TRequestContext = {
  actor: {
    kind: "user",
    userId: "u-2",
    username: "vic",
    role: "viewer",
    bindings: [{ role: "viewer", organization: "*" }],
  },
  requestId: "req-2",
  sourceAddress: "203.0.113.8",
};

/** Everything a test generated and every error it saw, so the last check can look for leaks. */
const leakWatch = () => {
  const values: string[] = [];
  const messages: string[] = [];
  const generator = () => {
    const value = generatePassword();
    values.push(value);
    return value;
  };
  const failure = async (
    promise: Promise<unknown>,
    expected: new (...args: never[]) => Error,
    pattern?: RegExp,
  ): Promise<void> => {
    await assert.rejects(promise, (error: unknown) => {
      assert.ok(error instanceof expected, `expected ${expected.name}, got ${String(error)}`);
      if (pattern) assert.match(error.message, pattern);
      messages.push(error.message, String(error.stack), JSON.stringify(error));
      return true;
    });
  };
  const assertNoLeaks = (...texts: string[]) => {
    assert.ok(values.length > 0);
    for (const text of [...messages, ...texts]) {
      for (const value of values) assert.ok(!text.includes(value), `a secret value leaked into: ${text.slice(0, 200)}`);
    }
  };
  return { values, generator, failure, assertNoLeaks };
};

const recordingAudit = () => {
  const events: { ctx: TRequestContext; event: TAuditEvent }[] = [];
  return { events, append: async (ctx: TRequestContext, event: TAuditEvent) => void events.push({ ctx, event }) };
};

const withSecrets = (
  create: () => Promise<TTestDatabase>,
  fn: (setup: {
    db: TSqlClient;
    database: TTestDatabase;
    masterKey: TMasterKey;
    service: ReturnType<typeof secretsServiceFactory>;
    audit: ReturnType<typeof recordingAudit>;
    allowed: string[];
  }) => Promise<void>,
) =>
  withTestDatabase(create, async (db, database) => {
    const masterKey = masterKeyFrom(randomBytes(32), "file");
    const audit = recordingAudit();
    const allowed = ["olga"];
    const service = secretsServiceFactory({
      db,
      masterKey,
      audit,
      authorizeReveal: async (ctx) => {
        if (ctx.actor.kind !== "user" || !allowed.includes(ctx.actor.username))
          throw new ForbiddenError("not allowed to reveal secrets");
      },
    });
    await fn({ db, database, masterKey, service, audit, allowed });
  });

const flipFirstByte = (column: string) =>
  `UPDATE secrets SET ${column} = set_byte(${column}, 0, get_byte(${column}, 0) # 1) WHERE name = $1`;

forEachStoreKind((kind, createDatabase) => {
  describe(`secrets service on ${kind}`, () => {
    it("creates a secret once and reads it back", async () => {
      await withSecrets(createDatabase, async ({ service }) => {
        const watch = leakWatch();
        assert.deepEqual(await service.ensure("pg/northwind-prod/app", watch.generator), { created: true, version: 1 });
        assert.deepEqual(await service.ensure("pg/northwind-prod/app", watch.generator), {
          created: false,
          version: 1,
        });
        assert.equal(watch.values.length, 1, "ensure generated a value for an existing secret");
        assert.equal(await service.current("pg/northwind-prod/app"), watch.values[0]);
        assert.equal(await service.previous("pg/northwind-prod/app"), null);
        await watch.failure(service.current("pg/missing"), NotFoundError, /"pg\/missing"/);
        await watch.failure(service.ensure("bad name;drop", watch.generator), ValidationError);
        watch.assertNoLeaks();
      });
    });

    it("creates exactly one version when replicas ensure at once", async () => {
      await withSecrets(createDatabase, async ({ service }) => {
        const watch = leakWatch();
        const results = await Promise.all([1, 2, 3].map(() => service.ensure("shared", watch.generator)));
        assert.equal(results.filter((result) => result.created).length, 1);
        assert.ok(watch.values.includes(await service.current("shared")));
      });
    });

    it("stores no plaintext in any column", async () => {
      await withSecrets(createDatabase, async ({ database, service }) => {
        const watch = leakWatch();
        await service.ensure("a", watch.generator);
        await service.ensure("b", watch.generator);
        await service.rotate("a", watch.generator);
        const rows = (await database.superuserQuery(
          "SELECT s::text AS row, encode(ciphertext, 'hex') || encode(wrapped_key, 'hex') AS hex, encode(ciphertext, 'escape') AS escaped FROM secrets s",
        )) as { row: string; hex: string; escaped: string }[];
        assert.equal(rows.length, 3);
        for (const value of watch.values) {
          const forms = [value, Buffer.from(value).toString("hex"), Buffer.from(value).toString("base64")];
          for (const row of rows)
            for (const form of forms)
              for (const text of [row.row, row.hex, row.escaped]) assert.ok(!text.includes(form));
        }
      });
    });

    for (const column of ["ciphertext", "tag", "wrapped_key", "iv", "wrap_tag"]) {
      it(`refuses a row whose ${column} was altered, naming the secret`, async () => {
        await withSecrets(createDatabase, async ({ database, service }) => {
          const watch = leakWatch();
          await service.ensure("pg/app", watch.generator);
          await database.superuserQuery(flipFirstByte(column), ["pg/app"]);
          await watch.failure(service.current("pg/app"), IntegrityError, /"pg\/app" version 1/);
          watch.assertNoLeaks();
        });
      });
    }

    it("refuses rows whose names were swapped", async () => {
      await withSecrets(createDatabase, async ({ database, service }) => {
        const watch = leakWatch();
        await service.ensure("alpha", watch.generator);
        await service.ensure("beta", watch.generator);
        // Three steps: the primary key is checked row by row.
        await database.superuserQuery("UPDATE secrets SET name = 'swap' WHERE name = 'alpha'");
        await database.superuserQuery("UPDATE secrets SET name = 'alpha' WHERE name = 'beta'");
        await database.superuserQuery("UPDATE secrets SET name = 'beta' WHERE name = 'swap'");
        await watch.failure(service.current("alpha"), IntegrityError, /"alpha"/);
        await watch.failure(service.current("beta"), IntegrityError, /"beta"/);
        watch.assertNoLeaks();
      });
    });

    it("refuses to open with another master key", async () => {
      await withSecrets(createDatabase, async ({ db, service, audit }) => {
        const watch = leakWatch();
        await service.ensure("pg/app", watch.generator);
        const otherKey = masterKeyFrom(randomBytes(32), "env");
        const other = secretsServiceFactory({ db, masterKey: otherKey, audit, authorizeReveal: async () => undefined });
        await watch.failure(other.current("pg/app"), IntegrityError, new RegExp(`"pg/app".*${otherKey.keyId}`));
        watch.assertNoLeaks();
      });
    });

    it("keeps the previous version readable after a rotation until it is retired", async () => {
      await withSecrets(createDatabase, async ({ database, service }) => {
        const watch = leakWatch();
        await service.ensure("pg/app", watch.generator);
        assert.deepEqual(await service.rotate("pg/app", watch.generator), { version: 2 });
        const [first, second] = watch.values;
        assert.equal(await service.current("pg/app"), second);
        assert.deepEqual(await service.previous("pg/app"), { version: 1, value: first });
        await watch.failure(service.retire("pg/app", 2), ConflictError, /current version/);
        await watch.failure(service.retire("pg/app", 7), NotFoundError);
        const retired = await service.retire("pg/app", 1);
        assert.ok(retired.retiredAt instanceof Date);
        assert.deepEqual(await service.retire("pg/app", 1), retired, "retire is idempotent");
        assert.equal(await service.previous("pg/app"), null);
        assert.equal(await service.current("pg/app"), second);
        // Retiring erases the key material: the old value is gone, not merely hidden.
        const [row] = (await database.superuserQuery(
          "SELECT octet_length(wrapped_key) AS wrapped, octet_length(ciphertext) AS cipher FROM secrets WHERE version = 1",
        )) as { wrapped: number; cipher: number }[];
        assert.deepEqual(row, { wrapped: 0, cipher: 0 });
        await watch.failure(service.rotate("pg/missing", watch.generator), NotFoundError);
        const listing = await service.list();
        assert.deepEqual(
          listing.map((secret) => [
            secret.name,
            secret.currentVersion,
            secret.versions.map((version) => [version.version, version.retiredAt !== null]),
          ]),
          [
            [
              "pg/app",
              2,
              [
                [1, true],
                [2, false],
              ],
            ],
          ],
        );
        watch.assertNoLeaks(JSON.stringify(listing));
      });
    });

    it("reveals only to an authorized caller, and audits the reason without the value", async () => {
      await withSecrets(createDatabase, async ({ service, audit }) => {
        const watch = leakWatch();
        await service.ensure("pg/app", watch.generator);
        await watch.failure(service.reveal(viewer, "pg/app", "curious"), ForbiddenError);
        assert.equal(audit.events.length, 0, "a refused reveal was recorded as revealed");
        await watch.failure(service.reveal(operator, "pg/app", "   "), ValidationError, /reason/);
        assert.equal(
          await service.reveal(operator, "pg/app", "INC-42: restore the app connection by hand"),
          watch.values[0],
        );
        assert.equal(audit.events.length, 1);
        const [{ ctx, event }] = audit.events as [(typeof audit.events)[number]];
        assert.equal(ctx, operator);
        assert.deepEqual(event, {
          type: "secret.revealed",
          outcome: "success",
          target: "secret:pg/app",
          payload: { secretName: "pg/app", reason: "INC-42: restore the app connection by hand" },
        });
        auditPayloadSchemas["secret.revealed"].parse(event.payload);
        await watch.failure(service.reveal(operator, "pg/missing", "why not"), NotFoundError);
        assert.equal(audit.events.length, 1);
        watch.assertNoLeaks(JSON.stringify(audit.events));
      });
    });

    it("does not hand out the value when the audit event cannot be written", async () => {
      await withSecrets(createDatabase, async ({ db, masterKey }) => {
        const watch = leakWatch();
        const service = secretsServiceFactory({
          db,
          masterKey,
          audit: { append: async () => Promise.reject(new Error("audit log unavailable")) },
          authorizeReveal: async () => undefined,
        });
        await service.ensure("pg/app", watch.generator);
        await assert.rejects(service.reveal(systemContext("test"), "pg/app", "drill"), /audit log unavailable/);
      });
    });

    it("refuses a generator that returns nothing, without echoing it", async () => {
      await withSecrets(createDatabase, async ({ service }) => {
        await assert.rejects(
          service.ensure("pg/app", () => ""),
          /empty string/,
        );
        await assert.rejects(service.current("pg/app"), NotFoundError);
      });
    });
  });
});
