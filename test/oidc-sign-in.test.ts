// Single sign-on against a real OpenID Connect provider (npm oidc-provider, in-process, over TLS
// with a test certificate the server trusts through its fetch): carehost on PGlite, the demo
// organization's identity pointed at the provider, and each way a sign-in must be refused. Every
// refusal is checked for its own reason (the message, and an auth.sso.failed entry naming it), so
// a test passes only because the check it is about refused, not because something else did.
import assert from "node:assert/strict";
import { generateKeyPairSync, sign } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { PassThrough } from "node:stream";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Response as UndiciResponse } from "undici";
import type { CustomFetch } from "openid-client";
import { ssoLogin } from "../src/cli/cli-sso-login.js";
import { createApiClient } from "../src/cli/cli-client.js";
import { loadConfig } from "../src/lib/config.js";
import { startCarehost, type TRunningCarehost } from "../src/server/server-start.js";
import { startOidcProvider, type TTestAccount, type TTestClient, type TTestProvider } from "./oidc-provider.js";

const ORG = "northwind-health";
const CAREHOST_CLIENT: TTestClient = {
  client_id: "carehost",
  client_secret: "carehost-client-secret-at-the-provider",
  // Native: the provider lets a loopback redirect use any port (carehost's own and the CLI's).
  redirect_uris: ["http://127.0.0.1/api/auth/oidc/callback", "http://127.0.0.1/callback"],
};
const OTHER_CLIENT: TTestClient = {
  client_id: "payroll-app",
  client_secret: "another-application-at-the-same-provider",
  redirect_uris: ["http://127.0.0.1/payroll"],
};
const dana: TTestAccount = {
  sub: "dana-0001",
  email: "Dana@Northwind-Health.example",
  email_verified: true,
  groups: ["carehost-operators", "all-staff"],
  amr: ["pwd", "mfa"],
};

type TAnswer = { status: number; body: Record<string, unknown> };

void describe("single sign-on through the organization's OIDC provider", () => {
  let home: string;
  let provider: TTestProvider;
  let running: TRunningCarehost;
  let adminToken: string;
  let clockOffsetMs = 0;
  /** Set by the wrong-audience case: the ID token the token endpoint's answer carries instead of carehost's. */
  let substituteIdToken: string | undefined;

  const call = async (method: string, path: string, token?: string, body?: unknown): Promise<TAnswer> => {
    const response = await fetch(`${running.url}${path}`, {
      method,
      redirect: "manual",
      headers: {
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return {
      status: response.status,
      body: (text === "" ? { location: response.headers.get("location") } : JSON.parse(text)) as Record<
        string,
        unknown
      >,
    };
  };

  /** The web flow: carehost's start redirects to the provider, which sends the browser back to carehost's callback. */
  const webSignIn = async (account: TTestAccount) => {
    const started = await call("GET", `/api/auth/oidc/${ORG}/start`);
    assert.equal(started.status, 302, JSON.stringify(started.body));
    const callback = await provider.signIn(started.body.location as string, account);
    assert.equal(callback.origin, new URL(running.url).origin, "the provider sends the browser back to carehost");
    return { callback, answer: await call("GET", `${callback.pathname}${callback.search}`) };
  };

  const ssoEntries = async (type: "auth.sso.failed" | "auth.sso.succeeded") =>
    (await call("GET", `/api/audit/entries?type=${type}&limit=1000`, adminToken)).body as unknown as {
      payload: Record<string, unknown>;
    }[];

  const lastFailure = async () => {
    const entries = await ssoEntries("auth.sso.failed");
    return entries[entries.length - 1]?.payload;
  };

  before(async () => {
    home = await mkdtemp(join(tmpdir(), "carehost-oidc-"));
    provider = await startOidcProvider(join(home, "provider-tls"), {
      clients: [CAREHOST_CLIENT, OTHER_CLIENT],
      idTokenTtlSeconds: 60,
    });
    // carehost reaches the provider through a fetch that trusts the provider's certificate; in the
    // wrong-audience case it also stands in for whoever slips another client's ID token into the
    // token endpoint's answer.
    const oidcFetch = (async (url: string, init: unknown) => {
      const response = await provider.fetch(url, init as Parameters<TTestProvider["fetch"]>[1]);
      if (substituteIdToken === undefined || !url.endsWith("/token")) return response;
      const body = (await response.json()) as Record<string, unknown>;
      return new UndiciResponse(JSON.stringify({ ...body, id_token: substituteIdToken }), {
        status: response.status,
        headers: { "content-type": "application/json" },
      });
    }) as unknown as CustomFetch;
    running = await startCarehost(loadConfig({ CAREHOST_HOME: home, CAREHOST_PORT: "0", CAREHOST_RUNTIME: "none" }), {
      print: () => undefined,
      logStream: new PassThrough().resume(),
      clock: () => new Date(Date.now() + clockOffsetMs),
      oidcFetch,
    });
    adminToken = (await readFile(join(home, "cli-token"), "utf8")).trim();
    const demo = await readFile(join("examples", "northwind-health.yaml"), "utf8");
    const identity = [
      "identity:",
      "  localUsersAllowed: false",
      "  oidc:",
      `    issuer: ${provider.issuer}`,
      `    clientId: ${CAREHOST_CLIENT.client_id}`,
      "    clientSecretRef: carehost-oidc-client",
      "    allowedDomains:",
      "      - northwind-health.example",
      "    groupsClaim: groups",
      "    roleMappings:",
      "      - { group: carehost-operators, role: operator }",
      "      - { group: carehost-auditors, role: auditor }",
      "  mfaRequired: true",
      "  sessionIdleTimeoutMinutes: 15",
      "",
    ].join("\n");
    const source = demo.replace(/^identity:\n(?: {2}.*\n|\n(?= ))*/m, identity);
    assert.match(source, new RegExp(`issuer: ${provider.issuer}`));
    const applied = await call("POST", "/api/apply", adminToken, { source, fileName: `${ORG}.yaml` });
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
    const stored = await call("POST", "/api/secrets/set", adminToken, {
      name: `identity/${ORG}/carehost-oidc-client`,
      value: CAREHOST_CLIENT.client_secret,
    });
    assert.equal(stored.status, 200, JSON.stringify(stored.body));
  });

  after(async () => {
    await running?.close();
    await provider?.stop();
    await rm(home, { recursive: true, force: true });
  });

  void it("signs a person in: a user named by the verified email, bound to the mapped role over the organization, with a session that works and no more", async () => {
    const { answer } = await webSignIn(dana);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.username, "dana@northwind-health.example");
    assert.deepEqual(answer.body.roles, ["operator"]);
    const token = answer.body.token as string;
    const environments = await call("GET", "/api/environments", token);
    assert.equal(environments.status, 200, JSON.stringify(environments.body));
    assert.ok(
      JSON.stringify(environments.body).includes("prod"),
      "an operator of the organization sees its environments",
    );
    const whoami = await call("GET", "/api/whoami", token);
    assert.equal(whoami.body.username, "dana@northwind-health.example");
    assert.equal((await call("GET", "/api/users", token)).status, 403, "an operator does not read users");
    const succeeded = (await ssoEntries("auth.sso.succeeded")).map((item) => item.payload);
    assert.ok(
      succeeded.some(
        (payload) =>
          payload.username === "dana@northwind-health.example" &&
          payload.subject === dana.sub &&
          payload.issuer === provider.issuer &&
          JSON.stringify(payload.amr) === JSON.stringify(["pwd", "mfa"]),
      ),
      JSON.stringify(succeeded),
    );
  });

  void it("sets the bindings from the groups at every sign-in: a group removed at the provider is a role removed here", async () => {
    const { answer } = await webSignIn({ ...dana, groups: ["carehost-auditors"] });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.deepEqual(answer.body.roles, ["auditor"]);
    const users = (await call("GET", "/api/users", adminToken)).body as unknown as { username: string; role: string }[];
    assert.equal(users.find((user) => user.username === "dana@northwind-health.example")?.role, "auditor");
    const token = answer.body.token as string;
    assert.equal((await call("GET", "/api/audit/entries?limit=1", token)).status, 200, "an auditor reads the log");
    const backup = await call("POST", "/api/backups", token, { environment: "prod", organization: ORG });
    assert.equal(backup.status, 403, "the operator binding is gone");
  });

  void it("refuses an email domain outside allowedDomains, and one the provider does not vouch for", async () => {
    const { answer } = await webSignIn({ ...dana, sub: "mallory-1", email: "mallory@elsewhere.example" });
    assert.equal(answer.status, 403, JSON.stringify(answer.body));
    assert.match(String(answer.body.detail), /email domain "elsewhere\.example" .* not one of .*allowedDomains/);
    assert.match(String((await lastFailure())?.reason), /elsewhere\.example/);
    const unverified = await webSignIn({ ...dana, sub: "dana-unverified", email_verified: false });
    assert.equal(unverified.answer.status, 403, JSON.stringify(unverified.answer.body));
    assert.match(String(unverified.answer.body.detail), /email_verified is false, not true/);
  });

  void it("refuses an ID token issued to another client of the same provider (wrong audience)", async () => {
    const started = await call("GET", `/api/auth/oidc/${ORG}/start`);
    const authorizationUrl = new URL(started.body.location as string);
    const nonce = authorizationUrl.searchParams.get("nonce")!;
    // A real token, signed by the provider, with carehost's nonce: only its audience is wrong.
    substituteIdToken = await provider.idTokenFor(OTHER_CLIENT, dana, nonce);
    try {
      const callback = await provider.signIn(authorizationUrl.href, dana);
      const answer = await call("GET", `${callback.pathname}${callback.search}`);
      assert.equal(answer.status, 401, JSON.stringify(answer.body));
      assert.match(String(answer.body.detail), /"aud" \(audience\)/);
      assert.match(String((await lastFailure())?.reason), /aud/);
    } finally {
      substituteIdToken = undefined;
    }
  });

  void it("refuses an ID token whose signature is not the issuer's, though it arrives over the provider's TLS", async () => {
    const started = await call("GET", `/api/auth/oidc/${ORG}/start`);
    const authorizationUrl = new URL(started.body.location as string);
    const nonce = authorizationUrl.searchParams.get("nonce")!;
    // The provider's own token for carehost, with carehost's nonce, re-signed by a key the issuer's JWKS lacks.
    const genuine = await provider.idTokenFor(CAREHOST_CLIENT, dana, nonce);
    const [header, payload] = genuine.split(".");
    const forger = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
    const signature = sign("sha256", Buffer.from(`${header}.${payload}`), forger).toString("base64url");
    substituteIdToken = `${header}.${payload}.${signature}`;
    try {
      const callback = await provider.signIn(authorizationUrl.href, dana);
      const answer = await call("GET", `${callback.pathname}${callback.search}`);
      assert.equal(answer.status, 401, JSON.stringify(answer.body));
      assert.match(String(answer.body.detail), /signature/i);
    } finally {
      substituteIdToken = undefined;
    }
  });

  void it("refuses an expired ID token (carehost's clock past the token's exp)", async () => {
    const started = await call("GET", `/api/auth/oidc/${ORG}/start`);
    const callback = await provider.signIn(started.body.location as string, dana);
    // The provider's ID tokens live 60 s; five minutes later the sign-in (10 minutes) is still open.
    clockOffsetMs = 5 * 60_000;
    try {
      const answer = await call("GET", `${callback.pathname}${callback.search}`);
      assert.equal(answer.status, 401, JSON.stringify(answer.body));
      assert.match(String(answer.body.detail), /"exp" \(expiration time\)/);
    } finally {
      clockOffsetMs = 0;
    }
  });

  void it("refuses a replayed callback (the same code and state) before it reaches the provider", async () => {
    const { callback, answer } = await webSignIn(dana);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const exchanged = provider.codesExchanged();
    const replayed = await call("GET", `${callback.pathname}${callback.search}`);
    assert.equal(replayed.status, 401, JSON.stringify(replayed.body));
    assert.match(String(replayed.body.detail), /already completed .*a replayed callback/);
    assert.equal(provider.codesExchanged(), exchanged, "the replay never reached the token endpoint");
    assert.match(String((await lastFailure())?.reason), /replayed callback/);
  });

  void it("refuses a person none of whose groups maps to a role, naming the groups", async () => {
    const { answer } = await webSignIn({
      ...dana,
      sub: "erin-1",
      email: "erin@northwind-health.example",
      groups: ["all-staff"],
    });
    assert.equal(answer.status, 403, JSON.stringify(answer.body));
    assert.match(String(answer.body.detail), /none of erin@northwind-health\.example's groups maps to a carehost role/);
    assert.match(String(answer.body.detail), /"all-staff"/);
    const failure = await lastFailure();
    assert.equal(failure?.email, "erin@northwind-health.example");
    const users = (await call("GET", "/api/users", adminToken)).body as unknown as { username: string }[];
    assert.ok(!users.some((user) => user.username === "erin@northwind-health.example"), "no user was made");
  });

  void it("refuses a sign-in without a second factor where the organization requires one", async () => {
    const { answer } = await webSignIn({ ...dana, amr: ["pwd"] });
    assert.equal(answer.status, 403, JSON.stringify(answer.body));
    assert.match(
      String(answer.body.detail),
      /requires a second factor .* shows amr \[pwd\], none of which is a second factor/,
    );
    assert.match(String((await lastFailure())?.reason), /second factor/);
  });

  void it("signs the CLI in through a loopback redirect (RFC 8252): the code comes to 127.0.0.1, the server exchanges it", async () => {
    const session = await ssoLogin({
      client: createApiClient(running.url, undefined),
      organization: ORG,
      announce: async (authorizationUrl) => {
        const redirect = new URL(authorizationUrl).searchParams.get("redirect_uri")!;
        assert.match(redirect, /^http:\/\/127\.0\.0\.1:\d+\/callback$/);
        const back = await provider.signIn(authorizationUrl, dana);
        assert.equal(back.origin, new URL(redirect).origin);
        // The browser follows the provider's redirect to the CLI's address.
        assert.equal((await fetch(back)).status, 200);
      },
    });
    assert.equal(session.username, "dana@northwind-health.example");
    assert.equal((await call("GET", "/api/whoami", session.token)).status, 200);
  });

  void it("refuses a redirect to anything but a loopback address", async () => {
    const answer = await call("POST", "/api/auth/oidc/start", undefined, {
      organization: ORG,
      redirectUri: "https://attacker.example/callback",
    });
    assert.equal(answer.status, 400, JSON.stringify(answer.body));
    assert.match(String(answer.body.detail), /is not a loopback address/);
  });
});
