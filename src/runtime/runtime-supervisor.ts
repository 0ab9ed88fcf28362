// Restarts the PostgreSQL and Redis processes of every recorded organization when they stop
// (a crash, an OOM kill, someone's pg_ctl stop), on a fixed interval, and audits each restart.
// The processes are not carehost's children, so a carehost restart leaves them running.
import type { TAuditAppend } from "../identity/identity-types.js";
import { systemContext } from "../lib/request-context.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import type { TRecoveryService } from "../backup/recovery-service.js";
import type { TLocalRuntime } from "./local/local-runtime.js";

type TSupervisorDeps = {
  runtime: Pick<TLocalRuntime, "restartStopped" | "heartbeat">;
  /** Backups and drills the schedules say are due run from the same loop, one pass at a time. */
  recovery?: Pick<TRecoveryService, "runDue">;
  latestSpecs: () => Promise<TOrganizationSpec[]>;
  audit: { append: TAuditAppend };
  intervalMs: number;
  onError: (error: unknown) => void;
};

export const runtimeSupervisorFactory = ({
  runtime,
  recovery,
  latestSpecs,
  audit,
  intervalMs,
  onError,
}: TSupervisorDeps) => {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  const superviseOnce = async (): Promise<number> => {
    let restarted = 0;
    for (const spec of await latestSpecs()) {
      const organization = spec.metadata.name;
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
    }
    await recovery?.runDue();
    return restarted;
  };

  return {
    superviseOnce,
    start: () => {
      timer = setInterval(() => {
        // One pass at a time: a slow start must not pile up restarts of the same cluster.
        running ??= superviseOnce()
          .then(() => undefined, onError)
          .finally(() => {
            running = undefined;
          });
      }, intervalMs);
      timer.unref();
    },
    stop: async () => {
      if (timer !== undefined) clearInterval(timer);
      await running;
    },
  };
};
