// Long operations are runs of the server's, not of one HTTP request: a client that goes away
// neither cancels nor orphans a restore, the CLI follows a backup and a restore through a stream
// cut midway (by a TCP proxy in front of the server) and prints each step once, and what a user
// gets wrong on these routes is a problem+json naming it, never a 500.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { request } from "node:http";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { parse, stringify } from "yaml";
import { loadConfig } from "../src/lib/config.js";
import { RESTORE_STEPS } from "../src/backup/recovery-driver.js";
import { startCarehost, type TRunningCarehost } from "../src/server/server-start.js";
import { killProcessesUnder } from "./runtime-fixtures.js";

const run = promisify(execFile);
type TCliResult = { code: number; stdout: string; stderr: string };
type TRunView = {
  id: number;
  kind: string;
  state: string;
  steps: { step: string }[];
  result: { port?: number } | null;
  error: string | null;
};

/**
 * A TCP proxy to one port that can cut every connection it carries: once, the first time the
 * server sends a chunk matching `cutAfter`. Remembers each request line it forwarded.
 */
async function startCuttingProxy(targetPort: number, cutAfter: RegExp) {
  const requests: string[] = [];
  const open = new Set<Socket>();
  let cut = false;
  const server = createServer((client) => {
    const upstream = connect(targetPort, "127.0.0.1");
    open.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    client.on("data", (chunk: Buffer) => {
      const line = /^(GET|POST) \S+/.exec(chunk.toString("latin1"))?.[0];
      if (line !== undefined) requests.push(line);
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (!cut && cutAfter.test(chunk.toString("utf8"))) {
        // The line reaches the client, then the connection dies as a proxy's idle timeout or a network drop would end it.
        cut = true;
        client.write(chunk, () => drop());
        return;
      }
      client.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("the proxy has no TCP address");
  return {
    url: `http://127.0.0.1:${address.port}`,
    requests,
    wasCut: () => cut,
    stop: async () => {
      for (const socket of open) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

void describe("runs outlive their requests: disconnects, cut streams, user errors", () => {
  let home: string;
  let running: TRunningCarehost;
  let token: string;

  const cli = async (args: readonly string[], env: Record<string, string> = {}): Promise<TCliResult> => {
    try {
      const { stdout, stderr } = await run(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], {
        env: { ...process.env, CAREHOST_HOME: home, XDG_CONFIG_HOME: join(home, "xdg"), NO_COLOR: "1", ...env },
        maxBuffer: 1 << 24,
      });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  };
  const api = (method: string, path: string, body?: unknown) =>
    fetch(`${running.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const runOf = async (kind: string, id: number): Promise<TRunView> =>
    (await (await api("GET", `/api/runs/${kind}/${id}`)).json()) as TRunView;
  const untilEnded = async (kind: string, id: number): Promise<TRunView> => {
    const deadline = Date.now() + 180_000;
    for (;;) {
      const view = await runOf(kind, id);
      if (view.state !== "running") return view;
      if (Date.now() > deadline) throw new Error(`${kind} run #${id} still running: ${JSON.stringify(view)}`);
      await sleep(250);
    }
  };

  before(async () => {
    home = await mkdtemp(join(tmpdir(), "carehost-follow-"));
    const demo = parse(await readFile("examples/northwind-health.yaml", "utf8")) as {
      environments: { name: string }[];
    };
    demo.environments = demo.environments.filter(
      (environment) => environment.name === "prod" || environment.name === "training",
    );
    const specPath = join(home, "prod.yaml");
    await writeFile(specPath, stringify(demo));
    const config = loadConfig({
      CAREHOST_HOME: home,
      CAREHOST_PORT: "0",
      CAREHOST_LOG_LEVEL: "warn",
      CAREHOST_SUPERVISE_SECONDS: "3600",
    });
    running = await startCarehost(config, { specPath, print: () => undefined });
    token = (await readFile(join(home, "cli-token"), "utf8")).trim();
  });

  after(async () => {
    await running.stopEnvironments().catch(() => undefined);
    await running.close();
    // The restored copies run on after carehost stops, by design.
    await killProcessesUnder(home);
    await rm(home, { recursive: true, force: true });
  });

  void it("the CLI follows a backup through a stream cut midway and prints the result as JSON with -o json", async () => {
    // The backup's stream is cut at its first line: the CLI connects again and still gets the result.
    const proxy = await startCuttingProxy(Number(new URL(running.url).port), /"kind":"run"/);
    try {
      const backedUp = await cli(["backup", "prod", "--type", "full", "-o", "json"], { CAREHOST_URL: proxy.url });
      assert.equal(backedUp.code, 0, backedUp.stdout + backedUp.stderr);
      const result = JSON.parse(backedUp.stdout) as { id: number; label: string; databaseBytes: number };
      assert.match(result.label, /^\d{8}-\d{6}F$/);
      assert.ok(result.databaseBytes > 0);
      assert.ok(proxy.wasCut(), "the stream was cut");
      const follows = proxy.requests.filter((line) => line.startsWith(`GET /api/runs/backup/${result.id}/events`));
      assert.ok(follows.length >= 2, `followed again after the cut: ${proxy.requests.join(", ")}`);
      assert.equal((await runOf("backup", result.id)).state, "succeeded");
    } finally {
      await proxy.stop();
    }
  });

  void it("the CLI prints a backup's and a drill's steps as each completes, then the same last line as ever; the runs keep them", async () => {
    const backedUp = await cli(["backup", "prod", "--type", "incr"]);
    assert.equal(backedUp.code, 0, backedUp.stdout + backedUp.stderr);
    const backupLines = backedUp.stdout.trimEnd().split("\n");
    assert.match(backupLines[0] ?? "", /^ {2}backup +[\d.]+ s {2}\d{8}-\d{6}F_\d{8}-\d{6}I: [\d.]+ MB database/);
    assert.match(backupLines[1] ?? "", /^ {2}expire +[\d.]+ s {2}/);
    assert.match(
      backupLines[2] ?? "",
      /^Backup \S+ \(incr\) of prod: [\d.]+ MB database, [\d.]+ MB written to the repository, in [\d.]+ s\.$/,
    );
    // No supervisor tick has written a heartbeat here, so the drill cannot measure its RPO: it ends FAILED, with a result, and exit 1 as ever.
    const drilled = await cli(["drill", "prod"]);
    assert.equal(drilled.code, 1, drilled.stdout + drilled.stderr);
    const drillLines = drilled.stdout.trimEnd().split("\n");
    assert.match(
      drillLines[0] ?? "",
      /^ {2}postgresql +[\d.]+ s {2}\S+ restored and writable in [\d.]+ s; pg_amcheck clean$/,
    );
    assert.match(drillLines[1] ?? "", /^ {2}filestore +[\d.]+ s {2}/);
    const drillId = Number(/^#(\d+) .* prod {2}FAILED {2}RTO/.exec(drillLines[2] ?? "")?.[1]);
    assert.ok(drillId > 0, drilled.stdout);
    assert.match(drillLines[3] ?? "", /the achieved RPO could not be measured/);
    const drill = await runOf("drill", drillId);
    assert.deepEqual([drill.state, drill.steps.map((step) => step.step)], ["failed", ["postgresql", "filestore"]]);
    assert.deepEqual((drill.result as { problems?: string[] } | null)?.problems, [
      "the achieved RPO could not be measured (no heartbeat in the restore)",
    ]);
  });

  void it("the CLI follows a restore through a stream cut after its first step: every step once, in order, and the same last line as ever", async () => {
    const proxy = await startCuttingProxy(Number(new URL(running.url).port), /"kind":"step"/);
    try {
      const restored = await cli(["restore", "prod", "--to", "latest", "--into", "followed"], {
        CAREHOST_URL: proxy.url,
      });
      assert.equal(restored.code, 0, restored.stdout + restored.stderr);
      assert.ok(proxy.wasCut(), "the stream was cut");
      const stepLines = restored.stdout.split("\n").filter((line) => /^ {2}\[\d\/\d\] /.test(line));
      assert.deepEqual(
        stepLines.map((line) => /\] (\w+)/.exec(line)?.[1]),
        [...RESTORE_STEPS],
        restored.stdout,
      );
      assert.match(
        restored.stdout,
        /^Restored prod to latest in [\d.]+ s: a copy runs on 127\.0\.0\.1:\d+ \(database prod/m,
      );
      const follows = proxy.requests.filter((line) => /^GET \/api\/runs\/restore\/\d+\/events/.test(line));
      assert.ok(
        follows.some((line) => /after=[1-9]/.test(line)),
        `reconnected from the steps seen: ${follows.join(", ")}`,
      );
    } finally {
      await proxy.stop();
    }
    // A run that fails after it started (the copy's name is taken now) fails the CLI as before: exit 1, the reason, the steps done.
    const refused = await cli(["restore", "prod", "--to", "latest", "--into", "followed"]);
    assert.equal(refused.code, 1, refused.stdout + refused.stderr);
    assert.match(refused.stdout, /^ {2}\[1\/6\] secrets /m);
    assert.match(refused.stderr, /a restored copy named "followed" already exists/);
  });

  void it("a client that goes away right after asking neither cancels nor orphans the restore: it finishes, recorded and audited", async () => {
    const before = (await (await api("GET", "/api/restores?environment=prod")).json()) as { id: number }[];
    // The request is sent whole, and the connection closed before any answer is read.
    const body = JSON.stringify({ environment: "prod", to: "latest", into: "abandoned" });
    const url = new URL(`${running.url}/api/restores`);
    await new Promise<void>((resolve) => {
      const sent = request({
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: "POST",
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
        },
      });
      sent.on("error", () => resolve());
      sent.end(body, () => {
        sent.destroy();
        resolve();
      });
    });
    let restore: { id: number } | undefined;
    for (let attempt = 0; attempt < 100 && restore === undefined; attempt += 1) {
      const listed = (await (await api("GET", "/api/restores?environment=prod")).json()) as {
        id: number;
        destination: string;
      }[];
      restore = listed.find(
        (item) => item.destination === "copy abandoned" && !before.some((old) => old.id === item.id),
      );
      if (restore === undefined) await sleep(100);
    }
    assert.ok(restore !== undefined, "the restore was started although its client left");
    // A follower that leaves after the first line does not stop it either.
    const following = new AbortController();
    const stream = await fetch(`${running.url}/api/runs/restore/${restore.id}/events`, {
      headers: { authorization: `Bearer ${token}` },
      signal: following.signal,
    });
    assert.equal(stream.status, 200);
    assert.equal(stream.headers.get("content-type"), "application/x-ndjson; charset=utf-8");
    const reader = stream.body!.getReader();
    const first = JSON.parse(new TextDecoder().decode((await reader.read()).value).split("\n")[0]!) as {
      kind: string;
      run: { id: number; kind: string };
    };
    assert.deepEqual([first.kind, first.run.id, first.run.kind], ["run", restore.id, "restore"]);
    following.abort();

    const ended = await untilEnded("restore", restore.id);
    assert.equal(ended.state, "succeeded", JSON.stringify(ended));
    assert.deepEqual(
      ended.steps.map((step) => step.step),
      [...RESTORE_STEPS],
    );
    assert.ok((ended.result?.port ?? 0) > 0);
    const audited = JSON.parse(
      (await cli(["audit", "list", "--type", "restore.completed", "--output", "json"])).stdout,
    ) as { payload: { into?: string } }[];
    assert.ok(
      audited.some((entry) => entry.payload.into === "abandoned"),
      "the restore is audited",
    );
    // A follower that comes after the end hears the whole run from the record.
    const late = (await (await api("GET", `/api/runs/restore/${restore.id}/events?after=4`)).text())
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { kind: string; index?: number });
    assert.deepEqual(
      late.map((line) => line.kind),
      ["run", "step", "step", "result"],
    );
    assert.deepEqual(
      late.filter((line) => line.kind === "step").map((line) => line.index),
      [4, 5],
    );
  });

  void it("answers what a user gets wrong with a problem+json that says what to do, never a 500", async () => {
    const cases: [string, string, unknown, number, RegExp][] = [
      [
        "POST",
        "/api/restores",
        { environment: "prod", to: "yesterday", into: "x" },
        400,
        /is not latest or an ISO 8601 instant with a zone/,
      ],
      ["POST", "/api/restores", { environment: "prod", toLsn: "0/zz", into: "x" }, 400, /does not match the schema/],
      [
        "POST",
        "/api/restores",
        { environment: "prod", to: "2026-11-22T14:03:05Z", toLsn: "0/3000028", into: "x" },
        400,
        /give either --to .* or --to-lsn .*, not both/,
      ],
      ["POST", "/api/restores", { environment: "prod" }, 400, /say where to restore/],
      [
        "POST",
        "/api/restores",
        { environment: "nowhere", into: "x" },
        404,
        /no recorded environment is named "nowhere"/,
      ],
      ["POST", "/api/backups", { environment: "training" }, 400, /has backups disabled/],
      ["POST", "/api/drills", { environment: "nowhere" }, 404, /no recorded environment/],
      ["POST", "/api/backups/verify", { environment: "prod", extra: 1 }, 400, /does not match the schema/],
      [
        "GET",
        "/api/runs/restore/999999",
        undefined,
        404,
        /there is no restore run #999999; carehost restores lists them/,
      ],
      ["GET", "/api/runs/restore/999999/events", undefined, 404, /there is no restore run #999999/],
      ["GET", "/api/runs/verify/1", undefined, 404, /there is no verify run #1; carehost backups lists them/],
      ["GET", "/api/runs/operation/1", undefined, 400, /does not match the schema/],
      ["GET", "/api/runs/restore/abc", undefined, 400, /does not match the schema/],
      ["GET", "/api/runs/restore/1/events?after=-1", undefined, 400, /does not match the schema/],
    ];
    for (const [method, path, body, status, detail] of cases) {
      const response = await api(method, path, body);
      assert.equal(response.status, status, `${method} ${path} ${JSON.stringify(body)}`);
      assert.equal(response.headers.get("content-type"), "application/problem+json; charset=utf-8");
      const problem = (await response.json()) as { status: number; detail: string; errors?: { message: string }[] };
      assert.equal(problem.status, status);
      assert.match(
        `${problem.detail} ${(problem.errors ?? []).map((error) => error.message).join(" ")}`,
        detail,
        `${method} ${path}`,
      );
    }
  });

  void it("a carehost that runs no environments refuses a backup, restore or drill before it records a run", async () => {
    const noneHome = await mkdtemp(join(tmpdir(), "carehost-follow-none-"));
    const none = await startCarehost(
      loadConfig({ CAREHOST_HOME: noneHome, CAREHOST_PORT: "0", CAREHOST_LOG_LEVEL: "warn", CAREHOST_RUNTIME: "none" }),
      { specPath: join(home, "prod.yaml"), print: () => undefined },
    );
    try {
      const noneToken = (await readFile(join(noneHome, "cli-token"), "utf8")).trim();
      const post = (path: string, body: unknown) =>
        fetch(`${none.url}${path}`, {
          method: "POST",
          headers: { authorization: `Bearer ${noneToken}`, "content-type": "application/json" },
          body: JSON.stringify(body),
        });
      for (const [path, body] of [
        ["/api/backups", { environment: "prod" }],
        ["/api/drills", { environment: "prod" }],
        ["/api/restores", { environment: "prod", into: "x" }],
      ] as const) {
        const response = await post(path, body);
        assert.equal(response.status, 400, path);
        assert.match(
          ((await response.json()) as { detail: string }).detail,
          /runs no environments \(CAREHOST_RUNTIME=none\)/,
        );
      }
      const listed = (await (
        await fetch(`${none.url}/api/backups`, { headers: { authorization: `Bearer ${noneToken}` } })
      ).json()) as unknown[];
      assert.deepEqual(listed, [], "no run was recorded");
    } finally {
      await none.close();
      await rm(noneHome, { recursive: true, force: true });
    }
  });
});
