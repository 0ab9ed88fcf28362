import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import type { TDrillRun } from "../backup/recovery-runs.js";
import { noneRuntimeFactory } from "../runtime/none/none-runtime.js";
import { loadSpecText } from "../spec/spec-loader.js";
import { auditCountsFactory } from "./monitor-audit-counts.js";
import { monitorProbesFactory } from "./monitor-probes.js";

// A drill is recorded "passed" or "failed" (restore_drills.status), never "succeeded": the reading
// monitoring takes of it must say a passed drill passed, or RestoreDrillFailed fires on every good one.
void describe("the last drill as a probe reads it", () => {
  void it("reads a passed drill as a success and a failed one as a failure", async () => {
    const loaded = loadSpecText(await readFile("examples/northwind-health.yaml", "utf8"), "demo.yaml");
    assert.ok(loaded.ok);
    const drill = (environment: string, status: string): TDrillRun => ({
      id: environment === "prod" ? 1 : 2,
      organization: "northwind-health",
      environment,
      trigger: "schedule",
      status,
      backupLabel: "20261204-000000F",
      rtoSeconds: 2,
      rpoSeconds: 10,
      rtoObjectiveMinutes: 240,
      rpoObjectiveMinutes: 15,
      problems: status === "passed" ? [] : ["RTO missed"],
      error: null,
      startedAt: new Date(),
      finishedAt: new Date(),
    });
    const probes = monitorProbesFactory({
      latestSpecs: async () => [loaded.spec],
      probeRuntime: noneRuntimeFactory().probe,
      recoverySummaries: async () => ({
        backups: [],
        completedBackups: [],
        verifications: [],
        drills: [drill("prod", "passed"), drill("staging", "failed")],
      }),
      // Nothing in the audit log counts here.
      auditCounts: auditCountsFactory({ db: { query: async () => ({ rows: [] }) } as never }),
      onError: (error) => {
        throw error;
      },
    });
    const round = await probes.probeOnce();
    const lastDrill = (environment: string) =>
      round.environments.find((item) => item.environment === environment)?.backup?.lastDrill?.succeeded;
    assert.equal(lastDrill("prod"), true);
    assert.equal(lastDrill("staging"), false);
  });
});
