import assert from "node:assert/strict";
import { chmod } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  AUDIT_APPEND_INJECTED,
  refuseAuditAppends,
  createAuditHarness,
  type TAuditHarness,
} from "../../test/audit-fixtures.js";
import { createRuntimeHarness, runtimeTestSpec, type TRuntimeHarness } from "../../test/runtime-fixtures.js";
import { testDatabaseFactories } from "../../test/test-databases.js";
import { readHeadSize } from "../audit/audit-store.js";
import type { AuditEventType } from "../audit/audit-types.js";
import { ConflictError } from "../lib/errors.js";
import { systemContext } from "../lib/request-context.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import { activeSlot } from "../spec/maintenance-window.js";
import { recoveryServiceFactory, type TRecoveryService } from "./recovery-service.js";

const ORG = "faults-health";
const ctx = systemContext("test");

void describe("recovery service: failures are recorded, audited and alerted, and nothing half-made survives a stop", () => {
  let runtimeHarness: TRuntimeHarness;
  let auditHarness: TAuditHarness;
  let spec: TOrganizationSpec;
  let recovery: TRecoveryService;

  before(async () => {
    runtimeHarness = await createRuntimeHarness();
    auditHarness = await createAuditHarness(testDatabaseFactories.pglite);
    const full = runtimeTestSpec(ORG);
    spec = { ...full, environments: full.environments.filter((environment) => environment.name === "prod") };
    await runtimeHarness.runtime.reconcile(spec);
    recovery = recoveryServiceFactory({
      db: auditHarness.db,
      runtime: runtimeHarness.runtime,
      latestSpecs: async () => [spec],
      audit: auditHarness.log,
    });
  });
  after(async () => {
    await runtimeHarness.close([spec]);
    await auditHarness.dispose();
  });

  void it("marks a backup failed when the repository is unreachable, audits it, and succeeds once it is back", async () => {
    const repository = join(runtimeHarness.root, "..", "backups", ORG);
    await chmod(repository, 0o000);
    try {
      await assert.rejects(
        recovery.backup(ctx, { environment: "prod", kind: "full" }),
        /pgBackRest backup for stanza "dedicated-prod" failed/,
      );
    } finally {
      await chmod(repository, 0o700);
    }
    const [failed] = await recovery.listBackups(ctx, "prod");
    assert.equal(failed?.status, "failed");
    assert.match(failed?.error ?? "", /Permission denied|unable/i);
    assert.equal((await auditHarness.log.list({ type: "backup.failed", limit: 5 })).length, 1);
    // Retried: the schedule sees no successful full backup and takes one.
    assert.ok((await recovery.runDue()) >= 1);
    const [succeeded] = await recovery.listBackups(ctx, "prod");
    assert.equal(succeeded?.status, "succeeded");
    assert.ok((succeeded?.databaseBytes ?? 0) > 0);
    const completed = await auditHarness.log.list({ type: "backup.completed", limit: 5 });
    assert.equal(completed.length, 1);
    // The demo's offsite repository has no key in this store: the backup went to local alone, and its result and audit entry say so.
    const offsite = {
      name: "offsite",
      type: "azure",
      reason: `its key "backup/${ORG}/backup-offsite-azure-key" is not in the secret store; add it with: carehost secrets set backup/${ORG}/backup-offsite-azure-key`,
    };
    assert.deepEqual(completed[0]?.entry.payload.skippedRepositories, [offsite]);
    const manual = await recovery.backup(ctx, { environment: "prod", kind: "incr" });
    assert.deepEqual(manual.skippedRepositories, [offsite]);
  });

  void it("turns runs left 'running' by a killed carehost into interrupted runs at the next start", async () => {
    await auditHarness.db.query(
      "INSERT INTO backup_runs (organization, environment, kind, trigger, status) VALUES ($1, 'prod', 'full', 'schedule', 'running')",
      [ORG],
    );
    await auditHarness.db.query(
      "INSERT INTO restore_drills (organization, environment, trigger, status, rto_objective_minutes, rpo_objective_minutes) VALUES ($1, 'prod', 'schedule', 'running', 240, 15)",
      [ORG],
    );
    await auditHarness.db.query(
      "INSERT INTO restore_runs (organization, environment, target, destination, status) VALUES ($1, 'prod', 'latest', 'copy prod-copy', 'running')",
      [ORG],
    );
    assert.equal(await recovery.markInterrupted(), 3);
    const [latest] = await recovery.listBackups(ctx, "prod");
    assert.equal(latest?.status, "interrupted");
    assert.match(latest?.error ?? "", /interrupted/);
    const [restore] = await recovery.listRestores(ctx, "prod");
    assert.equal(restore?.status, "interrupted");
    // Each interrupted run is in the audit log too, not only in its table.
    for (const type of ["backup.failed", "drill.failed", "restore.failed"] as const) {
      const entries = await auditHarness.log.list({ type, limit: 10 });
      assert.ok(
        entries.some((item) => /interrupted/.test(JSON.stringify(item.entry.payload))),
        type,
      );
    }
    assert.equal(await recovery.markInterrupted(), 0);
  });

  void it("restores in place only inside the maintenance window or for a stated emergency, after a safety backup; PHI only into PHI", async () => {
    const noon = new Date("2026-11-25T17:00:00Z");
    assert.equal(activeSlot(spec.environments[0]!.maintenanceWindow!, noon), undefined, "a time outside prod's window");
    const full = runtimeTestSpec(ORG);
    const atNoon = recoveryServiceFactory({
      db: auditHarness.db,
      runtime: runtimeHarness.runtime,
      latestSpecs: async () => [{ ...full, environments: [spec.environments[0]!, ...full.environments.slice(1)] }],
      audit: auditHarness.log,
      now: () => noon,
    });
    await assert.rejects(
      atNoon.restore(ctx, { environment: "prod", target: { kind: "latest" }, inPlace: true }),
      /inside its maintenance window \(America\/New_York\), or state the emergency/,
    );
    const staging = full.environments.find((environment) => environment.dataClass !== "phi")!;
    await assert.rejects(
      atNoon.restore(ctx, { environment: "prod", target: { kind: "latest" }, into: staging.name }),
      new RegExp(
        `holds PHI; it may be restored only into a PHI-classed environment, and "${staging.name}" is dataClass ${staging.dataClass}`,
      ),
    );
    await assert.rejects(
      atNoon.restore(ctx, { environment: "prod", target: { kind: "latest" } }),
      /say where to restore/,
    );
    const restored = await atNoon.restore(ctx, {
      environment: "prod",
      target: { kind: "latest" },
      inPlace: true,
      emergencyReason: "ransomware on the app server, incident 4711",
    });
    assert.ok("safetyBackup" in restored && restored.safetyBackup.length > 0);
    const [emergency] = await auditHarness.log.list({ type: "restore.emergency", limit: 5 });
    assert.match(JSON.stringify(emergency), /incident 4711/);
    assert.equal((await auditHarness.log.list({ type: "restore.completed", limit: 5 })).length, 1);
  });

  void it("refuses what cannot be backed up, naming it", async () => {
    await assert.rejects(
      recovery.backup(ctx, { environment: "staging", kind: "full" }),
      /no recorded environment is named "staging"/,
    );
  });

  void it("ends no run and starts no emergency restore without its audit entry, on PGlite and PostgreSQL", async () => {
    const noon = new Date("2026-11-25T17:00:00Z");
    for (const kind of ["pglite", "postgres"] as const) {
      // The pglite store is the suite's own; the postgres one shares the suite's cluster and runtime.
      const harness = kind === "pglite" ? auditHarness : await createAuditHarness(testDatabaseFactories.postgres);
      try {
        const service = (now?: () => Date) =>
          recoveryServiceFactory({
            db: harness.db,
            runtime: runtimeHarness.runtime,
            latestSpecs: async () => [spec],
            audit: harness.log,
            ...(now === undefined ? {} : { now }),
          });
        const count = async (sql: string) =>
          (await harness.db.query<{ count: number }>(`SELECT count(*)::int AS count FROM ${sql}`)).rows[0]!.count;
        const completed = (await harness.log.list({ type: "backup.completed", limit: 1000 })).length;
        const failed = (await harness.log.list({ type: "backup.failed", limit: 1000 })).length;
        const unrecorded = (await harness.log.list({ type: "recovery.completion_unrecorded", limit: 1000 })).length;
        const restores = await count("restore_runs");
        const head = await readHeadSize(harness.db);

        // The append itself fails, as a full disk or a lost connection would make it.
        const allowAuditAppends = await refuseAuditAppends(harness.database);
        const injected = AUDIT_APPEND_INJECTED;
        // pgBackRest takes the backup; its row may not say so while the log cannot: it stays "running".
        await assert.rejects(service().backup(ctx, { environment: "prod", kind: "incr" }), injected);
        const [kept] = await service().listBackups(ctx, "prod");
        assert.equal(kept?.status, "running", `${kind}: the run's row ended without its entry`);
        // Interrupting it needs its entry too.
        await assert.rejects(service().markInterrupted(), injected);
        assert.equal((await service().listBackups(ctx, "prod"))[0]?.status, "running");
        // An emergency restore is not even recorded as started without its reason in the log.
        await assert.rejects(
          service(() => noon).restore(ctx, {
            environment: "prod",
            target: { kind: "latest" },
            inPlace: true,
            emergencyReason: "ransomware on the app server, incident 4712",
          }),
          injected,
        );
        assert.equal(await count("restore_runs"), restores, `${kind}: a restore run began without its emergency entry`);
        assert.equal(await readHeadSize(harness.db), head);

        await allowAuditAppends();
        assert.equal(await service().markInterrupted(), 1);
        const [interrupted] = await service().listBackups(ctx, "prod");
        assert.equal(interrupted?.id, kept?.id);
        assert.equal(interrupted?.status, "interrupted");
        // pgBackRest took it: it is interrupted as a backup whose end went unrecorded, not as one that failed or was stopped.
        assert.match(interrupted?.error ?? "", /^completed, but its end could not be recorded: backup\.completed/);
        assert.equal((await harness.log.list({ type: "backup.failed", limit: 1000 })).length, failed);
        assert.equal(
          (await harness.log.list({ type: "recovery.completion_unrecorded", limit: 1000 })).length,
          unrecorded + 1,
        );
        assert.equal((await harness.log.list({ type: "backup.completed", limit: 1000 })).length, completed);
        assert.equal((await harness.log.verify()).ok, true);
      } finally {
        if (harness !== auditHarness) await harness.dispose();
      }
    }
  });
  void describe("a backup, a restore or a drill that completed is never recorded failed when its entry cannot be written", () => {
    const restoreInPlace = () =>
      recovery.restore(ctx, {
        environment: "prod",
        target: { kind: "latest" },
        inPlace: true,
        // For when the test runs outside prod's maintenance window.
        emergencyReason: "ransomware on the app server, incident 4713",
      });
    const count = async (type: AuditEventType) => (await auditHarness.log.list({ type, limit: 1000 })).length;
    /** The newest recovery.completion_unrecorded entry (the log lists oldest first). */
    const unrecordedEntry = async () =>
      (await auditHarness.log.list({ type: "recovery.completion_unrecorded", limit: 1000 })).at(-1)?.entry.payload;
    /** The run the error names, once it is checked to say the work completed and to carry the append's error as its cause. */
    const completedButUnrecorded = async (
      run: Promise<unknown>,
      kind: string,
      completedType: AuditEventType,
      recorded: RegExp,
    ): Promise<number> => {
      let id = 0;
      await assert.rejects(run, (error: unknown) => {
        assert.ok(error instanceof ConflictError, String(error));
        const said = new RegExp(
          `^the ${kind} of "prod" \\(run #(\\d+)\\) completed, but ${completedType.replace(".", "\\.")} could not be written to the audit log \\(audit append failed \\(injected\\)\\); ${recorded.source}`,
        ).exec(error.message);
        assert.ok(said, error.message);
        assert.match((error.cause as Error).message, AUDIT_APPEND_INJECTED);
        id = Number(said[1]);
        return true;
      });
      return id;
    };
    /** Runs `action` while the log refuses entries of `types` only, as its guard refusing one payload would. */
    const refusedOnly = async <T>(types: readonly AuditEventType[], action: () => Promise<T>): Promise<T> => {
      const allowAuditAppends = await refuseAuditAppends(auditHarness.database, types);
      try {
        return await action();
      } finally {
        await allowAuditAppends();
      }
    };
    const instead = /its end is recorded with a recovery\.completion_unrecorded entry in place of /;

    void it("a backup pgBackRest took ends succeeded, with recovery.completion_unrecorded for its backup.completed", async () => {
      const failed = await count("backup.failed");
      const backup = await refusedOnly(["backup.completed"], () =>
        completedButUnrecorded(
          recovery.backup(ctx, { environment: "prod", kind: "incr" }),
          "backup",
          "backup.completed",
          instead,
        ),
      );
      const run = (await recovery.listBackups(ctx, "prod")).find((each) => each.id === backup);
      assert.equal(run?.status, "succeeded");
      assert.ok((run?.label ?? "").length > 0);
      assert.equal(await count("backup.failed"), failed);
      assert.deepEqual(
        { ...(await unrecordedEntry()), reason: undefined },
        { kind: "backup", environment: "prod", run: backup, reason: undefined },
      );
    });

    void it("an in-place restore that replaced the data ends succeeded, or stays running for the next start to record as completed unrecorded", async () => {
      const failed = await count("restore.failed");
      const restored = await refusedOnly(["restore.completed"], () =>
        completedButUnrecorded(restoreInPlace(), "restore", "restore.completed", instead),
      );
      const run = (await recovery.listRestores(ctx, "prod")).find((each) => each.id === restored);
      assert.equal(run?.status, "succeeded", "the data was replaced in place: the run must not say otherwise");
      assert.equal(run?.error, null);
      assert.equal(await count("restore.failed"), failed);
      const entry = await unrecordedEntry();
      assert.equal(entry?.kind, "restore");
      assert.equal(entry?.run, restored);
      assert.match(String(entry?.reason), /restore\.completed could not be written: audit append failed \(injected\)/);

      // The log takes neither entry: the row stays "running", and the next start says the restore completed unrecorded.
      const unrecorded = await count("recovery.completion_unrecorded");
      const unnoted = await refusedOnly(["restore.completed", "recovery.completion_unrecorded"], () =>
        completedButUnrecorded(
          restoreInPlace(),
          "restore",
          "restore.completed",
          /it stays "running" until the next start of carehost records it as recovery\.completion_unrecorded/,
        ),
      );
      const running = (await recovery.listRestores(ctx, "prod")).find((each) => each.id === unnoted);
      assert.equal(running?.status, "running");
      assert.equal(await recovery.markInterrupted(), 1);
      const reconciled = (await recovery.listRestores(ctx, "prod")).find((each) => each.id === unnoted);
      assert.equal(reconciled?.status, "interrupted");
      assert.match(
        reconciled?.error ?? "",
        /^completed, but its end could not be recorded: restore\.completed could not be written/,
      );
      assert.equal(await count("restore.failed"), failed);
      assert.equal(await count("recovery.completion_unrecorded"), unrecorded + 1);
      assert.equal((await unrecordedEntry())?.run, unnoted);
      assert.equal((await auditHarness.log.verify()).ok, true);
    });

    void it("a drill that ran to its end keeps what it measured, with recovery.completion_unrecorded for its drill.completed", async () => {
      const failed = await count("drill.failed");
      const drilled = await refusedOnly(["drill.completed"], () =>
        completedButUnrecorded(recovery.drill(ctx, { environment: "prod" }), "drill", "drill.completed", instead),
      );
      const run = (await recovery.listDrills(ctx, "prod")).find((each) => each.id === drilled);
      // What the drill measured is its result (here no heartbeat, so no RPO: "failed" by its objectives), not an error.
      assert.equal(run?.error, null);
      assert.ok((run?.backupLabel ?? "").length > 0);
      assert.equal(await count("drill.failed"), failed);
      assert.equal((await unrecordedEntry())?.kind, "drill");
    });
  });
});
