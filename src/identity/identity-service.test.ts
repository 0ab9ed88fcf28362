import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { forEachStoreKind, withTestDatabase } from "../../test/test-databases.js";
import type { TAuditEvent } from "../audit/audit-types.js";
import { ForbiddenError, RateLimitedError, UnauthenticatedError, ValidationError, ConflictError } from "../lib/errors.js";
import type { TRequestContext, TRole } from "../lib/request-context.js";
import { systemContext } from "../lib/request-context.js";
import type { TSqlClient } from "../store/store-types.js";
import { can } from "./identity-permissions.js";
import { identityServiceFactory } from "./identity-service.js";

type TRecorded = { ctx: TRequestContext; event: TAuditEvent };

/** The service with a recording audit fake and a clock the test moves. */
const harness = (db: TSqlClient) => {
  const events: TRecorded[] = [];
  let clock = new Date("2026-11-22T12:00:00Z");
  const identity = identityServiceFactory({
    db,
    audit: { append: async (ctx, event) => void events.push({ ctx, event }) },
    now: () => clock,
    loginLimits: { perUsername: 3, perSourceAddress: 5, windowSeconds: 600 },
    sessionLimits: { absoluteHours: 8, idleMinutes: 15 },
  });
  const from = (sourceAddress: string): TRequestContext => ({ actor: { kind: "anonymous" }, requestId: "r", sourceAddress });
  const as = async (token: string) => identity.authenticate(token, { requestId: "r", sourceAddress: "10.0.0.1" });
  return {
    identity,
    events,
    from,
    as,
    advance: (minutes: number) => {
      clock = new Date(clock.getTime() + minutes * 60_000);
    },
    types: () => events.map((recorded) => recorded.event.type),
  };
};

const admin = systemContext("test");

forEachStoreKind((kind, createDatabase) => {
  describe(`identity on ${kind}`, () => {
    it("bootstraps admin once, stores only an argon2id hash, and can mint the local CLI token", async () => {
      await withTestDatabase(createDatabase, async (db) => {
        const { identity, as } = harness(db);
        // Two replicas starting at once: exactly one creates admin.
        const options = { cliTokenName: "local-cli" };
        const results = await Promise.all([identity.bootstrapAdmin(admin, options), identity.bootstrapAdmin(admin, options)]);
        const created = results.filter((result) => result.created);
        assert.equal(created.length, 1);
        const first = created[0]!;
        assert.ok(first.created && first.cliToken !== undefined);
        assert.equal((await as(first.cliToken.token)).actor.kind, "user");
        assert.deepEqual(await identity.bootstrapAdmin(admin), { created: false });
        const { rows } = await db.query<Record<string, unknown>>("SELECT * FROM users");
        assert.equal(rows.length, 1);
        const stored = JSON.stringify(rows);
        assert.match(stored, /\$argon2id\$/);
        assert.ok(!stored.includes(first.password));
      });
    });

    it("logs in with the same refusal for an unknown user and a wrong password, and audits why", async () => {
      await withTestDatabase(createDatabase, async (db) => {
        const { identity, events, from, as, types } = harness(db);
        const boot = await identity.bootstrapAdmin(admin);
        assert.ok(boot.created);
        const wrong = await identity.login(from("10.0.0.1"), { username: "admin", password: "wrong-password-1" }).catch((error: unknown) => error);
        const unknown = await identity.login(from("10.0.0.1"), { username: "nobody", password: "wrong-password-1" }).catch((error: unknown) => error);
        assert.ok(wrong instanceof UnauthenticatedError && unknown instanceof UnauthenticatedError);
        assert.equal(wrong.message, unknown.message);
        const session = await identity.login(from("10.0.0.1"), { username: "admin", password: boot.password });
        assert.equal((await as(session.token)).actor.kind, "user");
        assert.deepEqual(types().slice(-3), ["auth.login.failed", "auth.login.failed", "auth.login.succeeded"]);
        const serialized = JSON.stringify(events);
        for (const secret of [boot.password, "wrong-password-1", session.token]) assert.ok(!serialized.includes(secret));
      });
    });

    it("rate limits failures per username, audits it, and lets the owner in after the window", async () => {
      await withTestDatabase(createDatabase, async (db) => {
        const { identity, from, advance, types } = harness(db);
        const boot = await identity.bootstrapAdmin(admin);
        assert.ok(boot.created);
        for (let attempt = 0; attempt < 3; attempt += 1) {
          await assert.rejects(identity.login(from(`10.0.1.${attempt}`), { username: "admin", password: "guess-guess-guess" }), UnauthenticatedError);
        }
        const limited = await identity.login(from("10.0.2.1"), { username: "admin", password: boot.password }).catch((error: unknown) => error);
        assert.ok(limited instanceof RateLimitedError);
        assert.ok(limited.retryAfterSeconds > 0 && limited.retryAfterSeconds <= 600);
        assert.equal(types().at(-1), "auth.login.rate_limited");
        advance(11);
        await identity.login(from("10.0.2.1"), { username: "admin", password: boot.password });
      });
    });

    it("rate limits one source address guessing across usernames", async () => {
      await withTestDatabase(createDatabase, async (db) => {
        const { identity, from } = harness(db);
        for (let attempt = 0; attempt < 5; attempt += 1) {
          await assert.rejects(identity.login(from("198.51.100.7"), { username: `user${attempt}`, password: "guess-guess-guess" }), UnauthenticatedError);
        }
        await assert.rejects(identity.login(from("198.51.100.7"), { username: "another", password: "guess-guess-guess" }), RateLimitedError);
        await assert.rejects(identity.login(from("198.51.100.8"), { username: "another", password: "guess-guess-guess" }), UnauthenticatedError);
      });
    });

    it("ends sessions on idle timeout, on absolute expiry and on logout", async () => {
      await withTestDatabase(createDatabase, async (db) => {
        const { identity, from, as, advance } = harness(db);
        const boot = await identity.bootstrapAdmin(admin);
        assert.ok(boot.created);
        const idle = await identity.login(from("10.0.0.1"), { username: "admin", password: boot.password });
        advance(16);
        await assert.rejects(as(idle.token), UnauthenticatedError);

        const busy = await identity.login(from("10.0.0.1"), { username: "admin", password: boot.password });
        // Used every 10 minutes it never idles out, but it still ends 8 hours after log-in.
        for (let minutes = 10; minutes < 8 * 60; minutes += 10) {
          advance(10);
          await as(busy.token);
        }
        advance(10);
        await assert.rejects(as(busy.token), UnauthenticatedError);

        const out = await identity.login(from("10.0.0.1"), { username: "admin", password: boot.password });
        await identity.logout(await as(out.token));
        await assert.rejects(as(out.token), UnauthenticatedError);
      });
    });

    it("creates, lists and revokes API tokens; revoked, tampered and expired tokens fail and are audited", async () => {
      await withTestDatabase(createDatabase, async (db) => {
        const { identity, from, as, advance, types, events } = harness(db);
        const boot = await identity.bootstrapAdmin(admin);
        assert.ok(boot.created);
        const session = await identity.login(from("10.0.0.1"), { username: "admin", password: boot.password });
        const ctx = await as(session.token);
        const api = await identity.createToken(ctx, { name: "ci pipeline" });
        const shortLived = await identity.createToken(ctx, { name: "short", expiresInDays: 1 });
        assert.equal((await as(api.token)).actor.kind, "user");
        const listed = JSON.stringify(await identity.listTokens(ctx));
        assert.ok(!listed.includes(api.token.split("_").at(-1)!));
        await assert.rejects(identity.createToken(ctx, { name: "ci pipeline" }), ConflictError);

        const tampered = `${api.token.slice(0, -1)}${api.token.endsWith("A") ? "B" : "A"}`;
        await assert.rejects(as(tampered), UnauthenticatedError);
        assert.equal(types().at(-1), "auth.token_rejected");

        await identity.revokeToken(ctx, api.id);
        await assert.rejects(as(api.token), UnauthenticatedError);
        assert.equal(types().at(-1), "auth.token_rejected");

        advance(24 * 60 + 1);
        await assert.rejects(as(shortLived.token), UnauthenticatedError);
        assert.ok(!JSON.stringify(events).includes(api.token) && !JSON.stringify(events).includes(shortLived.token));
      });
    });

    it("keeps users to their own tokens, and a disabled user's tokens stop working", async () => {
      await withTestDatabase(createDatabase, async (db) => {
        const { identity, from, as, types } = harness(db);
        const alice = await identity.createUser(admin, { username: "alice", role: "operator" });
        const bob = await identity.createUser(admin, { username: "bob", role: "viewer", password: "correct horse battery" });
        assert.ok(alice.initialPassword !== undefined && bob.initialPassword === undefined);
        const aliceCtx = await as((await identity.login(from("10.0.0.2"), { username: "alice", password: alice.initialPassword })).token);
        const bobCtx = await as((await identity.login(from("10.0.0.3"), { username: "bob", password: "correct horse battery" })).token);
        const bobToken = await identity.createToken(bobCtx, { name: "bob-cli" });
        await assert.rejects(identity.revokeToken(aliceCtx, bobToken.id), ForbiddenError);
        assert.equal(types().at(-1), "access.denied");
        await identity.disableUser(admin, "bob");
        await assert.rejects(as(bobToken.token), UnauthenticatedError);
      });
    });

    it("validates users: names, roles, password policy, duplicates, and who may manage them", async () => {
      await withTestDatabase(createDatabase, async (db) => {
        const { identity, from, as } = harness(db);
        await assert.rejects(identity.createUser(admin, { username: "Bad Name!", role: "viewer" }), (error: unknown) => {
          assert.ok(error instanceof ValidationError);
          assert.equal(error.details[0]?.path, "username");
          return true;
        });
        await assert.rejects(identity.createUser(admin, { username: "carol", role: "root" as TRole }), ValidationError);
        await assert.rejects(identity.createUser(admin, { username: "carol", role: "viewer", password: "short" }), ValidationError);
        await assert.rejects(identity.createUser(admin, { username: "carolcarolcarol", role: "viewer", password: "carolcarolcarol" }), ValidationError);
        const carol = await identity.createUser(admin, { username: "carol", role: "auditor" });
        await assert.rejects(identity.createUser(admin, { username: "carol", role: "viewer" }), ConflictError);
        const carolCtx = await as((await identity.login(from("10.0.0.4"), { username: "carol", password: carol.initialPassword! })).token);
        await assert.rejects(identity.createUser(carolCtx, { username: "dave", role: "platform-admin" }), ForbiddenError);
        assert.equal((await identity.setRole(admin, "carol", "approver")).role, "approver");
      });
    });
  });
});

describe("role permissions", () => {
  const user = (role: TRole) => ({ kind: "user" as const, userId: "u", username: "u", role });
  const table: [TRole, Parameters<typeof can>[1], boolean][] = [
    ["auditor", "audit:read", true],
    ["auditor", "audit:export", true],
    ["auditor", "spec:apply", false],
    ["auditor", "user:manage", false],
    ["viewer", "status:read", true],
    ["viewer", "audit:read", false],
    ["approver", "change:approve", true],
    ["approver", "spec:apply", false],
    ["operator", "spec:apply", true],
    ["operator", "user:manage", false],
    ["operator", "audit:read", false],
    ["platform-admin", "user:manage", true],
  ];
  for (const [role, permission, allowed] of table) {
    it(`${role} ${allowed ? "may" : "may not"} ${permission}`, () => {
      assert.equal(can(user(role), permission), allowed);
    });
  }
  it("gives anonymous callers nothing", () => {
    assert.equal(can({ kind: "anonymous" }, "status:read"), false);
  });
});
