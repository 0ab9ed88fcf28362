// Probe rounds and /metrics read from real clusters and a real Redis on loopback ports: what the
// exporters would say, with carehost's organization and environment labels, cut to a caller's
// organizations.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import type pg from "pg";
import { createAuditHarness, type TAuditHarness } from "../../test/audit-fixtures.js";
import { createGovernedServices } from "../../test/change-fixtures.js";
import { clusterClients, createRuntimeHarness, type TRuntimeHarness } from "../../test/runtime-fixtures.js";
import { testDatabaseFactories } from "../../test/test-databases.js";
import { systemContext } from "../lib/request-context.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import { auditCountsFactory } from "./monitor-audit-counts.js";
import { monitorMetricsFactory } from "./monitor-metrics.js";
import { monitorProbesFactory, type TMonitorProbes, type TProbeRound } from "./monitor-probes.js";

const ORG = "probe-health";
const ctx = systemContext("test");

void describe("monitoring probes and metrics over a real data tier", () => {
  let runtimeHarness: TRuntimeHarness;
  let auditHarness: TAuditHarness;
  let probes: TMonitorProbes;
  let specs: TOrganizationSpec[] = [];
  const errors: unknown[] = [];
  let admin: pg.Client;

  before(async () => {
    runtimeHarness = await createRuntimeHarness();
    auditHarness = await createAuditHarness(testDatabaseFactories.pglite);
    const { environments } = createGovernedServices(auditHarness, { runtime: runtimeHarness.runtime });
    // The demo organization with Redis for every environment: a dedicated production, two shared.
    const source = (await readFile("examples/northwind-health.yaml", "utf8"))
      .replace("name: northwind-health", `name: ${ORG}`)
      .replace(/redis:\n(\s+)enabled: false/g, "redis:\n$1enabled: true");
    await environments.apply(ctx, { source, fileName: "probe-health.yaml" });
    specs = await environments.latestSpecs();
    probes = monitorProbesFactory({
      latestSpecs: environments.latestSpecs,
      probeRuntime: runtimeHarness.runtime.probe,
      auditCounts: auditCountsFactory({ db: auditHarness.db }),
      onError: (error) => errors.push(error),
    });
    const prodPort = (await runtimeHarness.runtime.observe(specs[0]!)).environments.find(
      (environment) => environment.environment === "prod",
    )!.postgres.port!;
    admin = await clusterClients(() => runtimeHarness, ORG).admin(prodPort, "prod");
  });
  after(async () => {
    await admin?.end();
    await runtimeHarness.close(specs);
    await auditHarness.dispose();
  });

  const readingOf = (round: TProbeRound, environment: string) => {
    const reading = round.environments.find((item) => item.organization === ORG && item.environment === environment);
    assert.ok(reading, `a reading of ${environment}`);
    return reading;
  };

  void it("reads PostgreSQL, WAL archiving, Redis and certificates as the running systems report them", async () => {
    await admin.query("BEGIN");
    await admin.query("SELECT txid_current()");
    await sleep(1200);
    const round = await probes.probeOnce();
    await admin.query("COMMIT");
    assert.deepEqual(errors, []);
    const prod = readingOf(round, "prod");
    const staging = readingOf(round, "staging");
    assert.equal(prod.instance, "dedicated-prod");
    assert.equal(staging.instance, "shared");
    const max = Number(
      (await admin.query<{ max_connections: string }>("SHOW max_connections")).rows[0]!.max_connections,
    );
    assert.equal(prod.postgres?.up, true);
    assert.equal(prod.postgres?.maxConnections, max);
    assert.ok((prod.postgres?.connections ?? 0) >= 1, "the test's own connection to prod counts");
    assert.ok((prod.postgres?.longestTransactionSeconds ?? 0) >= 1, JSON.stringify(prod.postgres));
    const size = Number((await admin.query<{ size: string }>("SELECT pg_database_size('prod') AS size")).rows[0]!.size);
    assert.ok(
      Math.abs((prod.postgres?.databaseSizeBytes ?? 0) - size) < 1024 * 1024,
      `${prod.postgres?.databaseSizeBytes} vs ${size}`,
    );
    assert.equal(prod.postgres?.deadlocks, 0);
    assert.equal(staging.postgres?.up, true);
    assert.equal(staging.postgres?.longestTransactionSeconds, 0);
    const archiver = (
      await admin.query<{ archived_count: string; failed_count: string }>(
        "SELECT archived_count, failed_count FROM pg_stat_archiver",
      )
    ).rows[0]!;
    assert.equal(prod.archiving?.archivedCount, Number(archiver.archived_count));
    assert.equal(prod.archiving?.failedCount, Number(archiver.failed_count));
    assert.equal(prod.redis?.up, true);
    assert.equal(prod.redis?.maxMemoryBytes, 1024 * 1024 * 1024);
    assert.ok((prod.redis?.usedMemoryBytes ?? 0) > 0);
    assert.ok((prod.redis?.connectedClients ?? 0) >= 1, "the probe's own connection counts");
    assert.equal(prod.redis?.evictedKeys, 0);
    // No backup has completed: the age is infinite, not zero.
    assert.equal(prod.backup?.lastCompletedAt, null);
    assert.equal(prod.backup?.rpoSeconds, 15 * 60);
    assert.ok((prod.backup?.scheduledIntervalSeconds ?? 0) > 0);
    const certificate = async (path: string) =>
      new Date(new X509Certificate(await readFile(join(runtimeHarness.root, ORG, path), "utf8")).validTo).getTime();
    const notAfter = new Map(prod.certificates.map((item) => [item.component, item.notAfter.getTime()]));
    assert.equal(notAfter.get("ca"), await certificate("ca.crt"));
    assert.equal(notAfter.get("postgres"), await certificate("postgres/dedicated-prod/tls/server.crt"));
    assert.equal(notAfter.get("redis"), await certificate("redis/dedicated-prod/tls/server.crt"));
  });

  void it("counts failed sign-ins and privilege changes from the audit log, reading only what is new", async () => {
    const before = (await probes.probeOnce()).audit;
    await auditHarness.log.append(ctx, {
      type: "auth.login.failed",
      outcome: "denied",
      target: "user/mallory",
      payload: { username: "mallory", reason: "wrong password" },
    });
    await auditHarness.log.append(ctx, {
      type: "auth.login.failures",
      outcome: "denied",
      target: "user/mallory",
      payload: {
        username: "mallory",
        failed: 6,
        rateLimited: 2,
        windowStart: new Date().toISOString(),
        windowSeconds: 900,
        firstAt: new Date().toISOString(),
        lastAt: new Date().toISOString(),
      },
    });
    await auditHarness.log.append(ctx, {
      type: "user.role_changed",
      outcome: "success",
      target: "user/dana",
      payload: { username: "dana", from: "viewer", to: "platform-admin" },
    });
    const counts = (await probes.probeOnce()).audit;
    assert.equal(counts.failedSignInsBy.password - before.failedSignInsBy.password, 7);
    assert.equal(counts.privilegeChanges["user.role_changed"] - before.privilegeChanges["user.role_changed"], 1);
    assert.equal((await probes.probeOnce()).audit.failedSignIns, counts.failedSignIns, "read once");
  });

  void it("exposes the exporters' names with organization and environment labels, cut to the caller's organizations", async () => {
    const round = await probes.probeOnce();
    const metrics = monitorMetricsFactory();
    const all = await metrics.render(round, { all: true });
    assert.match(
      all,
      new RegExp(`^pg_up\\{organization="${ORG}",environment="prod",instance="dedicated-prod"\\} 1$`, "m"),
    );
    assert.match(
      all,
      new RegExp(
        `^pg_settings_max_connections\\{organization="${ORG}",environment="staging",instance="shared"\\} \\d+$`,
        "m",
      ),
    );
    assert.match(
      all,
      /^pg_stat_activity_count\{organization="probe-health",environment="prod",instance="dedicated-prod",datname="prod"\} \d+$/m,
    );
    assert.match(
      all,
      /^pg_stat_archiver_failed_count\{organization="probe-health",environment="prod",instance="dedicated-prod"\} 0$/m,
    );
    assert.match(
      all,
      /^pg_stat_archiver_archived_count\{organization="probe-health",environment="prod",instance="dedicated-prod"\} \d+$/m,
    );
    assert.match(all, /^pg_database_size_bytes\{[^}]*datname="staging"\} [1-9]\d*$/m);
    assert.match(all, /^redis_up\{organization="probe-health",environment="prod",instance="dedicated-prod"\} 1$/m);
    assert.match(all, /^redis_memory_max_bytes\{[^}]*environment="prod"[^}]*\} 1073741824$/m);
    assert.match(all, /^redis_memory_used_bytes\{[^}]*environment="prod"[^}]*\} [1-9]\d*$/m);
    assert.match(all, /^redis_evicted_keys_total\{[^}]*environment="prod"[^}]*\} 0$/m);
    assert.match(all, /^redis_connected_clients\{[^}]*environment="prod"[^}]*\} \d+$/m);
    assert.match(all, /^pgbackrest_backup_since_last_completion_seconds\{[^}]*environment="prod"[^}]*\} \+Inf$/m);
    assert.match(all, /^carehost_backup_rpo_seconds\{[^}]*environment="prod"[^}]*\} 900$/m);
    assert.match(
      all,
      /^x509_cert_not_after\{[^}]*environment="prod",instance="dedicated-prod",component="postgres"\} \d+$/m,
    );
    assert.match(all, /^carehost_auth_failed_total\{method="password"\} 7$/m);
    assert.match(all, /^carehost_privilege_changes_total\{event="user.role_changed"\} 1$/m);
    const other = await metrics.render(round, { all: false, organizations: ["another-health"] });
    assert.doesNotMatch(other, /organization="probe-health"/);
    assert.doesNotMatch(other, /^carehost_auth_failed_total\{/m, "the platform's own series need every organization");
    const own = await metrics.render(round, { all: false, organizations: [ORG] });
    assert.match(own, /^pg_up\{organization="probe-health",environment="prod"/m);
    assert.doesNotMatch(own, /^carehost_probe_last_round_timestamp_seconds /m);
  });

  void it("reports a stopped cluster and Redis as down, and reads them again once they are back", async () => {
    await runtimeHarness.runtime.stopOrganization(specs[0]!);
    const round = await probes.probeOnce();
    const prod = readingOf(round, "prod");
    assert.equal(prod.postgres?.up, false);
    assert.equal(prod.redis?.up, false);
    assert.equal(prod.archiving, null);
    assert.match(
      await monitorMetricsFactory().render(round, { all: true }),
      /^pg_up\{organization="probe-health",environment="prod",instance="dedicated-prod"\} 0$/m,
    );
    await runtimeHarness.runtime.restartStopped(specs[0]!);
    assert.equal(readingOf(await probes.probeOnce(), "prod").postgres?.up, true);
  });
});
