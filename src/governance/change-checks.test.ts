// The checks around a change to production on real clusters: a pgBackRest backup of production
// taken just before the change applies (a backup run like any other), recorded on the change
// request with the posture read back after it; a backup that fails stops the change.
import assert from "node:assert/strict";
import { chmod, readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createAuditHarness } from "../../test/audit-fixtures.js";
import type { TAuditHarness } from "../../test/audit-fixtures.js";
import { createGovernedServices, INSIDE_PROD_WINDOW, userContext } from "../../test/change-fixtures.js";
import type { TGovernedServices } from "../../test/change-fixtures.js";
import { createRuntimeHarness } from "../../test/runtime-fixtures.js";
import type { TRuntimeHarness } from "../../test/runtime-fixtures.js";
import { testDatabaseFactories } from "../../test/test-databases.js";
import { recoveryServiceFactory } from "../backup/recovery-service.js";
import { ConflictError } from "../lib/errors.js";

const ORG = "checks-health";
const alice = userContext("alice", "operator");
const approvers = [userContext("bob", "approver"), userContext("dana", "approver")];

/** The demo with production only. */
const prodOnly = async () => {
  const source = (await readFile("examples/northwind-health.yaml", "utf8")).replace(
    "name: northwind-health",
    `name: ${ORG}`,
  );
  return source.slice(0, source.indexOf("  - name: staging"));
};

void describe("the checks around a change to production, on real clusters", () => {
  let runtime: TRuntimeHarness;
  let harness: TAuditHarness;
  let services: TGovernedServices;
  let source: string;
  let cron = 2;

  const approvedChange = async () => {
    cron += 1;
    const { request } = await services.changes.create(alice, {
      source: source.replace("cronWorkers: 2", `cronWorkers: ${cron}`),
      fileName: "org.yaml",
      reason: `cron workers ${cron}`,
    });
    for (const approver of approvers) await services.changes.approve(approver, request.id);
    return request.id;
  };

  before(async () => {
    runtime = await createRuntimeHarness();
    harness = await createAuditHarness(testDatabaseFactories.pglite);
    services = createGovernedServices(harness, {
      runtime: runtime.runtime,
      now: () => INSIDE_PROD_WINDOW,
      policyNow: () => new Date(),
      recovery: (latestSpecs) =>
        recoveryServiceFactory({ db: harness.db, runtime: runtime.runtime, latestSpecs, audit: harness.log }),
    });
    source = await prodOnly();
    await services.environments.apply(alice, { source, fileName: "org.yaml" });
  });
  after(async () => {
    await runtime.close(await services.environments.latestSpecs());
    await harness.dispose();
  });

  void it("backs production up just before the change applies, and reads the posture back after; both on the change request", async () => {
    const id = await approvedChange();
    const { request, applied } = await services.changes.apply(alice, id);
    assert.equal(applied?.revisionId, 2);
    assert.equal(request.state, "applied");
    const [backup] = request.preChangeBackup ?? [];
    assert.deepEqual([backup?.environment, backup?.status], ["prod", "succeeded"]);
    // The first backup of a cluster is a full one, whatever was asked.
    assert.match(backup?.label ?? "", /^\d{8}-\d{6}F$/);
    const [run] = await services.recovery!.listBackups(alice, "prod");
    assert.equal(run?.label, backup?.label, "a backup run like any other");
    assert.equal(backup?.detail, `backup run #${run?.id}`);
    const entries = (await harness.log.list({ type: "change.pre_change_backup", limit: 10 })).map((item) => item.entry);
    assert.deepEqual(
      entries.map((entry) => [entry.payload.changeRequest, entry.payload.status, entry.payload.label]),
      [[id, "succeeded", backup?.label]],
    );
    const posture = request.postChangePosture;
    assert.ok(posture !== null && posture.summary.pass > 0, JSON.stringify(posture));
    // Read from the live systems: the demo's offsite repository has no key on this host, and the posture says so.
    assert.ok(
      posture.mandatoryViolations.some((line) => line.startsWith("CH-BAK-006")),
      posture.mandatoryViolations.join("\n"),
    );
  });

  void it("drills production after a change to its data tier, and records the drill on the change request", async () => {
    const { request: created } = await services.changes.create(alice, {
      source: source.replace("rpoMinutes: 15", "rpoMinutes: 10"),
      fileName: "org.yaml",
      reason: "a tighter RPO",
    });
    for (const approver of approvers) await services.changes.approve(approver, created.id);
    // The heartbeat the supervisor writes, which the drill reads back to measure the RPO.
    await runtime.runtime.heartbeat((await services.environments.latestSpecs())[0]!);
    const { request } = await services.changes.apply(alice, created.id);
    assert.equal(request.state, "applied");
    const [drill] = request.postChangeDrills ?? [];
    assert.deepEqual([drill?.environment, drill?.status], ["prod", "passed"], JSON.stringify(request.postChangeDrills));
    const [run] = await services.recovery!.listDrills(alice, "prod");
    assert.equal(drill?.drill, run?.id, "a drill run like any other, in carehost drills");
    assert.match(drill?.detail ?? "", /^RTO [\d.]+ s, RPO [\d.]+ s$/);
    source = source.replace("rpoMinutes: 15", "rpoMinutes: 10");
  });

  void it("does not apply a change when its pre-change backup fails, and says so on the change request", async () => {
    const id = await approvedChange();
    const revision = (await services.environments.latestRevisions(alice))[0]!.id;
    const repository = join(runtime.root, "..", "backups", ORG);
    await chmod(repository, 0o000);
    try {
      await assert.rejects(services.changes.apply(alice, id), (error: unknown) => {
        assert.ok(error instanceof ConflictError, String(error));
        assert.match(
          error.message,
          new RegExp(`^change request #${id} did not apply: the pre-change backup of prod failed`),
        );
        return true;
      });
    } finally {
      await chmod(repository, 0o700);
    }
    const refused = await services.changes.show(alice, id);
    assert.equal(refused.state, "approved");
    assert.equal(refused.preChangeBackup?.[0]?.status, "failed");
    assert.equal((await services.environments.latestRevisions(alice))[0]!.id, revision, "nothing was recorded");
    const retried = await services.changes.apply(alice, id);
    assert.deepEqual([retried.request.state, retried.request.preChangeBackup?.[0]?.status], ["applied", "succeeded"]);
  });
});
