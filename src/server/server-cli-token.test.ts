// The local CLI token expires like any admin API token (30 days): the server that wrote it renews it
// before then, and after a stop longer than its lifetime, so `carehost` on the host keeps working.
// A renewal that cannot write the file, or is stopped halfway, never leaves the file with a revoked
// token. The identity clock is moved instead of waiting out the days.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { chmod, mkdtemp, open, readdir, readFile, rm, stat, type FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { after, describe, it } from "node:test";
import { createApiClient } from "../cli/cli-client.js";
import { localCliTokenPath, resolveServer, writePrivateFile } from "../cli/cli-credentials.js";
import { loadConfig } from "../lib/config.js";
import { startCarehost, type TRunningCarehost } from "./server-start.js";

const DAY_MS = 86_400_000;
const RENEWAL_FAILED = "renewing the local CLI token failed";

/** A data dir the test removes, and an identity clock it moves. */
const hostFixture = async () => {
  const home = await mkdtemp(join(tmpdir(), "carehost-cli-token-"));
  const printed: string[] = [];
  const logged: string[] = [];
  let offsetMs = 0;
  const clock = () => new Date(Date.now() + offsetMs);
  const start = (): Promise<TRunningCarehost> => {
    const logStream = new PassThrough();
    logStream.on("data", (chunk: Buffer) => logged.push(chunk.toString("utf8")));
    return startCarehost(
      loadConfig({ CAREHOST_HOME: home, CAREHOST_PORT: "0", CAREHOST_RUNTIME: "none", CAREHOST_LOG_LEVEL: "info" }),
      { print: (line) => printed.push(line), printsToTerminal: true, clock, cliTokenCheckMs: 100, logStream },
    );
  };
  return {
    home,
    printed,
    logged,
    start,
    moveClock: (ms: number) => void (offsetMs += ms),
    tokenFile: localCliTokenPath(home),
    fileToken: async () => (await readFile(localCliTokenPath(home), "utf8")).trim(),
    /** The names in the data dir that belong to the token file: the file itself, a side file, a temporary one. */
    tokenFiles: async () => (await readdir(home)).filter((name) => name.startsWith("cli-token")).sort(),
    remove: () => rm(home, { recursive: true, force: true }),
  };
};

const statusWith = async (url: string, token: string) =>
  (await fetch(`${url}/api/status`, { headers: { authorization: `Bearer ${token}` } })).status;

/** `carehost status` as run on the host: no login, no CAREHOST_TOKEN, the token file in the data dir. */
const cliStatus = async (home: string) => {
  const { CAREHOST_TOKEN: _token, CAREHOST_URL: _url, CAREHOST_CA_FILE: _ca, ...inherited } = process.env;
  try {
    await promisify(execFile)(process.execPath, ["--import", "tsx", "src/cli/main.ts", "status"], {
      env: { ...inherited, CAREHOST_HOME: home, XDG_CONFIG_HOME: join(home, "xdg"), NO_COLOR: "1" },
    });
    return 0;
  } catch (error) {
    return (error as { code: number }).code;
  }
};

const until = async (condition: () => Promise<boolean> | boolean, what: string) => {
  for (let attempt = 0; attempt < 100; attempt += 1) {
    if (await condition()) return;
    await sleep(100);
  }
  throw new Error(`${what} did not happen within 10 s`);
};

/**
 * Makes `dir` refuse new entries, so nothing can be written or renamed into it while files already
 * there stay readable and writable. Root ignores a directory's mode, so as root the immutable
 * attribute does it. Returns what undoes it.
 */
const refuseNewEntries = async (dir: string): Promise<() => Promise<void>> => {
  if (process.getuid?.() !== 0) {
    await chmod(dir, 0o500);
    return () => chmod(dir, 0o700);
  }
  try {
    await promisify(execFile)("chattr", ["+i", dir]);
  } catch (error) {
    throw new Error(
      `cannot make ${dir} refuse new entries as root: chattr +i failed (${(error as Error).message}); run the test as another user or on a filesystem with the immutable attribute`,
    );
  }
  return async () => void (await promisify(execFile)("chattr", ["-i", dir]));
};

/** The write end of the FIFO at `path`, once something has opened it to read. */
const openWhenRead = async (path: string): Promise<FileHandle> => {
  for (let attempt = 0; attempt < 100; attempt += 1) {
    try {
      return await open(path, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENXIO") throw error;
      await sleep(100);
    }
  }
  throw new Error(`nothing opened ${path} to read within 10 s`);
};

const randomToken = () => `chp_${randomBytes(12).toString("hex")}_${randomBytes(32).toString("base64url")}`;

void describe("the local CLI token is renewed before it expires", () => {
  let host: Awaited<ReturnType<typeof hostFixture>>;
  let running: TRunningCarehost | undefined;
  after(async () => {
    await running?.close();
    await host.remove();
  });

  const start = async () => {
    running = await host.start();
    return running;
  };
  const renewedFrom = async (previous: string) => {
    let current = previous;
    await until(async () => (current = await host.fileToken()) !== previous, "renewing the local CLI token");
    return current;
  };

  void it("renews it while the server runs, once a third of its lifetime is left", async () => {
    host = await hostFixture();
    const { url } = await start();
    const first = await host.fileToken();
    assert.equal(await cliStatus(host.home), 0);
    host.moveClock(15 * DAY_MS);
    await sleep(500);
    assert.equal(await host.fileToken(), first, "half its lifetime left: kept");
    host.moveClock(6 * DAY_MS);
    const second = await renewedFrom(first);
    assert.equal(await statusWith(url, first), 401, "the replaced token is revoked");
    assert.equal(await statusWith(url, second), 200);
    assert.equal(await cliStatus(host.home), 0);
    assert.deepEqual(await host.tokenFiles(), ["cli-token"], "no side file is left");
  });

  void it("renews an expired one at the next start, after a stop longer than its lifetime", async () => {
    const second = await host.fileToken();
    await running?.close();
    running = undefined;
    host.moveClock(99 * DAY_MS);
    const { url } = await start();
    const third = await host.fileToken();
    assert.notEqual(third, second);
    assert.equal(await statusWith(url, second), 401);
    assert.equal(await cliStatus(host.home), 0, "carehost status works 120 days on");
  });

  void it("a CLI that read the token just before it was replaced reads the file again after the 401", async () => {
    const url = running?.url ?? "";
    // What the CLI on the host resolves: the data dir's token file, and the function that reads it again.
    const names = ["CAREHOST_TOKEN", "CAREHOST_URL", "CAREHOST_HOME", "XDG_CONFIG_HOME"] as const;
    const saved = names.map((name) => [name, process.env[name]] as const);
    for (const name of names) delete process.env[name];
    process.env.CAREHOST_HOME = host.home;
    process.env.XDG_CONFIG_HOME = join(host.home, "xdg");
    const resolved = await resolveServer(url).finally(() => {
      for (const [name, value] of saved) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    });
    const read = resolved.token ?? "";
    assert.equal(read, await host.fileToken());
    host.moveClock(21 * DAY_MS);
    await renewedFrom(read);
    assert.equal(await statusWith(url, read), 401, "the token the CLI read is revoked");
    const cli = createApiClient(resolved.url, resolved.token, resolved.reloadToken);
    assert.ok(await cli.request<{ version: string }>("GET", "/api/status"));
    await assert.rejects(createApiClient(url, read).request("GET", "/api/status"), /invalid or expired credentials/);
  });

  void it("does not bring back a local CLI token that was revoked on purpose", async () => {
    const url = running?.url ?? "";
    const current = await host.fileToken();
    const id = /^chp_([0-9a-f]{24})_/.exec(current)?.[1] ?? "";
    const revoked = await fetch(`${url}/api/tokens/${id}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${current}` },
    });
    assert.equal(revoked.status, 204, await revoked.text());
    host.moveClock(29 * DAY_MS);
    await sleep(500);
    assert.equal(await host.fileToken(), current);
  });
});

void describe("a renewal of the local CLI token cut short", () => {
  const hosts: Awaited<ReturnType<typeof hostFixture>>[] = [];
  const newHost = async () => {
    const host = await hostFixture();
    hosts.push(host);
    return host;
  };
  after(() => Promise.all(hosts.map((host) => host.remove())));

  void it("keeps the old token working when its successor cannot be written, and a restart renews it", async () => {
    const host = await newHost();
    let running = await host.start();
    const first = await host.fileToken();
    const allowEntries = await refuseNewEntries(host.home);
    try {
      host.moveClock(21 * DAY_MS);
      await until(() => host.logged.some((line) => line.includes(RENEWAL_FAILED)), "a renewal that fails to write");
      assert.equal(await host.fileToken(), first);
      assert.equal(await statusWith(running.url, first), 200, "the token in the file still works");
    } finally {
      await allowEntries();
    }
    await running.close();
    running = await host.start();
    try {
      assert.notEqual(await host.fileToken(), first, "renewed at the restart");
      assert.equal(await statusWith(running.url, first), 401);
      assert.equal(await cliStatus(host.home), 0, "carehost status works after the restart");
      assert.deepEqual(await host.tokenFiles(), ["cli-token"], "no side or temporary file is left");
    } finally {
      await running.close();
    }
  });

  void it("adopts at start a successor the database committed before it was renamed into place, and deletes one it does not hold", async () => {
    const host = await newHost();
    let running = await host.start();
    const password = host.printed[host.printed.findIndex((line) => /created user "admin"/.test(line)) + 1]?.trim();
    const first = await host.fileToken();
    // What a stop between a renewal's commit and its rename leaves: the file's token revoked, and
    // its successor, the current local CLI token, in the side file.
    const signedIn = await fetch(`${running.url}/api/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "admin", password }),
    });
    assert.equal(signedIn.status, 200, await signedIn.clone().text());
    const session = `Bearer ${((await signedIn.json()) as { token: string }).token}`;
    const firstId = /^chp_([0-9a-f]{24})_/.exec(first)?.[1] ?? "";
    const revoked = await fetch(`${running.url}/api/tokens/${firstId}`, {
      method: "DELETE",
      headers: { authorization: session },
    });
    assert.equal(revoked.status, 204, await revoked.text());
    const created = await fetch(`${running.url}/api/tokens`, {
      method: "POST",
      headers: { authorization: session, "content-type": "application/json" },
      body: JSON.stringify({ name: "local-cli" }),
    });
    assert.equal(created.status, 201, await created.clone().text());
    const successor = ((await created.json()) as { token: string }).token;
    await writePrivateFile(`${host.tokenFile}.next`, `${successor}\n`);
    await running.close();

    running = await host.start();
    try {
      assert.equal(await host.fileToken(), successor, "the committed successor is adopted");
      assert.deepEqual(await host.tokenFiles(), ["cli-token"]);
      assert.equal(await cliStatus(host.home), 0);
    } finally {
      await running.close();
    }

    // A side file whose renewal never committed names no token: it goes, and the file stays.
    await writePrivateFile(`${host.tokenFile}.next`, `${randomToken()}\n`);
    running = await host.start();
    try {
      assert.equal(await host.fileToken(), successor);
      assert.deepEqual(await host.tokenFiles(), ["cli-token"]);
      assert.equal(await cliStatus(host.home), 0);
    } finally {
      await running.close();
    }
  });

  void it("close() waits for a renewal in flight, which finishes instead of failing on a closed database", async () => {
    const host = await newHost();
    const running = await host.start();
    const first = await host.fileToken();
    // The token file becomes a FIFO: the next renewal pass blocks reading it until the test writes the token.
    await rm(host.tokenFile);
    await promisify(execFile)("mkfifo", ["-m", "600", host.tokenFile]);
    host.moveClock(21 * DAY_MS);
    const writer = await openWhenRead(host.tokenFile);
    const closing = running.close();
    const closedFirst = await Promise.race([closing.then(() => true), sleep(500).then(() => false)]);
    await writer.write(`${first}\n`);
    await writer.close();
    await closing;
    assert.equal(closedFirst, false, "close() returned while the renewal was still reading the token");
    assert.ok((await stat(host.tokenFile)).isFile(), "the renewal replaced the token file");
    const renewed = await host.fileToken();
    assert.notEqual(renewed, first);
    assert.deepEqual(
      host.logged.filter((line) => line.includes(RENEWAL_FAILED)),
      [],
    );
    const restarted = await host.start();
    try {
      assert.equal(await host.fileToken(), renewed);
      assert.equal(await statusWith(restarted.url, renewed), 200, "the renewal committed before close() returned");
    } finally {
      await restarted.close();
    }
  });
});
