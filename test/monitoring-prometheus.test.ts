// Debian's Prometheus scrapes a running carehost's /metrics with a scrape token and evaluates the
// rules carehost renders; archiving broken for real (the repository made unwritable) fires
// WalArchivingFailing for prod, and fixing it resolves the alert.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { localCliTokenPath } from "../src/cli/cli-credentials.js";
import { loadConfig } from "../src/lib/config.js";
import { secretNames } from "../src/runtime/local/local-placement.js";
import { startCarehost, type TRunningCarehost } from "../src/server/server-start.js";
import { killProcessesUnder } from "./runtime-fixtures.js";

const ORG = "scrape-health";

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0));
    });
  });

type TAlert = { labels: Record<string, string>; state: string };

void describe("Prometheus scrapes carehost and fires the rendered rules on a real fault", () => {
  let home: string;
  let running: TRunningCarehost;
  let prometheus: ChildProcess;
  let prometheusUrl: string;
  let token: string;
  let admin: pg.Client;
  const prometheusLog: string[] = [];

  const api = async (path: string, init: RequestInit = {}) => {
    const response = await fetch(`${running.url}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...init.headers },
    });
    assert.ok(response.ok, `${path}: ${response.status} ${await response.clone().text()}`);
    return response;
  };
  const alerts = async (): Promise<TAlert[]> =>
    ((await (await fetch(`${prometheusUrl}/api/v1/alerts`)).json()) as { data: { alerts: TAlert[] } }).data.alerts;
  const waitFor = async <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe().catch(() => undefined);
      if (value !== undefined) return value;
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}; prometheus said: ${prometheusLog.join("").slice(-2000)}`);
      await sleep(500);
    }
  };

  before(async () => {
    home = await mkdtemp(join(tmpdir(), "carehost-prometheus-"));
    await chmod(home, 0o711);
    // The demo organization's production alone: a dedicated cluster archiving to the posix repository.
    const demo = (await readFile("examples/northwind-health.yaml", "utf8")).replace(
      "name: northwind-health",
      `name: ${ORG}`,
    );
    const specPath = join(home, "scrape-health.yaml");
    // Resolved 5 s after archiving recovers instead of the shipped 5 minutes' hysteresis (keep_firing_for).
    await writeFile(
      specPath,
      `${demo.slice(0, demo.indexOf("  - name: staging"))}monitoring:\n  rules:\n    - rule: WalArchivingFailing\n      resolveAfter: 5s\n`,
    );
    const config = loadConfig({
      CAREHOST_HOME: join(home, "carehost"),
      CAREHOST_PORT: "0",
      CAREHOST_RUNTIME: "local",
      CAREHOST_SUPERVISE_SECONDS: "1",
      CAREHOST_LOG_LEVEL: "silent",
    });
    running = await startCarehost(config, { print: () => undefined, specPath });
    token = (await readFile(localCliTokenPath(config.home), "utf8")).trim();

    const directory = join(home, "prometheus");
    await mkdir(join(directory, "data"), { recursive: true });
    await writeFile(join(directory, "token"), token, { mode: 0o600 });
    await writeFile(join(directory, "rules.yml"), await (await api("/api/monitoring/rules")).text());
    const target = new URL(running.url);
    await writeFile(
      join(directory, "prometheus.yml"),
      [
        "global:",
        "  scrape_interval: 1s",
        "  evaluation_interval: 1s",
        "rule_files: [rules.yml]",
        "scrape_configs:",
        "  - job_name: carehost",
        "    metrics_path: /metrics",
        `    authorization: { credentials_file: ${join(directory, "token")} }`,
        `    static_configs: [{ targets: ["${target.host}"] }]`,
        "",
      ].join("\n"),
    );
    const port = await freePort();
    prometheusUrl = `http://127.0.0.1:${port}`;
    prometheus = spawn(
      "prometheus",
      [
        `--config.file=${join(directory, "prometheus.yml")}`,
        `--storage.tsdb.path=${join(directory, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    prometheus.stderr?.on("data", (chunk: Buffer) => prometheusLog.push(chunk.toString()));

    const adminPassword = (
      (await (
        await api("/api/secrets/reveal", {
          method: "POST",
          body: JSON.stringify({ name: secretNames.clusterAdmin(ORG, "dedicated-prod"), reason: "test: switch WAL" }),
        })
      ).json()) as { value: string }
    ).value;
    const status = (await (await api("/api/status")).json()) as {
      organizations: { environments: { name: string; runtime: { postgres: { port: number } } }[] }[];
    };
    admin = new pg.Client({
      host: "127.0.0.1",
      port: status.organizations[0]!.environments[0]!.runtime.postgres.port,
      user: "carehost_admin",
      password: adminPassword,
      database: "postgres",
      ssl: { ca: await readFile(join(config.home, "runtime", ORG, "ca.crt"), "utf8"), rejectUnauthorized: true },
    });
    admin.on("error", () => undefined);
    await admin.connect();
  });

  after(async () => {
    await admin?.end().catch(() => undefined);
    prometheus?.kill("SIGTERM");
    await running?.stopEnvironments().catch(() => undefined);
    await running?.close().catch(() => undefined);
    await killProcessesUnder(home);
    await rm(home, { recursive: true, force: true });
  });

  void it("is refused /metrics without a token, and Prometheus scrapes it with the scrape token", async () => {
    assert.equal((await fetch(`${running.url}/metrics`)).status, 401);
    await waitFor("the carehost target to be up", async () => {
      const body = (await (await fetch(`${prometheusUrl}/api/v1/targets`)).json()) as {
        data: { activeTargets: { health: string }[] };
      };
      return body.data.activeTargets[0]?.health === "up" ? true : undefined;
    });
    const query = async (expr: string) =>
      (
        (await (await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(expr)}`)).json()) as {
          data: { result: { metric: Record<string, string>; value: [number, string] }[] };
        }
      ).data.result;
    const up = await waitFor("pg_up of prod", async () => {
      const result = await query(`pg_up{organization="${ORG}",environment="prod"}`);
      return result.length > 0 ? result : undefined;
    });
    assert.equal(up[0]!.value[1], "1");
    assert.equal((await query(`pg_stat_archiver_failed_count{organization="${ORG}"}`))[0]?.value[1], "0");
    const rules = (await (await fetch(`${prometheusUrl}/api/v1/rules`)).json()) as {
      data: { groups: { name: string; rules: unknown[] }[] };
    };
    assert.deepEqual(rules.data.groups.map((group) => group.name).sort(), ["carehost-platform", `carehost-${ORG}`]);
    assert.ok(!(await alerts()).some((alert) => alert.labels.alertname === "WalArchivingFailing"));
  });

  void it("fires WalArchivingFailing for prod once its repository is unwritable, and resolves it once it is writable again", async () => {
    const repository = join(home, "carehost", "backups", ORG);
    const mode = (await stat(repository)).mode & 0o777;
    await chmod(repository, 0o000);
    try {
      await admin.query("CREATE TABLE IF NOT EXISTS scrape_probe (note text)");
      await admin.query("INSERT INTO scrape_probe VALUES ('written while the repository is unwritable')");
      await admin.query("SELECT pg_switch_wal()");
      const firing = await waitFor("WalArchivingFailing to fire", async () => {
        const alert = (await alerts()).find(
          (item) => item.labels.alertname === "WalArchivingFailing" && item.state === "firing",
        );
        return alert;
      });
      assert.equal(firing.labels.organization, ORG);
      assert.equal(firing.labels.environment, "prod");
      assert.equal(firing.labels.severity, "critical");
    } finally {
      await chmod(repository, mode);
    }
    await waitFor("WalArchivingFailing to resolve", async () =>
      (await alerts()).some((item) => item.labels.alertname === "WalArchivingFailing") ? undefined : true,
    );
  });
});
