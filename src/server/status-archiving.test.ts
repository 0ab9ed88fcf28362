import assert from "node:assert/strict";
import { chmod, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { createAuditHarness, type TAuditHarness } from "../../test/audit-fixtures.js";
import { createRuntimeHarness, waitForArchive, type TRuntimeHarness } from "../../test/runtime-fixtures.js";
import { testDatabaseFactories } from "../../test/test-databases.js";
import { auditServiceFactory } from "../audit/audit-service.js";
import { createGovernedServices } from "../../test/change-fixtures.js";
import { systemContext } from "../lib/request-context.js";
import { secretNames } from "../runtime/local/local-placement.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import { statusServiceFactory, type TStatusReport, type TStatusService } from "./status-service.js";

const ORG = "archive-health";
const RPO_MINUTES = 15;
const ctx = systemContext("test");
/** The demo's offsite repository has no key here: the runtime skips it, and status says so beside every other alert. */
const OFFSITE_SKIPPED = `backups are not written to repository offsite (azure): its key "backup/${ORG}/backup-offsite-azure-key" is not in the secret store; add it with: carehost secrets set backup/${ORG}/backup-offsite-azure-key`;

/** The demo organization with production only (RPO 15 min, archive_timeout 225 s: no switch of its own during the test). */
const prodOnlySource = async () => {
  const source = (await readFile("examples/northwind-health.yaml", "utf8")).replace(
    "name: northwind-health",
    `name: ${ORG}`,
  );
  assert.match(source, new RegExp(`rpoMinutes: ${RPO_MINUTES}\\b`));
  return source.slice(0, source.indexOf("  - name: staging"));
};

void describe("status: WAL archiving health read from the running cluster, with an alert past the RPO", () => {
  let runtimeHarness: TRuntimeHarness;
  let auditHarness: TAuditHarness;
  let status: TStatusService;
  let specs: TOrganizationSpec[] = [];
  let admin: pg.Client;
  // The runtime's clock: moved forward to see the lag of a failing archiver pass the objective without waiting 15 minutes.
  let clockOffsetMs = 0;

  before(async () => {
    runtimeHarness = await createRuntimeHarness({ now: () => new Date(Date.now() + clockOffsetMs) });
    auditHarness = await createAuditHarness(testDatabaseFactories.pglite);
    const { environments } = createGovernedServices(auditHarness, { runtime: runtimeHarness.runtime });
    await environments.apply(ctx, { source: await prodOnlySource(), fileName: "archive-health.yaml" });
    specs = await environments.latestSpecs();
    status = statusServiceFactory({
      environments,
      auditHead: auditServiceFactory({ log: auditHarness.log, db: auditHarness.db }).head,
      audit: auditHarness.log,
      version: "test",
      url: () => "http://127.0.0.1:0",
      store: "pglite",
      startedAt: new Date(),
    });
    const port = (await runtimeHarness.runtime.observe(specs[0]!)).environments[0]!.postgres.port!;
    admin = new pg.Client({
      host: "127.0.0.1",
      port,
      user: "carehost_admin",
      password: await runtimeHarness.secrets.current(secretNames.clusterAdmin(ORG, "dedicated-prod")),
      database: "postgres",
      ssl: { ca: await readFile(join(runtimeHarness.root, ORG, "ca.crt"), "utf8"), rejectUnauthorized: true },
    });
    admin.on("error", () => undefined);
    await admin.connect();
  });
  after(async () => {
    await admin?.end();
    await runtimeHarness.close(specs);
    await auditHarness.dispose();
  });

  const prodRecovery = async () => {
    const report: TStatusReport = await status.status(ctx);
    const recovery = report.organizations
      .find((organization) => organization.name === ORG)
      ?.environments.find((environment) => environment.name === "prod")?.recovery;
    assert.ok(recovery?.archiving, "status shows the archiving of prod");
    return {
      archiving: recovery.archiving,
      alert: recovery.alerts.map((alert) => alert.message).join("; ") || null,
      alerts: recovery.alerts,
    };
  };
  const writeAndSwitch = async () => {
    await admin.query("INSERT INTO archive_probe (note) VALUES ('written while the repository is unreachable')");
    await admin.query("SELECT pg_switch_wal()");
  };

  void it("shows a lag of 0 right after a forced archive, and no alert but the skipped offsite repository", async () => {
    await admin.query("CREATE TABLE archive_probe (id serial PRIMARY KEY, note text)");
    // PostgreSQL's background writer may log a running-transactions record into the new segment
    // soon after a switch (then the lag is rightly the age of the archive); it does so at most
    // every 15 s, so the next forced archive is read before it writes again.
    let recovery = await prodRecovery();
    for (let attempt = 0; attempt < 3; attempt += 1) {
      await admin.query("INSERT INTO archive_probe (note) VALUES ('archived')");
      await waitForArchive(admin);
      recovery = await prodRecovery();
      if (recovery.archiving.archiveLagSeconds === 0) break;
    }
    const { archiving, alert } = recovery;
    assert.equal(archiving.archiveLagSeconds, 0, JSON.stringify(archiving));
    assert.match(archiving.lastArchivedWal ?? "", /^[0-9A-F]{24}$/);
    assert.ok(archiving.lastArchivedAt !== null && Date.now() - Date.parse(archiving.lastArchivedAt) < 60_000);
    assert.match(archiving.currentWalLsn ?? "", /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.equal(archiving.failedCount, 0);
    assert.equal(alert, OFFSITE_SKIPPED);
  });

  void it("counts failures, shows a growing lag and alerts when the repository is unreachable, and recovers when it is back", async () => {
    const repository = join(runtimeHarness.root, "..", "backups", ORG);
    const mode = (await stat(repository)).mode & 0o777;
    await chmod(repository, 0o000);
    try {
      await writeAndSwitch();
      const failing = async (moreThan: number) => {
        for (let attempt = 0; attempt < 600; attempt += 1) {
          const recovery = await prodRecovery();
          if (recovery.archiving.failedCount > moreThan) return recovery;
          await sleep(100);
        }
        assert.fail(`the archiver reported no failure beyond ${moreThan} within 60 s`);
      };
      const first = await failing(0);
      const startedFailingAt = Date.now();
      assert.ok(first.archiving.archiveLagSeconds >= 0);
      assert.ok(first.archiving.lastFailedWal !== null && first.archiving.lastFailedAt !== null);
      assert.match(
        first.alert ?? "",
        /WAL archiving is failing: archiving [0-9A-F]{24} failed at .*after the last success \([0-9A-F]{24} at /,
      );
      assert.doesNotMatch(first.alert ?? "", /exceeds the RPO/);

      await writeAndSwitch();
      const second = await failing(first.archiving.failedCount);
      // Whole seconds: make sure at least one has passed since the first reading.
      await sleep(Math.max(0, 1100 - (Date.now() - startedFailingAt)));
      const third = await prodRecovery();
      assert.ok(third.archiving.archiveLagSeconds > 0, `lag ${third.archiving.archiveLagSeconds}`);
      assert.ok(
        third.archiving.archiveLagSeconds > first.archiving.archiveLagSeconds,
        `lag grows: ${first.archiving.archiveLagSeconds} then ${third.archiving.archiveLagSeconds}`,
      );
      assert.ok(third.archiving.failedCount >= second.archiving.failedCount);
      assert.equal(third.archiving.lastArchivedAt, first.archiving.lastArchivedAt, "nothing was archived meanwhile");
      assert.doesNotMatch(third.alert ?? "", /exceeds the RPO/, "still within the objective");

      // Sixteen minutes on: the WAL has waited longer than the RPO allows.
      clockOffsetMs = (RPO_MINUTES + 1) * 60_000;
      const late = await prodRecovery();
      assert.ok(late.archiving.archiveLagSeconds > RPO_MINUTES * 60, `lag ${late.archiving.archiveLagSeconds}`);
      assert.match(late.alert ?? "", new RegExp(`WAL archive lag \\d+ s exceeds the RPO of ${RPO_MINUTES} min`));
      assert.match(late.alert ?? "", /WAL archiving is failing/);
    } finally {
      clockOffsetMs = 0;
      await chmod(repository, mode);
    }

    // Back: the waiting segments go, and the alert clears once a success is newer than the last failure.
    for (let attempt = 0; attempt < 30; attempt += 1) {
      await waitForArchive(admin);
      const recovery = await prodRecovery();
      if (recovery.alert === OFFSITE_SKIPPED) return;
    }
    assert.fail(`archiving did not recover: ${JSON.stringify(await prodRecovery())}`);
  });
});
