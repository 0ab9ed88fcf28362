// The second factor over HTTP and through the `carehost` CLI, against a server started on a data
// dir of its own: password, then code, with no session before the code; break-glass with a reason;
// API tokens only from a session that passed the second factor; an admin's reset; and the spec's
// absolute session lifetime, with the server's identity clock moved instead of waiting hours.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { localCliTokenPath } from "../cli/cli-credentials.js";
import { totpCodeAt } from "../identity/identity-totp.js";
import { loadConfig } from "../lib/config.js";
import { startCarehost, type TRunningCarehost } from "./server-start.js";

type TEntry = { type: string; outcome: string; target: string; payload: Record<string, unknown> };
type TCliResult = { code: number; stdout: string; stderr: string };

void describe("carehost up: the second factor over HTTP and the CLI", () => {
  let home: string;
  let running: TRunningCarehost;
  let offsetMs = 0;
  const now = () => new Date(Date.now() + offsetMs);
  let localToken: string;

  const call = async (method: string, path: string, body?: unknown, token?: string) => {
    const response = await fetch(`${running.url}${path}`, {
      method,
      headers: {
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: (text === "" ? null : JSON.parse(text)) as Record<string, unknown> };
  };
  const entries = async (type: string) =>
    (await call("GET", `/api/audit/entries?type=${type}`, undefined, localToken)).body as unknown as TEntry[];

  const cliEnv = () => {
    const { CAREHOST_TOKEN: _token, CAREHOST_URL: _url, CAREHOST_PASSWORD: _password, ...inherited } = process.env;
    return { ...inherited, CAREHOST_HOME: home, XDG_CONFIG_HOME: join(home, "xdg"), NO_COLOR: "1" };
  };
  const cli = async (args: string[], env: Record<string, string> = {}): Promise<TCliResult> => {
    try {
      const { stdout, stderr } = await promisify(execFile)(
        process.execPath,
        ["--import", "tsx", "src/cli/main.ts", ...args],
        { env: { ...cliEnv(), ...env } },
      );
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  };

  /** The CLI in a terminal-less session where a person types the code of the secret it printed. */
  const cliTypingCode = (args: string[], env: Record<string, string> = {}) =>
    new Promise<TCliResult>((resolveRun, rejectRun) => {
      const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], {
        env: { ...cliEnv(), ...env },
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString("utf8");
        const secret = /secret: ([A-Z2-7]+)\n/.exec(stdout)?.[1];
        if (secret !== undefined && !child.stdin.writableEnded) child.stdin.end(`${totpCodeAt(secret, now())}\n`);
      });
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
      child.on("error", rejectRun);
      child.on("close", (code) => resolveRun({ code: code ?? 1, stdout, stderr }));
    });

  before(async () => {
    home = await mkdtemp(join(tmpdir(), "carehost-mfa-"));
    running = await startCarehost(
      loadConfig({ CAREHOST_HOME: home, CAREHOST_PORT: "0", CAREHOST_RUNTIME: "none", CAREHOST_LOG_LEVEL: "silent" }),
      { print: () => undefined, printsToTerminal: false, clock: now },
    );
    localToken = (await readFile(localCliTokenPath(home), "utf8")).trim();
    // The demo with local users allowed and a 2-hour absolute session lifetime; it keeps its OIDC
    // provider and mfaRequired: true.
    const source = (await readFile("examples/northwind-health.yaml", "utf8"))
      .replace("localUsersAllowed: false", "localUsersAllowed: true")
      .replace("sessionIdleTimeoutMinutes: 15", "sessionIdleTimeoutMinutes: 15\n  sessionMaxHours: 2");
    const applied = await call("POST", "/api/apply", { source }, localToken);
    assert.equal(applied.status, 200, JSON.stringify(applied.body));
  });

  after(async () => {
    await running.close();
    await rm(home, { recursive: true, force: true });
  });

  let adminSecret = "";
  let adminSession = "";
  const adminPassword = async () => (await readFile(join(home, "admin-password"), "utf8")).trim();
  /** A code of the admin's authenticator for a step later than any used: the clock moves a minute each time. */
  const nextAdminCode = () => {
    offsetMs += 60_000;
    return totpCodeAt(adminSecret, now());
  };

  void it("signs the bootstrap admin in as break-glass: a reason, enrolment, the code, then a session; an ALERT in the log", async () => {
    const password = await adminPassword();
    const noReason = await call("POST", "/api/auth/login", { username: "admin", password });
    assert.equal(noReason.status, 400);
    assert.deepEqual(
      (noReason.body.errors as { path: string }[]).map((error) => error.path),
      ["reason"],
    );
    const wrongPassword = await call("POST", "/api/auth/login", { username: "admin", password: "nope nope" });
    assert.equal(wrongPassword.status, 401);
    assert.equal(wrongPassword.body.detail, "invalid username or password");

    const challenge = await call("POST", "/api/auth/login", {
      username: "admin",
      password,
      reason: "IdP outage INC-9",
    });
    assert.equal(challenge.status, 200);
    assert.equal(challenge.body.secondFactor, "enrol");
    assert.equal(challenge.body.token, undefined, "no session before the second factor");
    const ticket = String(challenge.body.ticket);
    adminSecret = String(challenge.body.secret);
    assert.match(String(challenge.body.otpauthUri), /^otpauth:\/\/totp\/carehost:admin\?.*secret=/);
    assert.equal((await call("GET", "/api/whoami", undefined, ticket)).status, 401, "a ticket is no bearer token");

    const wrong = await call("POST", "/api/auth/second-factor", { ticket, code: "000000" });
    assert.equal(wrong.status, 401);
    assert.match(String(wrong.body.detail), /^the code is wrong or was already used; .* \(2 tries left\)$/);
    const signedIn = await call("POST", "/api/auth/second-factor", { ticket, code: totpCodeAt(adminSecret, now()) });
    assert.equal(signedIn.status, 200, JSON.stringify(signedIn.body));
    assert.equal(signedIn.body.secondFactor, "totp");
    assert.equal((signedIn.body.recoveryCodes as string[]).length, 10);
    adminSession = String(signedIn.body.token);
    assert.equal((await call("GET", "/api/whoami", undefined, adminSession)).status, 200);

    const [alert] = await entries("auth.login.break_glass");
    assert.equal(alert?.payload.severity, "alert");
    assert.equal(alert?.payload.reason, "IdP outage INC-9");
    assert.deepEqual(alert?.payload.oidcConfiguredBy, ["northwind-health"]);
    assert.equal((await entries("auth.mfa.enrolled")).length, 1);
    assert.equal((await entries("auth.mfa.failed")).length, 1);
  });

  void it("mints API tokens for a session that passed the second factor, never for the host's API token", async () => {
    const refused = await call("POST", "/api/tokens", { name: "laptop" }, localToken);
    assert.equal(refused.status, 403);
    assert.match(String(refused.body.detail), /needs a session that passed the second factor/);
    const created = await call("POST", "/api/tokens", { name: "laptop" }, adminSession);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal((await entries("token.refused")).length, 1);
  });

  void it("`carehost login` asks for the code the server needs, `carehost mfa enroll` enrols, `carehost mfa reset` resets", async () => {
    const created = await call(
      "POST",
      "/api/users",
      { username: "lee", role: "viewer", organizations: ["lakeside-health"], password: "lee's long passphrase" },
      adminSession,
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));

    // kim, bound to the demo, enrols at her first sign-in through the CLI: the URI, her code, the recovery codes.
    const kim = await call(
      "POST",
      "/api/users",
      { username: "kim", role: "viewer", organizations: ["northwind-health"], password: "kim's long passphrase" },
      adminSession,
    );
    assert.equal(kim.status, 201, JSON.stringify(kim.body));
    const kimsLogin = await cliTypingCode(["login", "-u", "kim"], { CAREHOST_PASSWORD: "kim's long passphrase" });
    assert.equal(kimsLogin.code, 0, kimsLogin.stdout + kimsLogin.stderr);
    assert.match(kimsLogin.stdout, /kim has no authenticator yet, and a second factor is required/);
    assert.match(kimsLogin.stdout, /otpauth:\/\/totp\/carehost:kim\?/);
    assert.match(kimsLogin.stdout, /Signed in to .* as kim \(viewer\)/);
    assert.equal(kimsLogin.stdout.match(/^ {2}[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/gm)?.length, 10);

    // The admin signs in through the CLI: password, reason, and the code from the environment.
    const login = await cli(["login", "--reason", "IdP outage INC-9"], {
      CAREHOST_PASSWORD: await adminPassword(),
      CAREHOST_OTP: nextAdminCode(),
    });
    assert.equal(login.code, 0, login.stdout + login.stderr);
    assert.match(login.stdout, /Signed in to .* as admin \(platform-admin\)/);
    const wrongCode = await cli(["login", "--reason", "IdP outage INC-9"], {
      CAREHOST_PASSWORD: await adminPassword(),
      CAREHOST_OTP: "000000",
    });
    assert.notEqual(wrongCode.code, 0);
    assert.match(wrongCode.stderr, /the code is wrong or was already used/);

    // lee needs no second factor (lakeside-health is not recorded), and enrols one from her session.
    const leeLogin = await cli(["login", "-u", "lee"], { CAREHOST_PASSWORD: "lee's long passphrase" });
    assert.equal(leeLogin.code, 0, leeLogin.stdout + leeLogin.stderr);
    const enrol = await cliTypingCode(["mfa", "enroll"]);
    assert.equal(enrol.code, 0, enrol.stdout + enrol.stderr);
    assert.match(enrol.stdout, /otpauth:\/\/totp\/carehost:lee\?/);
    assert.equal(enrol.stdout.match(/^ {2}[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/gm)?.length, 10);

    // The admin (signed in through the CLI again) resets lee's second factor, with a reason.
    assert.equal(
      (
        await cli(["login", "--reason", "IdP outage INC-9"], {
          CAREHOST_PASSWORD: await adminPassword(),
          CAREHOST_OTP: nextAdminCode(),
        })
      ).code,
      0,
    );
    const reset = await cli(["mfa", "reset", "lee", "--reason", "lost phone HD-77"]);
    assert.equal(reset.code, 0, reset.stdout + reset.stderr);
    assert.match(reset.stdout, /lee: second factor removed; 1 session\(s\) ended/);
    const [resetEntry] = await entries("auth.mfa.reset");
    assert.equal(resetEntry?.payload.reason, "lost phone HD-77");
    assert.equal(resetEntry?.target, "user:lee");
  });

  void it("ends a session after the spec's sessionMaxHours, however active", async () => {
    const password = await adminPassword();
    const challenge = await call("POST", "/api/auth/login", { username: "admin", password, reason: "drill INC-10" });
    const code = nextAdminCode();
    const session = await call("POST", "/api/auth/second-factor", { ticket: challenge.body.ticket, code });
    assert.equal(session.status, 200, JSON.stringify(session.body));
    const token = String(session.body.token);
    assert.ok(Date.parse(String(session.body.expiresAt)) - now().getTime() <= 2 * 3_600_000, "expires within 2 hours");
    for (let elapsed = 0; elapsed < 110; elapsed += 10) {
      offsetMs += 10 * 60_000;
      assert.equal((await call("GET", "/api/whoami", undefined, token)).status, 200, `after ${elapsed + 10} minutes`);
    }
    offsetMs += 11 * 60_000;
    assert.equal((await call("GET", "/api/whoami", undefined, token)).status, 401, "past 2 hours");
  });
});
