// Restores on this host, in the documented order (secrets, PostgreSQL, filestore, Redis,
// application, ingress), each step reported as it completes: into a new copy beside the source,
// in place over a dedicated environment's cluster, or database by database over a shared
// environment or another declared one (local-restore-over.ts).
import { mkdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { NotFoundError, ValidationError } from "../../lib/errors.js";
import type { TOrganizationSpec } from "../../spec/spec-schema.js";
import type {
  TDeidentified,
  TRestoreDestination,
  TRestoreOutcome,
  TRestoreStep,
  TRestoreTarget,
} from "../../backup/recovery-driver.js";
import { elapsedMs, RESTORING_MARKER } from "./local-context.js";
import type { TLocalContext } from "./local-context.js";
import {
  filestoreDirectoryOf,
  filestoreSwapNamesOf,
  restoreFilestore,
  snapshotFilestore,
  swapInFilestore,
} from "./local-filestore.js";
import type { TFilestoreRestore } from "./local-filestore.js";
import { databaseNameOf } from "./local-placement.js";
import { closeConnection, tenantOf } from "./local-postgres.js";
import { recoveredUntil, restoreInPlace, restoreToScratch } from "./local-recovery.js";
import { restoreOver } from "./local-restore-over.js";
import { deidentifyScratch, keepOnlyDatabase } from "./local-restore-deidentify.js";
import { ensureTargetArchived } from "./local-restore-target.js";
import { runningPid } from "./postgres-cluster.js";

/** A promise's outcome held as a value, so work started early can be awaited later without an unhandled rejection. */
type TSettled<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };
const settled = <T>(promise: Promise<T>): Promise<TSettled<T>> =>
  promise.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
const unwrap = <T>(outcome: TSettled<T>): T => {
  if (!outcome.ok) throw outcome.error;
  return outcome.value;
};

export const localRestoreFactory = ({
  root,
  secrets,
  now,
  connections,
  onInstancesOf,
  recoverable,
  adminAccessOf,
  flushSessions,
  stopCopies,
}: Pick<
  TLocalContext,
  | "root"
  | "secrets"
  | "now"
  | "connections"
  | "onInstancesOf"
  | "recoverable"
  | "adminAccessOf"
  | "flushSessions"
  | "stopCopies"
>) => ({
  /** Stops a restored copy's cluster and removes its directory (data, filestore, marker). */
  removeCopy: async (organization: TOrganizationSpec, name: string): Promise<{ removed: boolean }> => {
    if (!/^[a-z0-9][a-z0-9-]{0,39}$/.test(name))
      throw new ValidationError(`${JSON.stringify(name)} is not a copy's name (lowercase letters, digits and hyphens)`);
    const restores = join(root, organization.metadata.name, "restores");
    if ((await stat(join(restores, name)).catch(() => undefined)) === undefined) return { removed: false };
    await stopCopies(restores, [name]);
    await rm(join(restores, name), { recursive: true, force: true });
    return { removed: true };
  },

  /**
   * Restores an environment to a point in time, in the documented order: secrets, PostgreSQL,
   * filestore, Redis (sessions flushed), application, ingress. Into a new copy under
   * <root>/<org>/restores/<name> (kept running for inspection), in place over a dedicated
   * environment, or, for a shared environment in place and for another declared environment,
   * database by database (local-restore-over.ts). Over an environment, the caller has taken the
   * safety backup and passed the change gate.
   */
  restore: (
    organization: TOrganizationSpec,
    environmentName: string,
    requested: TRestoreTarget,
    destination: TRestoreDestination,
    onStep: (step: TRestoreStep) => void = () => undefined,
  ): Promise<TRestoreOutcome> =>
    // The source's instance, and the one whose data a restore over another environment replaces.
    onInstancesOf(
      organization,
      destination.kind === "environment" ? [environmentName, destination.name] : [environmentName],
      async () => {
        const started = process.hrtime.bigint();
        const steps: TRestoreStep[] = [];
        const step = async <T>(
          name: TRestoreStep["step"],
          run: () => Promise<{ detail: string; value: T }>,
        ): Promise<T> => {
          const begun = process.hrtime.bigint();
          const { detail, value } = await run();
          const done = { step: name, detail, durationMs: elapsedMs(begun) };
          steps.push(done);
          onStep(done);
          return value;
        };
        const org = organization.metadata.name;
        const source = await step("secrets", async () => ({
          detail: "repository passphrases, cluster admin and CA read from the secret store",
          value: await recoverable(organization, environmentName),
        }));
        // Before anything is touched: a target the archive does not reach is refused now, not after a recovery that ends early.
        const { detail: archived, target } = await ensureTargetArchived(source, requested, now());
        const [repository] = source.filestoreRepositories;
        // When the instant is known up front (latest, a time), the filestore is fetched while
        // PostgreSQL restores, which shortens the RTO by the filestore's whole download; its step
        // still completes after PostgreSQL's, in the documented order. An LSN's instant is known only
        // once PostgreSQL has replayed to it.
        const fetchFilestore = (into: string) =>
          target.kind === "lsn" || repository === undefined
            ? undefined
            : settled(
                restoreFilestore(repository, environmentName, target.kind === "time" ? target.time : undefined, into),
              );
        const filestoreOf = async (
          fetching: Promise<TSettled<TFilestoreRestore>> | undefined,
          restoredUntil: () => Promise<Date | null | undefined>,
          into: string,
        ) =>
          fetching === undefined
            ? restoreFilestore(repository!, environmentName, (await restoredUntil()) ?? undefined, into)
            : unwrap(await fetching);
        if (destination.kind === "copy") {
          const name = destination.name;
          if (!/^[a-z0-9][a-z0-9-]{0,39}$/.test(name))
            throw new ValidationError(
              `--into ${JSON.stringify(name)} is not a name (lowercase letters, digits and hyphens)`,
            );
          const directory = join(root, org, "restores", name);
          if ((await stat(directory).catch(() => undefined)) !== undefined) {
            throw new ValidationError(
              `a restored copy named ${JSON.stringify(name)} already exists at ${directory}; choose another --into name`,
            );
          }
          await mkdir(directory, { recursive: true, mode: 0o711 });
          // Present until the copy is whole: a carehost killed midway leaves it, and the next reconcile removes the copy.
          await writeFile(
            join(directory, RESTORING_MARKER),
            JSON.stringify({ source: environmentName, target, startedAt: now() }),
          );
          const fetching = fetchFilestore(join(directory, "filestore"));
          try {
            const scratch = await step("postgresql", async () => {
              const cluster = await restoreToScratch(source, join(directory, "postgres"), target);
              return { detail: `${archived}; restored into a new cluster on port ${cluster.port}`, value: cluster };
            });
            const filestore = await step("filestore", async () => {
              if (repository === undefined) return { detail: "no repository", value: undefined };
              const restored = await filestoreOf(
                fetching,
                () => recoveredUntil(scratch, source),
                join(directory, "filestore"),
              );
              return {
                detail: `${restored.files} files from snapshot ${restored.snapshots.join(" + ")}${restored.excludedNewer > 0 ? `, ${restored.excludedNewer} newer than the target left out` : ""}`,
                value: restored,
              };
            });
            const database = databaseNameOf({ name: environmentName });
            let deidentified: TDeidentified | undefined;
            if (destination.deidentify !== undefined) {
              // Until the marker goes, the copy is half-made: nobody is told its port, and a killed
              // carehost's next reconcile removes it, PHI and all.
              const access = { cluster: scratch, adminPassword: source.adminPassword, caPem: source.caPem };
              const dropped = await keepOnlyDatabase(access, database);
              deidentified = await deidentifyScratch(
                access,
                database,
                repository === undefined ? undefined : join(directory, "filestore"),
                destination.deidentify,
                step,
              );
              await step("swap", async () => ({
                detail: `the verified copy announced${dropped.length === 0 ? "" : `; the cluster's other databases (${dropped.join(", ")}) dropped from it`}`,
                value: undefined,
              }));
            }
            await step("redis", async () => ({
              detail: "a copy gets no Redis: sessions are never restored",
              value: undefined,
            }));
            await step("application", async () => ({ detail: "not deployed on this runtime", value: undefined }));
            await step("ingress", async () => ({ detail: "not deployed on this runtime", value: undefined }));
            await rm(join(directory, RESTORING_MARKER), { force: true });
            return {
              directory,
              port: scratch.port,
              database,
              filestoreFiles: filestore?.files ?? 0,
              steps,
              durationMs: elapsedMs(started),
              ...(deidentified === undefined ? {} : { deidentified }),
            };
          } catch (error) {
            // Nothing half-made stays behind: the fetch is let finish, the copy's cluster stopped and its directory removed.
            await fetching;
            await stopCopies(join(root, org, "restores"), [name]);
            await rm(directory, { recursive: true, force: true });
            throw error;
          }
        }
        const environment = organization.environments.find((item) => item.name === environmentName)!;
        // A shared cluster restored physically would roll its neighbours back: only the one database moves.
        if (destination.kind === "environment" || environment.hosting !== "dedicated") {
          const intoName = destination.kind === "environment" ? destination.name : environmentName;
          const into = organization.environments.find((item) => item.name === intoName);
          if (into === undefined)
            throw new NotFoundError(`environment ${JSON.stringify(intoName)} is not part of organization ${org}`);
          const access = await adminAccessOf(organization, into);
          if ((await runningPid(access.cluster)) === undefined) {
            throw new ValidationError(
              `the PostgreSQL cluster "${access.cluster.name}" of ${JSON.stringify(into.name)} is not running; start it (carehost reconcile) before restoring into it`,
            );
          }
          // Short: the scratch cluster's Unix socket path must stay under 107 bytes. No copy name has a dot.
          const scratchDirectory = join(root, org, "restores", `${into.name}.into`);
          if ((await stat(scratchDirectory).catch(() => undefined)) !== undefined) {
            throw new ValidationError(
              `an interrupted restore into ${JSON.stringify(into.name)} is still to be cleaned up (${scratchDirectory}); run carehost reconcile first`,
            );
          }
          const { filestoreFiles, deidentified } = await restoreOver({
            source,
            sourceEnvironment: environmentName,
            into: {
              environment: into,
              access,
              tenant: await tenantOf(secrets, org, into),
              filestoreDirectory: filestoreDirectoryOf(root, org, into),
            },
            target,
            scratchDirectory,
            markerName: RESTORING_MARKER,
            ...(destination.kind === "environment" && destination.deidentify !== undefined
              ? { deidentify: destination.deidentify }
              : {}),
            step: (name, run) => step(name, run),
            flushSessions: (environment) => flushSessions(organization, environment),
            ...(into.backup.enabled
              ? {
                  snapshotRestoredFilestore: async () =>
                    snapshotFilestore(
                      (await recoverable(organization, into.name)).filestoreRepositories,
                      filestoreDirectoryOf(root, org, into),
                      { organization: org, environment: into.name },
                    ),
                }
              : {}),
            now,
          });
          return {
            directory: access.cluster.directory,
            port: access.cluster.port,
            database: databaseNameOf(into),
            filestoreFiles,
            steps,
            durationMs: elapsedMs(started),
            ...(deidentified === undefined ? {} : { deidentified }),
          };
        }
        const markerPath = join(source.cluster.directory, RESTORING_MARKER);
        await writeFile(markerPath, JSON.stringify({ source: environmentName, target, startedAt: now() }));
        await closeConnection({ connections }, `${org}/${source.cluster.name}`);
        const live = filestoreDirectoryOf(root, org, environment);
        const { incoming } = filestoreSwapNamesOf(live);
        await rm(incoming, { recursive: true, force: true });
        const fetching = fetchFilestore(incoming);
        await step("postgresql", async () => {
          await restoreInPlace(source, target).catch(async (error: unknown) => {
            await fetching;
            throw error;
          });
          return {
            detail: `${archived}; restored in place (port ${source.cluster.port}, new timeline)`,
            value: undefined,
          };
        });
        const restoredFiles = await step("filestore", async () => {
          if (repository === undefined) return { detail: "no repository", value: 0 };
          const restored = await filestoreOf(fetching, () => recoveredUntil(source.cluster, source), incoming);
          await swapInFilestore(live, incoming);
          // Snapshotted at once: the newest snapshot must be the restored filestore, or a drill, or a
          // later restore to a time after this one, would bring back the files this restore removed.
          await snapshotFilestore(source.filestoreRepositories, live, {
            organization: org,
            environment: environmentName,
          });
          return {
            detail: `${restored.files} files from snapshot ${restored.snapshots.join(" + ")}`,
            value: restored.files,
          };
        });
        await step("redis", async () => ({
          detail: await flushSessions(organization, environment),
          value: undefined,
        }));
        await step("application", async () => ({ detail: "not deployed on this runtime", value: undefined }));
        await step("ingress", async () => ({ detail: "not deployed on this runtime", value: undefined }));
        await rm(markerPath, { force: true });
        return {
          directory: source.cluster.directory,
          port: source.cluster.port,
          database: databaseNameOf(environment),
          filestoreFiles: restoredFiles,
          steps,
          durationMs: elapsedMs(started),
        };
      },
    ),
});
