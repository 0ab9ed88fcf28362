// The local runtime: makes an organization's data tier real on this host from the host's
// PostgreSQL and Redis binaries, reads it back for drift and for the live controls, restarts what
// crashed, and removes an environment only after a final backup. This file composes it from its
// parts, one responsibility each:
//   local-context.ts     what they share: connections, locks, service owners, the CA, the ways to an instance
//   local-odoo-files.ts  odoo.conf, pgpass and odoo.env
//   local-reconcile.ts   repair after an interrupted run, then bring the data tier to the spec
//   local-observe.ts     status, drift and the controls' subjects, read back
//   local-probe.ts       the counters and sizes monitoring reads every probe round
//   local-render.ts      the files reconcile would write, and a plan's changes
//   local-lifecycle.ts   restart what stopped, stop everything, destroy one environment
//   local-backup.ts      backup, filestore snapshot, expire, verify, listings
//   local-restore.ts     restore into a copy, in place or over another environment
//   local-drill.ts       restore drills and the heartbeat they measure the RPO by
import { dirname } from "node:path";
import type { TOrganizationSpec } from "../../spec/spec-schema.js";
import { localBackupFactory } from "./local-backup.js";
import { assertRepositoriesConfined } from "./local-confinement.js";
import { localContextFactory } from "./local-context.js";
import type { TLocalRuntimeDeps } from "./local-context.js";
import { localDrillFactory } from "./local-drill.js";
import { localLifecycleFactory } from "./local-lifecycle.js";
import { localObserveFactory } from "./local-observe.js";
import { localOdooFilesFactory } from "./local-odoo-files.js";
import { localProbeFactory } from "./local-probe.js";
import { closeConnection } from "./local-postgres.js";
import { localReconcileFactory } from "./local-reconcile.js";
import { localRenderFactory } from "./local-render.js";
import { localRestoreFactory } from "./local-restore.js";

export const localRuntimeFactory = (deps: TLocalRuntimeDeps) => {
  const context = localContextFactory(deps);
  const { root, allowedRoots, connections, recoverable } = context;
  const odooFiles = localOdooFilesFactory(context);
  const lifecycle = localLifecycleFactory(context);
  const { reconcile } = localReconcileFactory({
    ...context,
    ...odooFiles,
    restartStoppedNow: lifecycle.restartStoppedNow,
  });
  const { observe } = localObserveFactory({ ...context, ...odooFiles });
  const { probe } = localProbeFactory(context);
  const { render, planChange } = localRenderFactory({ ...context, ...odooFiles });
  const backups = localBackupFactory(context);
  const { restore, removeCopy } = localRestoreFactory(context);
  const { drill, heartbeat } = localDrillFactory(context);

  return {
    kind: "local" as const,
    dataTier: { onThisHost: true } as const,
    deliveryTarget: "local" as const,

    /** Refuses a spec whose posix repositories or CA files lead outside carehost's directories (local-confinement.ts), before it is recorded. */
    assertPathsConfined: (organization: TOrganizationSpec): Promise<void> =>
      assertRepositoriesConfined(organization.metadata.name, organization.backupRepositories, {
        home: dirname(root),
        allowedRoots,
      }),

    reconcile,
    observe,
    probe,
    render,
    planChange,

    restartStopped: lifecycle.restartStopped,
    destroyEnvironment: lifecycle.destroyEnvironment,
    stopOrganization: lifecycle.stopOrganization,

    backup: backups.backup,
    snapshotFilestore: backups.snapshotFilestore,
    expire: backups.expire,
    verify: backups.verify,

    /** What local-recovery.ts needs of an environment's cluster (backup access, admin password, CA), for callers that drive it directly (bench/, tests). */
    recoverable,

    backups: backups.backups,
    filestoreSnapshots: backups.filestoreSnapshots,

    restore,
    removeCopy,
    drill,
    heartbeat,

    close: async (): Promise<void> => {
      await Promise.all([...connections.keys()].map((key) => closeConnection({ connections }, key)));
    },
  };
};

export type TLocalRuntime = ReturnType<typeof localRuntimeFactory>;
