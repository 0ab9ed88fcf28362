import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createAuditHarness, type TAuditHarness } from "../../test/audit-fixtures.js";
import { createRuntimeHarness, runtimeTestSpec, type TRuntimeHarness } from "../../test/runtime-fixtures.js";
import { testDatabaseFactories } from "../../test/test-databases.js";
import { auditLogFactory } from "../audit/audit-log.js";
import { systemContext } from "../lib/request-context.js";
import { operationStoreFactory } from "../operations/operation-store.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import type { TSqlClient } from "../store/store-types.js";
import { recoveryServiceFactory, type TRecoveryService } from "./recovery-service.js";

// A person's backup, verification, restore or drill is an operation like a scheduled one: written
// before the run touches anything, holding the cluster, so two replicas on one PostgreSQL never run
// two things on one cluster at once, and a replica's start-up leaves another replica's runs alone.
const ORG = "manual-ops";
const CLUSTER = `cluster/${ORG}/dedicated-prod`;

void describe("runs as operations, two replicas on one PostgreSQL", () => {
  let runtimeHarness: TRuntimeHarness;
  let auditHarness: TAuditHarness;
  let spec: TOrganizationSpec;
  let replicas: TRecoveryService[];
  let clients: TSqlClient[];
  const ctx = systemContext("test");

  before(async () => {
    runtimeHarness = await createRuntimeHarness();
    auditHarness = await createAuditHarness(testDatabaseFactories.postgres);
    const full = runtimeTestSpec(ORG);
    spec = { ...full, environments: full.environments.filter((environment) => environment.name === "prod") };
    await runtimeHarness.runtime.reconcile(spec);
    clients = [auditHarness.db, await auditHarness.database.open()];
    replicas = clients.map((db, index) =>
      recoveryServiceFactory({
        db,
        runtime: runtimeHarness.runtime,
        latestSpecs: async () => [spec],
        audit:
          index === 0
            ? auditHarness.log
            : auditLogFactory({
                db,
                signingKeyPath: auditHarness.keyPath,
                onBackgroundError: (error) => {
                  throw error;
                },
              }),
        workerId: `replica-${index}`,
      }),
    );
  });
  after(async () => {
    await runtimeHarness.close([spec]);
    await auditHarness.dispose();
  });

  const operations = () => operationStoreFactory(auditHarness.db).list({ organizations: [ORG] });

  void it("records a backup as an operation on its cluster, with the run's steps and end", async () => {
    const backup = await replicas[0]!.backup(ctx, { environment: "prod", kind: "full" });
    const { rows } = await auditHarness.db.query<{ operation_id: number }>(
      "SELECT operation_id FROM backup_runs WHERE id = $1",
      [backup.id],
    );
    const operation = (await operations()).find((item) => item.id === Number(rows[0]?.operation_id));
    assert.ok(operation, "the run names its operation");
    assert.deepEqual(
      [operation.kind, operation.target, operation.state, operation.requestedBy, operation.leaseOwner],
      ["backup", CLUSTER, "succeeded", "system:test", null],
    );
    assert.deepEqual(operation.params, { backupType: "full", trigger: "manual" });
  });

  void it("runs two replicas' runs of one cluster one after the other, never at once", async () => {
    const [first, second] = await Promise.all([
      replicas[0]!.backup(ctx, { environment: "prod", kind: "incr" }),
      replicas[1]!.verify(ctx, { environment: "prod" }),
    ]);
    assert.match(first.label, /I$/);
    assert.equal(second.ok, true);
    const ran = (await operations())
      .filter((item) => item.kind === "verify" || item.params.backupType === "incr")
      .sort((a, b) => a.startedAt!.getTime() - b.startedAt!.getTime());
    assert.equal(ran.length, 2);
    const [earlier, later] = ran as [(typeof ran)[number], (typeof ran)[number]];
    // Held one at a time: the later one started only once the earlier one had finished.
    assert.ok(
      later.startedAt! >= earlier.finishedAt!,
      JSON.stringify(ran.map((item) => [item.kind, item.startedAt, item.finishedAt])),
    );
  });

  void it("at start-up interrupts only the runs no live lease holds", async () => {
    const store = operationStoreFactory(auditHarness.db);
    const request = {
      organization: ORG,
      environment: "prod",
      target: `cluster/${ORG}/elsewhere`,
      kind: "backup" as const,
      requestedBy: "someone",
      deadlineSeconds: 600,
    };
    // Another replica's run, its lease renewed; and a dead replica's, its lease run out.
    const live = await store.reserve(request, "replica-alive", 600);
    const dead = await store.reserve({ ...request, target: `cluster/${ORG}/gone` }, "replica-dead", 600);
    await auditHarness.db.query("UPDATE operations SET lease_expires_at = now() - interval '1 minute' WHERE id = $1", [
      dead.id,
    ]);
    const insert = async (operationId: number) =>
      (
        await auditHarness.db.query<{ id: number }>(
          "INSERT INTO backup_runs (organization, environment, kind, trigger, status, started_at, operation_id) VALUES ($1, 'prod', 'full', 'manual', 'running', now(), $2) RETURNING id",
          [ORG, operationId],
        )
      ).rows[0]!.id;
    const liveRun = await insert(live.id);
    const deadRun = await insert(dead.id);
    assert.equal(await replicas[1]!.markInterrupted(), 1);
    const status = async (id: number) =>
      (await auditHarness.db.query<{ status: string }>("SELECT status FROM backup_runs WHERE id = $1", [id])).rows[0]
        ?.status;
    assert.equal(await status(liveRun), "running", "another replica's run goes on");
    assert.equal(await status(deadRun), "interrupted");
    // The live one's replica finishes it after all.
    await store.finish(live.id, "replica-alive", { state: "failed", error: "test over" });
    await auditHarness.db.query("UPDATE backup_runs SET status = 'failed' WHERE id = $1", [liveRun]);
  });

  void it("interrupts the runs of an operation whose replica died, once its lease runs out", async () => {
    const store = operationStoreFactory(auditHarness.db);
    const dying = await store.reserve(
      {
        organization: ORG,
        environment: "prod",
        target: CLUSTER,
        kind: "drill",
        requestedBy: "someone",
        deadlineSeconds: 600,
      },
      "replica-killed",
      600,
    );
    const run = (
      await auditHarness.db.query<{ id: number }>(
        "INSERT INTO restore_drills (organization, environment, trigger, status, rto_objective_minutes, rpo_objective_minutes, started_at, operation_id) VALUES ($1, 'prod', 'manual', 'running', 240, 15, now(), $2) RETURNING id",
        [ORG, dying.id],
      )
    ).rows[0]!.id;
    await auditHarness.db.query("UPDATE operations SET lease_expires_at = now() - interval '1 second' WHERE id = $1", [
      dying.id,
    ]);
    const expired = (await store.expireLeases()).find((operation) => operation.id === dying.id);
    assert.ok(expired, "the dead replica's operation is found with its lease run out");
    assert.equal(await replicas[0]!.markInterruptedFor(expired), 1);
    const { rows } = await auditHarness.db.query<{ status: string; error: string }>(
      "SELECT status, error FROM restore_drills WHERE id = $1",
      [run],
    );
    assert.equal(rows[0]?.status, "interrupted");
    assert.match(rows[0]?.error ?? "", /replica-killed stopped renewing its lease/);
    // The cluster it held is free again: a run of it starts.
    assert.equal((await replicas[1]!.verify(ctx, { environment: "prod" })).ok, true);
  });
});
