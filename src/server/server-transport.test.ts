// How the API listens (finding 9 and the client address of finding 7 of issue 15): HTTPS from the
// configured PEM files and plain HTTP only on loopback, X-Forwarded-For believed only from a trusted
// proxy, and a slow client cut after the configured request timeout while a run's stream goes on.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance } from "fastify";
import { localhostCertificate, type TCertificateOptions } from "../../test/loopback-tls.js";
import { ConfigError, loadConfig } from "../lib/config.js";
import { buildServer } from "./server-app.js";
import type { TServerServices } from "./server-services.js";
import { startCarehost, type TRunningCarehost } from "./server-start.js";

type TAnswer = { status: number; body: string };

/** One request with node:http(s), which (unlike fetch) takes a CA, a local address and any header. */
const send = (
  url: string,
  options: { method?: string; body?: unknown; ca?: Buffer; localAddress?: string; headers?: Record<string, string> },
): Promise<TAnswer> =>
  new Promise((resolveAnswer, reject) => {
    const target = new URL(url);
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const request = (target.protocol === "https:" ? httpsRequest : httpRequest)(
      target,
      {
        method: options.method ?? "GET",
        headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...options.headers },
        ...(options.ca === undefined ? {} : { ca: options.ca }),
        ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
      },
      (response) => {
        let text = "";
        response.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
        response.on("end", () => resolveAnswer({ status: response.statusCode ?? 0, body: text }));
      },
    );
    request.on("error", reject);
    request.end(body);
  });

const cli = async (args: string[], env: Record<string, string>): Promise<{ code: number; out: string }> => {
  const { CAREHOST_TOKEN: _token, CAREHOST_URL: _url, CAREHOST_CA_FILE: _ca, ...inherited } = process.env;
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", "src/cli/main.ts", ...args],
      { env: { ...inherited, NO_COLOR: "1", ...env } },
    );
    return { code: 0, out: stdout + stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, out: failed.stdout + failed.stderr };
  }
};

const startWith = async (home: string, env: Record<string, string>) => {
  const printed: string[] = [];
  const running = await startCarehost(
    loadConfig({
      CAREHOST_HOME: home,
      CAREHOST_PORT: "0",
      CAREHOST_RUNTIME: "none",
      CAREHOST_LOG_LEVEL: "silent",
      ...env,
    }),
    { print: (line) => printed.push(line), printsToTerminal: true },
  );
  const password = printed[printed.findIndex((line) => /created user "admin"/.test(line)) + 1]?.trim() ?? "";
  return { running, password };
};

void describe("HTTPS, and plain HTTP only on loopback", () => {
  let home: string;
  let certFile: string;
  let keyFile: string;
  let running: TRunningCarehost;
  let password: string;
  before(async () => {
    home = await mkdtemp(join(tmpdir(), "carehost-tls-"));
    ({ certFile, keyFile } = await localhostCertificate(join(home, "tls"), "api"));
    ({ running, password } = await startWith(join(home, "data"), {
      CAREHOST_TLS_CERT: certFile,
      CAREHOST_TLS_KEY: keyFile,
    }));
  });
  after(async () => {
    await running.close();
    await rm(home, { recursive: true, force: true });
  });

  void it("serves HTTPS with the configured certificate: a sign-in over TLS, and no plain HTTP on its port", async () => {
    assert.match(running.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const ca = await readFile(certFile);
    const login = await send(`${running.url}/api/auth/login`, {
      method: "POST",
      body: { username: "admin", password },
      ca,
    });
    assert.equal(login.status, 200, login.body);
    assert.match((JSON.parse(login.body) as { token: string }).token, /^chp_/);
    await assert.rejects(send(running.url.replace("https:", "http:") + "/healthz", {}), "plain HTTP gets no answer");
    await assert.rejects(send(`${running.url}/healthz`, {}), /self-signed|certificate/, "an untrusted CA is refused");
  });

  void it("the CLI signs in over HTTPS trusting CAREHOST_CA_FILE, and says what to set without it", async () => {
    const env = { CAREHOST_URL: running.url, XDG_CONFIG_HOME: join(home, "xdg"), CAREHOST_HOME: join(home, "none") };
    const login = await cli(["login"], { ...env, CAREHOST_PASSWORD: password, CAREHOST_CA_FILE: certFile });
    assert.equal(login.code, 0, login.out);
    assert.match(login.out, /Signed in to https:\/\/127\.0\.0\.1:\d+ as admin/);
    const status = await cli(["status"], { ...env, CAREHOST_CA_FILE: certFile });
    assert.equal(status.code, 0, status.out);
    const untrusted = await cli(["status"], env);
    assert.equal(untrusted.code, 1, untrusted.out);
    assert.match(untrusted.out, /certificate is not trusted: set CAREHOST_CA_FILE/);
    const missing = await cli(["status"], { ...env, CAREHOST_CA_FILE: join(home, "no-such-ca.pem") });
    assert.equal(missing.code, 2, missing.out);
    assert.match(missing.out, /CAREHOST_CA_FILE: cannot read .*no-such-ca\.pem \(ENOENT\)/);
    await writeFile(join(home, "not-a-cert.pem"), "hello\n");
    const notPem = await cli(["status"], { ...env, CAREHOST_CA_FILE: join(home, "not-a-cert.pem") });
    assert.equal(notPem.code, 2, notPem.out);
    assert.match(notPem.out, /CAREHOST_CA_FILE: .*not-a-cert\.pem holds no PEM certificate/);
  });

  void it("refuses to start on a non-loopback address without TLS, naming the variables to set", async () => {
    const refused = await cli(["up"], { CAREHOST_HOME: join(home, "public"), CAREHOST_HOST: "0.0.0.0" });
    assert.equal(refused.code, 2, refused.out);
    assert.match(refused.out, /CAREHOST_HOST: 0\.0\.0\.0 is not a loopback address/);
    assert.match(refused.out, /set CAREHOST_TLS_CERT and CAREHOST_TLS_KEY/);
    // With both files it may listen anywhere; on loopback plain HTTP stays allowed (make up).
    assert.doesNotThrow(() =>
      loadConfig({ CAREHOST_HOST: "0.0.0.0", CAREHOST_TLS_CERT: certFile, CAREHOST_TLS_KEY: keyFile }),
    );
    for (const host of ["127.0.0.1", "localhost", "::1"])
      assert.doesNotThrow(() => loadConfig({ CAREHOST_HOST: host }));
  });

  void it("names the variable and the path of a TLS file that is missing or not a key, and never prints the key", async () => {
    const missing = join(home, "missing.pem");
    await assert.rejects(
      startWith(join(home, "data-missing"), { CAREHOST_TLS_CERT: certFile, CAREHOST_TLS_KEY: missing }),
      (error: Error) =>
        error instanceof ConfigError && error.message.includes(`CAREHOST_TLS_KEY: cannot read ${missing} (ENOENT)`),
    );
    await assert.rejects(
      startWith(join(home, "data-swapped"), { CAREHOST_TLS_CERT: certFile, CAREHOST_TLS_KEY: certFile }),
      (error: Error) =>
        error instanceof ConfigError &&
        error.message.includes(`CAREHOST_TLS_CERT / CAREHOST_TLS_KEY: ${certFile} and ${certFile}`) &&
        !error.message.includes("BEGIN"),
    );
    assert.throws(() => loadConfig({ CAREHOST_TLS_CERT: certFile }), /CAREHOST_TLS_KEY: must be set too/);
  });

  void it("refuses a timeout or a proxy list it cannot read, naming the variable", () => {
    assert.throws(
      () => loadConfig({ CAREHOST_REQUEST_TIMEOUT_SECONDS: "soon" }),
      /CAREHOST_REQUEST_TIMEOUT_SECONDS: must be a whole number of seconds \(1 to 3600\)/,
    );
    assert.throws(
      () => loadConfig({ CAREHOST_KEEP_ALIVE_TIMEOUT_SECONDS: "0" }),
      /CAREHOST_KEEP_ALIVE_TIMEOUT_SECONDS: must be between 1 and 3600 seconds/,
    );
    assert.throws(
      () => loadConfig({ CAREHOST_TRUSTED_PROXIES: "10.0.0.1, proxy.example, 10.1.0.0/33" }),
      (error: Error) =>
        /CAREHOST_TRUSTED_PROXIES: "proxy.example" is not an IP address/.test(error.message) &&
        /CAREHOST_TRUSTED_PROXIES: "10.1.0.0\/33": the prefix must be 0 to 32/.test(error.message),
    );
    assert.deepEqual(loadConfig({ CAREHOST_TRUSTED_PROXIES: "10.0.0.1, fd00::/8,loopback" }).http.trustedProxies, [
      "10.0.0.1",
      "fd00::/8",
      "loopback",
    ]);
  });
});

void describe("the client address behind a trusted proxy", () => {
  let home: string;
  let running: TRunningCarehost;
  let password: string;
  before(async () => {
    home = await mkdtemp(join(tmpdir(), "carehost-proxy-"));
    // The proxy is 127.0.0.1; a client connecting from 127.0.0.2 is not it.
    ({ running, password } = await startWith(home, { CAREHOST_TRUSTED_PROXIES: "127.0.0.1" }));
  });
  after(async () => {
    await running.close();
    await rm(home, { recursive: true, force: true });
  });

  const signIn = (from: string, forwardedFor: string, withPassword: string) =>
    send(`${running.url}/api/auth/login`, {
      method: "POST",
      body: { username: "admin", password: withPassword },
      localAddress: from,
      headers: { "x-forwarded-for": forwardedFor },
    });
  const auditSources = async (token: string, type: string) =>
    (
      JSON.parse(
        (
          await send(`${running.url}/api/audit/entries?type=${type}&limit=1000`, {
            headers: { authorization: `Bearer ${token}` },
          })
        ).body,
      ) as { sourceAddress: string }[]
    ).map((entry) => entry.sourceAddress);

  void it("limits failures per forwarded client, so the owner signs in through the same proxy", async () => {
    for (let attempt = 0; attempt < 5; attempt += 1)
      assert.equal((await signIn("127.0.0.1", "203.0.113.5", "wrong password")).status, 401);
    assert.equal((await signIn("127.0.0.1", "203.0.113.5", password)).status, 429, "the guessing client waits");
    const owner = await signIn("127.0.0.1", "203.0.113.6", password);
    assert.equal(owner.status, 200, `the owner behind the same proxy signs in: ${owner.body}`);
    const token = (JSON.parse(owner.body) as { token: string }).token;
    assert.ok((await auditSources(token, "auth.login.failed")).includes("203.0.113.5"));
    assert.ok(!(await auditSources(token, "auth.login.failed")).includes("127.0.0.1"));
    assert.deepEqual(await auditSources(token, "auth.login.succeeded"), ["203.0.113.6"]);
  });

  void it("ignores X-Forwarded-For from a peer that is not a trusted proxy", async () => {
    for (let attempt = 0; attempt < 5; attempt += 1)
      assert.equal((await signIn("127.0.0.2", `198.51.100.${attempt}`, "wrong password")).status, 401);
    // Another forged address changes nothing: the source is the peer, 127.0.0.2, and it has failed.
    assert.equal((await signIn("127.0.0.2", "198.51.100.99", password)).status, 429);
    const owner = await signIn("127.0.0.1", "203.0.113.7", password);
    assert.equal(owner.status, 200, owner.body);
    const sources = await auditSources((JSON.parse(owner.body) as { token: string }).token, "auth.login.failed");
    assert.ok(sources.includes("127.0.0.2"), sources.join(", "));
    assert.ok(!sources.some((source) => source.startsWith("198.51.100.")), sources.join(", "));
  });
});

void describe("request and keep-alive timeouts", () => {
  let app: FastifyInstance;
  let port: number;
  before(async () => {
    // Only the transport is under test: the run's content comes from a stand-in that takes 3.6 s.
    const services = {
      db: { query: async () => ({ rows: [] }) },
      identity: {
        authenticate: async (_bearer: string, meta: { requestId: string; sourceAddress: string }) => ({
          actor: { kind: "system", name: "test" },
          ...meta,
        }),
      },
      recovery: {
        run: async () => ({ id: 1, kind: "restore", target: "acme/prod", state: "running", startedAt: new Date() }),
        follow: async (_ctx: unknown, _kind: string, _id: number, _after: number, onEvent: (event: object) => void) => {
          for (let index = 0; index < 3; index += 1) {
            await sleep(1200);
            onEvent({ index, at: new Date().toISOString(), message: `step ${index}` });
          }
          return { ok: true, result: { restored: true } };
        },
      },
    } as unknown as TServerServices;
    app = await buildServer(services, {
      logger: false,
      version: "test",
      transport: { trustedProxies: [], requestTimeoutMs: 1000, keepAliveTimeoutMs: 1000 },
    });
    await app.listen({ host: "127.0.0.1", port: 0 });
    const address = app.server.address();
    port = typeof address === "object" && address !== null ? address.port : 0;
  });
  after(async () => app.close());

  /** Sends `text` and waits: what came back, and how long until the server closed the socket. */
  const stall = (text: string): Promise<{ received: string; closedAfterMs: number }> =>
    new Promise((resolveStall, reject) => {
      const startedAt = Date.now();
      let received = "";
      const socket = connect(port, "127.0.0.1", () => socket.write(text));
      socket.on("data", (chunk: Buffer) => (received += chunk.toString("utf8")));
      socket.on("error", reject);
      socket.on("close", () => resolveStall({ received, closedAfterMs: Date.now() - startedAt }));
      setTimeout(
        () => socket.destroy(new Error("the server left a stalled client connected for 10 s")),
        10_000,
      ).unref();
    });

  void it("cuts a client that sends half a request and stalls, after the configured second", async () => {
    const halfBody = await stall(
      'POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"user',
    );
    assert.match(halfBody.received, /^HTTP\/1\.1 408/);
    assert.ok(
      halfBody.closedAfterMs >= 900 && halfBody.closedAfterMs < 3000,
      `closed after ${halfBody.closedAfterMs} ms`,
    );
    const halfHeaders = await stall("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    assert.ok(halfHeaders.closedAfterMs >= 900 && halfHeaders.closedAfterMs < 3000, `${halfHeaders.closedAfterMs} ms`);
  });

  void it("closes an idle kept-alive connection after the keep-alive timeout", async () => {
    const idle = await stall("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.match(idle.received, /^HTTP\/1\.1 200/);
    assert.ok(idle.closedAfterMs >= 900 && idle.closedAfterMs < 3000, `closed after ${idle.closedAfterMs} ms`);
  });

  void it("does not cut a run's event stream that lasts longer than the request timeout", async () => {
    const startedAt = Date.now();
    const response = await fetch(`http://127.0.0.1:${port}/api/runs/restore/1/events`, {
      headers: { authorization: "Bearer test", accept: "application/x-ndjson" },
    });
    assert.equal(response.status, 200);
    const lines = (await response.text())
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line) as { kind: string });
    assert.ok(Date.now() - startedAt > 3000, "the stream lasted past three request timeouts");
    assert.deepEqual(
      lines.map((line) => line.kind),
      ["run", "step", "step", "step", "result"],
    );
  });
});

/** The API alone over TLS with `certFile`, on a free loopback port: enough for what happens before any route runs. */
const listenOverTls = async (
  certFile: string,
  keyFile: string,
  requestTimeoutMs = 1000,
): Promise<{ app: FastifyInstance; port: number }> => {
  const tls = { cert: await readFile(certFile), key: await readFile(keyFile) };
  const app = await buildServer({} as TServerServices, {
    logger: false,
    version: "test",
    transport: { tls, trustedProxies: [], requestTimeoutMs, keepAliveTimeoutMs: 1000 },
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  return { app, port: typeof address === "object" && address !== null ? address.port : 0 };
};

void describe("the TLS handshake timeout", () => {
  let home: string;
  let app: FastifyInstance;
  let port: number;
  before(async () => {
    home = await mkdtemp(join(tmpdir(), "carehost-handshake-"));
    const { certFile, keyFile } = await localhostCertificate(home, "api");
    ({ app, port } = await listenOverTls(certFile, keyFile, 1000));
  });
  after(async () => {
    await app.close();
    await rm(home, { recursive: true, force: true });
  });

  void it("closes a TCP connection to the TLS port that never starts a handshake, after the request timeout", async () => {
    // Without a handshake timeout of its own, Node's TLS server waits 120 s for a ClientHello.
    const closedAfterMs = await new Promise<number>((resolveClose, reject) => {
      const startedAt = Date.now();
      const socket = connect(port, "127.0.0.1");
      socket.on("error", reject);
      socket.on("close", () => resolveClose(Date.now() - startedAt));
      setTimeout(
        () => socket.destroy(new Error("the server left a silent TLS client connected for 10 s")),
        10_000,
      ).unref();
    });
    assert.ok(closedAfterMs >= 900 && closedAfterMs < 3000, `closed after ${closedAfterMs} ms`);
  });
});

void describe("what the CLI says about a certificate it refuses", () => {
  let home: string;
  const servers: FastifyInstance[] = [];
  /** A server whose certificate the CLI trusts through CAREHOST_CA_FILE and refuses for another reason. */
  const serveTrusted = async (name: string, options: TCertificateOptions) => {
    const { certFile, keyFile } = await localhostCertificate(join(home, "tls"), name, options);
    const { app, port } = await listenOverTls(certFile, keyFile);
    servers.push(app);
    return { url: `https://127.0.0.1:${port}`, certFile };
  };
  const status = (url: string, certFile: string) =>
    cli(["status"], {
      CAREHOST_URL: url,
      CAREHOST_CA_FILE: certFile,
      XDG_CONFIG_HOME: join(home, "xdg"),
      CAREHOST_HOME: join(home, "none"),
    });
  before(async () => {
    home = await mkdtemp(join(tmpdir(), "carehost-refused-"));
  });
  after(async () => {
    await Promise.all(servers.map((app) => app.close()));
    await rm(home, { recursive: true, force: true });
  });

  void it("names the host a certificate for another name was refused for, and does not ask for a CA file", async () => {
    const { url, certFile } = await serveTrusted("elsewhere", { subjectAltName: "DNS:carehost.example" });
    const refused = await status(url, certFile);
    assert.equal(refused.code, 1, refused.out);
    assert.match(
      refused.out,
      /the server's certificate is not issued for 127\.0\.0\.1 \(it names DNS:carehost\.example\): connect to a name the certificate carries/,
    );
    assert.doesNotMatch(refused.out, /CAREHOST_CA_FILE|not trusted/);
  });

  void it("says an expired certificate has expired, and does not ask for a CA file", async () => {
    const { url, certFile } = await serveTrusted("expired", { expired: true });
    const refused = await status(url, certFile);
    assert.equal(refused.code, 1, refused.out);
    assert.match(refused.out, /the server's certificate has expired: the server needs a renewed certificate/);
    assert.doesNotMatch(refused.out, /CAREHOST_CA_FILE|not trusted/);
  });
});
