// Authorization per organization, over real HTTP: every route the API serves (taken from the app's
// own route registry, so a new route without a case here fails the test) is run by users whose
// role covers organization A only, against organization B, and must refuse (403, or 404 where the
// request names only something inside B) with an access.denied audit entry, or answer with nothing
// of B; the same request on A is authorized. The store is a throwaway PostgreSQL database, so the
// test can record runs of both organizations behind carehost's back; CAREHOST_RUNTIME=none, so a
// run A's user is allowed to start is refused only because nothing runs on this host.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { rolePermissions } from "../src/identity/identity-permissions.js";
import { totpCodeAt } from "../src/identity/identity-totp.js";
import type { Permission } from "../src/identity/identity-permissions.js";
import { loadConfig } from "../src/lib/config.js";
import type { TRole } from "../src/lib/request-context.js";
import { startCarehost } from "../src/server/server-start.js";
import type { TRunningCarehost } from "../src/server/server-start.js";
import { testDatabaseFactories } from "./test-databases.js";
import type { TTestDatabase } from "./test-databases.js";

const ALPHA = "org-alpha";
const BETA = "org-beta";
/** An environment only B declares: naming it without --org must look like one that does not exist. */
const BETA_ONLY = "beta-only";
const PASSWORD = "correct horse battery staple";

type TAnswer = { status: number; text: string; requestId: string };
type TRequest = {
  readonly url: string;
  readonly body?: unknown;
  readonly freshSession?: boolean;
  /** For a self case: the answer the caller's own state gives (an authenticator enrolled already), when not 2xx. */
  readonly expectStatus?: number;
};
type TFixture = {
  specOf: (organization: string) => string;
  runs: Record<string, Record<"backup" | "verify" | "restore" | "drill", number>>;
  /** Per organization: an operation that ended, and one still queued (to cancel). */
  operations: Record<string, { ended: number; queued: number }>;
  /** A pending change request of each organization, requested by the admin. */
  changes: Record<string, number>;
  /** Per organization: a firing alert and an active silence. */
  alerts: Record<string, { alert: number; silence: number }>;
  adminTokenId: string;
};
/**
 * public and self: not about any organization (health, sign-in, one's own tokens, the API document);
 * platform: about every organization at once (users and their bindings, other people's tokens, the
 * whole audit log), so refused to a role over one; organization: about one, run against B and then A.
 */
type TCase =
  | {
      readonly kind: "public" | "self" | "platform";
      readonly request: TRequest;
      /** A public route whose request here is refused by design (nothing to sign in to): the status it answers. */
      readonly refusedWith?: number;
    }
  | { readonly kind: "organization"; readonly permission: Permission; readonly b: TRequest[]; readonly a: TRequest };

const cases = (f: TFixture): Record<string, TCase> => {
  const env = (organization: string | undefined, environment = "prod") => ({
    environment,
    ...(organization === undefined ? {} : { organization }),
  });
  const backupKey = (organization: string) => `backup/${organization}/backup-offsite-azure-key`;
  const spec = (organization: string) => ({ source: f.specOf(organization), fileName: `${organization}.yaml` });
  const run = (organization: string, kind: "backup" | "verify" | "restore" | "drill", events = false) =>
    `/api/runs/${kind}/${f.runs[organization]![kind]}${events ? "/events" : ""}`;
  const runCase = (events: boolean): TCase => ({
    kind: "organization",
    permission: "backup:read",
    b: (["backup", "verify", "restore", "drill"] as const).map((kind) => ({ url: run(BETA, kind, events) })),
    a: { url: run(ALPHA, "drill", events) },
  });
  /** prod's workers raised: a change to PHI production, which needs a change request. */
  const workersChange = (organization: string) => ({
    source: f.specOf(organization).replace(/workers: 9\b/, "workers: 11"),
    fileName: `${organization}.yaml`,
  });
  const changeCase = (action: string, permission: Permission, body?: unknown): TCase => ({
    kind: "organization",
    permission,
    b: [{ url: `/api/changes/${f.changes[BETA]}${action}`, ...(body === undefined ? {} : { body }) }],
    a: { url: `/api/changes/${f.changes[ALPHA]}${action}`, ...(body === undefined ? {} : { body }) },
  });
  const listing = (url: string, permission: Permission): TCase => ({
    kind: "organization",
    permission,
    b: [{ url }],
    a: { url },
  });
  return {
    "GET /healthz": { kind: "public", request: { url: "/healthz" } },
    "GET /readyz": { kind: "public", request: { url: "/readyz" } },
    "POST /api/auth/login": { kind: "public", request: { url: "/api/auth/login" } },
    // Single sign-on starts for an organization by name and completes by state alone; neither says
    // anything of another organization (an unknown one and one without a provider answer alike).
    "GET /api/auth/oidc/:organization/start": {
      kind: "public",
      request: { url: "/api/auth/oidc/no-such-org/start" },
      refusedWith: 404,
    },
    "POST /api/auth/oidc/start": {
      kind: "public",
      request: {
        url: "/api/auth/oidc/start",
        body: { organization: "no-such-org", redirectUri: "http://127.0.0.1:9/callback" },
      },
      refusedWith: 404,
    },
    "GET /api/auth/oidc/callback": {
      kind: "public",
      request: { url: "/api/auth/oidc/callback?code=x&state=y" },
      refusedWith: 401,
    },
    "POST /api/auth/oidc/callback": {
      kind: "public",
      request: { url: "/api/auth/oidc/callback", body: { parameters: "code=x&state=y" } },
      refusedWith: 401,
    },
    "POST /api/auth/second-factor": { kind: "public", request: { url: "/api/auth/second-factor" } },
    // Every user here enrolled at their first sign-in (the demo requires a second factor): a second
    // authenticator is refused until a reset, and there is no enrolment waiting to confirm.
    "POST /api/mfa/enrolment": { kind: "self", request: { url: "/api/mfa/enrolment", expectStatus: 409 } },
    "POST /api/mfa/enrolment/confirm": {
      kind: "self",
      request: { url: "/api/mfa/enrolment/confirm", body: { code: "123456" }, expectStatus: 409 },
    },
    "POST /api/users/:username/mfa/reset": {
      kind: "platform",
      request: { url: "/api/users/admin/mfa/reset", body: { reason: "take over the admin" } },
    },
    "POST /api/auth/logout": { kind: "self", request: { url: "/api/auth/logout", freshSession: true } },
    "GET /api/whoami": { kind: "self", request: { url: "/api/whoami" } },
    "GET /api/openapi.json": { kind: "self", request: { url: "/api/openapi.json" } },
    "POST /api/tokens": { kind: "self", request: { url: "/api/tokens", body: { name: "ci" } } },
    "GET /api/tokens": { kind: "self", request: { url: "/api/tokens" } },
    "DELETE /api/tokens/:id": { kind: "platform", request: { url: `/api/tokens/${f.adminTokenId}` } },
    "GET /api/users": { kind: "platform", request: { url: "/api/users" } },
    "POST /api/users": {
      kind: "platform",
      request: { url: "/api/users", body: { username: "mallory", role: "operator", organizations: [BETA] } },
    },
    "POST /api/users/:username/grant": {
      kind: "platform",
      request: { url: "/api/users/olga/grant", body: { organizations: [BETA] } },
    },
    "POST /api/users/:username/revoke": {
      kind: "platform",
      request: { url: "/api/users/admin/revoke", body: { organizations: ["*"] } },
    },
    "POST /api/audit/verify": { kind: "platform", request: { url: "/api/audit/verify" } },
    "GET /api/audit/export": { kind: "platform", request: { url: "/api/audit/export" } },
    "GET /api/audit/entries": listing("/api/audit/entries?limit=10000", "audit:read"),
    "GET /api/status": listing("/api/status", "status:read"),
    "GET /metrics": listing("/metrics", "metrics:read"),
    "GET /api/monitoring/rules": listing("/api/monitoring/rules", "metrics:read"),
    "GET /api/alerts": listing("/api/alerts?all=true", "status:read"),
    "POST /api/alerts/silences": {
      kind: "organization",
      permission: "alert:manage",
      b: [
        {
          url: "/api/alerts/silences",
          body: { rule: "PostgresDown", organization: BETA, environment: "prod", for: "1h", reason: "maintenance" },
        },
      ],
      a: {
        url: "/api/alerts/silences",
        body: { rule: "PostgresDown", organization: ALPHA, environment: "prod", for: "1h", reason: "maintenance" },
      },
    },
    "DELETE /api/alerts/silences/:id": {
      kind: "organization",
      permission: "alert:manage",
      b: [{ url: `/api/alerts/silences/${f.alerts[BETA]!.silence}` }],
      a: { url: `/api/alerts/silences/${f.alerts[ALPHA]!.silence}` },
    },
    "POST /api/alerts/:id/ack": {
      kind: "organization",
      permission: "alert:manage",
      b: [{ url: `/api/alerts/${f.alerts[BETA]!.alert}/ack` }],
      a: { url: `/api/alerts/${f.alerts[ALPHA]!.alert}/ack` },
    },
    "GET /api/posture": listing("/api/posture", "environment:read"),
    "GET /api/environments": {
      kind: "organization",
      permission: "environment:read",
      b: [{ url: "/api/environments" }, { url: `/api/environments?organization=${BETA}` }],
      a: { url: `/api/environments?organization=${ALPHA}` },
    },
    "POST /api/plan": {
      kind: "organization",
      permission: "spec:plan",
      b: [{ url: "/api/plan", body: spec(BETA) }],
      a: { url: "/api/plan", body: spec(ALPHA) },
    },
    "POST /api/apply": {
      kind: "organization",
      permission: "spec:apply",
      // Dropping one of B's environments with the removal confirmed: its data would go.
      b: [
        {
          url: "/api/apply",
          body: {
            source: f.specOf(BETA).slice(0, f.specOf(BETA).indexOf(`  - name: ${BETA_ONLY}`)),
            confirmDestroy: [BETA_ONLY],
          },
        },
      ],
      a: { url: "/api/apply", body: spec(ALPHA) },
    },
    "POST /api/gitops/plan": {
      kind: "organization",
      permission: "spec:plan",
      b: [{ url: "/api/gitops/plan", body: { ...spec(BETA), target: "kubernetes" } }],
      a: { url: "/api/gitops/plan", body: { ...spec(ALPHA), target: "kubernetes" } },
    },
    "POST /api/gitops/apply": {
      kind: "organization",
      permission: "spec:apply",
      b: [{ url: "/api/gitops/apply", body: { ...spec(BETA), target: "compose", confirmDestroy: ["prod"] } }],
      a: { url: "/api/gitops/apply", body: { ...spec(ALPHA), target: "compose" } },
    },
    "GET /api/secrets": listing("/api/secrets", "secret:read"),
    "POST /api/secrets/set": {
      kind: "organization",
      permission: "secret:rotate",
      b: [{ url: "/api/secrets/set", body: { name: backupKey(BETA), value: "attacker's key" } }],
      a: { url: "/api/secrets/set", body: { name: backupKey(ALPHA), value: "alpha key, version 2" } },
    },
    "POST /api/secrets/rotate": {
      kind: "organization",
      permission: "secret:rotate",
      b: [{ url: "/api/secrets/rotate", body: { name: `runtime/${BETA}/env/prod/database` } }],
      a: { url: "/api/secrets/rotate", body: { name: `runtime/${ALPHA}/env/prod/database` } },
    },
    "POST /api/secrets/reveal": {
      kind: "organization",
      permission: "secret:reveal",
      b: [{ url: "/api/secrets/reveal", body: { name: backupKey(BETA), reason: "looking" } }],
      a: { url: "/api/secrets/reveal", body: { name: backupKey(ALPHA), reason: "checking the key" } },
    },
    "POST /api/backups": {
      kind: "organization",
      permission: "backup:run",
      b: [
        { url: "/api/backups", body: env(BETA) },
        { url: "/api/backups", body: env(undefined, BETA_ONLY) },
      ],
      a: { url: "/api/backups", body: env(undefined) },
    },
    "GET /api/backups": listing("/api/backups", "backup:read"),
    "POST /api/backups/verify": {
      kind: "organization",
      permission: "backup:run",
      b: [
        { url: "/api/backups/verify", body: env(BETA) },
        { url: "/api/backups/verify", body: env(undefined, BETA_ONLY) },
      ],
      a: { url: "/api/backups/verify", body: env(ALPHA) },
    },
    "POST /api/restores": {
      kind: "organization",
      permission: "restore:run",
      b: [
        // Over B's production, in place, "as an emergency".
        { url: "/api/restores", body: { ...env(BETA), inPlace: true, emergency: "urgent" } },
        { url: "/api/restores", body: { ...env(undefined, BETA_ONLY), into: "copy-1" } },
      ],
      a: { url: "/api/restores", body: { ...env(ALPHA), into: "copy-1" } },
    },
    "GET /api/restores": listing("/api/restores", "backup:read"),
    "GET /api/copies": {
      kind: "organization",
      permission: "environment:read",
      b: [{ url: `/api/copies?organization=${BETA}` }, { url: "/api/copies" }],
      a: { url: `/api/copies?organization=${ALPHA}` },
    },
    "DELETE /api/copies/:name": {
      kind: "organization",
      permission: "restore:run",
      b: [{ url: `/api/copies/copy-b?organization=${BETA}` }, { url: "/api/copies/copy-b" }],
      a: { url: `/api/copies/copy-a?organization=${ALPHA}` },
    },
    "POST /api/drills": {
      kind: "organization",
      permission: "restore:run",
      b: [
        { url: "/api/drills", body: env(BETA) },
        { url: "/api/drills", body: env(undefined, BETA_ONLY) },
      ],
      a: { url: "/api/drills", body: env(undefined) },
    },
    "GET /api/drills": listing("/api/drills", "backup:read"),
    "GET /api/exceptions": {
      kind: "organization",
      permission: "spec:read",
      b: [{ url: "/api/exceptions" }, { url: `/api/exceptions?organization=${BETA}` }],
      a: { url: `/api/exceptions?organization=${ALPHA}` },
    },
    "POST /api/exceptions/:organization/:id/approve": {
      kind: "organization",
      permission: "change:approve",
      b: [{ url: `/api/exceptions/${BETA}/1/approve` }],
      a: { url: `/api/exceptions/${ALPHA}/1/approve` },
    },
    "GET /api/operations": {
      kind: "organization",
      permission: "environment:read",
      b: [{ url: "/api/operations" }, { url: `/api/operations?organization=${BETA}` }],
      a: { url: `/api/operations?organization=${ALPHA}` },
    },
    "GET /api/operations/:id": {
      kind: "organization",
      permission: "environment:read",
      b: [{ url: `/api/operations/${f.operations[BETA]!.ended}` }],
      a: { url: `/api/operations/${f.operations[ALPHA]!.ended}` },
    },
    "GET /api/operations/:id/events": {
      kind: "organization",
      permission: "environment:read",
      b: [{ url: `/api/operations/${f.operations[BETA]!.ended}/events` }],
      a: { url: `/api/operations/${f.operations[ALPHA]!.ended}/events` },
    },
    "POST /api/operations/:id/cancel": {
      kind: "organization",
      permission: "backup:run",
      b: [{ url: `/api/operations/${f.operations[BETA]!.queued}/cancel` }],
      a: { url: `/api/operations/${f.operations[ALPHA]!.queued}/cancel` },
    },
    "POST /api/changes": {
      kind: "organization",
      permission: "change:request",
      b: [{ url: "/api/changes", body: { ...workersChange(BETA), reason: "more workers" } }],
      a: { url: "/api/changes", body: { ...workersChange(ALPHA), reason: "more workers" } },
    },
    "GET /api/changes": {
      kind: "organization",
      permission: "change:read",
      b: [{ url: "/api/changes" }, { url: `/api/changes?organization=${BETA}` }],
      a: { url: `/api/changes?organization=${ALPHA}` },
    },
    "GET /api/changes/:id": changeCase("", "change:read"),
    "POST /api/changes/:id/approve": changeCase("/approve", "change:approve"),
    "POST /api/changes/:id/deny": changeCase("/deny", "change:approve", { reason: "not now" }),
    "POST /api/changes/:id/apply": changeCase("/apply", "spec:apply"),
    "POST /api/changes/:id/cancel": changeCase("/cancel", "change:request", { reason: "withdrawn" }),
    "POST /api/changes/:id/rollback": changeCase("/rollback", "change:request", { reason: "undo" }),
    "GET /api/runs/:kind/:id": runCase(false),
    "GET /api/runs/:kind/:id/events": runCase(true),
  };
};

void describe("authorization per organization, over every route", () => {
  let database: TTestDatabase;
  let home: string;
  let running: TRunningCarehost;
  let adminToken: string;
  let source: string;
  const tokens = new Map<string, string>();

  const call = async (token: string, method: string, url: string, body?: unknown): Promise<TAnswer> => {
    const response = await fetch(`${running.url}${url}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, text: await response.text(), requestId: response.headers.get("x-request-id")! };
  };
  const ok = async (token: string, method: string, url: string, body?: unknown) => {
    const answer = await call(token, method, url, body);
    assert.ok(answer.status >= 200 && answer.status < 300, `${method} ${url}: ${answer.status} ${answer.text}`);
    return JSON.parse(answer.text || "null") as unknown;
  };
  // The demo requires a second factor: each user enrols at the first sign-in and answers every
  // later one with a code. The identity clock moves a minute before each code, so none is reused.
  const authenticators = new Map<string, string>();
  let clockOffsetMs = 0;
  const identityNow = () => new Date(Date.now() + clockOffsetMs);
  const post = async (url: string, body: unknown) => {
    const response = await fetch(`${running.url}${url}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    assert.equal(response.status, 200, `${url}: ${response.status}`);
    return (await response.json()) as { token?: string; ticket?: string; secret?: string };
  };
  /** The password step: the ticket it gives, and the code that completes it. */
  const passwordStep = async (username: string) => {
    const challenge = await post("/api/auth/login", { username, password: PASSWORD });
    if (challenge.secret !== undefined) authenticators.set(username, challenge.secret);
    clockOffsetMs += 60_000;
    return { ticket: challenge.ticket!, code: totpCodeAt(authenticators.get(username)!, identityNow()) };
  };
  const login = async (username: string) => {
    const token = (await post("/api/auth/second-factor", await passwordStep(username))).token;
    assert.ok(token, username);
    return token;
  };
  const specOf = (organization: string) => {
    const named = source.replace("name: northwind-health", `name: ${organization}`);
    return organization === BETA ? named.replace("  - name: training", `  - name: ${BETA_ONLY}`) : named;
  };
  const deniedRequestIds = async (): Promise<Set<string>> => {
    const entries = (await ok(adminToken, "GET", "/api/audit/entries?type=access.denied&limit=10000")) as {
      requestId: string;
    }[];
    return new Set(entries.map((entry) => entry.requestId));
  };

  let fixture: TFixture;

  before(async () => {
    database = await testDatabaseFactories.postgres();
    home = await mkdtemp(join(tmpdir(), "carehost-authz-"));
    const config = loadConfig({
      CAREHOST_HOME: home,
      CAREHOST_PORT: "0",
      CAREHOST_RUNTIME: "none",
      CAREHOST_DATABASE_URL: (database.config as { url: string }).url,
    });
    const discard = new Writable({ write: (_chunk, _encoding, done) => done() });
    running = await startCarehost(config, { print: () => undefined, logStream: discard, clock: identityNow });
    adminToken = (await readFile(join(home, "cli-token"), "utf8")).trim();
    source = (await readFile("examples/northwind-health.yaml", "utf8")).replace(
      "localUsersAllowed: false",
      "localUsersAllowed: true",
    );
    for (const organization of [ALPHA, BETA]) {
      await ok(adminToken, "POST", "/api/apply", { source: specOf(organization), fileName: "spec.yaml" });
      await ok(adminToken, "POST", "/api/secrets/set", {
        name: `backup/${organization}/backup-offsite-azure-key`,
        value: `${organization} key`,
      });
    }
    // Runs of both organizations, as backups, verifications, restores and drills leave them.
    const runs: TFixture["runs"] = {};
    for (const organization of [ALPHA, BETA]) {
      const id = async (sql: string) =>
        ((await database.superuserQuery(sql, [organization])) as { id: string }[])[0]!.id;
      runs[organization] = {
        backup: Number(
          await id(
            "INSERT INTO backup_runs (organization, environment, kind, trigger, status, result, finished_at) VALUES ($1, 'prod', 'full', 'manual', 'succeeded', '{}', now()) RETURNING id",
          ),
        ),
        verify: Number(
          await id(
            "INSERT INTO backup_runs (organization, environment, kind, trigger, status, result, finished_at) VALUES ($1, 'prod', 'verify', 'manual', 'succeeded', '{}', now()) RETURNING id",
          ),
        ),
        restore: Number(
          await id(
            "INSERT INTO restore_runs (organization, environment, target, destination, status, result, finished_at) VALUES ($1, 'prod', 'latest', 'copy c', 'succeeded', '{}', now()) RETURNING id",
          ),
        ),
        drill: Number(
          await id(
            "INSERT INTO restore_drills (organization, environment, trigger, status, rto_objective_minutes, rpo_objective_minutes, finished_at) VALUES ($1, 'prod', 'manual', 'passed', 60, 15, now()) RETURNING id",
          ),
        ),
      };
    }
    // A copy of each organization's production, as a restore records it.
    for (const organization of [ALPHA, BETA])
      await database.superuserQuery(
        `INSERT INTO copies (organization, name, kind, source_environment, source_data_class, restored_to, data_class, restore_run_id, owner, created_at, expires_at)
         VALUES ($1, $2, 'copy', 'prod', 'phi', 'latest', 'phi', 1, 'admin', now(), now() + interval '1 day')`,
        [organization, organization === ALPHA ? "copy-a" : "copy-b"],
      );
    const operations: TFixture["operations"] = {};
    for (const organization of [ALPHA, BETA]) {
      const insert = async (state: string) =>
        Number(
          (
            (await database.superuserQuery(
              `INSERT INTO operations (organization, environment, target, kind, requested_by, state, deadline_seconds, finished_at)
               VALUES ($1, 'prod', 'cluster/' || $1 || '/dedicated-prod', 'backup', 'system:scheduler', $2, 60,
                 CASE WHEN $2 = 'succeeded' THEN now() END) RETURNING id`,
              [organization, state],
            )) as { id: string }[]
          )[0]!.id,
        );
      operations[organization] = { ended: await insert("succeeded"), queued: await insert("pending") };
    }
    const adminTokens = (await ok(adminToken, "GET", "/api/tokens")) as { id: string; name: string | null }[];
    const changes: TFixture["changes"] = {};
    for (const organization of [ALPHA, BETA]) {
      const created = (await ok(adminToken, "POST", "/api/changes", {
        source: specOf(organization).replace(/workers: 9\b/, "workers: 11"),
        fileName: `${organization}.yaml`,
        reason: "more workers",
      })) as { request: { id: number } };
      changes[organization] = created.request.id;
    }
    // A firing alert and an active silence of each organization, as a probe round and an operator leave them.
    const alerts: TFixture["alerts"] = {};
    for (const organization of [ALPHA, BETA]) {
      const insert = async (sql: string) =>
        Number(((await database.superuserQuery(sql, [organization])) as { id: string }[])[0]!.id);
      alerts[organization] = {
        alert: await insert(
          `INSERT INTO alerts (fingerprint, rule, org_name, environment, instance, severity, labels, annotations, state, pending_since, fired_at, evaluated_at)
           VALUES ('fp-' || $1, 'PostgresDown', $1, 'prod', 'dedicated-prod', 'critical', '{}', '{}', 'firing', now(), now(), now()) RETURNING id`,
        ),
        silence: await insert(
          `INSERT INTO alert_silences (rule, org_name, environment, owner, reason, created_at, expires_at)
           VALUES ('PostgresDown', $1, 'prod', 'admin', 'maintenance', now(), now() + interval '1 hour') RETURNING id`,
        ),
      };
    }
    fixture = {
      specOf,
      runs,
      operations,
      changes,
      alerts,
      adminTokenId: adminTokens.find((token) => token.name === "local-cli")!.id,
    };
    // An operator and a platform-admin, each over A only: the second holds every permission, on A.
    for (const [username, role] of [
      ["olga", "operator"],
      ["padma", "platform-admin"],
      ["aude", "auditor"],
    ] as const) {
      await ok(adminToken, "POST", "/api/users", { username, role, organizations: [ALPHA], password: PASSWORD });
      tokens.set(username, await login(username));
    }
  });

  after(async () => {
    await running?.close();
    await rm(home, { recursive: true, force: true });
    await database?.dispose();
  });

  void it("has a case for every route the API serves, and no case for a route it does not", () => {
    const served = running.app.apiRoutes.map((route) => `${route.method} ${route.url}`).sort();
    assert.deepEqual(Object.keys(cases(fixture)).sort(), served);
    for (const route of running.app.apiRoutes)
      assert.equal(route.public, cases(fixture)[`${route.method} ${route.url}`]!.kind === "public", route.url);
  });

  for (const [username, role] of [
    ["olga", "operator"],
    ["padma", "platform-admin"],
  ] as const satisfies readonly (readonly [string, TRole])[]) {
    void it(`refuses ${username} (${role} over ${ALPHA}) everything of ${BETA} on every route, and audits it; authorizes the same on ${ALPHA}`, async () => {
      const token = tokens.get(username)!;
      const mustBeDenied: [string, TAnswer][] = [];
      const mustNotBeDenied: [string, TAnswer][] = [];
      const send = async (method: string, request: TRequest) => {
        const body =
          request.url === "/api/auth/login"
            ? { username, password: PASSWORD }
            : request.url === "/api/auth/second-factor"
              ? await passwordStep(username)
              : request.body;
        const answer = await call(request.freshSession ? await login(username) : token, method, request.url, body);
        assert.ok(answer.status < 500, `${method} ${request.url}: ${answer.status} ${answer.text}`);
        return answer;
      };
      for (const [key, routeCase] of Object.entries(cases(fixture))) {
        const method = key.split(" ")[0]!;
        if (routeCase.kind !== "organization") {
          const answer = await send(method, routeCase.request);
          assert.ok(!answer.text.includes(BETA), `${key} shows ${BETA}: ${answer.text.slice(0, 300)}`);
          if (routeCase.kind === "platform") {
            assert.equal(answer.status, 403, `${key}: ${answer.text}`);
            mustBeDenied.push([key, answer]);
          } else if (routeCase.refusedWith !== undefined) {
            assert.equal(answer.status, routeCase.refusedWith, `${key}: ${answer.text}`);
          } else if (routeCase.request.expectStatus !== undefined) {
            assert.equal(answer.status, routeCase.request.expectStatus, `${key}: ${answer.text}`);
          } else {
            assert.ok(answer.status < 300, `${key}: ${answer.status} ${answer.text}`);
          }
          continue;
        }
        for (const request of routeCase.b) {
          const answer = await send(method, request);
          const label = `${key} against ${BETA} (${JSON.stringify(request).slice(0, 160)})`;
          if (answer.status === 403 || answer.status === 404) mustBeDenied.push([label, answer]);
          else {
            assert.ok(answer.status < 300, `${label}: ${answer.status} ${answer.text}`);
            assert.ok(!answer.text.includes(BETA), `${label} shows ${BETA}: ${answer.text.slice(0, 300)}`);
          }
        }
        const onA = await send(method, routeCase.a);
        const label = `${key} on ${ALPHA}`;
        if (!rolePermissions[role].includes(routeCase.permission)) {
          // The role lacks it everywhere: refused on A too, like before bindings.
          assert.equal(onA.status, 403, `${label}: ${onA.text}`);
          continue;
        }
        assert.ok(![401, 403].includes(onA.status), `${label}: ${onA.status} ${onA.text}`);
        mustNotBeDenied.push([label, onA]);
      }
      const denied = await deniedRequestIds();
      for (const [label, answer] of mustBeDenied)
        assert.ok(
          denied.has(answer.requestId),
          `${label} was refused (${answer.status}) without an access.denied entry`,
        );
      for (const [label, answer] of mustNotBeDenied)
        assert.ok(!denied.has(answer.requestId), `${label} was refused: ${answer.status} ${answer.text}`);
    });
  }

  void it(`shows ${ALPHA}'s own data to them: environments, status, backups, secrets, and the audit entries of ${ALPHA} only`, async () => {
    const olga = tokens.get("olga")!;
    const environments = (await ok(olga, "GET", "/api/environments")) as { organization: string }[];
    assert.ok(environments.length > 0 && environments.every((row) => row.organization === ALPHA));
    const status = (await ok(olga, "GET", "/api/status")) as { organizations: { name: string }[] };
    assert.deepEqual(
      status.organizations.map((organization) => organization.name),
      [ALPHA],
    );
    const backups = (await ok(olga, "GET", "/api/backups")) as { organization: string }[];
    assert.deepEqual([...new Set(backups.map((run) => run.organization))], [ALPHA]);
    const secrets = (await ok(olga, "GET", "/api/secrets")) as { name: string }[];
    assert.deepEqual(
      secrets.map((secret) => secret.name),
      [`backup/${ALPHA}/backup-offsite-azure-key`],
    );
    const plan = (await ok(olga, "POST", "/api/plan", { source: specOf(ALPHA) })) as { organization: string };
    assert.equal(plan.organization, ALPHA);

    const entries = (await ok(tokens.get("aude")!, "GET", "/api/audit/entries?limit=10000")) as { target: string }[];
    assert.ok(entries.some((entry) => entry.target === `organization/${ALPHA}`));
    assert.ok(!JSON.stringify(entries).includes(BETA));
    const everything = (await ok(adminToken, "GET", "/api/audit/entries?limit=10000")) as { target: string }[];
    assert.ok(
      everything.some((entry) => entry.target === `organization/${BETA}`),
      "the admin over * reads B's",
    );
  });

  void it("grants and revokes organizations through the API, audited, effective on the next request; the last admin over every organization keeps it", async () => {
    const olga = tokens.get("olga")!;
    assert.equal((await call(olga, "GET", `/api/environments?organization=${BETA}`)).status, 403);
    const granted = (await ok(adminToken, "POST", "/api/users/olga/grant", { organizations: [BETA] })) as {
      organizations: string[];
      added: string[];
    };
    assert.deepEqual(granted, { ...granted, organizations: [ALPHA, BETA], added: [BETA] });
    assert.equal((await call(olga, "GET", `/api/environments?organization=${BETA}`)).status, 200);
    await ok(adminToken, "POST", "/api/users/olga/revoke", { organizations: [BETA] });
    assert.equal((await call(olga, "GET", `/api/environments?organization=${BETA}`)).status, 403);

    const lastAdmin = await call(adminToken, "POST", "/api/users/admin/revoke", { organizations: ["*"] });
    assert.equal(lastAdmin.status, 409, lastAdmin.text);
    const invalid = await call(adminToken, "POST", "/api/users/olga/grant", { organizations: ["Not An Org"] });
    assert.equal(invalid.status, 400, invalid.text);
    assert.match(invalid.text, /organizations\.0/);

    const users = (await ok(adminToken, "GET", "/api/users")) as { username: string; organizations: string[] }[];
    assert.deepEqual(users.find((user) => user.username === "olga")?.organizations, [ALPHA]);
    assert.deepEqual(users.find((user) => user.username === "admin")?.organizations, ["*"]);
    const events = (await ok(adminToken, "GET", "/api/audit/entries?limit=10000")) as {
      type: string;
      target: string;
      payload: { organizations?: string[] };
    }[];
    const ofOlga = (type: string) =>
      events
        .filter((entry) => entry.type === type && entry.target === "user:olga")
        .map((entry) => entry.payload.organizations);
    assert.deepEqual(ofOlga("user.access_granted"), [[BETA]]);
    assert.deepEqual(ofOlga("user.access_revoked"), [[BETA]]);
    assert.deepEqual(ofOlga("user.created"), [[ALPHA]]);
  });

  void it("manages bindings from the CLI: user create --org, grant, revoke, list", async () => {
    const cli = async (...args: string[]) => {
      const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], {
        env: { ...process.env, CAREHOST_HOME: home, XDG_CONFIG_HOME: join(home, "xdg"), NO_COLOR: "1" },
      });
      return stdout;
    };
    assert.match(
      await cli("user", "create", "ben", "--role", "viewer", "--org", `${ALPHA}, ${BETA}`),
      new RegExp(`User ben \\(viewer over ${ALPHA}, ${BETA}\\) created`),
    );
    assert.match(
      await cli("user", "revoke", "ben", "--org", BETA),
      new RegExp(`revoked ${BETA}; now over ${ALPHA}\\.`),
    );
    assert.match(await cli("user", "grant", "ben", "--org", "*"), /granted \*; now over \*, org-alpha\./);
    assert.match(await cli("user", "list"), /^ben {2}viewer {2}\*,org-alpha$/m);
  });
});
