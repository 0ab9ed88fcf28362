// The bootstrap admin password: on a terminal it is shown once; anywhere else (journald, a CI log)
// it never reaches the output or the log, and goes to a 0600 file whose path is printed.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { describe, it } from "node:test";
import { loadConfig } from "../lib/config.js";
import { startCarehost } from "./server-start.js";

const startOnce = async (printsToTerminal: boolean) => {
  const home = await mkdtemp(join(tmpdir(), "carehost-start-"));
  const printed: string[] = [];
  const logged: string[] = [];
  const logStream = new PassThrough();
  logStream.on("data", (chunk: Buffer) => logged.push(chunk.toString("utf8")));
  const config = loadConfig({ CAREHOST_HOME: home, CAREHOST_PORT: "0", CAREHOST_RUNTIME: "none" });
  const running = await startCarehost(config, { print: (line) => printed.push(line), printsToTerminal, logStream });
  const signIn = async (password: string) =>
    (
      await fetch(`${running.url}/api/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username: "admin", password }),
      })
    ).status;
  return {
    home,
    printed,
    logged,
    signIn,
    close: async () => {
      await running.close();
      await rm(home, { recursive: true, force: true });
    },
  };
};

void describe("carehost up: the bootstrap admin password", () => {
  void it("is written to a 0600 file, and only its path printed, when the output is not a terminal", async () => {
    const started = await startOnce(false);
    try {
      const path = join(started.home, "admin-password");
      const password = (await readFile(path, "utf8")).trim();
      assert.ok(password.length >= 16);
      assert.equal((await stat(path)).mode & 0o777, 0o600);
      assert.equal(await started.signIn(password), 200, "the file's password signs in");
      const output = started.printed.join("\n");
      assert.match(output, new RegExp(`created user "admin"; its password is in ${path} \\(mode 0600`));
      assert.ok(!output.includes(password), "the password is not in the output");
      assert.ok(!started.logged.join("").includes(password), "nor in the log");
    } finally {
      await started.close();
    }
  });

  void it("is shown once, and written nowhere, on a terminal", async () => {
    const started = await startOnce(true);
    try {
      const shown = started.printed[started.printed.findIndex((line) => /created user "admin"/.test(line)) + 1]?.trim();
      assert.ok(shown !== undefined && shown.length >= 16, started.printed.join("\n"));
      assert.equal(await started.signIn(shown), 200);
      await assert.rejects(stat(join(started.home, "admin-password")), { code: "ENOENT" });
    } finally {
      await started.close();
    }
  });
});

void describe("carehost up --spec", () => {
  void it("seeds an organization once: a restart with a spec that differs from the recorded revision leaves the revision alone", async () => {
    const home = await mkdtemp(join(tmpdir(), "carehost-start-spec-"));
    const demo = join("examples", "northwind-health.yaml");
    const changed = join(home, "northwind-health.yaml");
    await writeFile(changed, (await readFile(demo, "utf8")).replace("workers: 9", "workers: 11"));
    const config = loadConfig({ CAREHOST_HOME: home, CAREHOST_PORT: "0", CAREHOST_RUNTIME: "none" });
    const startWith = async (specPath: string) => {
      const printed: string[] = [];
      const running = await startCarehost(config, { print: (line) => printed.push(line), specPath });
      const token = (await readFile(join(home, "cli-token"), "utf8")).trim();
      const status = (await (
        await fetch(`${running.url}/api/status`, { headers: { authorization: `Bearer ${token}` } })
      ).json()) as { organizations: { revision: { id: number } }[] };
      await running.close();
      return { printed: printed.join("\n"), revision: status.organizations[0]?.revision.id };
    };
    try {
      const first = await startWith(changed);
      assert.match(first.printed, /recorded as revision 1/);
      // The demo file differs from what was applied: starting with it must not undo that change.
      const second = await startWith(demo);
      assert.match(
        second.printed,
        /not applied; organization "northwind-health" is at revision 1, applied by system:up/,
      );
      assert.equal(second.revision, 1);
      const third = await startWith(changed);
      assert.match(third.printed, /already recorded, nothing to do/);
      assert.equal(third.revision, 1);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });
});

void describe("carehost up: the change scheduler", () => {
  void it("runs on its own: an emergency change nobody approved is escalated once its 24 hours pass, and status shows it", async () => {
    const home = await mkdtemp(join(tmpdir(), "carehost-start-changes-"));
    let offsetMs = 0;
    const config = loadConfig({ CAREHOST_HOME: home, CAREHOST_PORT: "0", CAREHOST_RUNTIME: "none" });
    const running = await startCarehost(config, {
      print: () => undefined,
      specPath: join("examples", "northwind-health.yaml"),
      changeClock: () => new Date(Date.now() + offsetMs),
      changeTickMs: 50,
    });
    try {
      const token = (await readFile(join(home, "cli-token"), "utf8")).trim();
      const call = async (method: string, path: string, body?: unknown) => {
        const response = await fetch(`${running.url}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${token}`,
            ...(body === undefined ? {} : { "content-type": "application/json" }),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
        assert.equal(response.status, 200, await response.clone().text());
        return response.json() as Promise<Record<string, unknown>>;
      };
      const source = (await readFile(join("examples", "northwind-health.yaml"), "utf8")).replace(
        /workers: 9\b/,
        "workers: 11",
      );
      const created = (await call("POST", "/api/changes", {
        source,
        fileName: "northwind-health.yaml",
        reason: "order entry saturated",
        emergency: true,
      })) as { request: { id: number; state: string } };
      assert.equal(created.request.state, "applied");
      const alerts = async () =>
        (
          (await call("GET", "/api/status")) as {
            organizations: { changeAlerts: { changeRequest: number; escalated: boolean; message: string }[] }[];
          }
        ).organizations[0]!.changeAlerts;
      assert.deepEqual(
        (await alerts()).map((alert) => [alert.changeRequest, alert.escalated]),
        [[created.request.id, false]],
      );
      offsetMs = 24 * 3_600_000 + 60_000;
      // The escalation is the scheduler's doing (the audit entry), not the status report's reading of the clock.
      const escalations = async () =>
        (await call("GET", "/api/audit/entries?type=change.emergency_escalated&limit=10")) as unknown as unknown[];
      const deadline = Date.now() + 10_000;
      while ((await escalations()).length === 0 && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal((await escalations()).length, 1);
      assert.deepEqual(
        (await alerts()).map((alert) => alert.escalated),
        [true],
      );
    } finally {
      await running.close();
      await rm(home, { recursive: true, force: true });
    }
  });
});
