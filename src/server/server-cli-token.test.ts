// The local CLI token expires like any admin API token (30 days): the server that wrote it renews it
// before then, and after a stop longer than its lifetime, so `carehost` on the host keeps working.
// The identity clock is moved instead of waiting out the days.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { after, describe, it } from "node:test";
import { createApiClient } from "../cli/cli-client.js";
import { localCliTokenPath } from "../cli/cli-credentials.js";
import { loadConfig } from "../lib/config.js";
import { startCarehost, type TRunningCarehost } from "./server-start.js";

const DAY_MS = 86_400_000;

void describe("the local CLI token is renewed before it expires", () => {
  let home: string;
  let offsetMs = 0;
  const clock = () => new Date(Date.now() + offsetMs);
  let running: TRunningCarehost | undefined;
  after(async () => {
    await running?.close();
    await rm(home, { recursive: true, force: true });
  });

  const start = async () => {
    running = await startCarehost(
      loadConfig({ CAREHOST_HOME: home, CAREHOST_PORT: "0", CAREHOST_RUNTIME: "none", CAREHOST_LOG_LEVEL: "silent" }),
      { print: () => undefined, printsToTerminal: true, clock, cliTokenCheckMs: 100 },
    );
    return running;
  };
  const fileToken = async () => (await readFile(localCliTokenPath(home), "utf8")).trim();
  const statusWith = async (url: string, token: string) =>
    (await fetch(`${url}/api/status`, { headers: { authorization: `Bearer ${token}` } })).status;
  /** `carehost status` as run on the host: no login, no CAREHOST_TOKEN, the token file in the data dir. */
  const cliStatus = async () => {
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
  const renewedFrom = async (previous: string) => {
    for (let attempt = 0; attempt < 100; attempt += 1) {
      const current = await fileToken();
      if (current !== previous) return current;
      await sleep(100);
    }
    throw new Error("the local CLI token was not renewed within 10 s");
  };

  void it("renews it while the server runs, once a third of its lifetime is left", async () => {
    home = await mkdtemp(join(tmpdir(), "carehost-cli-token-"));
    const { url } = await start();
    const first = await fileToken();
    assert.equal(await cliStatus(), 0);
    offsetMs = 15 * DAY_MS;
    await sleep(500);
    assert.equal(await fileToken(), first, "half its lifetime left: kept");
    offsetMs = 21 * DAY_MS;
    const second = await renewedFrom(first);
    assert.equal(await statusWith(url, first), 401, "the replaced token is revoked");
    assert.equal(await statusWith(url, second), 200);
    assert.equal(await cliStatus(), 0);
  });

  void it("renews an expired one at the next start, after a stop longer than its lifetime", async () => {
    const second = await fileToken();
    await running?.close();
    running = undefined;
    offsetMs = 120 * DAY_MS;
    const { url } = await start();
    const third = await fileToken();
    assert.notEqual(third, second);
    assert.equal(await statusWith(url, second), 401);
    assert.equal(await cliStatus(), 0, "carehost status works 120 days on");
  });

  void it("a CLI that read the token just before it was replaced reads the file again after the 401", async () => {
    const url = running?.url ?? "";
    const current = await fileToken();
    const revoked = "chp_000000000000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const stale = createApiClient(url, revoked, async () => current);
    assert.ok(await stale.request<{ version: string }>("GET", "/api/status"));
    await assert.rejects(createApiClient(url, revoked).request("GET", "/api/status"), /invalid or expired credentials/);
  });

  void it("does not bring back a local CLI token that was revoked on purpose", async () => {
    const url = running?.url ?? "";
    const current = await fileToken();
    const id = /^chp_([0-9a-f]{24})_/.exec(current)?.[1] ?? "";
    const revoked = await fetch(`${url}/api/tokens/${id}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${current}` },
    });
    assert.equal(revoked.status, 204, await revoked.text());
    offsetMs += 29 * DAY_MS;
    await sleep(500);
    assert.equal(await fileToken(), current);
  });
});
