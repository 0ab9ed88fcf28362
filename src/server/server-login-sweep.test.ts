// Sign-in failures after the first of a window are summarised once the window closes. The server's
// timer writes the summary: no sign-in does (each would pay for every waiting source), and none is
// needed for a window to close in the log once guessing stops.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, it } from "node:test";
import { localCliTokenPath } from "../cli/cli-credentials.js";
import { loadConfig } from "../lib/config.js";
import { startCarehost } from "./server-start.js";

type TListedEntry = { type: string; actor: string; sourceAddress: string; target: string; payload: unknown };

void describe("carehost up: sign-in failure summaries", () => {
  void it("are written by the server's sweep once their window closes, with no sign-in to trigger them", async () => {
    const home = await mkdtemp(join(tmpdir(), "carehost-login-sweep-"));
    let offsetMs = 0;
    const running = await startCarehost(
      loadConfig({ CAREHOST_HOME: home, CAREHOST_PORT: "0", CAREHOST_RUNTIME: "none", CAREHOST_LOG_LEVEL: "silent" }),
      {
        print: () => undefined,
        printsToTerminal: true,
        clock: () => new Date(Date.now() + offsetMs),
        loginSweepMs: 100,
      },
    );
    try {
      const guess = async (password: string) =>
        (
          await fetch(`${running.url}/api/auth/login`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ username: "admin", password }),
          })
        ).status;
      assert.equal(await guess("not the password 1"), 401);
      assert.equal(await guess("not the password 2"), 401);
      const token = (await readFile(localCliTokenPath(home), "utf8")).trim();
      const entries = async (type: string) => {
        const response = await fetch(`${running.url}/api/audit/entries?type=${type}`, {
          headers: { authorization: `Bearer ${token}` },
        });
        assert.equal(response.status, 200, await response.clone().text());
        return (await response.json()) as TListedEntry[];
      };
      const [failed] = await entries("auth.login.failed");
      assert.ok(failed, "the first failure is audited on its own");
      await sleep(300);
      assert.deepEqual(await entries("auth.login.failures"), [], "the window is open: nothing to summarise");

      // The default window is 15 minutes; nobody signs in after it closes.
      offsetMs = 15 * 60_000 + 1000;
      let summaries: TListedEntry[] = [];
      for (let attempt = 0; attempt < 100 && summaries.length === 0; attempt += 1) {
        summaries = await entries("auth.login.failures");
        if (summaries.length === 0) await sleep(100);
      }
      assert.deepEqual(
        summaries.map(({ actor, sourceAddress, target }) => ({ actor, sourceAddress, target })),
        [{ actor: "system:login-monitor", sourceAddress: failed.sourceAddress, target: "user:admin" }],
        "one summary, under the source that guessed",
      );
      const { windowStart, firstAt, lastAt, ...counts } = summaries[0]!.payload as Record<string, unknown>;
      assert.deepEqual(counts, { username: "admin", failed: 1, rateLimited: 0, windowSeconds: 900 });
      assert.ok(String(windowStart) <= String(firstAt) && firstAt === lastAt, JSON.stringify(summaries[0]));
    } finally {
      await running.close();
      await rm(home, { recursive: true, force: true });
    }
  });
});
