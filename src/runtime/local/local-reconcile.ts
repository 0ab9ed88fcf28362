// Reconcile: brings an organization's data tier on this host to what its spec declares. It first
// repairs what a carehost killed midway left behind (pgBackRest processes, a drill's copy, a
// half-made restored copy, an interrupted restore over an environment or in place), then brings
// the clusters and Redis instances up side by side and renders each environment's Odoo files.
import { mkdir, readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { endLeftoverRuns } from "../../backup/pgbackrest-command.js";
import type { TRestoreTarget } from "../../backup/recovery-driver.js";
import type { TOrganizationSpec } from "../../spec/spec-schema.js";
import { pgbackrestConfigPathOf } from "./local-backup-config.js";
import { RESTORING_MARKER } from "./local-context.js";
import type { TLocalContext } from "./local-context.js";
import type { TLocalLifecycle } from "./local-lifecycle.js";
import type { TLocalOdooFiles } from "./local-odoo-files.js";
import { clusterDirectory, organizationDirectory, placeOrganization } from "./local-placement.js";
import { reconcileCluster } from "./local-postgres.js";
import { restoreInPlace } from "./local-recovery.js";
import { reconcileRedis } from "./local-redis.js";
import { readRestoreOverMarker, settleInterruptedRestoreOver } from "./local-restore-over.js";
import { assertPostgresInstalled, connectAdmin } from "./postgres-cluster.js";
import { writeFileIfChanged } from "./runtime-files.js";
import type { TRuntimeAction } from "../runtime-types.js";

export const localReconcileFactory = ({
  root,
  exclusive,
  certificateAuthority,
  clusterContext,
  redisContext,
  recoverable,
  flushSessions,
  adminAccessOf,
  stopCopies,
  odooFiles,
  restartStoppedNow,
}: Pick<
  TLocalContext,
  | "root"
  | "exclusive"
  | "certificateAuthority"
  | "clusterContext"
  | "redisContext"
  | "recoverable"
  | "flushSessions"
  | "adminAccessOf"
  | "stopCopies"
> &
  Pick<TLocalOdooFiles, "odooFiles"> &
  Pick<TLocalLifecycle, "restartStoppedNow">) => {
  const reconcileNow = async (organization: TOrganizationSpec): Promise<TRuntimeAction[]> => {
    const placement = placeOrganization(organization);
    for (const cluster of placement.clusters) await assertPostgresInstalled(cluster.version);
    const org = placement.organization;
    await mkdir(organizationDirectory(root, org), { recursive: true, mode: 0o711 });
    const ca = await certificateAuthority(org);
    const actions: TRuntimeAction[] = [];
    // No run of this carehost can be going (reconcile holds the lifecycle lock): pgBackRest still
    // working for a cluster was left by a carehost killed midway, and must stop before its copy is
    // removed or its restore finished.
    for (const cluster of placement.clusters) {
      const ended = await endLeftoverRuns(
        pgbackrestConfigPathOf({ directory: clusterDirectory(root, org, cluster.name) }),
      );
      if (ended > 0)
        actions.push({
          target: `postgres/${cluster.name}`,
          action: `ended ${ended} pgBackRest process(es) left by an interrupted backup or restore`,
        });
    }
    // A drill's copy exists only while the drill runs; one found now was left by a carehost killed midway.
    const drills = join(root, org, "drills");
    for (const name of await stopCopies(drills)) {
      await rm(join(drills, name), { recursive: true, force: true });
      actions.push({ target: `drill/${name}`, action: "removed the copy of an interrupted restore drill" });
    }
    // A copy still marked as being restored was left half-made by a carehost killed midway.
    const restores = join(root, org, "restores");
    for (const name of await readdir(restores).catch(() => [] as string[])) {
      if ((await stat(join(restores, name, RESTORING_MARKER)).catch(() => undefined)) === undefined) continue;
      const over = await readRestoreOverMarker(join(restores, name), RESTORING_MARKER);
      await stopCopies(restores, [name]);
      await rm(join(restores, name), { recursive: true, force: true });
      if (over === undefined) {
        actions.push({ target: `restore/${name}`, action: "removed the half-made copy of an interrupted restore" });
        continue;
      }
      // The scratch copy of a restore over a declared environment: its target is repaired before its
      // cluster's tenants are reconciled, which would otherwise create an empty database in the gap of a swap.
      const environment = organization.environments.find((item) => item.name === over.into);
      if (environment === undefined) continue;
      actions.push(...(await restartStoppedNow(organization)));
      const access = await adminAccessOf(organization, environment);
      const admin = await connectAdmin(access.cluster, access.adminPassword, access.caPem);
      try {
        actions.push({ target: `environment/${over.into}`, action: await settleInterruptedRestoreOver(admin, over) });
      } finally {
        await admin.end();
      }
      // A database already replaced must not meet sessions of the one before it.
      if (over.databaseSwapped) await flushSessions(organization, environment);
    }
    // An in-place restore that was interrupted is finished before the cluster serves again: pgBackRest's
    // --delta restore is safe to run twice, and the half-restored data directory must not start as is.
    for (const cluster of placement.clusters) {
      const marker = await readFile(join(clusterDirectory(root, org, cluster.name), RESTORING_MARKER), "utf8").catch(
        () => undefined,
      );
      const environment = cluster.environments.find((item) => item.backup.enabled);
      if (marker === undefined || environment === undefined) continue;
      const recorded = JSON.parse(marker) as {
        target: { kind: "latest" } | { kind: "time"; time: string } | { kind: "lsn"; lsn: string };
      };
      const target: TRestoreTarget =
        recorded.target.kind === "time" ? { kind: "time", time: new Date(recorded.target.time) } : recorded.target;
      await restoreInPlace(await recoverable(organization, environment.name), target);
      await rm(join(clusterDirectory(root, org, cluster.name), RESTORING_MARKER), { force: true });
      actions.push({ target: `postgres/${cluster.name}`, action: "finished an in-place restore that was interrupted" });
    }
    // Clusters and Redis instances are independent processes: bring them up side by side.
    const results = await Promise.all([
      ...placement.clusters.map(async (cluster) => reconcileCluster(await clusterContext(organization, cluster, ca))),
      ...placement.redis.map(async (redis) => reconcileRedis(await redisContext(org, redis, ca))),
    ]);
    actions.push(...results.flat());
    for (const environment of organization.environments) {
      const files = await odooFiles(organization, environment, ca, true);
      await mkdir(join(files.directory, "data"), { recursive: true, mode: 0o700 });
      const changed = [
        ...((await writeFileIfChanged(join(files.directory, "odoo.conf"), files.odooConf, { mode: 0o640 }))
          ? ["odoo.conf"]
          : []),
        ...((await writeFileIfChanged(join(files.directory, "pgpass"), files.pgpass, { mode: 0o600 }))
          ? ["pgpass"]
          : []),
        ...((await writeFileIfChanged(join(files.directory, "odoo.env"), files.odooEnv, { mode: 0o640 }))
          ? ["odoo.env"]
          : []),
      ];
      if (changed.length > 0)
        actions.push({ target: `environment/${environment.name}`, action: `rendered ${changed.join(", ")}` });
    }
    return actions;
  };

  return {
    /** Brings the organization's data tier to what the spec declares; returns what it did (nothing, the second time). */
    reconcile: (organization: TOrganizationSpec): Promise<TRuntimeAction[]> =>
      exclusive(organization, () => reconcileNow(organization)),
  };
};
