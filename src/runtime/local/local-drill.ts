// Restore drills on this host: the latest backup and filestore restored into a scratch copy,
// checked (pg_amcheck, every restored file re-hashed) and measured (the RTO, and the RPO from the
// heartbeat written into every backed-up cluster), then torn down.
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { resticFileCount, resticSnapshots } from "../../backup/restic-command.js";
import type { TOrganizationSpec } from "../../spec/spec-schema.js";
import type { TDrillFilestore, TDrillOutcome } from "../../backup/recovery-driver.js";
import { elapsedMs } from "./local-context.js";
import type { TLocalContext } from "./local-context.js";
import { filestoreTag, restoreFilestore } from "./local-filestore.js";
import { runDrill, writeHeartbeat } from "./local-recovery.js";
import { connectAdmin, runningPid } from "./postgres-cluster.js";

export const localDrillFactory = ({
  root,
  now,
  onInstancesOf,
  recoverable,
  backedUpIn,
}: Pick<TLocalContext, "root" | "now" | "onInstancesOf" | "recoverable" | "backedUpIn">) => ({
  /**
   * Restores the latest backup (and filestore) into a scratch copy, checks and measures it, and
   * tears it down; `onStep` hears of PostgreSQL's part and the filestore's as each completes.
   */
  drill: (
    organization: TOrganizationSpec,
    environmentName: string,
    onStep: (step: { step: string; detail: string; durationMs: number }) => void = () => undefined,
  ): Promise<TDrillOutcome> =>
    onInstancesOf(organization, [environmentName], async () => {
      const source = await recoverable(organization, environmentName);
      // Short: the copy's Unix socket path must stay under 107 bytes.
      const directory = join(root, organization.metadata.name, "drills", now().getTime().toString(36));
      let begun = process.hrtime.bigint();
      const result = await runDrill(source, join(directory, "postgres"), backedUpIn(organization, source.cluster), now);
      onStep({
        step: "postgresql",
        detail: `${result.backupLabel} restored and writable in ${result.rtoSeconds.toFixed(1)} s; pg_amcheck ${result.amcheckPassed ? "clean" : "found problems"}${result.databasesMissing.length === 0 ? "" : `; missing ${result.databasesMissing.join(", ")}`}`,
        durationMs: elapsedMs(begun),
      });
      begun = process.hrtime.bigint();
      const filestores: TDrillFilestore[] = [];
      const [repository] = source.filestoreRepositories;
      try {
        for (const environment of repository === undefined ? [] : backedUpIn(organization, source.cluster)) {
          const snapshots = await resticSnapshots(repository!, filestoreTag(environment.name));
          const newest = snapshots.at(-1);
          if (newest === undefined) {
            filestores.push({
              environment: environment.name,
              files: 0,
              expectedFiles: 0,
              verified: false,
              snapshotAgeSeconds: null,
            });
            continue;
          }
          const restored = await restoreFilestore(
            repository!,
            environment.name,
            undefined,
            join(directory, "filestore", environment.name),
          ).then(
            (value) => ({ files: value.files, verified: true }),
            () => ({ files: 0, verified: false }),
          );
          filestores.push({
            environment: environment.name,
            files: restored.files,
            expectedFiles: await resticFileCount(repository!, newest.id),
            verified: restored.verified,
            snapshotAgeSeconds: Math.max(0, (result.startedAt.getTime() - newest.time.getTime()) / 1000),
          });
        }
      } finally {
        await rm(directory, { recursive: true, force: true });
      }
      const files = filestores.reduce((sum, filestore) => sum + filestore.files, 0);
      onStep({
        step: "filestore",
        detail:
          filestores.length === 0
            ? "no filestore repository"
            : `${files} files restored and re-hashed for ${filestores.map((filestore) => filestore.environment).join(", ")}`,
        durationMs: elapsedMs(begun),
      });
      return { stanza: source.backup.access.stanza, ...result, filestores };
    }),

  /** Writes the heartbeat that drills read to measure the achieved RPO, in every backed-up cluster. */
  heartbeat: async (organization: TOrganizationSpec): Promise<void> => {
    for (const environment of organization.environments.filter((item) => item.backup.enabled)) {
      const source = await recoverable(organization, environment.name).catch(() => undefined);
      if (source === undefined || (await runningPid(source.cluster)) === undefined) continue;
      const admin = await connectAdmin(source.cluster, source.adminPassword, source.caPem);
      try {
        await writeHeartbeat(admin);
      } finally {
        await admin.end();
      }
    }
  },
});
