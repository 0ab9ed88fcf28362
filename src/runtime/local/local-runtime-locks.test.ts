import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createRuntimeHarness, runtimeTestSpec, type TRuntimeHarness } from "../../../test/runtime-fixtures.js";
import type { TOrganizationSpec } from "../../spec/spec-schema.js";

// A backup of prod that hangs (prod's postmaster frozen with SIGSTOP, as a stuck storage volume
// would leave it) holds prod's cluster only: staging's backup, on the shared cluster, runs and
// ends meanwhile, and the supervisor's crash-restart pass returns at once instead of queueing
// behind it. Before, one lock per organization held staging's backup until prod's ended.
const ORG = "locks-health";

void describe("local runtime: one instance's hung backup does not hold up another's", () => {
  let harness: TRuntimeHarness;
  let spec: TOrganizationSpec;

  before(async () => {
    harness = await createRuntimeHarness();
    const full = runtimeTestSpec(ORG);
    spec = { ...full, environments: full.environments.filter((environment) => environment.name !== "training") };
    await harness.runtime.reconcile(spec);
  });
  after(async () => {
    await harness.close([spec]);
  });

  void it("backs up staging while prod's backup hangs, then finishes prod's once prod answers again", async () => {
    const pid = Number(
      (await readFile(`${harness.root}/${ORG}/postgres/dedicated-prod/data/postmaster.pid`, "utf8")).split("\n")[0],
    );
    process.kill(pid, "SIGSTOP");
    let prodEnded = false;
    let prod: Promise<unknown> | undefined;
    try {
      prod = harness.runtime.backup(spec, "prod", "full").finally(() => (prodEnded = true));
      const gaveUp = sleep(90_000, "staging's backup waited 90 s behind prod's");
      const staging = await Promise.race([harness.runtime.backup(spec, "staging", "full"), gaveUp]);
      assert.equal(typeof staging, "object", String(staging));
      assert.ok((staging as { label: string }).label.length > 0);
      assert.equal(prodEnded, false, "prod's backup is still hung");
      const restarts = await Promise.race([harness.runtime.restartStopped(spec), sleep(10_000, "hung")]);
      assert.deepEqual(restarts, [], "prod's frozen cluster is its backup's, not the supervisor's");
    } finally {
      process.kill(pid, "SIGCONT");
    }
    const backedUp = (await prod) as { label: string };
    assert.ok(backedUp.label.length > 0, "prod's backup ended once prod answered again");
  });
});
