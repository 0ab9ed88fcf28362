// The bootstrap admin password: on a terminal it is shown once; anywhere else (journald, a CI log)
// it never reaches the output or the log, and goes to a 0600 file whose path is printed. A spec
// given to up seeds an organization once. A GitOps apply the last process left without its audit
// conclusion is concluded at start from what the repository holds.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { describe, it } from "node:test";
import { refuseAuditAppends } from "../../test/audit-fixtures.js";
import { testDatabaseFactories } from "../../test/test-databases.js";
import { runGit } from "../gitops/gitops-git.js";
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

void describe("carehost up: a GitOps apply the last process left without its audit conclusion", () => {
  void it("answers a commit that went live while its audit entry failed with a warning the CLI shows, and the next start records it from the repository", async () => {
    const database = await testDatabaseFactories.postgres();
    const home = await mkdtemp(join(tmpdir(), "carehost-start-gitops-"));
    assert.ok(database.config.kind === "postgres");
    const config = loadConfig({
      CAREHOST_HOME: home,
      CAREHOST_PORT: "0",
      CAREHOST_RUNTIME: "none",
      CAREHOST_DATABASE_URL: database.config.url,
    });
    const start = async () => {
      const printed: string[] = [];
      const logged: string[] = [];
      const logStream = new PassThrough();
      logStream.on("data", (chunk: Buffer) => logged.push(chunk.toString("utf8")));
      const running = await startCarehost(config, { print: (line) => printed.push(line), logStream });
      return { running, printed, logged };
    };
    const carehost = (...args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          ["--import", "tsx", "src/cli/main.ts", ...args],
          { env: { ...process.env, CAREHOST_HOME: home, XDG_CONFIG_HOME: join(home, "xdg"), NO_COLOR: "1" } },
          (error, stdout, stderr) =>
            resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr }),
        );
      });
    try {
      const first = await start();
      let applied: Awaited<ReturnType<typeof carehost>>;
      const allowAuditAppends = await refuseAuditAppends(database, ["gitops.committed"]);
      try {
        applied = await carehost("apply", "examples/northwind-health.yaml", "--target", "compose");
      } finally {
        await allowAuditAppends();
        await first.running.close();
      }
      assert.equal(applied.code, 0, applied.stdout + applied.stderr);
      assert.match(applied.stdout, /^Committed \d+ file\(s\) for northwind-health \(compose\) as [0-9a-f]{12}\.$/m);
      const warned =
        /^warning: commit ([0-9a-f]{40}) is live in the GitOps repository, but its audit entry \(gitops\.committed\) could not be recorded; the server log has why, under request (\S+); the next server start records it from the repository$/m.exec(
          applied.stderr,
        );
      assert.ok(warned !== null, applied.stderr);
      const [, commit, requestId] = warned as unknown as [string, string, string];
      const bare = join(home, "gitops", "northwind-health", "compose.git");
      assert.equal((await runGit(["--git-dir", bare, "rev-parse", "main"], { cwd: home })).stdout.trim(), commit);
      const logLine = first.logged
        .join("")
        .split("\n")
        .find((line) => line.includes("a GitOps commit is live but its audit entry could not be recorded"));
      assert.ok(logLine?.includes(requestId) === true && logLine.includes("audit append failed (injected)"), logLine);

      const second = await start();
      await second.running.close();
      const [intent] = (await database.superuserQuery(
        "SELECT seq, entry FROM audit_entries WHERE type = 'gitops.commit_started'",
      )) as [{ seq: number | string; entry: string }];
      const intentSeq = Number(intent.seq);
      assert.ok(
        second.printed.includes(
          `GitOps: the compose apply of northwind-health (audit entry #${intentSeq}) had no conclusion: recorded as committed, commit ${commit} is in the repository.`,
        ),
        second.printed.join("\n"),
      );
      const changedPaths = (
        await runGit(["--git-dir", bare, "diff-tree", "-r", "--name-only", "--no-commit-id", commit], { cwd: home })
      ).stdout
        .split("\n")
        .filter((path) => path !== "");
      const conclusions = (await database.superuserQuery(
        "SELECT entry FROM audit_entries WHERE type IN ('gitops.committed', 'gitops.commit_failed')",
      )) as { entry: string }[];
      assert.deepEqual(
        conclusions
          .map((row) => JSON.parse(row.entry) as { type: string; payload: unknown })
          .map(({ type, payload }) => ({ type, payload })),
        [
          {
            type: "gitops.committed",
            payload: {
              organization: "northwind-health",
              target: "compose",
              commit,
              changedPathCount: changedPaths.length,
              specDigest: (JSON.parse(intent.entry) as { payload: { specDigest: string } }).payload.specDigest,
              startedSeq: intentSeq,
              reconciled: true,
            },
          },
        ],
      );
      assert.ok(changedPaths.includes("environments/prod/compose.yaml"));
    } finally {
      await database.dispose();
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
