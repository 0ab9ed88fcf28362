// carehost killed with SIGKILL in the middle of a backup, a restore into a copy, an in-place
// restore, and a restore over a shared environment, as an OOM killer or a power cut would: the server runs as its own process (`carehost
// up`), the test kills it while pgBackRest is working, and starts it again on the same data dir.
// The next start must leave no pgBackRest running on, no half-made copy, an in-place restore
// finished before the cluster serves, every interrupted run marked interrupted and audited, and every audit
// event written before the kill still there and verifiable. SIGTERM, as a service manager stops
// carehost, must stop it within 30 s mid-restore, ending what the restore ran, with the same repair at the next start.
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import pg from "pg";
import { parse, stringify } from "yaml";
import { killProcessesUnder, processesRunning, waitForArchive } from "./runtime-fixtures.js";

const run = promisify(execFile);
const ORG = "northwind-health";
const STANZA = "dedicated-prod";

type TCliResult = { code: number; stdout: string; stderr: string };
type TAuditEntryJson = { seq: number; type: string; outcome: string; payload: Record<string, unknown> };

void describe("carehost killed with SIGKILL mid-backup and mid-restore", () => {
  let home: string;
  let server: ChildProcess | undefined;
  let adminPassword: string;
  let sharedAdminPassword: string;

  const env = () => ({
    ...process.env,
    CAREHOST_HOME: home,
    CAREHOST_PORT: "0",
    XDG_CONFIG_HOME: join(home, "xdg"),
    NO_COLOR: "1",
    CAREHOST_SUPERVISE_SECONDS: "3600",
  });
  const cliArgs = (args: readonly string[]) => ["--import", "tsx", "src/cli/main.ts", ...args];
  const cli = async (args: readonly string[]): Promise<TCliResult> => {
    try {
      const { stdout, stderr } = await run(process.execPath, cliArgs(args), { env: env(), maxBuffer: 1 << 24 });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  };
  const cliOk = async (args: readonly string[]): Promise<string> => {
    const result = await cli(args);
    assert.equal(result.code, 0, `carehost ${args.join(" ")}: ${result.stdout}${result.stderr}`);
    return result.stdout;
  };

  /** `carehost up` as its own process; resolves once it prints that it is up. */
  const startServer = async (specPath?: string): Promise<void> => {
    const child = spawn(process.execPath, cliArgs(["up", ...(specPath === undefined ? [] : ["--spec", specPath])]), {
      env: env(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    const deadline = Date.now() + 180_000;
    while (!/is up at/.test(output)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`carehost up did not come up:\n${output}`);
      await sleep(100);
    }
    server = child;
  };
  const killServer = async (): Promise<void> => {
    const child = server!;
    server = undefined;
    child.kill("SIGKILL");
    if (child.exitCode === null && child.signalCode === null)
      await new Promise((resolve) => child.once("exit", resolve));
  };

  /** pgBackRest running `command` (its last argument) for this test's prod; other tests run a stanza of the same name. */
  const pgbackrestOfProd = (command: "backup" | "restore") => (program: string, args: readonly string[]) =>
    program === "pgbackrest" &&
    args.includes(`--config=${join(home, "runtime", ORG, "postgres", STANZA, "pgbackrest", "pgbackrest.conf")}`) &&
    args.at(-1) === command;
  /**
   * Starts a CLI command, waits until the process `worker` describes runs for it, lets it work a
   * moment, and kills the server; the worker (started under a parent-death signal) must die with it.
   */
  const killDuring = async (
    args: readonly string[],
    worker: { name: string; matches: (program: string, args: readonly string[]) => boolean },
  ): Promise<void> => {
    const client = spawn(process.execPath, cliArgs(args), { env: env(), stdio: "ignore" });
    const deadline = Date.now() + 120_000;
    while ((await processesRunning(worker.matches)).length === 0) {
      if (Date.now() > deadline || client.exitCode !== null)
        throw new Error(`${worker.name} never ran for: carehost ${args.join(" ")}`);
      await sleep(25);
    }
    await sleep(300);
    assert.ok(
      (await processesRunning(worker.matches)).length > 0,
      `${worker.name} finished before the kill; the test needs more data`,
    );
    await killServer();
    // The CLI would go on trying to follow the run for half a minute; it has nothing left to follow.
    client.kill("SIGKILL");
    await new Promise((resolve) =>
      client.exitCode === null && client.signalCode === null ? client.once("exit", resolve) : resolve(undefined),
    );
    // Nothing holds the stanza's lock or writes on after carehost is gone.
    for (let attempt = 0; attempt < 50 && (await processesRunning(worker.matches)).length > 0; attempt += 1)
      await sleep(100);
    assert.deepEqual(
      await processesRunning(worker.matches),
      [],
      `${worker.name} outlived the carehost that started it`,
    );
  };
  const pgbackrestBackup = { name: "pgBackRest backup", matches: pgbackrestOfProd("backup") };
  const pgbackrestRestore = { name: "pgBackRest restore", matches: pgbackrestOfProd("restore") };

  const auditEntries = async (): Promise<TAuditEntryJson[]> =>
    JSON.parse(await cliOk(["audit", "list", "--limit", "1000", "--output", "json"])) as TAuditEntryJson[];
  /** Every entry written before the kill is still there, unchanged, and the whole log verifies. */
  const assertAuditKept = async (before: readonly TAuditEntryJson[]): Promise<TAuditEntryJson[]> => {
    const afterwards = await auditEntries();
    const bySeq = new Map(afterwards.map((entry) => [entry.seq, JSON.stringify(entry)]));
    for (const entry of before)
      assert.equal(
        bySeq.get(entry.seq),
        JSON.stringify(entry),
        `audit entry ${entry.seq} (${entry.type}) was lost or changed`,
      );
    assert.match(await cliOk(["audit", "verify"]), /ok|verified/i);
    return afterwards;
  };

  const connectTo = async (cluster: string, database: string, password: string): Promise<pg.Client> => {
    const port = (
      JSON.parse(await readFile(join(home, "runtime", ORG, "postgres", cluster, "instance.json"), "utf8")) as {
        port: number;
      }
    ).port;
    const ca = await readFile(join(home, "runtime", ORG, "ca.crt"), "utf8");
    const client = new pg.Client({ host: "127.0.0.1", port, user: "carehost_admin", password, database, ssl: { ca } });
    await client.connect();
    return client;
  };
  const connectProd = () => connectTo(STANZA, "prod", adminPassword);
  const connectStaging = () => connectTo("shared", "staging", sharedAdminPassword);
  /** Rows of about 400 MB in all, so that pgBackRest or pg_restore is still busy when the test kills carehost. */
  const fill = async (client: pg.Client, note: string): Promise<void> => {
    await client.query("CREATE TABLE ledger (id int PRIMARY KEY, note text NOT NULL)");
    await client.query(
      "CREATE TABLE bulk AS SELECT g AS id, repeat(md5(g::text), 10) AS payload FROM generate_series(1, 1100000) AS g",
    );
    await client.query("INSERT INTO ledger VALUES (1, $1)", [note]);
  };

  /** Ledger row 2 committed and archived before the returned second, row 3 after it. */
  const writeAroundTarget = async (connect: () => Promise<pg.Client>): Promise<string> => {
    const client = await connect();
    try {
      await client.query("INSERT INTO ledger VALUES (2, 'committed before the target')");
      await waitForArchive(client);
      await sleep(1100);
      const targetTime = new Date().toISOString();
      await sleep(1100);
      await client.query("INSERT INTO ledger VALUES (3, 'committed after the target')");
      await waitForArchive(client);
      return targetTime;
    } finally {
      await client.end();
    }
  };

  before(async () => {
    home = await mkdtemp(join(tmpdir(), "carehost-kill-"));
    // Production (dedicated) and staging (a shared cluster, restored over itself database by database).
    const demo = parse(await readFile("examples/northwind-health.yaml", "utf8")) as {
      environments: { name: string }[];
    };
    demo.environments = demo.environments.filter(
      (environment) => environment.name === "prod" || environment.name === "staging",
    );
    const specPath = join(home, "prod-and-staging.yaml");
    await writeFile(specPath, stringify(demo));
    await startServer(specPath);
    adminPassword = (
      await cliOk(["secrets", "reveal", `runtime/${ORG}/postgres/${STANZA}/admin`, "--reason", "kill test writes rows"])
    ).trim();
    sharedAdminPassword = (
      await cliOk(["secrets", "reveal", `runtime/${ORG}/postgres/shared/admin`, "--reason", "kill test writes rows"])
    ).trim();
    for (const [connect, environment] of [
      [connectProd, "prod"],
      [connectStaging, "staging"],
    ] as const) {
      const client = await connect();
      try {
        await fill(client, "before the first backup");
      } finally {
        await client.end();
      }
      await cliOk(["backup", environment, "--type", "full"]);
    }
  });

  after(async () => {
    if (server !== undefined) await killServer();
    // Everything the data dir still runs (PostgreSQL, Redis; carehost leaves them running by design).
    await killProcessesUnder(home);
    await rm(home, { recursive: true, force: true });
  });

  void it("mid-backup: the run is interrupted and audited at the next start, the stanza is free, and the next backup and verify pass", async () => {
    const before = await auditEntries();
    await killDuring(["backup", "prod", "--type", "full"], pgbackrestBackup);
    await startServer();
    const [interrupted] = JSON.parse(await cliOk(["backups", "prod", "--output", "json"])) as {
      status: string;
      error: string | null;
    }[];
    assert.equal(interrupted?.status, "interrupted");
    assert.match(interrupted?.error ?? "", /interrupted/);
    const afterwards = await assertAuditKept(before);
    assert.ok(
      afterwards.some((entry) => entry.type === "backup.failed" && /interrupted/.test(String(entry.payload.reason))),
      "the interrupted backup is audited",
    );
    await cliOk(["backup", "prod", "--type", "incr"]);
    assert.match(await cliOk(["verify", "prod"]), /verify clean/);
  });

  void it("mid-restore into a copy: the half-made copy is stopped and removed at the next start, and the name can be used again", async () => {
    const before = await auditEntries();
    await killDuring(["restore", "prod", "--to", "latest", "--into", "copy1"], pgbackrestRestore);
    await startServer();
    await assert.rejects(stat(join(home, "runtime", ORG, "restores", "copy1")), /ENOENT/, "the half-made copy is gone");
    const { stdout } = await run("ps", ["-eo", "args="]);
    assert.deepEqual(
      stdout.split("\n").filter((line) => line.includes(join("restores", "copy1"))),
      [],
      "no process of the copy runs",
    );
    const [interrupted] = JSON.parse(await cliOk(["restores", "prod", "--output", "json"])) as {
      status: string;
      destination: string;
      error: string | null;
    }[];
    assert.equal(interrupted?.status, "interrupted");
    assert.equal(interrupted?.destination, "copy copy1");
    const afterwards = await assertAuditKept(before);
    assert.ok(
      afterwards.some((entry) => entry.type === "restore.failed" && entry.payload.destination === "copy copy1"),
      "the interrupted restore is audited",
    );
    assert.match(
      await cliOk(["restore", "prod", "--to", "latest", "--into", "copy1"]),
      /a copy runs on 127\.0\.0\.1:\d+/,
    );
  });

  void it("mid in-place restore: the next start finishes it before the cluster serves, to the same second", async () => {
    const targetTime = await writeAroundTarget(connectProd);
    const before = await auditEntries();
    await killDuring(
      [
        "restore",
        "prod",
        "--to",
        targetTime,
        "--in-place",
        "--emergency",
        "kill test: restore in place under a SIGKILL",
      ],
      pgbackrestRestore,
    );
    await startServer();
    const client = await connectProd();
    try {
      const rows = await client.query<{ id: number }>("SELECT id FROM ledger ORDER BY id");
      assert.deepEqual(
        rows.rows.map((row) => row.id),
        [1, 2],
        "every row committed before the target, none after",
      );
      assert.equal(
        (await client.query<{ recovering: boolean }>("SELECT pg_is_in_recovery() AS recovering")).rows[0]?.recovering,
        false,
      );
      await client.query("INSERT INTO ledger VALUES (4, 'written after the finished restore')");
    } finally {
      await client.end();
    }
    const afterwards = await assertAuditKept(before);
    assert.ok(
      afterwards.some((entry) => entry.type === "restore.failed" && entry.payload.destination === "in place"),
      "the interrupted restore is audited",
    );
    assert.ok(
      afterwards.some(
        (entry) =>
          entry.type === "runtime.reconciled" &&
          JSON.stringify(entry.payload).includes("finished an in-place restore that was interrupted"),
      ),
      "the restart's reconcile finished the restore, audited",
    );
    await cliOk(["backup", "prod", "--type", "incr"]);
  });

  void it("mid restore over a shared environment: killed while its database loads, staging keeps its data, and the restore runs again", async () => {
    const targetTime = await writeAroundTarget(connectStaging);
    const before = await auditEntries();
    const restoreArgs = [
      "restore",
      "staging",
      "--to",
      targetTime,
      "--in-place",
      "--emergency",
      "kill test: restore over a shared environment under a SIGKILL",
    ];
    // The load into staging__restoring, after the scratch copy was restored and dumped: the swap has not happened yet.
    await killDuring(restoreArgs, {
      name: "pg_restore into staging__restoring",
      matches: (program, args) => program.endsWith("/pg_restore") && args.includes("--dbname=staging__restoring"),
    });
    await startServer();
    await assert.rejects(
      stat(join(home, "runtime", ORG, "restores", "staging.into")),
      /ENOENT/,
      "the scratch copy and its dump are gone",
    );
    let client = await connectStaging();
    try {
      const rows = await client.query<{ id: number }>("SELECT id FROM ledger ORDER BY id");
      assert.deepEqual(
        rows.rows.map((row) => row.id),
        [1, 2, 3],
        "staging is as it was before the restore began",
      );
      const leftovers = await client.query<{ datname: string }>(
        "SELECT datname FROM pg_database WHERE datname LIKE 'staging\\_\\_%'",
      );
      assert.deepEqual(leftovers.rows, [], "no half-loaded or set-aside database is left");
    } finally {
      await client.end();
    }
    const [interrupted] = JSON.parse(await cliOk(["restores", "staging", "--output", "json"])) as {
      status: string;
      error: string | null;
    }[];
    assert.equal(interrupted?.status, "interrupted");
    const afterwards = await assertAuditKept(before);
    assert.ok(
      afterwards.some((entry) => entry.type === "restore.failed" && JSON.stringify(entry.payload).includes("staging")),
      "the interrupted restore is audited",
    );
    await cliOk(restoreArgs);
    client = await connectStaging();
    try {
      const rows = await client.query<{ id: number }>("SELECT id FROM ledger ORDER BY id");
      assert.deepEqual(
        rows.rows.map((row) => row.id),
        [1, 2],
        "every row committed before the target, none after",
      );
    } finally {
      await client.end();
    }
  });

  void it("SIGTERM mid-restore: carehost up stops within 30 s, ends pgBackRest, marks the run interrupted, tells its follower, and the next start cleans up so the restore runs again", async (t) => {
    const before = await auditEntries();
    const follower = spawn(process.execPath, cliArgs(["restore", "prod", "--to", "latest", "--into", "copy2"]), {
      env: env(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let followed = "";
    follower.stdout.on("data", (chunk: Buffer) => (followed += chunk.toString("utf8")));
    follower.stderr.on("data", (chunk: Buffer) => (followed += chunk.toString("utf8")));
    const followerExit = new Promise<number | null>((resolve) => follower.once("exit", (code) => resolve(code)));
    const deadline = Date.now() + 120_000;
    while ((await processesRunning(pgbackrestRestore.matches)).length === 0) {
      if (Date.now() > deadline || follower.exitCode !== null)
        throw new Error(`pgBackRest restore never ran: ${followed}`);
      await sleep(25);
    }
    await sleep(300);
    assert.ok(
      (await processesRunning(pgbackrestRestore.matches)).length > 0,
      "pgBackRest restore finished before the SIGTERM; the test needs more data",
    );
    const child = server!;
    server = undefined;
    const stopping = Date.now();
    child.kill("SIGTERM");
    const code = await new Promise<number | null>((resolve) =>
      child.exitCode === null ? child.once("exit", (exitCode) => resolve(exitCode)) : resolve(child.exitCode),
    );
    const tookMs = Date.now() - stopping;
    assert.ok(tookMs < 30_000, `carehost up took ${tookMs} ms to stop`);
    t.diagnostic(`carehost up stopped ${tookMs} ms after SIGTERM`);
    assert.equal(code, 0, "carehost up stopped cleanly");
    assert.deepEqual(await processesRunning(pgbackrestRestore.matches), [], "pgBackRest's restore ended with carehost");
    // The CLI following the restore heard that it was interrupted, and failed.
    assert.equal(await followerExit, 1, followed);
    assert.match(
      followed,
      /interrupted: carehost stopped before it finished; once carehost is up again .* run it again/,
    );

    await startServer();
    await assert.rejects(stat(join(home, "runtime", ORG, "restores", "copy2")), /ENOENT/, "the half-made copy is gone");
    const [interrupted] = JSON.parse(await cliOk(["restores", "prod", "--output", "json"])) as {
      status: string;
      destination: string;
      error: string | null;
    }[];
    assert.equal(interrupted?.status, "interrupted");
    assert.equal(interrupted?.destination, "copy copy2");
    const afterwards = await assertAuditKept(before);
    assert.equal(
      afterwards.filter((entry) => entry.type === "restore.failed" && entry.payload.destination === "copy copy2")
        .length,
      1,
      "the interrupted restore is audited once",
    );
    assert.match(
      await cliOk(["restore", "prod", "--to", "latest", "--into", "copy2"]),
      /a copy runs on 127\.0\.0\.1:\d+/,
    );
  });
});
