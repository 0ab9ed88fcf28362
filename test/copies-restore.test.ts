// PHI-safe copies through the recovery service on real clusters: production (dedicated, PHI)
// holds the Odoo 17 fixture filled with generated patients and their scans; restores of it go into
// staging (shared, confidential, dataSource.deidentify: true) and into new copies, de-identified or
// not, and each test reads back what the target, the copies table and the audit log hold.
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type pg from "pg";
import { createAuditHarness, type TAuditHarness } from "./audit-fixtures.js";
import { fillOdooFixture, FIRST_PATIENT_ID } from "./odoo-people.js";
import {
  clusterClients,
  createRuntimeHarness,
  filesOf,
  runtimeTestSpec,
  type TRuntimeHarness,
} from "./runtime-fixtures.js";
import { testDatabaseFactories } from "./test-databases.js";
import { DEIDENTIFIED_RESTORE_STEPS } from "../src/backup/recovery-driver.js";
import { recoveryServiceFactory, type TRecoveryService } from "../src/backup/recovery-service.js";
import { copiesLifecycleFactory } from "../src/copies/copies-lifecycle.js";
import { liveCopies, liveCopyView } from "../src/copies/copies-store.js";
import { PolicyViolation } from "../src/lib/errors.js";
import { systemContext } from "../src/lib/request-context.js";
import { policyCheckerFactory, withRecordedCopies } from "../src/policy/policy-service.js";
import { filestoreDirectoryOf } from "../src/runtime/local/local-filestore.js";
import { secretNames } from "../src/runtime/local/local-placement.js";
import type { TOrganizationSpec } from "../src/spec/spec-schema.js";

const ORG = "copies-health";
const ctx = systemContext("test");
/** Tuesday 20:00 in New York: inside the organization's default window. */
const IN_WINDOW = new Date("2026-11-25T01:00:00Z");
const PATIENTS = 120;

void describe("PHI-safe copies of production: restore --deidentify into staging and into new copies, and every copy's lifecycle", () => {
  let runtimeHarness: TRuntimeHarness;
  let auditHarness: TAuditHarness;
  let spec: TOrganizationSpec;
  let recovery: TRecoveryService;
  let clock = IN_WINDOW;
  const prodClients = clusterClients(() => runtimeHarness, ORG, "dedicated-prod");
  const sharedClients = clusterClients(() => runtimeHarness, ORG, "shared");

  const portOf = async (environment: string) =>
    (await runtimeHarness.runtime.observe(spec)).environments.find((item) => item.environment === environment)!.postgres
      .port!;
  const asOdoo = async (environment: string, clients = environment === "prod" ? prodClients : sharedClients) =>
    clients.connect(
      await portOf(environment),
      `odoo_${environment}`,
      await runtimeHarness.secrets.current(secretNames.databasePassword(ORG, environment)),
      environment,
    );
  const rows = async (client: pg.Client, sql: string) => (await client.query(sql)).rows as Record<string, unknown>[];
  /** What staging holds: its partners and its filestore, to compare before and after. */
  const stagingState = async () => {
    const staging = await asOdoo("staging");
    try {
      const tables = await rows(staging, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1");
      const partners = tables.some((table) => table.tablename === "res_partner")
        ? await rows(staging, "SELECT id, name, email FROM res_partner ORDER BY id")
        : [];
      return {
        tables,
        partners,
        files: await filesOf(filestoreDirectoryOf(runtimeHarness.root, ORG, { name: "staging" })),
      };
    } finally {
      await staging.end();
    }
  };
  const leftovers = async () => {
    const admin = await sharedClients.admin(await portOf("staging"));
    try {
      return {
        databases: (await rows(admin, "SELECT datname FROM pg_database WHERE datname LIKE '%\\_\\_%' ORDER BY 1")).map(
          (row) => row.datname,
        ),
        restores: (await readdir(join(runtimeHarness.root, ORG, "restores")).catch(() => [] as string[])).sort(),
        // The filestore restored beside staging's until it is verified (<filestore>.restored).
        incoming: (
          await readdir(join(filestoreDirectoryOf(runtimeHarness.root, ORG, { name: "staging" }), "..")).catch(
            () => [] as string[],
          )
        ).filter((name) => name.endsWith(".restored") || name.endsWith(".replaced")),
      };
    } finally {
      await admin.end();
    }
  };
  const lifecycle = () =>
    copiesLifecycleFactory({
      db: auditHarness.db,
      runtime: runtimeHarness.runtime,
      latestSpecs: async () => [spec],
      audit: auditHarness.log,
      now: () => clock,
    });
  const posture = async () => {
    const observation = await runtimeHarness.runtime.observe(spec);
    const copies = (await liveCopies(auditHarness.db, [ORG])).map((copy) => liveCopyView(copy, clock));
    return policyCheckerFactory({ now: () => clock }).evaluate(spec, withRecordedCopies(observation.subjects, copies));
  };
  const resultOf = (report: Awaited<ReturnType<typeof posture>>, controlId: string, environment: string) =>
    report.results.find((result) => result.controlId === controlId && result.environment === environment)!;

  before(async () => {
    runtimeHarness = await createRuntimeHarness();
    auditHarness = await createAuditHarness(testDatabaseFactories.pglite);
    spec = runtimeTestSpec(ORG);
    await runtimeHarness.runtime.reconcile(spec);
    recovery = recoveryServiceFactory({
      db: auditHarness.db,
      runtime: runtimeHarness.runtime,
      latestSpecs: async () => [spec],
      audit: auditHarness.log,
      now: () => clock,
    });
    const prod = await asOdoo("prod");
    await fillOdooFixture(prod, {
      patients: PATIENTS,
      attachments: 20,
      filestoreDir: filestoreDirectoryOf(runtimeHarness.root, ORG, { name: "prod" }),
    });
    await prod.end();
    await recovery.backup(ctx, { environment: "prod", kind: "full" });
  });
  after(async () => {
    await runtimeHarness.close([spec]);
    await auditHarness.dispose();
  });

  void it("refuses a plain restore of PHI into a non-PHI environment with a policy violation (exit 3), audited, target untouched", async () => {
    const before = await stagingState();
    for (const into of ["staging", "training"]) {
      await assert.rejects(
        recovery.restore(ctx, { environment: "prod", target: { kind: "latest" }, into }),
        (error: unknown) =>
          error instanceof PolicyViolation &&
          /^CH-DATA-001 \[164\.308\(a\)\(4\), 164\.312\(a\)\(1\)\] environment "prod" holds PHI; .* add --deidentify/.test(
            error.message,
          ),
      );
    }
    // A PHI-classed target that declares de-identification takes PHI only de-identified too.
    const phiStaging = structuredClone(spec);
    phiStaging.environments.find((environment) => environment.name === "staging")!.dataClass = "phi";
    const declared = recoveryServiceFactory({
      db: auditHarness.db,
      runtime: runtimeHarness.runtime,
      latestSpecs: async () => [phiStaging],
      audit: auditHarness.log,
      now: () => clock,
    });
    await assert.rejects(
      declared.restore(ctx, { environment: "prod", target: { kind: "latest" }, into: "staging" }),
      (error: unknown) =>
        error instanceof PolicyViolation && /declares dataSource\.deidentify: true/.test(error.message),
    );
    const refused = await auditHarness.log.list({ type: "restore.refused", limit: 10 });
    assert.equal(refused.length, 3);
    assert.ok(refused.every((item) => item.entry.outcome === "denied"));
    assert.deepEqual(await stagingState(), before);
    assert.deepEqual(await liveCopies(auditHarness.db, [ORG]), []);
  });

  void it("restores prod into staging de-identified: transformed and verified in a scratch copy, then swapped in; recorded, audited, CH-DATA-001 passes on the record", async () => {
    assert.equal(resultOf(await posture(), "CH-DATA-001", "staging").status, "not-applicable");
    const steps: string[] = [];
    const restored = await recovery.restore(
      ctx,
      { environment: "prod", target: { kind: "latest" }, into: "staging", deidentify: true },
      (step) => steps.push(step.step),
    );
    assert.deepEqual(steps, [...DEIDENTIFIED_RESTORE_STEPS]);
    assert.deepEqual(
      restored.steps.map((step) => step.step),
      [...DEIDENTIFIED_RESTORE_STEPS],
    );
    assert.equal(restored.deidentified?.verification.ok, true);

    const prod = await asOdoo("prod");
    const staging = await asOdoo("staging");
    try {
      const source = await rows(
        prod,
        `SELECT id, name, email FROM res_partner WHERE id >= ${FIRST_PATIENT_ID} ORDER BY id`,
      );
      const copied = await rows(
        staging,
        `SELECT id, name, email FROM res_partner WHERE id >= ${FIRST_PATIENT_ID} ORDER BY id`,
      );
      assert.equal(copied.length, source.length);
      for (const [index, row] of copied.entries()) {
        assert.notEqual(row.name, source[index]!.name);
        assert.match(row.email as string, /@example\.com$/);
      }
      assert.deepEqual(await rows(staging, "SELECT name FROM ir_mail_server WHERE active"), [
        { name: "neutralization - disable emails" },
      ]);
      assert.deepEqual(
        await rows(staging, "SELECT value FROM ir_config_parameter WHERE key = 'database.is_neutralized'"),
        [{ value: "True" }],
      );
      // Staging's role owns what it restored; the production role's name is nowhere.
      assert.deepEqual(await rows(staging, "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"), [
        { tableowner: "odoo_staging" },
      ]);
      // The patients' scans are placeholders in staging's filestore; production's files are not there.
      const prodFiles = await filesOf(filestoreDirectoryOf(runtimeHarness.root, ORG, { name: "prod" }));
      const stagingFiles = await filesOf(filestoreDirectoryOf(runtimeHarness.root, ORG, { name: "staging" }));
      assert.ok(stagingFiles.length > 0 && stagingFiles.length < prodFiles.length);
      const stored = (await rows(staging, "SELECT store_fname FROM ir_attachment WHERE store_fname IS NOT NULL")).map(
        (row) => row.store_fname as string,
      );
      assert.deepEqual([...new Set(stored)].sort(), stagingFiles);
    } finally {
      await prod.end();
      await staging.end();
    }

    const [copy, ...others] = await liveCopies(auditHarness.db, [ORG]);
    assert.deepEqual(others, []);
    assert.equal(copy!.name, "staging");
    assert.equal(copy!.kind, "environment");
    assert.equal(copy!.dataClass, "deidentified");
    assert.equal(copy!.sourceEnvironment, "prod");
    assert.equal(copy!.owner, "system:test");
    assert.equal(copy!.expiresAt, null);
    const [created] = await auditHarness.log.list({ type: "copy.created", limit: 1 });
    assert.equal(created!.entry.payload.dataClass, "deidentified");
    const [completed] = await auditHarness.log.list({ type: "restore.completed", limit: 1 });
    assert.deepEqual(
      (completed!.entry.payload as { deidentified?: { checks: string[] } }).deidentified?.checks,
      restored.deidentified!.verification.checks.map((check) => check.name),
    );
    assert.ok(restored.deidentified!.verification.checks.length >= 8);
    assert.deepEqual(await leftovers(), { databases: [], restores: [], incoming: [] });

    assert.equal(resultOf(await posture(), "CH-DATA-001", "staging").status, "pass");
  });

  void it("a PHI value in a column nobody listed is found by the scan: the copy is refused, staging keeps what it held, the scratch copy is gone", async () => {
    const prod = await asOdoo("prod");
    await prod.query("CREATE TABLE x_visit_note (id serial PRIMARY KEY, partner_id int4, note text)");
    await prod.query(
      `INSERT INTO x_visit_note (partner_id, note) SELECT id, 'Called ' || email || ' back' FROM res_partner WHERE id >= ${FIRST_PATIENT_ID}`,
    );
    await prod.end();
    const before = await stagingState();
    try {
      await assert.rejects(
        recovery.restore(ctx, { environment: "prod", target: { kind: "latest" }, into: "staging", deidentify: true }),
        (error: unknown) =>
          error instanceof PolicyViolation &&
          /failed verification \(identifying values\)/.test(error.message) &&
          error.details.some((detail) =>
            /x_visit_note\.note: \d+ row\(s\) hold a value of res_partner\.email/.test(detail.message),
          ) &&
          !/@/.test(JSON.stringify(error.details)),
      );
      assert.deepEqual(await stagingState(), before, "staging is as it was");
      assert.deepEqual(await leftovers(), { databases: [], restores: [], incoming: [] });
      const [failed] = await auditHarness.log.list({ type: "restore.failed", limit: 1 });
      assert.match(failed!.entry.payload.reason as string, /failed verification/);
      assert.equal(
        (await liveCopies(auditHarness.db, [ORG])).length,
        1,
        "the earlier, verified restore is still the record",
      );
    } finally {
      const cleanup = await asOdoo("prod");
      await cleanup.query("DROP TABLE x_visit_note");
      await cleanup.end();
    }
  });

  void it("a failure midway (a declared PHI table the data lacks) leaves staging as it was and drops the scratch copy", async () => {
    const before = await stagingState();
    const broken = structuredClone(spec);
    broken.environments.find((environment) => environment.name === "prod")!.deidentify = {
      tables: [{ table: "x_lab_result", columns: [{ name: "patient_name", kind: "name" }] }],
    };
    const steps: string[] = [];
    const brokenRecovery = recoveryServiceFactory({
      db: auditHarness.db,
      runtime: runtimeHarness.runtime,
      latestSpecs: async () => [broken],
      audit: auditHarness.log,
      now: () => clock,
    });
    await assert.rejects(
      brokenRecovery.restore(
        ctx,
        { environment: "prod", target: { kind: "latest" }, into: "staging", deidentify: true },
        (step) => steps.push(step.step),
      ),
      /deidentify\.tables\[0\]\.table: the copy has no table "x_lab_result"/,
    );
    assert.deepEqual(steps, ["secrets", "postgresql", "filestore"], "it stopped after restoring into the scratch copy");
    assert.deepEqual(await stagingState(), before);
    assert.deepEqual(await leftovers(), { databases: [], restores: [], incoming: [] });
  });

  void it("a new copy de-identified is announced only verified, holds no neighbour's database, and is removed by carehost copies remove (audited)", async () => {
    const restored = await recovery.restore(ctx, {
      environment: "prod",
      target: { kind: "latest" },
      into: "prod-bug-4711",
      deidentify: true,
    });
    assert.equal(restored.deidentified?.verification.ok, true);
    const copies = await lifecycle().list(ctx);
    const copy = copies.find((item) => item.name === "prod-bug-4711")!;
    assert.equal(copy.kind, "copy");
    assert.equal(copy.dataClass, "deidentified");
    assert.equal(copy.expiresAt, null);
    assert.equal(copy.port, restored.port);
    const admin = await prodClients.admin(restored.port, "prod");
    try {
      assert.equal(
        (
          await rows(admin, `SELECT count(*)::int AS n FROM public.res_partner WHERE email LIKE '%@mail.fixture.test'`)
        )[0]!.n,
        0,
      );
    } finally {
      await admin.end();
    }

    const removed = await lifecycle().remove(ctx, { name: "prod-bug-4711" });
    assert.equal(removed.removalReason, "requested");
    assert.deepEqual(await readdir(join(runtimeHarness.root, ORG, "restores")).catch(() => []), []);
    assert.equal(
      (await lifecycle().list(ctx)).some((item) => item.name === "prod-bug-4711"),
      false,
    );
    const [entry] = await auditHarness.log.list({ type: "copy.removed", limit: 1 });
    assert.deepEqual(
      { name: entry!.entry.payload.name, reason: entry!.entry.payload.reason },
      { name: "prod-bug-4711", reason: "requested" },
    );
    // A declared environment's data is not a copy to tear down.
    await assert.rejects(lifecycle().remove(ctx, { name: "staging" }), /declared environment/);
  });

  void it("a plain copy of PHI expires after 24 h: posture fails it once past, the scheduler's expiry tears it down and audits it", async () => {
    const restored = await recovery.restore(ctx, { environment: "prod", target: { kind: "latest" }, into: "prod-phi" });
    const copy = (await lifecycle().list(ctx)).find((item) => item.name === "prod-phi")!;
    assert.equal(copy.dataClass, "phi");
    assert.equal(copy.expiresAt!.getTime() - clock.getTime(), 24 * 3_600_000);
    assert.equal(resultOf(await posture(), "CH-DATA-002", "prod").status, "pass");
    assert.deepEqual(await lifecycle().expire(ctx), { removed: [], failed: [] }, "not before its expiry");
    assert.ok((await readdir(join(runtimeHarness.root, ORG, "restores"))).includes("prod-phi"));

    clock = new Date(IN_WINDOW.getTime() + 25 * 3_600_000);
    try {
      const report = await posture();
      assert.equal(resultOf(report, "CH-DATA-002", "prod").status, "fail");
      assert.match(
        resultOf(report, "CH-DATA-002", "prod").messages[0]!,
        /copy "prod-phi" holds PHI and is still live past its expiry/,
      );
      assert.deepEqual(await lifecycle().expire(systemContext("scheduler")), {
        removed: [`${ORG}/prod-phi`],
        failed: [],
      });
      assert.deepEqual(await readdir(join(runtimeHarness.root, ORG, "restores")), []);
      await assert.rejects(prodClients.admin(restored.port, "prod"), "its cluster is stopped");
      const entry = (await auditHarness.log.list({ type: "copy.removed", limit: 10 })).at(-1);
      assert.deepEqual(
        {
          name: entry!.entry.payload.name,
          reason: entry!.entry.payload.reason,
          dataClass: entry!.entry.payload.dataClass,
        },
        { name: "prod-phi", reason: "expired", dataClass: "phi" },
      );
      assert.equal(resultOf(await posture(), "CH-DATA-002", "prod").status, "not-applicable");
    } finally {
      clock = IN_WINDOW;
    }
    // A copy may not outlive what the spec allows.
    const strict = structuredClone(spec);
    strict.copies = { maxPhiHours: 8 };
    const strictRecovery = recoveryServiceFactory({
      db: auditHarness.db,
      runtime: runtimeHarness.runtime,
      latestSpecs: async () => [strict],
      audit: auditHarness.log,
      now: () => clock,
    });
    await assert.rejects(
      strictRecovery.restore(ctx, {
        environment: "prod",
        target: { kind: "latest" },
        into: "prod-long",
        expiresInHours: 12,
      }),
      /--expires-in-hours 12: a copy of PHI lives between 1 and 8 hours \(copies\.maxPhiHours\)/,
    );
  });
});
