// carehost's own alert evaluation on a real control-plane database (PGlite), fed probe rounds on a
// moved clock: for-duration, hysteresis (no flapping), deduplication, silences, acknowledgement and
// escalation, with the notifications received by a real HTTP receiver (validated against
// Alertmanager's webhook payload, version 4) and a real SMTP server (smtp-server, in process).
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { readFile } from "node:fs/promises";
import { after, before, beforeEach, describe, it } from "node:test";
import nodemailer from "nodemailer";
import { SMTPServer } from "smtp-server";
import { z } from "zod";
import { createAuditHarness, type TAuditHarness } from "../../test/audit-fixtures.js";
import { testDatabaseFactories } from "../../test/test-databases.js";
import { loadSpecText } from "../spec/spec-loader.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import { alertDeliveryFactory, alertSenders, type TAlertDelivery } from "./monitor-alert-delivery.js";
import { alertEvaluatorFactory, type TAlertEvaluator } from "./monitor-alert-evaluator.js";
import { alertStore } from "./monitor-alert-store.js";
import type { TEnvironmentReading, TProbeRound } from "./monitor-probes.js";

const ORG = "northwind-health";

/** Alertmanager's webhook payload, version 4 (prometheus/alertmanager notify/webhook: Message, template.Data). */
const WebhookV4 = z.strictObject({
  version: z.literal("4"),
  groupKey: z.string().min(1),
  truncatedAlerts: z.number().int().nonnegative(),
  status: z.enum(["firing", "resolved"]),
  receiver: z.string().min(1),
  groupLabels: z.record(z.string(), z.string()),
  commonLabels: z.record(z.string(), z.string()),
  commonAnnotations: z.record(z.string(), z.string()),
  externalURL: z.url(),
  alerts: z
    .array(
      z.strictObject({
        status: z.enum(["firing", "resolved"]),
        labels: z.record(z.string(), z.string()),
        annotations: z.record(z.string(), z.string()),
        startsAt: z.iso.datetime(),
        endsAt: z.string().regex(/^\d{4}-\d\d-\d\dT/),
        generatorURL: z.string(),
        fingerprint: z.string().regex(/^[0-9a-f]{16}$/),
      }),
    )
    .min(1),
});
type TWebhook = z.infer<typeof WebhookV4>;

const reading = (environment: string, redis: { used: number; max: number }): TEnvironmentReading => ({
  organization: ORG,
  environment,
  tier: environment === "prod" ? "production" : "staging",
  instance: environment === "prod" ? "dedicated-prod" : "shared",
  postgres: null,
  archiving: null,
  redis: { up: true, usedMemoryBytes: redis.used, maxMemoryBytes: redis.max, evictedKeys: 0, connectedClients: 1 },
  backup: null,
  certificates: [],
});

void describe("carehost's own alert evaluation", () => {
  let harness: TAuditHarness;
  let receiver: Server;
  let receiverUrl: string;
  let receiverAnswers = 200;
  const webhooks: TWebhook[] = [];
  let smtp: SMTPServer;
  let smtpPort: number;
  const mails: { to: string; text: string }[] = [];
  let clock = new Date("2026-03-02T10:00:00Z");
  const advance = (seconds: number) => (clock = new Date(clock.getTime() + seconds * 1000));
  let spec: TOrganizationSpec;
  let evaluator: TAlertEvaluator;
  let delivery: TAlertDelivery;

  const roundWith = (prodMemory: number): TProbeRound => ({
    at: clock,
    durationSeconds: 0.1,
    environments: [reading("prod", { used: prodMemory, max: 1000 }), reading("staging", { used: 10, max: 1000 })],
    audit: {
      failedSignIns: 0,
      failedSignInsBy: { password: 0, token: 0 },
      privilegeChanges: {
        "user.created": 0,
        "user.access_granted": 0,
        "user.access_revoked": 0,
        "user.role_changed": 0,
        "user.disabled": 0,
      },
    },
  });
  const round = async (prodMemory: number) => {
    const result = await evaluator.evaluate(roundWith(prodMemory));
    await delivery.kick();
    return result;
  };
  const auditTypes = async () =>
    (await harness.log.list({ limit: 1000 }))
      .map((item) => item.entry.type)
      .filter((type) => type.startsWith("alert."));

  before(async () => {
    harness = await createAuditHarness(testDatabaseFactories.pglite);
    receiver = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        if (receiverAnswers === 200) webhooks.push(WebhookV4.parse(JSON.parse(Buffer.concat(chunks).toString())));
        response.writeHead(receiverAnswers).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ["STARTTLS"],
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on("data", (chunk: Buffer) => chunks.push(chunk));
        stream.on("end", () => {
          mails.push({
            to: session.envelope.rcptTo.map((item) => item.address).join(","),
            text: Buffer.concat(chunks).toString(),
          });
          callback();
        });
      },
    });
    await new Promise<void>((resolve) => smtp.listen(0, "127.0.0.1", resolve));
    smtpPort = (smtp.server.address() as AddressInfo).port;
    const monitoring = [
      "monitoring:",
      "  rules:",
      "    - rule: RedisMemoryNearLimit",
      "      for: 2m",
      "      resolveAfter: 5m",
      "      severity: critical",
      "  routes:",
      "    - match: { severity: [critical], entity: northwind-general }",
      `      webhook: ${receiverUrl}`,
      "      email: [oncall@northwind-health.example]",
      "    - match: { severity: [info] }",
      "      email: [nobody@northwind-health.example]",
      "  escalation:",
      "    after: 30m",
      "    email: [head-of-it@northwind-health.example]",
      "",
    ].join("\n");
    const loaded = loadSpecText((await readFile("examples/northwind-health.yaml", "utf8")) + monitoring, "nw.yaml");
    assert.ok(loaded.ok, JSON.stringify(!loaded.ok && loaded.errors));
    spec = loaded.spec;
    evaluator = alertEvaluatorFactory({
      log: harness.log,
      latestSpecs: async () => [spec],
      platformDestinations: [],
      now: () => clock,
    });
    const transport = nodemailer.createTransport({ host: "127.0.0.1", port: smtpPort, secure: false, ignoreTLS: true });
    delivery = alertDeliveryFactory({
      db: harness.db,
      log: harness.log,
      senders: alertSenders({
        externalURL: () => "http://127.0.0.1:8080",
        mail: async () => ({ transport, from: "carehost@northwind-health.example" }),
      }),
      maxAttempts: 3,
      retryBaseMs: 1000,
      now: () => clock,
      onError: (error) => {
        throw error;
      },
    });
  });
  after(async () => {
    await new Promise((resolve) => receiver.close(resolve));
    await new Promise<void>((resolve) => smtp.close(() => resolve()));
    await harness.dispose();
  });
  beforeEach(async () => {
    // Each case starts from a quiet round that has resolved whatever the last one left firing.
    await round(10);
    advance(3600);
    await round(10);
    webhooks.length = 0;
    mails.length = 0;
  });

  void it("fires after the for-duration, routes once by severity and entity, and resolves after the condition stays clear", async () => {
    assert.deepEqual((await round(950)).fired, [], "pending, not firing, before for: 2m");
    advance(60);
    assert.deepEqual((await round(960)).fired, []);
    advance(61);
    const { fired } = await round(970);
    assert.equal(fired.length, 1);
    assert.equal(fired[0]!.rule, "RedisMemoryNearLimit");
    assert.equal(fired[0]!.environment, "prod");
    advance(30);
    await round(980);
    assert.equal(webhooks.length, 1, "one webhook, however many rounds it fires for");
    const payload = webhooks[0]!;
    assert.equal(payload.status, "firing");
    assert.equal(payload.alerts[0]!.labels.alertname, "RedisMemoryNearLimit");
    assert.equal(payload.alerts[0]!.labels.organization, ORG);
    assert.equal(payload.alerts[0]!.labels.severity, "critical");
    assert.match(payload.alerts[0]!.annotations.summary!, /uses 97\.0% of maxmemory/);
    assert.match(payload.alerts[0]!.annotations.runbook_url!, /RedisMemoryNearLimit\.md$/);
    assert.equal(payload.alerts[0]!.endsAt, "0001-01-01T00:00:00Z");
    assert.deepEqual(
      mails.map((mail) => mail.to),
      ["oncall@northwind-health.example"],
      "the critical route's email, not the info route's",
    );
    assert.match(mails[0]!.text, /Subject: \[FIRING\] RedisMemoryNearLimit northwind-health\/prod \(critical\)/);
    // Clear, but not yet for resolveAfter (5m).
    advance(60);
    assert.deepEqual((await round(10)).resolved, []);
    advance(240);
    assert.deepEqual((await round(10)).resolved, []);
    advance(61);
    const { resolved } = await round(10);
    assert.equal(resolved.length, 1);
    assert.equal(webhooks.length, 2);
    assert.equal(webhooks[1]!.status, "resolved");
    assert.notEqual(webhooks[1]!.alerts[0]!.endsAt, "0001-01-01T00:00:00Z");
    assert.equal(webhooks[1]!.alerts[0]!.fingerprint, payload.alerts[0]!.fingerprint);
    assert.equal(mails.length, 2);
    const types = await auditTypes();
    assert.ok(types.includes("alert.firing") && types.includes("alert.resolved"), types.join(","));
  });

  void it("does not flap: a condition toggling within the hysteresis window fires once and resolves once", async () => {
    await round(950);
    advance(121);
    assert.equal((await round(950)).fired.length, 1);
    let fired = 0;
    let resolved = 0;
    for (let turn = 0; turn < 10; turn++) {
      advance(60);
      const result = await round(turn % 2 === 0 ? 10 : 990);
      fired += result.fired.length;
      resolved += result.resolved.length;
    }
    assert.equal(fired, 0);
    assert.equal(resolved, 0);
    advance(60);
    await round(10);
    advance(301);
    resolved += (await round(10)).resolved.length;
    assert.equal(resolved, 1);
    assert.deepEqual(
      webhooks.map((item) => item.status),
      ["firing", "resolved"],
    );
    const open = await alertStore.openAlerts(harness.db);
    assert.deepEqual(open, [], "one alert per rule and series, and it is closed");
  });

  void it("silences with an owner, a reason and an expiry; escalates an unacknowledged critical alert; not one acknowledged", async () => {
    const silence = await alertStore.insertSilence(harness.db, {
      rule: "RedisMemoryNearLimit",
      organization: ORG,
      environment: "prod",
      owner: "dana",
      reason: "load test",
      createdAt: clock,
      expiresAt: new Date(clock.getTime() + 600_000),
    });
    await round(950);
    advance(121);
    assert.equal((await round(950)).fired.length, 1, "a silenced alert still fires (and shows), it is not sent");
    assert.equal(webhooks.length, 0);
    advance(600);
    await round(950);
    assert.equal(webhooks.length, 1, "sent once the silence expired");
    assert.ok(silence.id > 0);
    mails.length = 0;
    advance(30 * 60);
    const { escalated } = await round(950);
    assert.equal(escalated.length, 1);
    assert.deepEqual(
      mails.map((mail) => mail.to),
      ["head-of-it@northwind-health.example"],
    );
    assert.match(mails[0]!.text, /\[ESCALATED\]/);
    advance(60);
    assert.equal((await round(950)).escalated.length, 0, "escalated once");
    // Another alert, acknowledged in time, is not escalated.
    advance(60);
    await round(10);
    advance(3600);
    await round(10);
    advance(60);
    await round(950);
    advance(121);
    const [alert] = (await round(950)).fired;
    await alertStore.acknowledge(harness.db, alert!.id, "dana", clock);
    advance(31 * 60);
    assert.equal((await round(950)).escalated.length, 0);
    assert.ok((await auditTypes()).includes("alert.escalated"));
  });

  void it("retries a delivery the receiver refuses and records it failed after the last attempt, never dropping it silently", async () => {
    receiverAnswers = 503;
    try {
      await round(950);
      advance(121);
      const [alert] = (await round(950)).fired;
      let [webhook] = (await alertStore.deliveriesOf(harness.db, [alert!.id])).filter(
        (item) => item.kind === "webhook",
      );
      assert.equal(webhook!.state, "pending");
      assert.equal(webhook!.attempts, 1);
      assert.match(webhook!.lastError!, /answered 503/);
      advance(1);
      await delivery.kick();
      advance(2);
      await delivery.kick();
      [webhook] = (await alertStore.deliveriesOf(harness.db, [alert!.id])).filter((item) => item.kind === "webhook");
      assert.equal(webhook!.state, "failed");
      assert.equal(webhook!.attempts, 3);
      const failed = (await harness.log.list({ limit: 1000 })).filter(
        (item) => item.entry.type === "alert.delivery_failed",
      );
      assert.equal(failed.length, 1);
      // Where it went, never a path that may hold the webhook's credential.
      assert.equal(failed[0]!.entry.payload.destination, new URL(receiverUrl).origin);
    } finally {
      receiverAnswers = 200;
    }
  });
});
