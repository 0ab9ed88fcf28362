import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createAuditHarness, type TAuditHarness } from "../../test/audit-fixtures.js";
import { createRuntimeHarness, runtimeTestSpec, type TRuntimeHarness } from "../../test/runtime-fixtures.js";
import { testDatabaseFactories } from "../../test/test-databases.js";
import { auditLogFactory } from "../audit/audit-log.js";
import { recoveryServiceFactory, type TRecoveryService } from "../backup/recovery-service.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import type { TSqlClient } from "../store/store-types.js";
import { operationServiceFactory, type TOperationService } from "./operation-service.js";
import { operationStoreFactory } from "./operation-store.js";
import type { TOperationHandler } from "./operation-types.js";
import { operationWorkerFactory, type TOperationWorker } from "./operation-worker.js";

// The scheduler's backups through the queue, with two replicas (each its own database pool,
// recovery service, worker and audit log) on one PostgreSQL and one host's real clusters: a slot
// both replicas see due is queued once and backed up once, and an operation queued by a tick that
// read the runs just before another replica's backup ended is claimed and finds nothing to do.
const ORG = "queue-health";

type TReplica = { recovery: TRecoveryService; operations: TOperationService; worker: TOperationWorker };

void describe("scheduled backups as operations, two replicas on one PostgreSQL", () => {
  let runtimeHarness: TRuntimeHarness;
  let auditHarness: TAuditHarness;
  let spec: TOrganizationSpec;
  let replicas: TReplica[];
  let clients: TSqlClient[];

  before(async () => {
    runtimeHarness = await createRuntimeHarness();
    auditHarness = await createAuditHarness(testDatabaseFactories.postgres);
    const full = runtimeTestSpec(ORG);
    spec = { ...full, environments: full.environments.filter((environment) => environment.name === "prod") };
    await runtimeHarness.runtime.reconcile(spec);
    clients = [auditHarness.db, await auditHarness.database.open()];
    replicas = clients.map((db, index) => {
      const log =
        index === 0
          ? auditHarness.log
          : auditLogFactory({
              db,
              signingKeyPath: auditHarness.keyPath,
              onBackgroundError: (error) => {
                throw error;
              },
            });
      const recovery = recoveryServiceFactory({
        db,
        runtime: runtimeHarness.runtime,
        latestSpecs: async () => [spec],
        audit: log,
      });
      const store = operationStoreFactory(db);
      const operations = operationServiceFactory({ store, audit: log });
      const runScheduled: TOperationHandler = ({ operation }) => recovery.runScheduled(operation);
      const worker = operationWorkerFactory({
        store,
        workerId: `replica-${index}`,
        handlers: {
          backup: runScheduled,
          verify: runScheduled,
          "filestore-snapshot": runScheduled,
          drill: runScheduled,
        },
        onInterrupted: operations.recordInterrupted,
        onError: (error) => {
          throw error;
        },
      });
      return { recovery, operations, worker };
    });
  });
  after(async () => {
    await runtimeHarness.close([spec]);
    await auditHarness.dispose();
  });

  const tick = async () => {
    for (const replica of replicas)
      for (const due of await replica.recovery.scheduledOperationsFor(spec))
        await replica.operations.enqueueAsSystem(due, "scheduler");
  };
  const drain = async () => {
    await Promise.all(replicas.map((replica) => replica.worker.poll()));
    await Promise.all(replicas.map((replica) => replica.worker.idle()));
  };
  const backupRuns = async () =>
    (
      await auditHarness.db.query<{ kind: string; trigger: string; status: string }>(
        "SELECT kind, trigger, status FROM backup_runs WHERE organization = $1 AND kind <> 'verify' ORDER BY id",
        [ORG],
      )
    ).rows;

  void it("queues a slot both replicas find due once, and backs it up once", async () => {
    await tick();
    const queued = await operationStoreFactory(auditHarness.db).list({ organizations: [ORG] });
    assert.deepEqual(
      queued.map((operation) => [operation.kind, operation.params, operation.state, operation.target]),
      [["backup", { backupType: "full" }, "pending", `cluster/${ORG}/dedicated-prod`]],
    );
    await drain();
    assert.deepEqual(await backupRuns(), [{ kind: "full", trigger: "schedule", status: "succeeded" }]);
    const [ran] = await operationStoreFactory(auditHarness.db).list({ organizations: [ORG] });
    assert.equal(ran?.state, "succeeded");
    assert.equal((ran?.result as { ran: boolean }).ran, true);
    assert.equal(ran?.leaseOwner, null, "an ended operation holds no lease");
  });

  void it("runs an operation queued before another replica's backup ended only if it is still due", async () => {
    // A tick that read the runs before the full backup above ended would have queued this.
    const store = operationStoreFactory(clients[1]!);
    const stale = await store.enqueue({
      organization: ORG,
      environment: "prod",
      target: `cluster/${ORG}/dedicated-prod`,
      kind: "backup",
      params: { backupType: "full" },
      requestedBy: "system:scheduler",
      dedupeKey: `schedule:backup:${ORG}/prod`,
      deadlineSeconds: 600,
    });
    assert.equal(stale.created, true);
    await drain();
    const ended = await store.get(stale.operation.id);
    assert.equal(ended?.state, "succeeded");
    assert.deepEqual(ended?.result, { ran: false, reason: "no longer due: a run since the tick covered it" });
    assert.equal((await backupRuns()).length, 1, "no second full backup");
  });

  void it("looks at an unchanged filestore once a quarter of the RPO, not at every pass", async () => {
    // Past a quarter of prod's RPO after the full backup, with no incremental or differential slot
    // between: a filestore snapshot is due, and with no file added since, it takes none.
    const at = new Date(Date.now() + 10 * 60 * 1000);
    const fullOnly: TOrganizationSpec = {
      ...spec,
      environments: spec.environments.map((environment) =>
        environment.backup.enabled
          ? { ...environment, backup: { ...environment.backup, schedule: { full: "0 6 * * sun" } } }
          : environment,
      ),
    };
    const later = recoveryServiceFactory({
      db: auditHarness.db,
      runtime: runtimeHarness.runtime,
      latestSpecs: async () => [fullOnly],
      audit: auditHarness.log,
      now: () => at,
    });
    const due = async () => (await later.scheduledOperationsFor(fullOnly)).map((operation) => operation.kind);
    assert.ok((await due()).includes("filestore-snapshot"), (await due()).join(", "));
    const looked = await later.runScheduled({
      organization: ORG,
      environment: "prod",
      kind: "filestore-snapshot",
      params: {},
    });
    assert.equal(looked.ran, true);
    assert.deepEqual((await backupRuns()).at(-1), { kind: "filestore", trigger: "schedule", status: "unchanged" });
    // The look counts: the next pass, at the same instant, queues no other.
    assert.ok(!(await due()).includes("filestore-snapshot"), (await due()).join(", "));
  });
});
