// Restores one environment's data over a declared environment's: the environment itself when it
// lives in a shared cluster (a physical restore would roll its neighbours back), or another
// declared environment (a DR or training environment refreshed from staging). The source's cluster
// is restored to the point into a scratch copy (archiving off), its one database moved across with
// pg_dump/pg_restore (postgres-database-move.ts), its filestore restored as of the same instant and
// swapped in, the target's sessions flushed. The scratch copy never outlives the restore; a marker
// in it lets the next start repair what a killed carehost left (`settleInterruptedRestoreOver`).
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type pg from "pg";
import { DomainError } from "../../lib/errors.js";
import type { TEnvironmentSpec } from "../../spec/spec-schema.js";
import { filestoreSwapNamesOf, restoreFilestore, swapInFilestore } from "./local-filestore.js";
import { discardScratch, recoveredUntil, restoreToScratch } from "./local-recovery.js";
import type { TDeidentified, TDeidentifyRequest, TRestoreTarget } from "../../backup/recovery-driver.js";
import { deidentifyScratch } from "./local-restore-deidentify.js";
import type { TRecoverableCluster } from "./local-recovery.js";
import { databaseNameOf } from "./local-placement.js";
import { dumpDatabase, loadAndSwap, settleInterruptedSwap, swapNamesOf } from "./postgres-database-move.js";
import type { TAdminAccess } from "./postgres-database-move.js";
import type { TPostgresTenant } from "./postgres-tenant.js";

type TStepName = "postgresql" | "filestore" | "deidentify" | "verify" | "swap" | "redis" | "application" | "ingress";
type TStep = <T>(name: TStepName, run: () => Promise<{ detail: string; value: T }>) => Promise<T>;

/** The declared environment whose database and filestore are replaced. */
export type TRestoreOverTarget = {
  readonly environment: TEnvironmentSpec;
  readonly access: TAdminAccess;
  readonly tenant: TPostgresTenant;
  readonly filestoreDirectory: string;
};

/** What the marker in the scratch directory records: enough to repair the target without the spec's help. */
export type TRestoreOverMarker = {
  readonly source: string;
  readonly target: TRestoreTarget;
  readonly into: string;
  readonly cluster: string;
  readonly database: string;
  readonly filestoreDirectory: string;
  readonly databaseSwapped: boolean;
  readonly filestoreSwapped?: boolean;
  readonly startedAt: Date;
};

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

export async function restoreOver(input: {
  readonly source: TRecoverableCluster;
  readonly sourceEnvironment: string;
  readonly into: TRestoreOverTarget;
  readonly target: TRestoreTarget;
  /** Holds the scratch cluster, the dump and the marker; removed at the end, whatever happened. */
  readonly scratchDirectory: string;
  readonly markerName: string;
  readonly step: TStep;
  readonly flushSessions: (environment: TEnvironmentSpec) => Promise<string>;
  /**
   * Snapshots the target's filestore as restored, when the target is backed up: its older snapshots
   * hold files the restore removed, which a later point-in-time restore would otherwise bring back
   * (restoreFilestore takes removed files for a cleanup's).
   */
  readonly snapshotRestoredFilestore?: () => Promise<unknown>;
  /** De-identify the data in the scratch copy, and verify it, before anything is swapped in. */
  readonly deidentify?: TDeidentifyRequest;
  readonly now: () => Date;
}): Promise<{ filestoreFiles: number; deidentified?: TDeidentified }> {
  const { source, sourceEnvironment, into, target, scratchDirectory, step } = input;
  const database = databaseNameOf({ name: sourceEnvironment });
  const markerPath = join(scratchDirectory, input.markerName);
  const marker: TRestoreOverMarker = {
    source: sourceEnvironment,
    target,
    into: into.environment.name,
    cluster: into.access.cluster.name,
    database: into.tenant.database,
    filestoreDirectory: into.filestoreDirectory,
    databaseSwapped: false,
    startedAt: input.now(),
  };
  await mkdir(scratchDirectory, { recursive: true, mode: 0o711 });
  await writeFile(markerPath, JSON.stringify(marker));
  const scratchCluster = join(scratchDirectory, "postgres");
  try {
    if (input.deidentify !== undefined)
      return await restoreDeidentified({ ...input, deidentify: input.deidentify }, database, markerPath, marker);
    const until = await step("postgresql", async () => {
      const scratch = await restoreToScratch(source, scratchCluster, target);
      const recovered =
        target.kind === "time"
          ? target.time
          : target.kind === "lsn"
            ? await recoveredUntil(scratch, source)
            : undefined;
      // The dump sits beside the scratch cluster, outside its data directory, and goes with it.
      const dump = join(scratchDirectory, "dump");
      await dumpDatabase(
        { cluster: scratch, adminPassword: source.adminPassword, caPem: source.caPem, caPath: source.caPath },
        database,
        dump,
      );
      await discardScratch(scratch);
      await loadAndSwap(into.access, into.tenant, dump);
      await writeFile(markerPath, JSON.stringify({ ...marker, databaseSwapped: true }));
      return {
        detail: `database ${database} restored in a scratch copy of cluster "${source.cluster.name}" and moved over ${into.tenant.database} in cluster "${into.access.cluster.name}" (port ${into.access.cluster.port}, owner ${into.tenant.role})`,
        value: recovered ?? undefined,
      };
    });
    const filestoreFiles = await step("filestore", async () => {
      const [repository] = source.filestoreRepositories;
      if (repository === undefined) return { detail: "no repository", value: 0 };
      const { incoming } = filestoreSwapNamesOf(into.filestoreDirectory);
      await rm(incoming, { recursive: true, force: true });
      try {
        const restored = await restoreFilestore(repository, sourceEnvironment, until, incoming);
        await swapInFilestore(into.filestoreDirectory, incoming);
        await writeFile(markerPath, JSON.stringify({ ...marker, databaseSwapped: true, filestoreSwapped: true }));
        await input.snapshotRestoredFilestore?.();
        const snapshotted = input.snapshotRestoredFilestore === undefined ? "" : ", snapshotted as restored";
        return {
          detail: `${restored.files} files of ${sourceEnvironment} from snapshot ${restored.snapshots.join(" + ")}${snapshotted}`,
          value: restored.files,
        };
      } catch (error) {
        await rm(incoming, { recursive: true, force: true });
        // The database is already replaced: say so, or the operator would believe nothing changed.
        throw new DomainError(
          `the database of ${JSON.stringify(into.environment.name)} was restored, but its filestore was not (it is as it was before): ${error instanceof Error ? error.message : String(error)}; run the restore again`,
        );
      }
    });
    await step("redis", async () => ({ detail: await input.flushSessions(into.environment), value: undefined }));
    await step("application", async () => ({ detail: "not deployed on this runtime", value: undefined }));
    await step("ingress", async () => ({ detail: "not deployed on this runtime", value: undefined }));
    return { filestoreFiles };
  } finally {
    await discardScratch({ ...source.cluster, name: `${source.cluster.name}-restore`, directory: scratchCluster });
    await rm(scratchDirectory, { recursive: true, force: true });
  }
}

/**
 * The de-identified order: the database restored into the scratch copy and the filestore into a
 * directory beside the target's, both transformed and verified there; only then is the database
 * moved over the target's and the filestore swapped in. Until the swap a failure leaves the
 * target as it was (the caller's finally removes the scratch copy, this the restored filestore).
 */
async function restoreDeidentified(
  input: Parameters<typeof restoreOver>[0] & { readonly deidentify: TDeidentifyRequest },
  database: string,
  markerPath: string,
  marker: TRestoreOverMarker,
): Promise<{ filestoreFiles: number; deidentified: TDeidentified }> {
  const { source, sourceEnvironment, into, target, scratchDirectory, step } = input;
  const { scratch, until } = await step("postgresql", async () => {
    const restored = await restoreToScratch(source, join(scratchDirectory, "postgres"), target);
    const recovered =
      target.kind === "time" ? target.time : target.kind === "lsn" ? await recoveredUntil(restored, source) : undefined;
    return {
      detail: `database ${database} restored in a scratch copy of cluster "${source.cluster.name}" (port ${restored.port}); nothing is swapped in before it is de-identified and verified`,
      value: { scratch: restored, until: recovered ?? undefined },
    };
  });
  const [repository] = source.filestoreRepositories;
  const { incoming } = filestoreSwapNamesOf(into.filestoreDirectory);
  await rm(incoming, { recursive: true, force: true });
  try {
    const restoredFiles = await step("filestore", async () => {
      if (repository === undefined) return { detail: "no repository", value: undefined };
      const restored = await restoreFilestore(repository, sourceEnvironment, until, incoming);
      return {
        detail: `${restored.files} files of ${sourceEnvironment} from snapshot ${restored.snapshots.join(" + ")}, beside ${into.environment.name}'s filestore until verified`,
        value: restored,
      };
    });
    const access = { cluster: scratch, adminPassword: source.adminPassword, caPem: source.caPem };
    const deidentified = await deidentifyScratch(
      access,
      database,
      restoredFiles === undefined ? undefined : incoming,
      input.deidentify,
      step,
    );
    await step("swap", async () => {
      const dump = join(scratchDirectory, "dump");
      await dumpDatabase({ ...access, caPath: source.caPath }, database, dump);
      await discardScratch(scratch);
      await loadAndSwap(into.access, into.tenant, dump);
      await writeFile(markerPath, JSON.stringify({ ...marker, databaseSwapped: true }));
      if (restoredFiles !== undefined) {
        try {
          await swapInFilestore(into.filestoreDirectory, incoming);
        } catch (error) {
          throw new DomainError(
            `the de-identified database of ${JSON.stringify(into.environment.name)} was swapped in, but its filestore was not (it is as it was before): ${error instanceof Error ? error.message : String(error)}; run the restore again`,
          );
        }
        await writeFile(markerPath, JSON.stringify({ ...marker, databaseSwapped: true, filestoreSwapped: true }));
        await input.snapshotRestoredFilestore?.();
      }
      return {
        detail: `the verified copy moved over ${into.tenant.database} in cluster "${into.access.cluster.name}" (port ${into.access.cluster.port}, owner ${into.tenant.role})${restoredFiles === undefined ? "" : `, its filestore swapped in${input.snapshotRestoredFilestore === undefined ? "" : " and snapshotted"}`}`,
        value: undefined,
      };
    });
    await step("redis", async () => ({ detail: await input.flushSessions(into.environment), value: undefined }));
    await step("application", async () => ({ detail: "not deployed on this runtime", value: undefined }));
    await step("ingress", async () => ({ detail: "not deployed on this runtime", value: undefined }));
    return { filestoreFiles: restoredFiles?.files ?? 0, deidentified };
  } finally {
    // Renamed into place by the swap; otherwise the restored (and perhaps half-transformed) files go.
    await rm(incoming, { recursive: true, force: true });
  }
}

/** The marker of an interrupted restore-over in `directory`, or undefined (none, or another kind of restore's). */
export async function readRestoreOverMarker(
  directory: string,
  markerName: string,
): Promise<TRestoreOverMarker | undefined> {
  const text = await readFile(join(directory, markerName), "utf8").catch(() => undefined);
  const marker = text === undefined ? undefined : (JSON.parse(text) as Partial<TRestoreOverMarker>);
  return marker?.into === undefined || marker.database === undefined || marker.filestoreDirectory === undefined
    ? undefined
    : (marker as TRestoreOverMarker);
}

/**
 * Repairs the target of a restore-over that a killed carehost left midway (its scratch copy is the
 * caller's to remove): the database and filestore get their names back, the half-loaded and set-aside
 * ones go. Returns what happened to the target, for the reconcile's report.
 */
export async function settleInterruptedRestoreOver(
  admin: Pick<pg.Client, "query">,
  marker: TRestoreOverMarker,
): Promise<string> {
  const database = await settleInterruptedSwap(admin, marker.database);
  const { incoming, outgoing } = filestoreSwapNamesOf(marker.filestoreDirectory);
  if (!(await exists(marker.filestoreDirectory)) && (await exists(outgoing)))
    await rename(outgoing, marker.filestoreDirectory);
  await rm(incoming, { recursive: true, force: true });
  await rm(outgoing, { recursive: true, force: true });
  const { incoming: halfLoaded } = swapNamesOf(marker.database);
  if (marker.filestoreSwapped === true) {
    return `an interrupted restore of ${marker.source} over ${marker.into} had replaced its database and filestore; its sessions are flushed and its scratch copy removed`;
  }
  if (marker.databaseSwapped || database === "swapped") {
    return `an interrupted restore of ${marker.source} over ${marker.into} had replaced database ${marker.database} but not its filestore: run the restore again`;
  }
  return `an interrupted restore of ${marker.source} over ${marker.into} left ${marker.database} as it was (removed ${halfLoaded} and the scratch copy)`;
}
