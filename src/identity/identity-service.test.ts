import assert from "node:assert/strict";
import { passwordSession, testMasterKey } from "../../test/identity-fixtures.js";
import { describe, it } from "node:test";
import {
  AUDIT_APPEND_INJECTED,
  refuseAuditAppends,
  createAuditHarness,
  recordChangeThrough,
} from "../../test/audit-fixtures.js";
import { readHeadSize } from "../audit/audit-store.js";
import { forEachStoreKind, type TTestDatabase } from "../../test/test-databases.js";
import { ConflictError, ForbiddenError, RateLimitedError, UnauthenticatedError } from "../lib/errors.js";
import { systemContext, type TRequestContext, type TRole } from "../lib/request-context.js";
import { migrations } from "../store/migrations/index.js";
import { tokenExpiryMigration } from "../store/migrations/0012-token-expiry.js";
import { migrate } from "../store/store-migrate.js";
import type { TSqlClient, TSqlExecutor } from "../store/store-types.js";
import { identityServiceFactory } from "./identity-service.js";
import type { TAuditAppend, TLoginLimits, TSessionLimits } from "./identity-types.js";

// --- test doubles (STYLE.md item 5: they live with the tests, never as branches in src/) ---

// Payloads are widened to plain records so tests can read any field of any event type.
type TRecordedEvent = {
  ctx: TRequestContext;
  event: { type: string; outcome: string; target: string | null; payload: Record<string, unknown> };
};

const recordingAudit = () => {
  const events: TRecordedEvent[] = [];
  /** Event types the log refuses for now, as a real log does when its database is unreachable. */
  const refusing = new Set<string>();
  const append: TAuditAppend = async (ctx, event) => {
    if (refusing.has(event.type)) throw new Error(`audit log unavailable for ${event.type}`);
    events.push({ ctx, event });
  };
  return {
    events,
    append,
    refusing,
    ofType: (type: string) => events.filter((recorded) => recorded.event.type === type),
  };
};

/** A clock the test moves by hand, so expiry and rate-limit windows are exact. */
const manualClock = (start = "2030-01-01T00:00:00Z") => {
  let current = new Date(start);
  return { now: () => current, advance: (ms: number) => (current = new Date(current.getTime() + ms)) };
};

const minutes = (count: number) => count * 60_000;
const anonymous = (sourceAddress = "203.0.113.7"): TRequestContext => ({
  actor: { kind: "anonymous" },
  requestId: "req-login",
  sourceAddress,
});
const meta = { requestId: "req-1", sourceAddress: "203.0.113.7" };
const admin = systemContext("test", "req-admin");
const strongPassword = "correct horse battery staple";

/** The secret part of a `chp_<id>_<secret>` token: everything after the second "_" (the secret may contain "_" itself). */
const tokenSecret = (token: string) => token.slice(token.indexOf("_", token.indexOf("_") + 1) + 1);

const assertNoSecretsIn = (events: readonly TRecordedEvent[], secrets: readonly string[]) => {
  const serialised = JSON.stringify(events);
  for (const secret of secrets) assert.ok(!serialised.includes(secret), "an audit event contains a secret");
};

type TSetup = {
  database: TTestDatabase;
  client: TSqlClient;
  audit: ReturnType<typeof recordingAudit>;
  clock: ReturnType<typeof manualClock>;
};

/** The recording double as the service takes it, its changes committed through `client`. */
const auditOn = (client: TSqlClient, audit: ReturnType<typeof recordingAudit>) => ({
  append: audit.append,
  recordChange: recordChangeThrough(client, audit.append),
});

const withIdentity = async (
  createDatabase: () => Promise<TTestDatabase>,
  options: { loginLimits?: Partial<TLoginLimits>; sessionLimits?: Partial<TSessionLimits> },
  body: (service: ReturnType<typeof identityServiceFactory>, setup: TSetup) => Promise<void>,
) => {
  const database = await createDatabase();
  try {
    const client = await database.open();
    const audit = recordingAudit();
    const clock = manualClock();
    const service = identityServiceFactory({
      db: client,
      masterKey: testMasterKey(),
      audit: auditOn(client, audit),
      now: clock.now,
      ...options,
    });
    await body(service, { database, client, audit, clock });
  } finally {
    await database.dispose();
  }
};

forEachStoreKind((kind, createDatabase) => {
  describe(`identity service on ${kind}`, () => {
    it("creates the admin once, with a password returned once and stored only as argon2id", () =>
      withIdentity(createDatabase, {}, async (service, { client, audit }) => {
        const first = await service.bootstrapAdmin(admin);
        assert.equal(first.created, true);
        assert.ok(first.created && first.password.length >= 20);
        const password = first.created ? first.password : "";
        assert.deepEqual(await service.bootstrapAdmin(admin), { created: false });

        const { rows } = await client.query<{ username: string; role: string; password_hash: string }>(
          "SELECT username, role, password_hash FROM users",
        );
        assert.equal(rows.length, 1);
        assert.equal(rows[0]!.role, "platform-admin");
        assert.match(rows[0]!.password_hash, /^\$argon2id\$/);
        const dump = JSON.stringify((await client.query("SELECT * FROM users")).rows);
        assert.ok(!dump.includes(password), "the password is stored in plain");

        const login = await passwordSession(service, anonymous(), { username: "admin", password });
        assert.equal(login.user.role, "platform-admin");
        assert.deepEqual(
          audit.ofType("user.created").map(({ event }) => event.payload),
          [{ username: "admin", role: "platform-admin", organizations: ["*"], bootstrap: true }],
        );
        assertNoSecretsIn(audit.events, [password, login.token, rows[0]!.password_hash]);
      }));

    it("mints a local CLI token for the new admin when asked, and only on the first start", () =>
      withIdentity(createDatabase, {}, async (service, { audit }) => {
        const first = await service.bootstrapAdmin(admin, { cliTokenName: "local-cli" });
        assert.ok(first.created && first.cliToken);
        const cli = await service.authenticate(first.cliToken.token, meta);
        assert.equal(cli.actor.kind === "user" && cli.actor.role, "platform-admin");
        assert.deepEqual(await service.bootstrapAdmin(admin, { cliTokenName: "local-cli" }), { created: false });
        assert.deepEqual(
          audit.events.map(({ event }) => event.type),
          ["user.created", "token.created"],
        );
        assertNoSecretsIn(audit.events, [first.password, first.cliToken.token]);
      }));

    it("creates exactly one admin when several replicas start at once", async () => {
      const database = await createDatabase();
      try {
        const replicas = await Promise.all([database.open(), database.open(), database.open(), database.open()]);
        const audit = recordingAudit();
        const results = await Promise.all(
          replicas.map((client) =>
            identityServiceFactory({
              db: client,
              masterKey: testMasterKey(),
              audit: auditOn(client, audit),
            }).bootstrapAdmin(admin),
          ),
        );
        assert.equal(results.filter((result) => result.created).length, 1);
        const { rows } = await replicas[0]!.query<{ count: number }>("SELECT count(*)::int AS count FROM users");
        assert.equal(rows[0]!.count, 1);
        assert.equal(audit.ofType("user.created").length, 1);
      } finally {
        await database.dispose();
      }
    });

    it("logs in, and refuses a wrong password and an unknown user with the same message", () =>
      withIdentity(createDatabase, {}, async (service, { audit }) => {
        await service.createUser(admin, {
          username: "Alice",
          role: "operator",
          organizations: ["*"],
          password: strongPassword,
        });
        const login = await passwordSession(service, anonymous(), { username: "alice", password: strongPassword });
        const ctx = await service.authenticate(login.token, meta);
        assert.deepEqual(ctx.actor, {
          kind: "user",
          userId: login.user.id,
          username: "alice",
          role: "operator",
          bindings: [{ role: "operator", organization: "*" }],
          tokenId: ctx.actor.kind === "user" ? ctx.actor.tokenId : "",
        });

        const wrong = await passwordSession(service, anonymous(), {
          username: "alice",
          password: "not the password",
        }).catch((error: unknown) => error);
        const unknown = await passwordSession(service, anonymous(), {
          username: "mallory",
          password: strongPassword,
        }).catch((error: unknown) => error);
        assert.ok(wrong instanceof UnauthenticatedError && unknown instanceof UnauthenticatedError);
        assert.equal(wrong.message, unknown.message);

        assert.equal(audit.ofType("auth.login.succeeded").length, 1);
        assert.equal(audit.ofType("auth.login.succeeded")[0]!.ctx.actor.kind, "user");
        assert.deepEqual(
          audit.ofType("auth.login.failed").map(({ event }) => [event.outcome, event.payload]),
          [
            ["failure", { username: "alice", reason: "wrong password" }],
            ["failure", { username: "mallory", reason: "unknown user" }],
          ],
        );
        assertNoSecretsIn(audit.events, [strongPassword, "not the password", login.token]);
      }));

    it("slows one source's guesses at a username with a doubling wait, and never locks the owner out", () =>
      withIdentity(createDatabase, {}, async (service, { audit, clock }) => {
        await service.createUser(admin, {
          username: "bob",
          organizations: ["*"],
          role: "platform-admin",
          password: strongPassword,
        });
        const attacker = anonymous("203.0.113.66");
        const guess = (attempt: number) =>
          assert.rejects(
            service.login(attacker, { username: "bob", password: `guess ${attempt}` }),
            UnauthenticatedError,
          );
        for (let attempt = 0; attempt < 5; attempt += 1) {
          clock.advance(1000);
          await guess(attempt);
        }
        // Even the right password waits at the attacker's address, 30 s after its last failure...
        clock.advance(1000);
        const limited = await passwordSession(service, attacker, { username: "BOB", password: strongPassword }).catch(
          (error: unknown) => error,
        );
        assert.ok(limited instanceof RateLimitedError);
        assert.equal(limited.retryAfterSeconds, 29);
        // ...while the owner, from an address that has not failed, signs in at once.
        await passwordSession(service, anonymous("198.51.100.20"), { username: "bob", password: strongPassword });

        // Each further failure doubles the wait: 30 s, 60 s, 120 s.
        for (const wait of [60, 120]) {
          clock.advance(29_000);
          await guess(wait);
          const next = await passwordSession(service, attacker, { username: "bob", password: "another guess" }).catch(
            (error: unknown) => error,
          );
          assert.ok(next instanceof RateLimitedError);
          assert.equal(next.retryAfterSeconds, wait);
          clock.advance(wait * 1000 - 29_000);
        }
        clock.advance(29_000);
        // The wait over, the right password gets in from there too, and starts that count again.
        await passwordSession(service, attacker, { username: "bob", password: strongPassword });
        await guess(8);
        assert.deepEqual(audit.ofType("auth.login.rate_limited").length, 0, "refusals inside a window are summarised");
      }));

    it("caps the wait, and counts a failure only for its window", () =>
      withIdentity(
        createDatabase,
        { loginLimits: { perSourceAndUsername: 1, baseDelaySeconds: 100, maxDelaySeconds: 250, windowSeconds: 600 } },
        async (service, { clock }) => {
          await service.createUser(admin, {
            username: "bert",
            organizations: ["*"],
            role: "viewer",
            password: strongPassword,
          });
          const attempt = () =>
            service
              .login(anonymous(), { username: "bert", password: "not it at all" })
              .catch((error: unknown) => error);
          const waits: number[] = [];
          for (let round = 0; round < 3; round += 1) {
            assert.ok((await attempt()) instanceof UnauthenticatedError);
            const refused = await attempt();
            assert.ok(refused instanceof RateLimitedError);
            waits.push(refused.retryAfterSeconds);
            clock.advance(refused.retryAfterSeconds * 1000);
          }
          assert.deepEqual(waits, [100, 200, 250]);
          // 600 s after the last failure none counts any more: the next failure is the first again.
          clock.advance(600_000);
          assert.ok((await attempt()) instanceof UnauthenticatedError);
          assert.equal(((await attempt()) as RateLimitedError).retryAfterSeconds, 100);
        },
      ));

    it("starts a source's count for a username again after a success", () =>
      withIdentity(createDatabase, { loginLimits: { perSourceAndUsername: 3 } }, async (service) => {
        await service.createUser(admin, {
          username: "carol",
          organizations: ["*"],
          role: "viewer",
          password: strongPassword,
        });
        const fail = () =>
          assert.rejects(
            service.login(anonymous(), { username: "carol", password: "wrong password!" }),
            UnauthenticatedError,
          );
        await fail();
        await fail();
        await passwordSession(service, anonymous(), { username: "carol", password: strongPassword });
        await fail();
        await fail();
        await passwordSession(service, anonymous(), { username: "carol", password: strongPassword });
      }));

    it("rate limits failures per source address, and a success does not reset that count", () =>
      withIdentity(createDatabase, { loginLimits: { perSource: 3 } }, async (service, { audit }) => {
        await service.createUser(admin, {
          username: "dave",
          organizations: ["*"],
          role: "viewer",
          password: strongPassword,
        });
        await assert.rejects(
          service.login(anonymous(), { username: "erin", password: "wrong password!" }),
          UnauthenticatedError,
        );
        await assert.rejects(
          service.login(anonymous(), { username: "frank", password: "wrong password!" }),
          UnauthenticatedError,
        );
        await passwordSession(service, anonymous(), { username: "dave", password: strongPassword });
        await assert.rejects(
          service.login(anonymous(), { username: "grace", password: "wrong password!" }),
          UnauthenticatedError,
        );
        await assert.rejects(
          service.login(anonymous(), { username: "dave", password: strongPassword }),
          RateLimitedError,
        );
        // Another address is not affected.
        await passwordSession(service, anonymous("198.51.100.9"), { username: "dave", password: strongPassword });
        const [refusal] = audit.ofType("auth.login.rate_limited");
        assert.deepEqual([refusal!.event.target, refusal!.event.payload.scope], ["source:203.0.113.7", "source"]);
      }));

    it("holds the limit when a burst of guesses arrives at several replicas at once", async () => {
      const database = await createDatabase();
      try {
        const replicas = await Promise.all([database.open(), database.open()]);
        const audit = recordingAudit();
        const services = replicas.map((client) =>
          identityServiceFactory({ db: client, masterKey: testMasterKey(), audit: auditOn(client, audit) }),
        );
        await services[0]!.createUser(admin, {
          username: "heidi",
          role: "viewer",
          organizations: ["*"],
          password: strongPassword,
        });
        const outcomes = await Promise.all(
          Array.from({ length: 12 }, (_, index) =>
            services[index % 2]!.login(anonymous(), { username: "heidi", password: `burst guess ${index}` }).catch(
              (error: unknown) => error,
            ),
          ),
        );
        assert.equal(outcomes.filter((outcome) => outcome instanceof UnauthenticatedError).length, 5);
        assert.equal(outcomes.filter((outcome) => outcome instanceof RateLimitedError).length, 7);
      } finally {
        await database.dispose();
      }
    });

    it("audits the first failure of a window on its own and the rest in one summary per window", () =>
      withIdentity(
        createDatabase,
        { loginLimits: { perSourceAndUsername: 3, perSource: 50, baseDelaySeconds: 10, windowSeconds: 600 } },
        async (service, { audit, clock, client }) => {
          await service.createUser(admin, {
            username: "carl",
            organizations: ["*"],
            role: "viewer",
            password: strongPassword,
          });
          const attacker = "203.0.113.99";
          const attempt = (sourceAddress: string, username: string, password = "a wrong password") =>
            service.login(anonymous(sourceAddress), { username, password }).catch((error: unknown) => error);
          for (let guess = 0; guess < 3; guess += 1)
            assert.ok((await attempt(attacker, "carl")) instanceof UnauthenticatedError);
          for (let refused = 0; refused < 4; refused += 1)
            assert.ok((await attempt(attacker, "carl")) instanceof RateLimitedError);
          clock.advance(10_000);
          assert.ok((await attempt(attacker, "carl")) instanceof UnauthenticatedError);
          // Another username from the attacker, and the owner mistyping elsewhere, are windows of their own.
          assert.ok((await attempt(attacker, "nobody")) instanceof UnauthenticatedError);
          assert.ok((await attempt("198.51.100.20", "carl")) instanceof UnauthenticatedError);
          const failed = () =>
            audit.ofType("auth.login.failed").map(({ ctx, event }) => [ctx.sourceAddress, event.payload.username]);
          assert.deepEqual(failed(), [
            [attacker, "carl"],
            [attacker, "nobody"],
            ["198.51.100.20", "carl"],
          ]);
          assert.deepEqual(audit.ofType("auth.login.rate_limited"), []);
          assert.equal(await service.summariseLoginFailures(), 0, "no window has closed yet");

          // A sign-in after the window closes writes nothing of it: the server's sweep writes its summary.
          clock.advance(600_000);
          await passwordSession(service, anonymous("192.0.2.50"), { username: "carl", password: strongPassword });
          assert.deepEqual(audit.ofType("auth.login.failures"), []);
          assert.equal(await service.summariseLoginFailures(), 1);
          const summaries = audit.ofType("auth.login.failures");
          assert.deepEqual(
            summaries.map(({ ctx, event }) => [
              ctx.actor,
              ctx.sourceAddress,
              event.outcome,
              event.target,
              event.payload,
            ]),
            [
              [
                { kind: "system", name: "login-monitor" },
                attacker,
                "failure",
                "user:carl",
                {
                  username: "carl",
                  failed: 3,
                  rateLimited: 4,
                  windowStart: "2030-01-01T00:00:00.000Z",
                  windowSeconds: 600,
                  firstAt: "2030-01-01T00:00:00.000Z",
                  lastAt: "2030-01-01T00:00:10.000Z",
                },
              ],
            ],
          );
          assert.equal(await service.summariseLoginFailures(), 0, "nothing is summarised twice");
          // The attempts that no longer count are gone from the table; the audit log keeps their record.
          const { rows } = await client.query<{ count: number }>(
            "SELECT count(*)::int AS count FROM login_attempts WHERE attempted_at < $1",
            [new Date("2030-01-01T00:01:00Z")],
          );
          assert.equal(rows[0]!.count, 0);
        },
      ));

    it("keeps a summary the audit log refused for the next sweep", () =>
      withIdentity(
        createDatabase,
        { loginLimits: { perSourceAndUsername: 50, windowSeconds: 60 } },
        async (service, { audit, clock }) => {
          for (let guess = 0; guess < 4; guess += 1) {
            await assert.rejects(service.login(anonymous(), { username: "dora", password: "not the one" }));
          }
          clock.advance(60_000);
          audit.refusing.add("auth.login.failures");
          await assert.rejects(service.summariseLoginFailures(), /audit log unavailable/);
          audit.refusing.clear();
          assert.equal(await service.summariseLoginFailures(), 1);
          assert.deepEqual(
            audit.ofType("auth.login.failures").map(({ event }) => [event.payload.failed, event.payload.rateLimited]),
            [[3, 0]],
          );
        },
      ));

    it("costs a sign-in the same however many sources wait for a summary, which the sweep writes in bounded batches", async () => {
      const database = await createDatabase();
      try {
        const client = await database.open();
        let transactions = 0;
        const counting = {
          query: client.query.bind(client),
          transaction: <T>(work: (tx: TSqlExecutor) => Promise<T>) => {
            transactions += 1;
            return client.transaction(work);
          },
        };
        const audit = recordingAudit();
        const clock = manualClock();
        const service = identityServiceFactory({
          db: counting,
          masterKey: testMasterKey(),
          audit: { append: audit.append, recordChange: recordChangeThrough(counting, audit.append) },
          now: clock.now,
          loginLimits: { perSourceAndUsername: 50, perSource: 50, windowSeconds: 60 },
        });
        await service.createUser(admin, {
          username: "olga",
          organizations: ["*"],
          role: "viewer",
          password: strongPassword,
        });
        const transactionsOf = async (work: () => Promise<unknown>) => {
          const before = transactions;
          await work();
          return transactions - before;
        };
        const signIn = (sourceAddress: string) =>
          service.login(anonymous(sourceAddress), { username: "olga", password: strongPassword });
        const quiet = await transactionsOf(() => signIn("192.0.2.1"));

        // Twelve sources, each with a failure audited on its own and one left for its window's summary.
        const sources = Array.from({ length: 12 }, (_, index) => `198.51.100.${index + 10}`);
        for (const sourceAddress of sources) {
          for (let guess = 0; guess < 2; guess += 1)
            await assert.rejects(
              service.login(anonymous(sourceAddress), { username: "olga", password: "a wrong guess" }),
              UnauthenticatedError,
            );
        }
        clock.advance(60_000);
        assert.equal(await transactionsOf(() => signIn("192.0.2.2")), quiet, "a sign-in does not sweep");
        assert.deepEqual(audit.ofType("auth.login.failures"), []);

        const batches: number[] = [];
        for (let sweep = 0; sweep < 4; sweep += 1) {
          assert.equal(
            await transactionsOf(async () => batches.push(await service.summariseLoginFailures(5))),
            1,
            "one transaction per sweep",
          );
        }
        assert.deepEqual(batches, [5, 5, 2, 0]);
        // Each summary as a per-source sweep wrote it: under its own source address, by the login monitor.
        assert.deepEqual(
          audit
            .ofType("auth.login.failures")
            .map(({ ctx, event }) => [ctx.actor, ctx.sourceAddress, event.outcome, event.target, event.payload])
            .sort((left, right) => String(left[1]).localeCompare(String(right[1]))),
          sources.map((sourceAddress) => [
            { kind: "system", name: "login-monitor" },
            sourceAddress,
            "failure",
            "user:olga",
            {
              username: "olga",
              failed: 1,
              rateLimited: 0,
              windowStart: "2030-01-01T00:00:00.000Z",
              windowSeconds: 60,
              firstAt: "2030-01-01T00:00:00.000Z",
              lastAt: "2030-01-01T00:00:00.000Z",
            },
          ]),
        );
      } finally {
        await database.dispose();
      }
    });

    it("renews the local CLI token only while it is still the current one: no successor for a token revoked meanwhile", () =>
      withIdentity(createDatabase, {}, async (service, { audit, clock }) => {
        const bootstrapped = await service.bootstrapAdmin(admin, { cliTokenName: "local-cli" });
        assert.ok(bootstrapped.created && bootstrapped.cliToken);
        const { cliToken } = bootstrapped;
        clock.advance(21 * 86_400_000);
        let kept: string | undefined;
        const renewed = await service.renewLocalCliToken(admin, cliToken.token, "local-cli", async (issued) => {
          kept = issued.token;
          // Between the renewal's check and its commit, someone revokes the token on purpose.
          await service.revokeToken(admin, cliToken.id);
        });
        assert.equal(renewed, undefined);
        assert.ok(kept !== undefined);
        assert.equal(await service.isCurrentLocalCliToken(kept, "local-cli"), false, "the kept successor is no token");
        await assert.rejects(service.authenticate(kept, meta), UnauthenticatedError);
        assert.deepEqual(
          (await service.listTokens(admin)).filter((token) => token.name === "local-cli"),
          [],
          "no local CLI token is active",
        );
        assert.deepEqual(
          audit.events.map(({ event }) => event.type),
          ["user.created", "token.created", "token.revoked"],
        );
      }));

    it("does not renew the local CLI token of a user disabled between the check and the commit", () =>
      withIdentity(createDatabase, {}, async (service, { audit, clock, client }) => {
        const bootstrapped = await service.bootstrapAdmin(admin, { cliTokenName: "local-cli" });
        assert.ok(bootstrapped.created && bootstrapped.cliToken);
        clock.advance(21 * 86_400_000);
        const renewed = await service.renewLocalCliToken(admin, bootstrapped.cliToken.token, "local-cli", async () => {
          // A disable that has committed while its revocation of this user's tokens has not reached this one
          // (its statement's snapshot predates it): written straight to the row, as only a race could leave it.
          await client.query("UPDATE users SET disabled_at = $1, disabled_by = 'test' WHERE username = 'admin'", [
            clock.now(),
          ]);
        });
        assert.equal(renewed, undefined);
        assert.deepEqual(
          audit.events.map(({ event }) => event.type),
          ["user.created", "token.created"],
        );
        const { rows } = await client.query<{ count: number }>(
          "SELECT count(*)::int AS count FROM auth_tokens WHERE revoked_at IS NULL",
        );
        assert.equal(rows[0]!.count, 1, "the old token is left as it was and no successor exists");
      }));

    it("commits nothing when the new local CLI token cannot be kept: the old one goes on working", () =>
      withIdentity(createDatabase, {}, async (service, { audit, clock }) => {
        const bootstrapped = await service.bootstrapAdmin(admin, { cliTokenName: "local-cli" });
        assert.ok(bootstrapped.created && bootstrapped.cliToken);
        clock.advance(21 * 86_400_000);
        await assert.rejects(
          service.renewLocalCliToken(admin, bootstrapped.cliToken.token, "local-cli", async () => {
            throw new Error("disk full (injected)");
          }),
          /disk full/,
        );
        assert.ok(await service.isCurrentLocalCliToken(bootstrapped.cliToken.token, "local-cli"));
        await service.authenticate(bootstrapped.cliToken.token, meta);
        assert.deepEqual(
          audit.events.map(({ event }) => event.type),
          ["user.created", "token.created"],
        );
        // Once the successor is kept, it replaces the old token, and is the current one.
        let kept: string | undefined;
        const renewed = await service.renewLocalCliToken(
          admin,
          bootstrapped.cliToken.token,
          "local-cli",
          async (issued) => {
            kept = issued.token;
          },
        );
        assert.equal(renewed?.token, kept);
        assert.ok(kept !== undefined && (await service.isCurrentLocalCliToken(kept, "local-cli")));
        assert.equal(await service.isCurrentLocalCliToken(bootstrapped.cliToken.token, "local-cli"), false);
      }));

    it("creates an API token shown once, authenticates with it, and refuses it once revoked", () =>
      withIdentity(createDatabase, {}, async (service, { audit, client }) => {
        await service.createUser(admin, {
          username: "ivan",
          role: "auditor",
          organizations: ["*"],
          password: strongPassword,
        });
        const session = await passwordSession(service, anonymous(), { username: "ivan", password: strongPassword });
        const ivan = await service.authenticate(`Bearer ${session.token}`, meta);
        const created = await service.createToken(ivan, { name: "evidence export", expiresInDays: 30 });
        assert.match(created.token, /^chp_/);

        const viaToken = await service.authenticate(created.token, meta);
        assert.deepEqual(viaToken.actor, {
          kind: "user",
          userId: session.user.id,
          username: "ivan",
          role: "auditor",
          bindings: [{ role: "auditor", organization: "*" }],
          tokenId: created.id,
        });
        const listed = await service.listTokens(viaToken);
        assert.deepEqual(listed.map((token) => [token.kind, token.name]).sort(), [
          ["api", "evidence export"],
          ["session", null],
        ]);
        assert.ok(!JSON.stringify(listed).includes(tokenSecret(created.token)));
        const stored = JSON.stringify((await client.query("SELECT * FROM auth_tokens")).rows);
        assert.ok(!stored.includes(tokenSecret(created.token)), "the token secret is stored in plain");

        await service.revokeToken(ivan, created.id);
        await assert.rejects(service.authenticate(created.token, meta), UnauthenticatedError);
        // A revoked token presented again looks like replay of a leaked credential: recorded.
        assert.deepEqual(
          audit.ofType("auth.token_rejected").map(({ event }) => event.payload),
          [{ tokenId: created.id, owner: "ivan", reason: "revoked" }],
        );
        await assert.rejects(service.revokeToken(ivan, created.id), ConflictError);
        assert.deepEqual(audit.ofType("token.revoked")[0]!.event.payload, {
          tokenId: created.id,
          kind: "api",
          name: "evidence export",
          owner: "ivan",
        });
        assertNoSecretsIn(audit.events, [strongPassword, session.token, created.token, tokenSecret(created.token)]);
      }));

    it("gives API tokens issued before lifetimes existed their role's default one, on upgrade", () =>
      withIdentity(createDatabase, {}, async (service, { client }) => {
        const { user: ops } = await service.createUser(admin, {
          username: "olaf",
          organizations: ["*"],
          role: "operator",
          password: strongPassword,
        });
        const { user: reader } = await service.createUser(admin, {
          username: "rhea",
          organizations: ["*"],
          role: "viewer",
          password: strongPassword,
        });
        // The database as the previous release left it: expires_at optional, the token-expiry migration not applied.
        await client.exec("ALTER TABLE auth_tokens ALTER COLUMN expires_at DROP NOT NULL");
        await client.query("DELETE FROM schema_migrations WHERE id = $1", [tokenExpiryMigration.id]);
        for (const [id, userId] of [
          ["a".repeat(24), ops.id],
          ["b".repeat(24), reader.id],
        ] as const) {
          await client.query(
            `INSERT INTO auth_tokens (id, user_id, kind, name, secret_sha256, created_at, created_from, expires_at)
             VALUES ($1, $2, 'api', 'old', $3, $4, 'test', NULL)`,
            [id, userId, "0".repeat(64), new Date("2020-01-01T00:00:00Z")],
          );
        }
        const before = Date.now();
        assert.deepEqual(await migrate(client, migrations), { applied: [`${tokenExpiryMigration.id}-token-expiry`] });
        const { rows } = await client.query<{ id: string; expires_at: Date }>(
          "SELECT id, expires_at FROM auth_tokens ORDER BY id",
        );
        const daysFromUpgrade = rows.map((row) => Math.round((row.expires_at.getTime() - before) / 86_400_000));
        assert.deepEqual(daysFromUpgrade, [30, 90]);
        await assert.rejects(
          client.query("UPDATE auth_tokens SET expires_at = NULL WHERE id = $1", ["a".repeat(24)]),
          /null/i,
        );
      }));

    it("refuses unknown, malformed and tampered tokens with one neutral message", () =>
      withIdentity(createDatabase, {}, async (service, { audit }) => {
        await service.createUser(admin, {
          username: "judy",
          role: "viewer",
          organizations: ["*"],
          password: strongPassword,
        });
        const { token } = await passwordSession(service, anonymous(), { username: "judy", password: strongPassword });
        const tampered = `${token.slice(0, -2)}${token.endsWith("AA") ? "BB" : "AA"}`;
        const messages = new Set<string>();
        for (const bad of [undefined, "", "garbage", tampered, `chp_${"0".repeat(24)}_${"A".repeat(43)}`]) {
          const error = await service.authenticate(bad, meta).catch((caught: unknown) => caught);
          assert.ok(error instanceof UnauthenticatedError);
          messages.add(error.message);
        }
        assert.deepEqual([...messages], ["invalid or expired credentials"]);
        assert.deepEqual(
          audit
            .ofType("auth.token_rejected")
            .map(({ ctx, event }) => [ctx.actor.kind, event.payload.owner, event.payload.reason]),
          [["anonymous", "judy", "wrong secret"]],
        );
        assertNoSecretsIn(audit.events, [token, tampered]);
      }));

    it("ends sessions at their absolute expiry and after idling, and API tokens at theirs", () =>
      withIdentity(
        createDatabase,
        { sessionLimits: { absoluteHours: 2, idleMinutes: 30 } },
        async (service, { clock }) => {
          await service.createUser(admin, {
            username: "kim",
            role: "viewer",
            organizations: ["*"],
            password: strongPassword,
          });
          const active = await passwordSession(service, anonymous(), { username: "kim", password: strongPassword });
          const idle = await passwordSession(service, anonymous(), { username: "kim", password: strongPassword });
          const kim = await service.authenticate(active.token, meta);
          const api = await service.createToken(kim, { name: "dashboard", expiresInDays: 1 });
          for (let step = 0; step < 5; step += 1) {
            clock.advance(minutes(20));
            await service.authenticate(active.token, meta);
          }
          await assert.rejects(service.authenticate(idle.token, meta), UnauthenticatedError);
          clock.advance(minutes(20)); // 2 h after log-in: over, however active
          await assert.rejects(service.authenticate(active.token, meta), UnauthenticatedError);
          await service.authenticate(api.token, meta);
          clock.advance(24 * 60 * minutes(1));
          await assert.rejects(service.authenticate(api.token, meta), UnauthenticatedError);
        },
      ));

    it("writes last_used_at at most once a minute", () =>
      withIdentity(createDatabase, {}, async (service, { client, clock }) => {
        await service.createUser(admin, {
          username: "leo",
          role: "viewer",
          organizations: ["*"],
          password: strongPassword,
        });
        const { token } = await passwordSession(service, anonymous(), { username: "leo", password: strongPassword });
        const lastUsed = async () =>
          (
            await client.query<{ last_used_at: Date | null }>("SELECT last_used_at FROM auth_tokens")
          ).rows[0]!.last_used_at?.toISOString();
        await service.authenticate(token, meta);
        const first = await lastUsed();
        assert.equal(first, clock.now().toISOString());
        clock.advance(30_000);
        await service.authenticate(token, meta);
        assert.equal(await lastUsed(), first);
        clock.advance(30_000);
        await service.authenticate(token, meta);
        assert.equal(await lastUsed(), clock.now().toISOString());
      }));

    it("stops a disabled user's sessions, tokens and log-ins", () =>
      withIdentity(createDatabase, {}, async (service, { audit }) => {
        await service.createUser(admin, {
          username: "mia",
          role: "operator",
          organizations: ["*"],
          password: strongPassword,
        });
        const session = await passwordSession(service, anonymous(), { username: "mia", password: strongPassword });
        const api = await service.createToken(await service.authenticate(session.token, meta), { name: "ci" });
        const disabled = await service.disableUser(admin, "mia");
        assert.equal(disabled.disabled, true);
        await assert.rejects(service.authenticate(session.token, meta), UnauthenticatedError);
        await assert.rejects(service.authenticate(api.token, meta), UnauthenticatedError);
        await assert.rejects(
          service.login(anonymous(), { username: "mia", password: strongPassword }),
          /invalid username or password/,
        );
        assert.deepEqual(audit.ofType("user.disabled")[0]!.event.payload, { username: "mia", revokedTokenCount: 2 });
        assert.equal(audit.ofType("auth.login.failed").at(-1)!.event.payload.reason, "user disabled");
      }));

    it("enforces each role in the service and audits every denial", () =>
      withIdentity(createDatabase, {}, async (service, { audit }) => {
        const signIn = async (username: string, role: TRole) => {
          await service.createUser(admin, { username, role, organizations: ["*"], password: strongPassword });
          const { token } = await passwordSession(service, anonymous(), { username, password: strongPassword });
          return service.authenticate(token, meta);
        };
        const auditor = await signIn("olga", "auditor");
        const viewer = await signIn("pete", "viewer");
        const operator = await signIn("quinn", "operator");

        assert.equal((await service.listUsers(auditor)).length, 3);
        await assert.rejects(service.listUsers(viewer), ForbiddenError);
        await assert.rejects(
          service.createUser(auditor, { username: "rita", role: "platform-admin", organizations: ["*"] }),
          ForbiddenError,
        );
        await assert.rejects(service.setRole(operator, "quinn", "platform-admin"), ForbiddenError);
        await assert.rejects(service.disableUser(viewer, "olga"), ForbiddenError);
        await assert.rejects(service.listTokens(operator, { allUsers: true }), ForbiddenError);
        const auditorToken = await service.createToken(auditor, { name: "export" });
        await assert.rejects(service.revokeToken(operator, auditorToken.id), ForbiddenError);

        const denied = audit
          .ofType("access.denied")
          .map(({ ctx, event }) => [
            ctx.actor.kind === "user" ? ctx.actor.username : "?",
            event.payload.permission,
            event.outcome,
          ]);
        assert.deepEqual(denied, [
          ["pete", "user:read", "denied"],
          ["olga", "user:manage", "denied"],
          ["quinn", "user:manage", "denied"],
          ["pete", "user:manage", "denied"],
          ["quinn", "token:manage-any", "denied"],
          ["quinn", "token:manage-any", "denied"],
        ]);
        // Denied actions changed nothing.
        assert.deepEqual(
          (await service.listUsers(admin)).map((user) => [user.username, user.role, user.disabled]),
          [
            ["olga", "auditor", false],
            ["pete", "viewer", false],
            ["quinn", "operator", false],
          ],
        );
        await service.authenticate(auditorToken.token, meta);
      }));

    it("manages users: generated initial password, role changes, and never losing the last admin", () =>
      withIdentity(createDatabase, {}, async (service, { audit }) => {
        const bootstrap = await service.bootstrapAdmin(admin);
        const created = await service.createUser(admin, { username: "sam", role: "viewer", organizations: ["*"] });
        assert.ok(created.initialPassword && created.initialPassword.length >= 20);
        await passwordSession(service, anonymous(), { username: "sam", password: created.initialPassword });
        await assert.rejects(
          service.createUser(admin, {
            username: "sam",
            role: "viewer",
            organizations: ["*"],
            password: strongPassword,
          }),
          ConflictError,
        );
        await assert.rejects(
          service.createUser(admin, { username: "tess", role: "viewer", organizations: ["*"], password: "tess" }),
          /policy/,
        );

        await assert.rejects(service.setRole(admin, "admin", "viewer"), /last enabled platform-admin/);
        await assert.rejects(service.disableUser(admin, "admin"), /last enabled platform-admin/);
        const promoted = await service.setRole(admin, "sam", "platform-admin");
        assert.equal(promoted.role, "platform-admin");
        await service.setRole(admin, "admin", "auditor");
        assert.deepEqual(
          audit.ofType("user.role_changed").map(({ event }) => event.payload),
          [
            { username: "sam", from: "viewer", to: "platform-admin" },
            { username: "admin", from: "platform-admin", to: "auditor" },
          ],
        );
        assertNoSecretsIn(audit.events, [
          created.initialPassword,
          bootstrap.created ? bootstrap.password : "unreachable",
        ]);
      }));

    it("logs out a session and records it", () =>
      withIdentity(createDatabase, {}, async (service, { audit }) => {
        await service.createUser(admin, {
          username: "uma",
          role: "approver",
          organizations: ["*"],
          password: strongPassword,
        });
        const { token } = await passwordSession(service, anonymous(), { username: "uma", password: strongPassword });
        const uma = await service.authenticate(token, meta);
        await service.logout(uma);
        await assert.rejects(service.authenticate(token, meta), UnauthenticatedError);
        assert.equal(audit.ofType("auth.logout").length, 1);
        assertNoSecretsIn(audit.events, [strongPassword, token]);
      }));

    it("commits no user, binding, token or session whose audit entry fails to append, on the real log", async () => {
      const harness = await createAuditHarness(createDatabase);
      try {
        const service = identityServiceFactory({ db: harness.db, masterKey: testMasterKey(), audit: harness.log });
        await service.createUser(admin, {
          username: "olga",
          role: "operator",
          organizations: ["acme"],
          password: strongPassword,
        });
        const signIn = async () =>
          service.authenticate(
            (await passwordSession(service, anonymous(), { username: "olga", password: strongPassword })).token,
            meta,
          );
        const olga = await signIn();
        const count = async (sql: string) =>
          (await harness.db.query<{ count: number }>(`SELECT count(*)::int AS count FROM ${sql}`)).rows[0]!.count;
        const olgaNow = async () => (await service.listUsers(admin)).find((user) => user.username === "olga")!;
        const sessions = await count("auth_tokens WHERE kind = 'session' AND revoked_at IS NULL");
        const head = await readHeadSize(harness.db);

        // The append itself fails, as a full disk or a lost connection would make it.
        const allowAuditAppends = await refuseAuditAppends(harness.database);
        const injected = AUDIT_APPEND_INJECTED;
        await assert.rejects(
          service.createUser(admin, {
            username: "pia",
            role: "viewer",
            organizations: ["*"],
            password: strongPassword,
          }),
          injected,
        );
        assert.equal(await count("users WHERE username = 'pia'"), 0, "a user was created without its entry");
        await assert.rejects(service.grantOrganizations(admin, "olga", ["beta"]), injected);
        await assert.rejects(service.revokeOrganizations(admin, "olga", ["acme"]), injected);
        await assert.rejects(service.setRole(admin, "olga", "viewer"), injected);
        await assert.rejects(service.disableUser(admin, "olga"), injected);
        assert.deepEqual(
          [(await olgaNow()).organizations, (await olgaNow()).role, (await olgaNow()).disabled],
          [["acme"], "operator", false],
          "a binding, role or disable committed without its entry",
        );
        await assert.rejects(service.createToken(olga, { name: "ci" }), injected);
        assert.equal(await count("auth_tokens WHERE kind = 'api'"), 0, "a token was issued without its entry");
        assert.ok(olga.actor.kind === "user" && olga.actor.tokenId !== undefined);
        await assert.rejects(service.revokeToken(olga, olga.actor.tokenId), injected);
        await assert.rejects(service.logout(olga), injected);
        await assert.rejects(signIn(), injected);
        assert.equal(
          await count("auth_tokens WHERE kind = 'session' AND revoked_at IS NULL"),
          sessions,
          "a session began or ended without its entry",
        );
        assert.equal(await readHeadSize(harness.db), head);

        await allowAuditAppends();
        await service.createUser(admin, {
          username: "pia",
          role: "viewer",
          organizations: ["*"],
          password: strongPassword,
        });
        await service.grantOrganizations(admin, "olga", ["beta"]);
        assert.deepEqual(
          (await harness.log.list({ limit: 100 }))
            .map((item) => item.entry.type)
            .filter((type) => type.startsWith("user.")),
          ["user.created", "user.created", "user.access_granted"],
        );
        assert.equal((await harness.log.verify()).ok, true);
      } finally {
        await harness.dispose();
      }
    });
  });
});
