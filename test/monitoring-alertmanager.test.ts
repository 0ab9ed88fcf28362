// Debian's Alertmanager receives carehost's alerts on its native API (the route kind
// `alertmanager`), routes them to a webhook receiver here, and what it sends that receiver is
// Alertmanager's own webhook payload (version 4): the shape carehost's `webhook` route sends.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { alertSenders } from "../src/monitor/monitor-alert-delivery.js";
import { webhookPayload } from "../src/monitor/monitor-alert-routing.js";
import type { TAlert } from "../src/monitor/monitor-alert-types.js";

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0));
    });
  });

type TReceived = {
  status: string;
  version: string;
  alerts: { status: string; labels: Record<string, string>; fingerprint: string }[];
} & Record<string, unknown>;

const alert = (state: "firing" | "resolved"): TAlert => ({
  id: 7,
  fingerprint: "0123456789abcdef",
  rule: "RedisMemoryNearLimit",
  organization: "am-health",
  environment: "prod",
  instance: "dedicated-prod",
  entity: "am-general",
  severity: "critical",
  labels: {
    alertname: "RedisMemoryNearLimit",
    organization: "am-health",
    environment: "prod",
    instance: "dedicated-prod",
    severity: "critical",
    source: "carehost",
  },
  annotations: { summary: "Redis of am-health/prod uses 97.0% of maxmemory", runbook_url: "https://example/x.md" },
  state,
  value: 0.97,
  pendingSince: new Date(Date.now() - 120_000),
  firedAt: new Date(Date.now() - 60_000),
  clearSince: null,
  resolvedAt: state === "resolved" ? new Date() : null,
  notifiedAt: new Date(),
  acknowledgedBy: null,
  acknowledgedAt: null,
  escalatedAt: null,
  evaluatedAt: new Date(),
});

void describe("Debian's Alertmanager routes carehost's alerts to a receiver", () => {
  let directory: string;
  let alertmanager: ChildProcess;
  let alertmanagerUrl: string;
  let receiver: Server;
  const received: TReceived[] = [];
  const log: string[] = [];

  const waitFor = async <T>(what: string, probe: () => T | undefined, timeoutMs = 60_000): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = probe();
      if (value !== undefined) return value;
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}; alertmanager said: ${log.join("").slice(-2000)}`);
      await sleep(200);
    }
  };

  before(async () => {
    directory = await mkdtemp(join(tmpdir(), "carehost-alertmanager-"));
    receiver = createHttpServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        received.push(JSON.parse(Buffer.concat(chunks).toString()) as TReceived);
        response.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    const receiverPort = (receiver.address() as AddressInfo).port;
    await writeFile(
      join(directory, "alertmanager.yml"),
      [
        "route:",
        "  receiver: test",
        "  group_by: [alertname, organization, environment]",
        "  group_wait: 1s",
        "  group_interval: 1s",
        "  repeat_interval: 1h",
        "receivers:",
        "  - name: test",
        "    webhook_configs:",
        `      - url: http://127.0.0.1:${receiverPort}/hook`,
        "        send_resolved: true",
        "",
      ].join("\n"),
    );
    const port = await freePort();
    const cluster = await freePort();
    alertmanagerUrl = `http://127.0.0.1:${port}`;
    alertmanager = spawn(
      "prometheus-alertmanager",
      [
        `--config.file=${join(directory, "alertmanager.yml")}`,
        `--storage.path=${join(directory, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
        `--cluster.listen-address=127.0.0.1:${cluster}`,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    alertmanager.stderr?.on("data", (chunk: Buffer) => log.push(chunk.toString()));
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ready = await fetch(`${alertmanagerUrl}/-/ready`).then(
        (response) => response.ok,
        () => false,
      );
      if (ready) break;
      if (Date.now() > deadline) throw new Error(`alertmanager did not start: ${log.join("")}`);
      await sleep(200);
    }
  });
  after(async () => {
    alertmanager?.kill("SIGTERM");
    await new Promise((resolve) => receiver?.close(resolve));
    await rm(directory, { recursive: true, force: true });
  });

  void it("takes a firing alert on /api/v2/alerts, routes it once, then its resolution; the receiver gets the v4 payload carehost's webhook sends", async () => {
    const senders = alertSenders({ externalURL: () => "http://127.0.0.1:8080", mail: undefined });
    await senders.alertmanager(alert("firing"), "firing", alertmanagerUrl);
    const firing = await waitFor("the firing notification", () => received.find((item) => item.status === "firing"));
    assert.equal(firing.version, "4");
    assert.equal(firing.alerts.length, 1);
    assert.equal(firing.alerts[0]!.labels.alertname, "RedisMemoryNearLimit");
    assert.equal(firing.alerts[0]!.labels.organization, "am-health");
    // carehost's own webhook payload has exactly the keys Alertmanager's has, alert by alert.
    const ours = webhookPayload(alert("firing"), "firing", { receiver: "test", externalURL: "http://127.0.0.1:8080" });
    assert.deepEqual(Object.keys(ours).sort(), Object.keys(firing).sort());
    assert.deepEqual(Object.keys(ours.alerts[0]!).sort(), Object.keys(firing.alerts[0]!).sort());
    await senders.alertmanager(alert("resolved"), "resolved", alertmanagerUrl);
    const resolved = await waitFor("the resolved notification", () =>
      received.find((item) => item.status === "resolved"),
    );
    assert.equal(resolved.alerts[0]!.status, "resolved");
    assert.equal(received.filter((item) => item.status === "firing").length, 1, "routed once");
  });
});
