import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, it } from "node:test";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import { runtimeSupervisorFactory } from "./runtime-supervisor.js";

// The supervisor's own scheduling, with the runtime and the recovery service replaced by recorders:
// what it must prove is that one organization's slow pass (an object store that answers slowly, a
// backup that runs an hour) delays no other organization's crash restarts, heartbeats or backups.
const organization = (name: string) => ({ metadata: { name }, environments: [] }) as unknown as TOrganizationSpec;

void describe("the runtime supervisor", () => {
  void it("supervises each organization on its own: a slow one holds up only itself", async () => {
    const heartbeats = new Map<string, number>();
    const dueRuns = new Map<string, number>();
    let releaseSlow: () => void = () => undefined;
    const slowBackup = new Promise<void>((resolve) => (releaseSlow = resolve));
    const supervisor = runtimeSupervisorFactory({
      runtime: {
        restartStopped: () => Promise.resolve([]),
        heartbeat: (spec) => {
          heartbeats.set(spec.metadata.name, (heartbeats.get(spec.metadata.name) ?? 0) + 1);
          return Promise.resolve();
        },
      },
      schedule: async (spec) => {
        dueRuns.set(spec.metadata.name, (dueRuns.get(spec.metadata.name) ?? 0) + 1);
        if (spec.metadata.name === "slow-clinic") await slowBackup;
        return 1;
      },
      latestSpecs: () => Promise.resolve([organization("slow-clinic"), organization("fast-clinic")]),
      audit: { append: () => Promise.resolve(undefined as never) },
      intervalMs: 20,
      onError: (error) => assert.fail(String(error)),
    });
    supervisor.start();
    const deadline = Date.now() + 5000;
    while ((dueRuns.get("fast-clinic") ?? 0) < 5 && Date.now() < deadline) await sleep(20);

    assert.ok((dueRuns.get("fast-clinic") ?? 0) >= 5, "fast-clinic's due backups ran pass after pass");
    assert.ok((heartbeats.get("fast-clinic") ?? 0) >= 5);
    // slow-clinic's first pass still runs; no second pass of it piled up behind.
    assert.equal(dueRuns.get("slow-clinic"), 1);
    assert.ok(supervisor.inFlight().includes("slow-clinic"));

    const stopped = supervisor.stop();
    releaseSlow();
    await stopped;
    assert.deepEqual(supervisor.inFlight(), []);
  });

  void it("one organization's failing pass is reported and does not stop the others", async () => {
    const errors: unknown[] = [];
    const supervised: string[] = [];
    const supervisor = runtimeSupervisorFactory({
      runtime: {
        restartStopped: (spec) =>
          spec.metadata.name === "broken-clinic"
            ? Promise.reject(new Error("pg_ctl start failed"))
            : Promise.resolve([{ target: "postgres", action: "started" }] as never),
        heartbeat: (spec) => {
          supervised.push(spec.metadata.name);
          return Promise.resolve();
        },
      },
      latestSpecs: () => Promise.resolve([organization("broken-clinic"), organization("well-clinic")]),
      audit: { append: () => Promise.resolve(undefined as never) },
      intervalMs: 1000,
      onError: (error) => errors.push(error),
    });
    assert.equal(await supervisor.superviseOnce(), 1);
    assert.deepEqual(supervised, ["well-clinic"]);
    assert.match(String(errors[0]), /pg_ctl start failed/);
  });
});
