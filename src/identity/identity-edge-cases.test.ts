// The identity service's edges: what the audit log will accept, what never reaches it, which
// refusals name which field, who may act on whose tokens. One database per store kind serves the
// whole suite (PGlite costs seconds to open); every test uses its own usernames and source
// addresses, and the bootstrap test, which needs an empty database, runs first.
import assert from "node:assert/strict";
import { passwordSession, testMasterKey } from "../../test/identity-fixtures.js";
import { after, before, describe, it } from "node:test";
import { recordChangeThrough } from "../../test/audit-fixtures.js";
import { forEachStoreKind, type TTestDatabase } from "../../test/test-databases.js";
import { pendingEntryOf } from "../audit/audit-entry.js";
import type { TAuditEvent } from "../audit/audit-types.js";
import {
  ConflictError,
  type DomainError,
  ForbiddenError,
  NotFoundError,
  RateLimitedError,
  UnauthenticatedError,
  ValidationError,
} from "../lib/errors.js";
import { roles, systemContext, type TActor, type TRequestContext, type TRole } from "../lib/request-context.js";
import type { TSqlClient } from "../store/store-types.js";
import { authorize, can, type Permission } from "./identity-permissions.js";
import { identityServiceFactory } from "./identity-service.js";
import type { TIdentityAuditEventType, TLoginLimits, TSessionLimits } from "./identity-types.js";

type TRecorded = { ctx: TRequestContext; event: TAuditEvent };

/**
 * Records every event and also runs it through the audit log's own validation (catalogue schema,
 * secret-named keys), so an event the real log would refuse is caught here too.
 */
const recordingAudit = () => {
  const events: TRecorded[] = [];
  const refused: { type: string; message: string }[] = [];
  return {
    events,
    refused,
    append: async (ctx: TRequestContext, event: TAuditEvent) => {
      events.push({ ctx, event });
      try {
        pendingEntryOf(ctx, event, new Date());
      } catch (error) {
        refused.push({ type: event.type, message: (error as Error).message });
      }
    },
    ofType: <K extends TAuditEvent["type"]>(type: K) =>
      events.filter(
        (recorded): recorded is { ctx: TRequestContext; event: Extract<TAuditEvent, { type: K }> } =>
          recorded.event.type === type,
      ),
  };
};

const manualClock = (start = "2030-06-01T08:00:00Z") => {
  let current = new Date(start);
  return { now: () => current, advance: (ms: number) => void (current = new Date(current.getTime() + ms)) };
};

const seconds = (count: number) => count * 1000;
const days = (count: number) => count * 86_400_000;
const minutes = (count: number) => count * 60_000;
const admin = systemContext("test", "req-admin");
const meta = { requestId: "req-auth", sourceAddress: "192.0.2.1" };
const from = (sourceAddress: string): TRequestContext => ({
  actor: { kind: "anonymous" },
  requestId: "req-login",
  sourceAddress,
});

/** Expects a rejection of `type` and hands it back for further checks. */
const refusal = async <T extends Error>(promise: Promise<unknown>, type: new (...args: never[]) => T): Promise<T> => {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  assert.ok(error instanceof type, `expected ${type.name}, got ${String(error)}`);
  return error;
};

// chp_<24 hex id>_<secret>; the secret is base64url and may itself contain "_".
const idOf = (token: string) => token.slice(4, 28);
const secretOf = (token: string) => token.slice(29);

const fieldsOf = (error: DomainError) => error.details.map((detail) => detail.path);

forEachStoreKind((kind, createDatabase) => {
  describe(`identity edge cases on ${kind}`, () => {
    let database: TTestDatabase;
    let db: TSqlClient;
    // Every password and token any test sees, and every event and error message any test caused:
    // the last test checks that none of the first appears in the others.
    const secrets: string[] = [];
    const allEvents: TRecorded[] = [];
    const errorMessages: string[] = [];

    before(async () => {
      database = await createDatabase();
      db = await database.open();
    });
    after(async () => {
      await database.dispose();
    });

    const setup = (
      options: {
        loginLimits?: Partial<TLoginLimits>;
        sessionLimits?: Partial<TSessionLimits>;
        client?: TSqlClient;
      } = {},
    ) => {
      const audit = recordingAudit();
      const clock = manualClock();
      const client = options.client ?? db;
      const service = identityServiceFactory({
        db: client,
        masterKey: testMasterKey(),
        audit: { append: audit.append, recordChange: recordChangeThrough(client, audit.append) },
        now: clock.now,
        ...options,
      });
      const track = <T>(promise: Promise<T>): Promise<T> =>
        promise.catch((error: unknown) => {
          errorMessages.push(String(error), JSON.stringify((error as DomainError).details ?? []));
          throw error;
        });
      const newUser = async (username: string, role: TRole) => {
        const password = `${username} long enough password`;
        secrets.push(password);
        await service.createUser(admin, { username, role, organizations: ["*"], password });
        return password;
      };
      const signIn = async (username: string, role: TRole, sourceAddress = "198.51.100.1") => {
        const password = await newUser(username, role);
        const session = await passwordSession(service, from(sourceAddress), { username, password });
        secrets.push(session.token);
        return { password, session, ctx: await service.authenticate(session.token, meta) };
      };
      return { audit, clock, service, track, newUser, signIn, done: () => allEvents.push(...audit.events) };
    };

    // Every event identity records must pass the real audit log's checks.
    const assertAccepted = (audit: ReturnType<typeof recordingAudit>) => assert.deepEqual(audit.refused, []);

    it("bootstrap: refuses a bad CLI token name before creating admin (its password would be lost)", async () => {
      const { service, audit, track, done } = setup();
      const error = await refusal(
        track(service.bootstrapAdmin(admin, { cliTokenName: "local cli!" })),
        ValidationError,
      );
      assert.deepEqual(fieldsOf(error), ["name"]);
      const { rows } = await db.query("SELECT 1 FROM users UNION ALL SELECT 1 FROM identity_bootstrap");
      assert.equal(rows.length, 0);
      assert.equal(audit.events.length, 0);
      done();
    });

    it("bootstrap: two replicas at once create one admin, one CLI token, and store no password", async () => {
      const { service, audit, done } = setup();
      // A second client is a second replica on PostgreSQL; PGlite has one connection per process.
      const replica = setup({ client: await database.open() });
      const results = await Promise.all([
        service.bootstrapAdmin(admin, { cliTokenName: "local-cli" }),
        replica.service.bootstrapAdmin(admin, { cliTokenName: "local-cli" }),
      ]);
      const created = results.filter((result) => result.created);
      assert.equal(created.length, 1);
      const [first] = created;
      assert.ok(first?.created && first.cliToken);
      secrets.push(first.password, first.cliToken.token);
      assert.deepEqual(await service.bootstrapAdmin(admin, { cliTokenName: "local-cli" }), { created: false });

      const cli = await service.authenticate(first.cliToken.token, meta);
      assert.deepEqual(cli.actor, {
        kind: "user",
        userId: cli.actor.kind === "user" ? cli.actor.userId : "",
        username: "admin",
        role: "platform-admin",
        bindings: [{ role: "platform-admin", organization: "*" }],
        tokenId: first.cliToken.id,
      });

      const users = await db.query<{ username: string; role: string; password_hash: string }>(
        "SELECT username, role, password_hash FROM users",
      );
      assert.deepEqual(
        users.rows.map((row) => [row.username, row.role]),
        [["admin", "platform-admin"]],
      );
      assert.ok(users.rows[0]!.password_hash.startsWith("$argon2id$"));
      for (const table of ["users", "auth_tokens", "identity_bootstrap", "login_attempts"]) {
        const dump = JSON.stringify((await db.query(`SELECT * FROM ${table}`)).rows);
        assert.ok(!dump.includes(first.password), `the admin password is in ${table}`);
        assert.ok(!dump.includes(secretOf(first.cliToken.token)), `the CLI token secret is in ${table}`);
      }
      const events = [...audit.events, ...replica.audit.events].map(({ event }) => [event.type, event.target]);
      assert.deepEqual(events, [
        ["user.created", "user:admin"],
        ["token.created", `token:${first.cliToken.id}`],
      ]);
      assertAccepted(audit);
      assertAccepted(replica.audit);
      done();
      replica.done();
    });

    it("login: every refusal has the same message, the audit event has the real reason and no password", async () => {
      const { service, audit, track, newUser, done } = setup();
      const password = await newUser("lena", "viewer");
      await newUser("lars", "viewer");
      await service.disableUser(admin, "lars");
      const typedIntoUsername = "Tr0ub4dor&3 staple";
      secrets.push(typedIntoUsername);
      const attempts: [string, string, string][] = [
        ["lena", "lena wrong password", "wrong password"],
        ["nobody", password, "unknown user"],
        ["lars", "lars long enough password", "user disabled"],
        [typedIntoUsername, password, "unknown user"],
      ];
      const messages = new Set<string>();
      for (const [username, guess, _reason] of attempts) {
        const error = await refusal(
          track(service.login(from("198.51.100.20"), { username, password: guess })),
          UnauthenticatedError,
        );
        messages.add(error.message);
      }
      assert.deepEqual([...messages], ["invalid username or password"]);
      assert.deepEqual(
        audit
          .ofType("auth.login.failed")
          .map(({ ctx, event }) => [ctx.actor.kind, event.outcome, event.target, event.payload]),
        attempts.map(([username, , reason]) => {
          const shown = username === typedIntoUsername ? "(invalid username)" : username;
          return ["anonymous", "failure", `user:${shown}`, { username: shown, reason }];
        }),
      );
      const ok = await passwordSession(service, from("198.51.100.20"), { username: " LENA ", password });
      secrets.push(ok.token);
      assert.equal(ok.user.username, "lena");
      assert.ok(!("passwordHash" in ok.user));
      const [succeeded] = audit.ofType("auth.login.succeeded");
      assert.equal(
        succeeded?.ctx.actor.kind === "user" && succeeded.ctx.actor.tokenId,
        succeeded?.event.payload.sessionId,
      );
      const authenticated = await service.authenticate(`Bearer ${ok.token}`, meta);
      assert.equal(authenticated.actor.kind === "user" && authenticated.actor.username, "lena");
      assertAccepted(audit);
      done();
    });

    it("rate limit per source and username: refuses even the right password there, never from elsewhere", async () => {
      const { service, audit, clock, track, newUser, done } = setup({
        loginLimits: { perSourceAndUsername: 2, perSource: 50, baseDelaySeconds: 40, windowSeconds: 60 },
      });
      const password = await newUser("rosa", "viewer");
      for (let guess = 0; guess < 2; guess += 1) {
        await refusal(
          track(service.login(from("198.51.100.30"), { username: "rosa", password: "rosa guessed wrong" })),
          UnauthenticatedError,
        );
        clock.advance(seconds(10));
      }
      const limited = await refusal(
        track(service.login(from("198.51.100.30"), { username: "Rosa", password })),
        RateLimitedError,
      );
      assert.equal(limited.retryAfterSeconds, 30);
      // Other addresses are not held back, whoever guessed at the account.
      for (const address of ["198.51.100.31", "198.51.100.32"])
        secrets.push((await passwordSession(service, from(address), { username: "rosa", password })).token);
      // Refused attempts do not extend the wait.
      clock.advance(seconds(29));
      await refusal(track(service.login(from("198.51.100.30"), { username: "rosa", password })), RateLimitedError);
      clock.advance(seconds(1));
      secrets.push((await passwordSession(service, from("198.51.100.30"), { username: "rosa", password })).token);
      assert.deepEqual(
        audit.ofType("auth.login.failed").map(({ event }) => [event.outcome, event.target, event.payload]),
        [["failure", "user:rosa", { username: "rosa", reason: "wrong password" }]],
      );
      assertAccepted(audit);
      done();
    });

    it("rate limit per source address: a spray across usernames is refused, and audited once per window", async () => {
      const { service, audit, clock, track, newUser, done } = setup({
        loginLimits: { perSourceAndUsername: 50, perSource: 3, baseDelaySeconds: 120, windowSeconds: 120 },
      });
      const password = await newUser("sven", "viewer");
      for (const username of ["sara", "sam", "sid"]) {
        await refusal(
          track(service.login(from("203.0.113.66"), { username, password: "spray password 1" })),
          UnauthenticatedError,
        );
      }
      for (const username of ["sven", "sue", "saul", "sean", "sonja"]) {
        const limited = await refusal(
          track(service.login(from("203.0.113.66"), { username, password })),
          RateLimitedError,
        );
        assert.equal(limited.retryAfterSeconds, 120);
      }
      assert.deepEqual(
        audit.ofType("auth.login.rate_limited").map(({ event }) => [event.target, event.payload]),
        [["source:203.0.113.66", { username: "sven", scope: "source", retryAfterSeconds: 120 }]],
      );
      assert.equal(audit.ofType("auth.login.failed").length, 3);
      secrets.push((await passwordSession(service, from("203.0.113.67"), { username: "sven", password })).token);
      clock.advance(seconds(120));
      secrets.push((await passwordSession(service, from("203.0.113.66"), { username: "sven", password })).token);
      await service.summariseLoginFailures();
      // The suite shares one database: the sweep may also close other tests' windows, so look at this source's.
      assert.deepEqual(
        audit
          .ofType("auth.login.failures")
          .filter(({ ctx }) => ctx.sourceAddress === "203.0.113.66")
          .map(({ ctx, event }) => [ctx.sourceAddress, event.target, event.payload]),
        [
          [
            "203.0.113.66",
            "source:203.0.113.66",
            {
              username: null,
              failed: 0,
              rateLimited: 4,
              windowStart: "2030-06-01T08:00:00.000Z",
              windowSeconds: 120,
              firstAt: "2030-06-01T08:00:00.000Z",
              lastAt: "2030-06-01T08:00:00.000Z",
            },
          ],
        ],
      );
      assertAccepted(audit);
      done();
    });

    it("sessions: idle timeout, absolute expiry, logout; listTokens shows only sessions that still work", async () => {
      const { service, audit, clock, track, signIn, done } = setup({
        sessionLimits: { absoluteHours: 1, idleMinutes: 10 },
      });
      const { password, session: busy, ctx } = await signIn("tess", "operator");
      const idle = await passwordSession(service, from("198.51.100.1"), { username: "tess", password });
      const leaving = await passwordSession(service, from("198.51.100.1"), { username: "tess", password });
      secrets.push(idle.token, leaving.token);
      assert.equal(busy.expiresAt.getTime(), clock.now().getTime() + minutes(60));

      await service.logout(await service.authenticate(leaving.token, meta));
      await refusal(track(service.authenticate(leaving.token, meta)), UnauthenticatedError);
      assert.deepEqual(
        audit.ofType("auth.logout").map(({ event }) => event.payload),
        [{ username: "tess", sessionId: idOf(leaving.token) }],
      );

      clock.advance(minutes(9));
      await service.authenticate(busy.token, meta);
      clock.advance(minutes(2)); // idle has been unused for 11 minutes, busy for 2
      assert.deepEqual(
        (await service.listTokens(ctx)).map((token) => token.id),
        [idOf(busy.token)],
      );
      await service.authenticate(busy.token, meta);
      await refusal(track(service.authenticate(idle.token, meta)), UnauthenticatedError);
      for (let step = 0; step < 5; step += 1) {
        clock.advance(minutes(9));
        await service.authenticate(busy.token, meta);
      }
      clock.advance(minutes(4)); // 60 minutes after log-in, used 4 minutes ago
      await refusal(track(service.authenticate(busy.token, meta)), UnauthenticatedError);
      assert.deepEqual(
        audit.ofType("auth.token_rejected").map(({ event }) => event.payload.reason),
        ["revoked", "idle", "expired"],
      );
      assertAccepted(audit);
      done();
    });

    it("logout needs a session: an API token or a system actor has none", async () => {
      const { service, track, signIn, done } = setup();
      const { ctx } = await signIn("uwe", "viewer");
      const api = await service.createToken(ctx, { name: "uwe laptop" });
      secrets.push(api.token);
      await refusal(track(service.logout(await service.authenticate(api.token, meta))), ValidationError);
      await refusal(track(service.logout(admin)), ValidationError);
      await service.authenticate(api.token, meta);
      done();
    });

    it("API tokens: validated, shown once, listed without secret or hash, revoked, tampered and expired refused", async () => {
      const { service, audit, clock, track, signIn, done } = setup();
      const { ctx, session } = await signIn("vera", "auditor");
      for (const [input, field] of [
        [{ name: "" }, "name"],
        [{ name: "has/slash" }, "name"],
        [{ name: "x".repeat(65) }, "name"],
        [{ name: "ok", expiresInDays: 0 }, "expiresInDays"],
        [{ name: "ok", expiresInDays: 1.5 }, "expiresInDays"],
        [{ name: "ok", expiresInDays: 3651 }, "expiresInDays"],
      ] as const) {
        assert.deepEqual(fieldsOf(await refusal(track(service.createToken(ctx, input)), ValidationError)), [field]);
      }
      clock.advance(seconds(1));
      const forever = await service.createToken(ctx, { name: "evidence export" });
      clock.advance(seconds(1));
      const daily = await service.createToken(ctx, { name: "daily", expiresInDays: 1 });
      secrets.push(forever.token, daily.token);
      assert.equal(idOf(forever.token), forever.id);
      // Nothing asked: an auditor's token lives the role's default of 90 days.
      assert.equal(forever.expiresAt.getTime(), clock.now().getTime() - seconds(1) + days(90));
      assert.equal(daily.expiresAt.getTime(), clock.now().getTime() + minutes(24 * 60));
      await refusal(track(service.createToken(ctx, { name: "evidence export" })), ConflictError);

      const listed = await service.listTokens(ctx);
      assert.deepEqual(
        listed.map((token) => [token.kind, token.name, token.username]),
        [
          ["session", null, "vera"],
          ["api", "evidence export", "vera"],
          ["api", "daily", "vera"],
        ],
      );
      for (const token of listed)
        assert.deepEqual(Object.keys(token).sort(), [
          "createdAt",
          "expiresAt",
          "id",
          "kind",
          "lastUsedAt",
          "name",
          "username",
        ]);
      const { rows: hashes } = await db.query<{ secret_sha256: string }>("SELECT secret_sha256 FROM auth_tokens");
      const serialized = JSON.stringify(listed);
      for (const secret of [session.token, forever.token, daily.token])
        assert.ok(!serialized.includes(secretOf(secret)));
      for (const { secret_sha256: hash } of hashes) assert.ok(!serialized.includes(hash));

      // One changed character anywhere in the secret is refused, and recorded against the real token.
      const secret = secretOf(forever.token);
      for (const position of [0, 21, 42]) {
        const swapped = secret[position] === "A" ? "B" : "A";
        const tampered = `chp_${forever.id}_${secret.slice(0, position)}${swapped}${secret.slice(position + 1)}`;
        await refusal(track(service.authenticate(tampered, meta)), UnauthenticatedError);
      }
      assert.equal(
        audit.ofType("auth.token_rejected").filter(({ event }) => event.payload.reason === "wrong secret").length,
        3,
      );

      const viaToken = await service.authenticate(forever.token, meta);
      assert.equal(viaToken.actor.kind === "user" && viaToken.actor.tokenId, forever.id);
      await service.revokeToken(viaToken, forever.id);
      await refusal(track(service.authenticate(forever.token, meta)), UnauthenticatedError);
      await refusal(track(service.revokeToken(ctx, forever.id)), ConflictError);
      // The name is free again once its token is revoked.
      const again = await service.createToken(ctx, { name: "evidence export" });
      secrets.push(again.token);

      clock.advance(minutes(24 * 60) - 1);
      await service.authenticate(daily.token, meta);
      clock.advance(1);
      await refusal(track(service.authenticate(daily.token, meta)), UnauthenticatedError);
      await service.authenticate(again.token, meta);
      assert.deepEqual(
        audit.ofType("token.revoked").map(({ event }) => event.payload),
        [{ tokenId: forever.id, kind: "api", name: "evidence export", owner: "vera" }],
      );
      assertAccepted(audit);
      done();
    });

    it("API tokens: each role has a default lifetime and a maximum, refused by name beyond it", async () => {
      const { service, clock, track, signIn, done } = setup();
      const expected: Record<TRole, { default: number; max: number }> = {
        "platform-admin": { default: 30, max: 90 },
        operator: { default: 30, max: 90 },
        approver: { default: 30, max: 90 },
        auditor: { default: 90, max: 365 },
        viewer: { default: 90, max: 365 },
      };
      for (const role of roles) {
        const { ctx } = await signIn(`life-${role}`, role);
        const lifetime = expected[role];
        const byDefault = await service.createToken(ctx, { name: "default" });
        const longest = await service.createToken(ctx, { name: "longest", expiresInDays: lifetime.max });
        secrets.push(byDefault.token, longest.token);
        assert.equal(byDefault.expiresAt.getTime(), clock.now().getTime() + days(lifetime.default), role);
        assert.equal(longest.expiresAt.getTime(), clock.now().getTime() + days(lifetime.max), role);
        const tooLong = await refusal(
          track(service.createToken(ctx, { name: "too long", expiresInDays: lifetime.max + 1 })),
          ValidationError,
        );
        assert.equal(
          tooLong.message,
          `expiresInDays ${lifetime.max + 1} is more than the ${lifetime.max} days an API token of a ${role} may live`,
        );
        assert.deepEqual(tooLong.details, [
          { path: "expiresInDays", message: `at most ${lifetime.max} for the role ${role}` },
        ]);
        // Past its expiry a token is refused like any other bad credential.
        clock.advance(days(lifetime.default) - 1);
        await service.authenticate(byDefault.token, meta);
        clock.advance(1);
        await refusal(track(service.authenticate(byDefault.token, meta)), UnauthenticatedError);
        await service.authenticate(longest.token, meta);
      }
      done();
    });

    it("API tokens: only a platform-admin revokes another user's token; refusals are audited", async () => {
      const { service, audit, track, signIn, done } = setup();
      const owner = await signIn("wim", "operator");
      const other = await signIn("wanda", "approver");
      const boss = await signIn("walt", "platform-admin");
      const first = await service.createToken(owner.ctx, { name: "ci" });
      const second = await service.createToken(owner.ctx, { name: "ci two" });
      secrets.push(first.token, second.token);

      await refusal(track(service.revokeToken(other.ctx, first.id)), ForbiddenError);
      // An id that exists nowhere is refused the same way: probing for token ids learns nothing.
      await refusal(track(service.revokeToken(other.ctx, "0".repeat(24))), ForbiddenError);
      await refusal(track(service.listTokens(other.ctx, { allUsers: true })), ForbiddenError);
      assert.deepEqual(
        audit
          .ofType("access.denied")
          .map(({ ctx, event }) => [ctx.actor.kind === "user" && ctx.actor.username, event.target, event.payload]),
        [
          ["wanda", `token:${first.id}`, { permission: "token:manage-any", role: "approver", organization: "*" }],
          ["wanda", `token:${"0".repeat(24)}`, { permission: "token:manage-any", role: "approver", organization: "*" }],
          ["wanda", "tokens", { permission: "token:manage-any", role: "approver", organization: "*" }],
        ],
      );
      await service.authenticate(first.token, meta);

      // The database is shared with the other tests: look at this test's users only.
      assert.deepEqual(
        (await service.listTokens(boss.ctx, { allUsers: true }))
          .map((token) => token.username)
          .filter((name) => name.startsWith("w")),
        ["walt", "wanda", "wim", "wim", "wim"],
      );
      await service.revokeToken(boss.ctx, first.id);
      await service.revokeToken(admin, second.id);
      await refusal(track(service.authenticate(first.token, meta)), UnauthenticatedError);
      await refusal(track(service.authenticate(second.token, meta)), UnauthenticatedError);
      await refusal(track(service.revokeToken(boss.ctx, "0".repeat(24))), NotFoundError);
      assert.deepEqual(
        audit
          .ofType("token.revoked")
          .map(({ ctx, event }) => [
            ctx.actor.kind === "user" ? ctx.actor.username : ctx.actor.kind,
            event.payload.owner,
          ]),
        [
          ["walt", "wim"],
          ["system", "wim"],
        ],
      );
      assertAccepted(audit);
      done();
    });

    it("a whole token pasted where its id belongs reaches neither the audit log nor the error", async () => {
      const { service, audit, track, signIn, done } = setup();
      const viewer = await signIn("xena", "viewer");
      const boss = await signIn("xavier", "platform-admin");
      const token = await service.createToken(viewer.ctx, { name: "pasted" });
      secrets.push(token.token);
      for (const ctx of [viewer.ctx, boss.ctx]) {
        const error = await track(service.revokeToken(ctx, token.token)).catch((caught: unknown) => caught);
        assert.ok(error instanceof ForbiddenError || error instanceof NotFoundError, String(error));
        assert.ok(!String(error).includes(secretOf(token.token)));
      }
      const serialized = JSON.stringify(audit.events);
      assert.ok(!serialized.includes(secretOf(token.token)), "the token secret is in an audit event");
      assert.deepEqual(
        audit.ofType("access.denied").map(({ event }) => event.target),
        ["token:(invalid id)"],
      );
      await service.authenticate(token.token, meta);
      done();
    });

    it("a disabled user's sessions and API tokens stop working at once", async () => {
      const { service, track, signIn, done } = setup();
      const { ctx, session } = await signIn("yann", "operator");
      const api = await service.createToken(ctx, { name: "deploy bot" });
      secrets.push(api.token);
      await service.authenticate(api.token, meta);
      const disabled = await service.disableUser(admin, "YANN");
      assert.deepEqual([disabled.username, disabled.disabled], ["yann", true]);
      await refusal(track(service.authenticate(api.token, meta)), UnauthenticatedError);
      await refusal(track(service.authenticate(session.token, meta)), UnauthenticatedError);
      await refusal(track(service.disableUser(admin, "yann")), ConflictError);
      await refusal(track(service.disableUser(admin, "nobody-here")), NotFoundError);
      assert.deepEqual(
        await service
          .listTokens(admin, { allUsers: true })
          .then((tokens) => tokens.filter((token) => token.username === "yann")),
        [],
      );
      done();
    });

    it("records user.disabled in a form the audit log accepts", async () => {
      const { service, audit, newUser, done } = setup();
      await newUser("zoe", "viewer");
      await service.disableUser(admin, "zoe");
      assert.equal(audit.ofType("user.disabled").length, 1);
      done();
      assertAccepted(audit);
    });

    it("user management: only user:manage, with the refusal audited for every other role", async () => {
      const { service, audit, track, signIn, done } = setup();
      const contexts = await Promise.all(
        (["operator", "approver", "auditor", "viewer"] as const).map(async (role, index) => ({
          role,
          ...(await signIn(`mgr${index}`, role)),
        })),
      );
      for (const { ctx } of contexts) {
        await refusal(
          track(
            service.createUser(ctx, {
              username: "intruder",
              role: "platform-admin",
              organizations: ["*"],
              password: "intruder password 1",
            }),
          ),
          ForbiddenError,
        );
        await refusal(track(service.setRole(ctx, "mgr0", "platform-admin")), ForbiddenError);
        await refusal(track(service.disableUser(ctx, "mgr1")), ForbiddenError);
      }
      assert.deepEqual(
        audit.ofType("access.denied").map(({ event }) => [event.target, event.payload.permission, event.payload.role]),
        contexts.flatMap(({ role }) => [
          ["user:intruder", "user:manage", role],
          ["user:mgr0", "user:manage", role],
          ["user:mgr1", "user:manage", role],
        ]),
      );
      assert.equal(
        await service.listUsers(admin).then((users) => users.some((user) => user.username === "intruder")),
        false,
      );
      const boss = await signIn("mgr-boss", "platform-admin");
      const promoted = await service.setRole(boss.ctx, "mgr3", "approver");
      assert.equal(promoted.role, "approver");
      assert.deepEqual(
        audit
          .ofType("user.role_changed")
          .map(({ ctx, event }) => [ctx.actor.kind === "user" && ctx.actor.username, event.payload]),
        [["mgr-boss", { username: "mgr3", from: "viewer", to: "approver" }]],
      );
      // The new role applies at once to the session the user already holds.
      const refreshed = await service.authenticate(contexts[3]!.session.token, meta);
      assert.equal(refreshed.actor.kind === "user" && refreshed.actor.role, "approver");
      assertAccepted(audit);
      done();
    });

    it("user management: validation names the field, duplicates conflict, the password policy holds", async () => {
      const { service, audit, track, done } = setup();
      const cases: [{ username: string; role: TRole; password?: string }, string[]][] = [
        [{ username: "x", role: "viewer" }, ["username"]],
        [{ username: "9lives", role: "viewer" }, ["username"]],
        [{ username: "has space", role: "viewer" }, ["username"]],
        [{ username: "y".repeat(65), role: "viewer" }, ["username"]],
        [{ username: "quentin", role: "root" as TRole }, ["role"]],
        [{ username: "quentin", role: "viewer", password: "short pw" }, ["password"]],
        [{ username: "quentin.long", role: "viewer", password: "Quentin.Long" }, ["password"]],
        [{ username: "quentin", role: "viewer", password: "p".repeat(257) }, ["password"]],
      ];
      for (const [input, fields] of cases) {
        if (input.password) secrets.push(input.password);
        const error = await refusal(
          track(service.createUser(admin, { ...input, organizations: ["*"] })),
          ValidationError,
        );
        assert.deepEqual(fieldsOf(error), fields, JSON.stringify(input));
      }
      // Equal to the username and too short: both problems are reported.
      const both = await refusal(
        track(
          service.createUser(admin, { username: "quincy", role: "viewer", organizations: ["*"], password: "QUINCY" }),
        ),
        ValidationError,
      );
      assert.equal(both.details.length, 2);
      assert.deepEqual(
        fieldsOf(await refusal(track(service.setRole(admin, "quentin", "superuser" as TRole)), ValidationError)),
        ["role"],
      );
      assert.deepEqual(fieldsOf(await refusal(track(service.setRole(admin, "-bad", "viewer")), ValidationError)), [
        "username",
      ]);
      await refusal(track(service.setRole(admin, "quentin", "viewer")), NotFoundError);

      const created = await service.createUser(admin, { username: "Quentin", role: "viewer", organizations: ["*"] });
      assert.ok(created.initialPassword);
      secrets.push(created.initialPassword);
      assert.deepEqual([created.user.username, created.user.createdBy], ["quentin", "system:test"]);
      assert.ok(!("passwordHash" in created.user));
      await refusal(
        track(service.createUser(admin, { username: "QUENTIN", role: "auditor", organizations: ["*"] })),
        ConflictError,
      );
      assert.deepEqual(
        audit.ofType("user.created").map(({ event }) => event.payload),
        [{ username: "quentin", role: "viewer", organizations: ["*"], initialLogin: "generated" }],
      );
      const login = await passwordSession(service, from("198.51.100.90"), {
        username: "quentin",
        password: created.initialPassword,
      });
      secrets.push(login.token);
      assertAccepted(audit);
      done();
    });

    it("every identity event type the suite produced is one the audit log accepts", () => {
      const produced = new Set(allEvents.map(({ event }) => event.type));
      const expected: TIdentityAuditEventType[] = [
        "auth.login.succeeded",
        "auth.login.failed",
        "auth.login.rate_limited",
        "auth.login.failures",
        "auth.logout",
        "auth.token_rejected",
        "user.created",
        "user.role_changed",
        "user.disabled",
        "token.created",
        "token.revoked",
        "access.denied",
      ];
      assert.deepEqual([...produced].sort(), [...expected].sort());
      const refused = allEvents.flatMap(({ ctx, event }) => {
        try {
          pendingEntryOf(ctx, event, new Date());
          return [];
        } catch {
          return [event.type];
        }
      });
      assert.deepEqual(refused, []);
    });

    it("no password or token created in this suite appears in any audit event or error", () => {
      assert.ok(secrets.length > 30, `only ${secrets.length} secrets collected`);
      const events = JSON.stringify(allEvents);
      const errors = errorMessages.join("\n");
      assert.ok(errorMessages.length > 40);
      for (const secret of secrets) {
        assert.ok(!events.includes(secret), "a secret is in an audit event");
        assert.ok(!errors.includes(secret), "a secret is in an error message");
        const tokenSecret = /^chp_[0-9a-f]{24}_(.+)$/.exec(secret)?.[1];
        if (tokenSecret)
          assert.ok(!events.includes(tokenSecret) && !errors.includes(tokenSecret), "a token secret is recorded");
      }
    });
  });
});

describe("role permissions", () => {
  const actor = (role: TRole): TActor => ({
    kind: "user",
    userId: "u-1",
    username: `someone-${role}`,
    role,
    bindings: [{ role, organization: "*" }],
  });
  const table: Record<TRole, [Permission, boolean][]> = {
    "platform-admin": [
      ["user:manage", true],
      ["token:manage-any", true],
      ["spec:apply", true],
      ["audit:read", true],
    ],
    operator: [
      ["spec:apply", true],
      ["restore:run", true],
      ["user:manage", false],
      ["change:approve", false],
      ["audit:read", false],
      ["token:manage-any", false],
    ],
    approver: [
      ["change:approve", true],
      ["spec:plan", true],
      ["spec:apply", false],
      ["backup:run", false],
      ["user:manage", false],
    ],
    auditor: [
      ["audit:read", true],
      ["audit:verify", true],
      ["evidence:export", true],
      ["user:read", true],
      ["spec:apply", false],
      ["user:manage", false],
      ["backup:run", false],
    ],
    viewer: [
      ["status:read", true],
      ["spec:read", true],
      ["audit:read", false],
      ["user:read", false],
      ["spec:plan", false],
      ["token:manage-own", true],
    ],
  };
  for (const role of roles) {
    it(`${role}: ${table[role].map(([permission, allowed]) => `${allowed ? "+" : "-"}${permission}`).join(" ")}`, () => {
      for (const [permission, allowed] of table[role])
        assert.equal(can(actor(role), permission), allowed, `${role} ${permission}`);
    });
  }

  it("authorize refuses with ForbiddenError and appends access.denied; an allowed call appends nothing", async () => {
    const audit = recordingAudit();
    const ctx: TRequestContext = { actor: actor("approver"), requestId: "req-9", sourceAddress: "192.0.2.9" };
    const error = await refusal(authorize(ctx, "spec:apply", audit, "environment:acme/prod"), ForbiddenError);
    assert.match(error.message, /someone-approver \(approver\) is not allowed spec:apply/);
    await authorize(ctx, "change:approve", audit);
    await refusal(authorize({ ...ctx, actor: { kind: "anonymous" } }, "status:read", audit), ForbiddenError);
    assert.deepEqual(
      audit.events.map(({ ctx: recorded, event }) => [recorded.requestId, event]),
      [
        [
          "req-9",
          {
            type: "access.denied",
            outcome: "denied",
            target: "environment:acme/prod",
            payload: { permission: "spec:apply", role: "approver", organization: "*" },
          },
        ],
        [
          "req-9",
          {
            type: "access.denied",
            outcome: "denied",
            target: "status:read",
            payload: { permission: "status:read", role: null, organization: "*" },
          },
        ],
      ],
    );
    assert.deepEqual(audit.refused, []);
  });
});
