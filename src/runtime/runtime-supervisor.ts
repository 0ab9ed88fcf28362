// Restarts the PostgreSQL and Redis processes of every recorded organization when they stop
// (a crash, an OOM kill, someone's pg_ctl stop), on a fixed interval, and audits each restart.
// The processes are not carehost's children, so a carehost restart leaves them running.
//
// Each organization is supervised on its own: one whose object store answers slowly, or whose
// backup runs for an hour, holds up its own next pass and no one else's crash restarts or backups.
import type { TAuditAppend } from "../identity/identity-types.js";
import { systemContext } from "../lib/request-context.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import type { TRuntimeDriver } from "./runtime-driver.js";

type TSupervisorDeps = {
  runtime: Pick<TRuntimeDriver, "restartStopped" | "heartbeat">;
  /** Queues the backups, verifications and drills the schedules say are due, from the same loop. */
  schedule?: (spec: TOrganizationSpec) => Promise<unknown>;
  latestSpecs: () => Promise<TOrganizationSpec[]>;
  audit: { append: TAuditAppend };
  intervalMs: number;
  onError: (error: unknown) => void;
};

export const runtimeSupervisorFactory = ({
  runtime,
  schedule,
  latestSpecs,
  audit,
  intervalMs,
  onError,
}: TSupervisorDeps) => {
  let timer: NodeJS.Timeout | undefined;
  /** The pass under way for each organization: a new tick skips an organization whose last pass still runs. */
  const passes = new Map<string, Promise<number>>();

  const superviseOrganization = async (spec: TOrganizationSpec): Promise<number> => {
    const organization = spec.metadata.name;
    let restarted = 0;
    // A restart acts on processes, not on carehost's database: no row records it, so its entry is a
    // plain append after the fact (nothing to commit it with).
    for (const action of await runtime.restartStopped(spec)) {
      restarted += 1;
      await audit.append(systemContext("supervisor"), {
        type: "runtime.instance_restarted",
        outcome: "success",
        target: `organization/${organization}`,
        payload: { organization, instance: action.target, detail: `found stopped; ${action.action}` },
      });
    }
    // The heartbeat a restore drill reads back to measure the achieved RPO.
    await runtime.heartbeat(spec).catch(onError);
    await schedule?.(spec);
    return restarted;
  };

  /** Starts a pass for every organization that has none under way; resolves with each started pass. */
  const startPasses = async (): Promise<Promise<number>[]> => {
    const started: Promise<number>[] = [];
    for (const spec of await latestSpecs()) {
      const organization = spec.metadata.name;
      if (passes.has(organization)) continue;
      const pass = superviseOrganization(spec)
        .catch((error: unknown) => {
          onError(error);
          return 0;
        })
        .finally(() => passes.delete(organization));
      passes.set(organization, pass);
      started.push(pass);
    }
    return started;
  };

  /** One pass over every organization, waited for (what tests and a first start use); returns the restarts. */
  const superviseOnce = async (): Promise<number> => {
    const counts = await Promise.all(await startPasses());
    return counts.reduce((sum, count) => sum + count, 0);
  };

  return {
    superviseOnce,
    /** The organizations whose pass is under way now. */
    inFlight: (): string[] => [...passes.keys()],
    start: () => {
      timer = setInterval(() => {
        startPasses().catch(onError);
      }, intervalMs);
      timer.unref();
    },
    stop: async () => {
      if (timer !== undefined) clearInterval(timer);
      await Promise.all(passes.values());
    },
  };
};
