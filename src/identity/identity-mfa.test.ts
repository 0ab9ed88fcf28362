// The second factor of a local sign-in, driven through the identity service over a real store, with
// the organizations' requirements read from specs recorded by the real environment service.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { recordChangeThrough } from "../../test/audit-fixtures.js";
import { applyThroughChangeRequest, INSIDE_PROD_WINDOW, userContext } from "../../test/change-fixtures.js";
import { authenticatorApp, passwordChallenge, passwordSession, testMasterKey } from "../../test/identity-fixtures.js";
import { forEachStoreKind, type TTestDatabase } from "../../test/test-databases.js";
import { environmentServiceFactory } from "../environments/environment-service.js";
import { environmentStoreFactory } from "../environments/environment-store.js";
import { changeGateFactory } from "../governance/change-gate.js";
import { changeServiceFactory } from "../governance/change-service.js";
import { changeStoreFactory } from "../governance/change-store.js";
import { ConflictError, ForbiddenError, UnauthenticatedError, ValidationError } from "../lib/errors.js";
import { systemContext, type TRequestContext } from "../lib/request-context.js";
import { policyCheckerFactory } from "../policy/policy-service.js";
import type { TMasterKey } from "../secrets/secrets-master-key.js";
import type { TSqlClient } from "../store/store-types.js";
import { TICKET_LIFETIME_SECONDS, TICKET_TRIES } from "./identity-mfa-service.js";
import { RECOVERY_CODE_COUNT } from "./identity-recovery-codes.js";
import { identityServiceFactory } from "./identity-service.js";
import { totpCodeAt } from "./identity-totp.js";
import type { TAuditAppend } from "./identity-types.js";
import { noneRuntimeFactory } from "../runtime/none/none-runtime.js";
import { operationHoldFactory } from "../operations/operation-hold.js";
import { operationStoreFactory } from "../operations/operation-store.js";

type TRecorded = { type: string; outcome: string; target: string | null; payload: Record<string, unknown> };

const minutes = (count: number) => count * 60_000;
const admin = systemContext("test", "req-admin");
const anonymous: TRequestContext = {
  actor: { kind: "anonymous" },
  requestId: "req-login",
  sourceAddress: "203.0.113.7",
};
const meta = { requestId: "req-1", sourceAddress: "203.0.113.7" };
const password = "correct horse battery staple";

/** The demo organization (mfaRequired: true, an OIDC provider) with local users allowed, and its identity settings changed. */
const demoWith = async (identity: { localUsersAllowed?: boolean; sessionMaxHours?: number; oidc?: boolean } = {}) => {
  let source = await readFile("examples/northwind-health.yaml", "utf8");
  source = source.replace("localUsersAllowed: false", `localUsersAllowed: ${identity.localUsersAllowed ?? true}`);
  if (identity.sessionMaxHours !== undefined)
    source = source.replace(
      "sessionIdleTimeoutMinutes: 15",
      `sessionIdleTimeoutMinutes: 15\n  sessionMaxHours: ${identity.sessionMaxHours}`,
    );
  if (identity.oidc === false) source = source.replace(/\n {2}oidc:\n(?: {4}.*\n| {6}.*\n)+/, "\n");
  return { source, fileName: "carehost.yaml" };
};

type THarness = {
  identity: ReturnType<typeof identityServiceFactory>;
  environments: ReturnType<typeof environmentServiceFactory>;
  changes: ReturnType<typeof changeServiceFactory>;
  db: TSqlClient;
  masterKey: TMasterKey;
  events: TRecorded[];
  advance: (ms: number) => void;
  now: () => Date;
};

const withCarehost = async (
  createDatabase: () => Promise<TTestDatabase>,
  body: (harness: THarness) => Promise<void>,
) => {
  const database = await createDatabase();
  try {
    const db = await database.open();
    const events: TRecorded[] = [];
    const append: TAuditAppend = async (_ctx, event) => void events.push(event as TRecorded);
    const audit = { append, recordChange: recordChangeThrough(db, append) };
    let now = new Date("2030-01-01T00:00:00Z");
    const store = environmentStoreFactory(db);
    const masterKey = testMasterKey();
    const identity = identityServiceFactory({
      db,
      audit,
      masterKey,
      now: () => now,
      organizationRules: store.latestIdentityRules,
    });
    const changeStore = changeStoreFactory(db);
    const environments = environmentServiceFactory({
      store,
      policy: policyCheckerFactory({ now: () => now }),
      audit,
      changes: changeGateFactory({ store: changeStore, audit, now: () => INSIDE_PROD_WINDOW }),
      runtime: noneRuntimeFactory(),
      operations: operationHoldFactory({ store: operationStoreFactory(db) }),
      platform: identity.enforcement,
    });
    const changes = changeServiceFactory({
      store: changeStore,
      environments,
      revisions: store,
      audit,
      now: () => INSIDE_PROD_WINDOW,
    });
    await body({
      identity,
      environments,
      changes,
      db,
      masterKey,
      events,
      advance: (ms) => (now = new Date(now.getTime() + ms)),
      now: () => now,
    });
  } finally {
    await database.dispose();
  }
};

const ofType = (events: readonly TRecorded[], type: string) => events.filter((event) => event.type === type);

forEachStoreKind((kind, createDatabase) => {
  void describe(`the second factor of a local sign-in (${kind})`, () => {
    void it("enrols at the first sign-in an organization requires it for, issues no session before a code, and asks for the code ever after", () =>
      withCarehost(createDatabase, async ({ identity, environments, db, events, now, advance }) => {
        await identity.createUser(admin, {
          username: "kim",
          role: "viewer",
          organizations: ["northwind-health"],
          password,
        });
        await identity.createUser(admin, {
          username: "lee",
          role: "viewer",
          organizations: ["lakeside-health"],
          password,
        });
        // Nothing recorded requires a second factor yet: a password signs in.
        await passwordSession(identity, anonymous, { username: "kim", password });
        await environments.apply(admin, await demoWith());

        const challenge = await passwordChallenge(identity, anonymous, { username: "kim", password });
        assert.equal(challenge.method, "enrol");
        assert.equal(challenge.ticketExpiresAt.getTime(), now().getTime() + TICKET_LIFETIME_SECONDS * 1000);
        const secret = challenge.enrolment?.secret ?? "";
        assert.match(secret, /^[A-Z2-7]{32}$/);
        assert.match(challenge.enrolment?.otpauthUri ?? "", /^otpauth:\/\/totp\/carehost:kim\?/);
        // The ticket is no session.
        await assert.rejects(identity.authenticate(challenge.ticket, meta), UnauthenticatedError);
        await assert.rejects(identity.authenticate(`Bearer ${challenge.ticket}`, meta), UnauthenticatedError);
        // The secret is sealed at rest: no column holds it, nor its bytes.
        const { rows } = await db.query<Record<string, unknown>>("SELECT * FROM user_totp");
        assert.equal(rows.length, 1);
        const stored = JSON.stringify(rows, (_key, value: unknown) =>
          value instanceof Uint8Array ? Buffer.from(value).toString("latin1") : value,
        );
        assert.ok(!stored.includes(secret), "the base32 secret is not stored");

        // A wrong code: a clear refusal that says nothing of the password, and an audit event.
        await assert.rejects(
          identity.completeSignIn(anonymous, { ticket: challenge.ticket, code: "000000" }),
          (error: unknown) =>
            error instanceof UnauthenticatedError &&
            error.message ===
              "the code is wrong or was already used; type the current code from your authenticator, or a recovery code (2 tries left)",
        );
        assert.deepEqual(
          ofType(events, "auth.mfa.failed").map((event) => event.payload),
          [{ username: "kim", reason: "wrong code", attemptsLeft: 2 }],
        );

        const session = await identity.completeSignIn(anonymous, {
          ticket: challenge.ticket,
          code: totpCodeAt(secret, now()),
        });
        assert.equal(session.secondFactor, "totp");
        assert.equal(session.recoveryCodes?.length, RECOVERY_CODE_COUNT);
        assert.equal(new Set(session.recoveryCodes).size, RECOVERY_CODE_COUNT);
        for (const code of session.recoveryCodes ?? []) assert.match(code, /^[0-9A-Z]{4}(-[0-9A-Z]{4}){3}$/);
        await identity.authenticate(session.token, meta);
        // The recovery codes are stored as hashes only.
        const hashes = await db.query<{ code_sha256: string }>("SELECT code_sha256 FROM user_recovery_codes");
        assert.equal(hashes.rows.length, RECOVERY_CODE_COUNT);
        const storedCodes = JSON.stringify(hashes.rows);
        for (const code of session.recoveryCodes ?? []) {
          assert.ok(!storedCodes.includes(code) && !storedCodes.includes(code.replaceAll("-", "")));
        }
        // A ticket completes one sign-in.
        await assert.rejects(
          identity.completeSignIn(anonymous, { ticket: challenge.ticket, code: totpCodeAt(secret, now()) }),
          /this sign-in has expired or ended; sign in again with your password/,
        );
        assert.deepEqual(
          [...ofType(events, "auth.mfa.challenged"), ...ofType(events, "auth.mfa.enrolled")].map(
            (event) => event.payload,
          ),
          [
            { username: "kim", method: "enrol", ticketExpiresAt: challenge.ticketExpiresAt.toISOString() },
            { username: "kim", recoveryCodes: RECOVERY_CODE_COUNT },
          ],
        );
        assert.equal(ofType(events, "auth.login.succeeded").at(-1)?.payload.secondFactor, "totp");

        // Enrolled: the next sign-in asks for a code, and hands out no secret.
        advance(minutes(1));
        const next = await passwordChallenge(identity, anonymous, { username: "kim", password });
        assert.equal(next.method, "totp");
        assert.equal(next.enrolment, undefined);
        const again = await identity.completeSignIn(anonymous, {
          ticket: next.ticket,
          code: totpCodeAt(secret, now()),
        });
        assert.equal(again.recoveryCodes, undefined, "recovery codes are shown once, at enrolment");

        // The strictest of a user's own organizations: lee is bound to none that requires a second factor.
        await passwordSession(identity, anonymous, { username: "lee", password });
        // A wrong password is still the one neutral refusal, before any second factor.
        await assert.rejects(
          identity.login(anonymous, { username: "kim", password: "not the password" }),
          (error: unknown) => error instanceof UnauthenticatedError && error.message === "invalid username or password",
        );
      }));

    void it("accepts a code once, from one step either side of now and no further", () =>
      withCarehost(createDatabase, async ({ identity, environments, events, now, advance }) => {
        await identity.createUser(admin, { username: "kim", role: "viewer", organizations: ["*"], password });
        await environments.apply(admin, await demoWith());
        const app = authenticatorApp(now);
        await app.signIn(identity, anonymous, { username: "kim", password });
        const secret = app.secret ?? "";
        const codeAt = (offsetSteps: number) => totpCodeAt(secret, new Date(now().getTime() + offsetSteps * 30_000));
        const answer = async (code: string) =>
          identity.completeSignIn(anonymous, {
            ticket: (await passwordChallenge(identity, anonymous, { username: "kim", password })).ticket,
            code,
          });

        // The enrolling code's step is used: the same code again is refused, within its window.
        await assert.rejects(answer(codeAt(0)), /the code is wrong or was already used/);
        assert.equal(ofType(events, "auth.mfa.failed").at(-1)?.payload.reason, "code already used");
        // Two steps ahead, or behind, is outside the window.
        await assert.rejects(answer(codeAt(2)), /the code is wrong or was already used/);
        assert.equal(ofType(events, "auth.mfa.failed").at(-1)?.payload.reason, "wrong code");
        // The next step's code (a clock a little ahead) is accepted once …
        const ahead = codeAt(1);
        await answer(ahead);
        await assert.rejects(answer(ahead), /the code is wrong or was already used/);
        // … and so is every step before it: only later codes sign in now.
        advance(30_000);
        await assert.rejects(answer(codeAt(-1)), /the code is wrong or was already used/);
        await answer(codeAt(1));
        // A clock a little behind: the previous step's code, later than the last one accepted, signs in.
        advance(3 * 30_000);
        await answer(codeAt(-1));
      }));

    void it("accepts one code once when two replicas are handed it at the same moment", () =>
      withCarehost(createDatabase, async ({ identity, environments, db, masterKey, now }) => {
        await identity.createUser(admin, { username: "kim", role: "viewer", organizations: ["*"], password });
        await environments.apply(admin, await demoWith());
        const app = authenticatorApp(now);
        await app.signIn(identity, anonymous, { username: "kim", password });
        // A second replica: its own identity service on the same database, master key and clock.
        const replica = identityServiceFactory({
          db,
          audit: { append: async () => undefined, recordChange: recordChangeThrough(db, async () => undefined) },
          masterKey,
          now,
          organizationRules: environmentStoreFactory(db).latestIdentityRules,
        });
        const code = app.code();
        const tickets = await Promise.all(
          [identity, replica].map(async (service) => ({
            service,
            ticket: (await passwordChallenge(service, anonymous, { username: "kim", password })).ticket,
          })),
        );
        const outcomes = await Promise.allSettled(
          tickets.map(({ service, ticket }) => service.completeSignIn(anonymous, { ticket, code })),
        );
        assert.deepEqual(outcomes.map((outcome) => outcome.status).sort(), ["fulfilled", "rejected"]);
      }));

    void it("takes each recovery code once in place of a code, and ends a ticket after its tries or its lifetime", () =>
      withCarehost(createDatabase, async ({ identity, environments, events, now, advance }) => {
        await identity.createUser(admin, { username: "kim", role: "viewer", organizations: ["*"], password });
        await environments.apply(admin, await demoWith());
        const app = authenticatorApp(now);
        const enrolled = await app.signIn(identity, anonymous, { username: "kim", password });
        const [first, second] = enrolled.recoveryCodes ?? [];
        assert.ok(first && second);

        const ticket = async () => (await passwordChallenge(identity, anonymous, { username: "kim", password })).ticket;
        // Typed loosely (lower case, spaces for dashes): the same code.
        const recovered = await identity.completeSignIn(anonymous, {
          ticket: await ticket(),
          code: first.toLowerCase().replaceAll("-", " "),
        });
        assert.equal(recovered.secondFactor, "recovery-code");
        assert.equal(recovered.recoveryCodesLeft, RECOVERY_CODE_COUNT - 1);
        await identity.authenticate(recovered.token, meta);
        assert.deepEqual(
          ofType(events, "auth.mfa.recovery_code_used").map((event) => event.payload),
          [{ username: "kim", recoveryCodesLeft: RECOVERY_CODE_COUNT - 1 }],
        );
        await assert.rejects(
          identity.completeSignIn(anonymous, { ticket: await ticket(), code: first }),
          /the code is wrong or was already used/,
        );
        assert.equal(ofType(events, "auth.mfa.failed").at(-1)?.payload.reason, "recovery code unknown or already used");

        // Three wrong answers end the ticket; the right code then does not revive it.
        const spent = await ticket();
        for (let attempt = 1; attempt <= TICKET_TRIES; attempt += 1)
          await assert.rejects(
            identity.completeSignIn(anonymous, { ticket: spent, code: "123456" }),
            attempt < TICKET_TRIES
              ? /(try|tries) left/
              : /this sign-in has had its 3 tries; sign in again with your password/,
          );
        await assert.rejects(
          identity.completeSignIn(anonymous, { ticket: spent, code: app.code() }),
          /this sign-in has expired or ended/,
        );
        // A ticket past its lifetime is over.
        const late = await ticket();
        advance((TICKET_LIFETIME_SECONDS + 1) * 1000);
        await assert.rejects(
          identity.completeSignIn(anonymous, { ticket: late, code: app.code() }),
          /this sign-in has expired or ended/,
        );
        // Not a ticket at all: the same words.
        await assert.rejects(
          identity.completeSignIn(anonymous, { ticket: "chp_nope", code: "123456" }),
          /expired or ended/,
        );
        // The second recovery code still works.
        await identity.completeSignIn(anonymous, { ticket: await ticket(), code: second });
      }));

    void it("counts a sign-in waiting on its second factor as failed, so guessing codes with a known password slows down", () =>
      withCarehost(createDatabase, async ({ identity, environments }) => {
        await identity.createUser(admin, { username: "kim", role: "viewer", organizations: ["*"], password });
        await environments.apply(admin, await demoWith());
        // Five password steps from one source without a second factor: the sixth waits.
        for (let attempt = 0; attempt < 5; attempt += 1)
          await passwordChallenge(identity, anonymous, { username: "kim", password });
        await assert.rejects(
          identity.login(anonymous, { username: "kim", password }),
          /too many failed sign-in attempts from this address/,
        );
      }));

    void it("lets an admin reset another user's second factor, with a reason, audited; their sessions end and they enrol again", () =>
      withCarehost(createDatabase, async ({ identity, environments, events, now, advance }) => {
        await identity.createUser(admin, { username: "kim", role: "viewer", organizations: ["*"], password });
        await identity.createUser(admin, { username: "pat", role: "platform-admin", organizations: ["*"], password });
        await environments.apply(admin, await demoWith());
        const kimsSession = await authenticatorApp(now).signIn(identity, anonymous, { username: "kim", password });
        const patsSession = await authenticatorApp(now).signIn(identity, anonymous, { username: "pat", password });
        const pat = await identity.authenticate(patsSession.token, meta);
        const kim = await identity.authenticate(kimsSession.token, meta);

        await assert.rejects(identity.resetSecondFactor(pat, "kim", "  "), ValidationError);
        await assert.rejects(identity.resetSecondFactor(kim, "pat", "lost phone"), ForbiddenError, "a viewer may not");
        await assert.rejects(
          identity.resetSecondFactor(pat, "pat", "lost my phone"),
          (error: unknown) =>
            error instanceof ForbiddenError && /nobody resets their own second factor/.test(error.message),
        );
        const reset = await identity.resetSecondFactor(pat, "kim", "lost phone, ticket HD-314");
        assert.deepEqual(reset, { hadSecondFactor: true, revokedSessions: 1 });
        assert.deepEqual(
          ofType(events, "auth.mfa.reset").map((event) => event.payload),
          [{ username: "kim", reason: "lost phone, ticket HD-314", hadSecondFactor: true, revokedSessionCount: 1 }],
        );
        await assert.rejects(identity.authenticate(kimsSession.token, meta), UnauthenticatedError);
        advance(minutes(1));
        assert.equal((await passwordChallenge(identity, anonymous, { username: "kim", password })).method, "enrol");
      }));

    void it("mints API tokens only for a session that passed the second factor; a session without one ends once it is required", () =>
      withCarehost(createDatabase, async ({ identity, environments, events, now }) => {
        await identity.createUser(admin, { username: "kim", role: "operator", organizations: ["*"], password });
        const before = await passwordSession(identity, anonymous, { username: "kim", password });
        const beforeCtx = await identity.authenticate(before.token, meta);
        const automation = await identity.createToken(beforeCtx, { name: "ci-pipeline" });
        await environments.apply(admin, await demoWith());

        // The session from before has no second factor: it no longer works.
        await assert.rejects(identity.authenticate(before.token, meta), UnauthenticatedError);
        // The API token goes on working for automation, but mints no token for a person.
        const viaToken = await identity.authenticate(automation.token, meta);
        await assert.rejects(
          identity.createToken(viaToken, { name: "laptop" }),
          (error: unknown) =>
            error instanceof ForbiddenError &&
            /creating an API token needs a session that passed the second factor, which organization "northwind-health" requires/.test(
              error.message,
            ),
        );
        assert.equal(ofType(events, "token.refused").length, 1);
        // Nor does enrolling a second factor go through an API token.
        await assert.rejects(
          identity.startEnrolment(viaToken),
          /needs a session from carehost login, not an API token/,
        );

        const session = await authenticatorApp(now).signIn(identity, anonymous, { username: "kim", password });
        const created = await identity.createToken(await identity.authenticate(session.token, meta), {
          name: "laptop",
        });
        await identity.authenticate(created.token, meta);
      }));

    void it("enrols from a session where none is required, and confirms with the authenticator's code", () =>
      withCarehost(createDatabase, async ({ identity, events, now, advance }) => {
        await identity.createUser(admin, {
          username: "lee",
          role: "viewer",
          organizations: ["lakeside-health"],
          password,
        });
        const session = await passwordSession(identity, anonymous, { username: "lee", password });
        const ctx = await identity.authenticate(session.token, meta);
        await assert.rejects(identity.confirmEnrolment(ctx, "123456"), ConflictError);
        const { secret, otpauthUri } = await identity.startEnrolment(ctx);
        assert.match(otpauthUri, /^otpauth:\/\/totp\/carehost:lee\?/);
        await assert.rejects(
          identity.confirmEnrolment(ctx, "000000"),
          (error: unknown) => error instanceof ValidationError && error.details[0]?.path === "code",
        );
        const { recoveryCodes } = await identity.confirmEnrolment(ctx, totpCodeAt(secret, now()));
        assert.equal(recoveryCodes.length, RECOVERY_CODE_COUNT);
        // The session that confirmed it passed the second factor: it mints tokens.
        await identity.createToken(ctx, { name: "laptop" });
        await assert.rejects(identity.startEnrolment(ctx), ConflictError, "a second authenticator needs a reset first");
        assert.deepEqual(
          [...ofType(events, "auth.mfa.enrolment_started"), ...ofType(events, "auth.mfa.enrolled")].map(
            (event) => event.payload,
          ),
          [{ username: "lee" }, { username: "lee", recoveryCodes: RECOVERY_CODE_COUNT }],
        );
        // Enrolled, lee is asked for a code though no organization of hers requires one.
        advance(minutes(1));
        const challenge = await passwordChallenge(identity, anonymous, { username: "lee", password });
        assert.equal(challenge.method, "totp");
      }));

    void it("makes the bootstrap admin's password break-glass once an organization signs in through OIDC: a reason, an ALERT", () =>
      withCarehost(createDatabase, async ({ identity, environments, changes, events, now }) => {
        const bootstrap = await identity.bootstrapAdmin(admin);
        assert.ok(bootstrap.created);
        await identity.createUser(admin, { username: "vera", role: "viewer", organizations: ["*"], password });
        const adminsApp = authenticatorApp(now);
        // Local users allowed, no OIDC: the admin signs in as anyone does.
        await environments.apply(admin, await demoWith({ oidc: false }));
        await adminsApp.signIn(identity, anonymous, { username: "admin", password: bootstrap.password });
        assert.equal(ofType(events, "auth.login.break_glass").length, 0);
        assert.equal(ofType(events, "auth.login.succeeded").at(-1)?.payload.username, "admin");

        await applyThroughChangeRequest(
          { changes },
          userContext("carol", "platform-admin"),
          [userContext("bob", "approver"), userContext("erin", "approver")],
          await demoWith(),
        );
        await assert.rejects(
          identity.login(anonymous, { username: "admin", password: bootstrap.password }),
          (error: unknown) =>
            error instanceof ValidationError &&
            error.details[0]?.path === "reason" &&
            /allows no local users or signs in through OIDC: say why \(carehost login --reason/.test(error.message),
        );
        assert.equal(
          ofType(events, "auth.login.failed").at(-1)?.payload.reason,
          "break-glass sign-in without a reason",
        );
        const session = await adminsApp.signIn(identity, anonymous, {
          username: "admin",
          password: bootstrap.password,
          reason: "Entra ID outage, INC-2207",
        });
        const [alert] = ofType(events, "auth.login.break_glass");
        assert.deepEqual(alert?.payload, {
          username: "admin",
          sessionId: alert?.payload.sessionId,
          expiresAt: session.expiresAt.toISOString(),
          localUsersRefusedBy: [],
          oidcConfiguredBy: ["northwind-health"],
          severity: "alert",
          reason: "Entra ID outage, INC-2207",
          secondFactor: "totp",
        });
        // Other local users (allowed here) sign in as before: break-glass is the bootstrap admin's.
        await authenticatorApp(now).signIn(identity, anonymous, { username: "vera", password });
        assert.equal(ofType(events, "auth.login.break_glass").length, 1);
        assert.equal(ofType(events, "auth.login.succeeded").at(-1)?.payload.username, "vera");
      }));

    void it("ends a session after the strictest identity.sessionMaxHours however active it is, and at once when a spec shortens it", () =>
      withCarehost(createDatabase, async ({ identity, environments, changes, now, advance }) => {
        await identity.createUser(admin, { username: "kim", role: "viewer", organizations: ["*"], password });
        const app = authenticatorApp(now);
        const keepActiveFor = async (token: string, totalMinutes: number) => {
          for (let elapsed = 0; elapsed < totalMinutes; elapsed += 10) {
            advance(minutes(10));
            await identity.authenticate(token, meta);
          }
        };
        // Nothing recorded: carehost's fixed 12 hours.
        const unbound = await app.signIn(identity, anonymous, { username: "kim", password });
        assert.equal(unbound.expiresAt.getTime(), now().getTime() + 12 * 3_600_000);

        await environments.apply(admin, await demoWith({ sessionMaxHours: 3 }));
        const session = await app.signIn(identity, anonymous, { username: "kim", password });
        assert.equal(session.expiresAt.getTime(), now().getTime() + 3 * 3_600_000);
        await keepActiveFor(session.token, 170);
        advance(minutes(10));
        await assert.rejects(
          identity.authenticate(session.token, meta),
          UnauthenticatedError,
          "active, yet 3 hours old",
        );

        // Shortened to 1 hour through an approved change: a session 90 minutes old ends now.
        const older = await app.signIn(identity, anonymous, { username: "kim", password });
        await keepActiveFor(older.token, 90);
        await applyThroughChangeRequest(
          { changes },
          userContext("carol", "platform-admin"),
          [userContext("bob", "approver"), userContext("erin", "approver")],
          await demoWith({ sessionMaxHours: 1 }),
        );
        await assert.rejects(identity.authenticate(older.token, meta), UnauthenticatedError);
        const shorter = await app.signIn(identity, anonymous, { username: "kim", password });
        assert.equal(shorter.expiresAt.getTime(), now().getTime() + 3_600_000);
      }));
  });
});
