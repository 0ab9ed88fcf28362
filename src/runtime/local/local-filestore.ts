// The Odoo filestore of the local runtime (<odoo data_dir>/filestore/<database>) in restic
// repositories beside pgBackRest's, in every repository the environment declares, so each one
// restores database and filestore on its own: a directory `filestore/<stanza>` inside a posix
// repository, a `<organization>/filestore/<stanza>` prefix in an S3 bucket (restic's s3 backend)
// or beside pgBackRest's path in an Azure container (through rclone, see rclone-azure.ts). One
// restic repository per cluster and repository, under the passphrase of the cluster's pgBackRest
// stanza in that repository, snapshots tagged per environment.
//
// A point-in-time restore pairs the filestore with the database. Odoo writes an attachment's file
// once, under a name derived from its content, and never rewrites it, so the filestore as it was at
// T is: the files of the first snapshot taken after T whose modification time is at or before T,
// plus those of the last snapshot taken before T that a later garbage collection removed.
import { mkdir, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { ensureResticRepository, resticBackup, resticRestore, resticSnapshots } from "../../backup/restic-command.js";
import type { TFilestoreBackup, TFilestoreSnapshot, TResticRepository } from "../../backup/restic-command.js";
import { azureEndpointUrl, resticAzureLocation } from "../../backup/rclone-azure.js";
import { DomainError, NotFoundError } from "../../lib/errors.js";
import type { TEnvironmentSpec } from "../../spec/spec-schema.js";
import type { TRepositoryOf, TRepositoryType } from "../../backup/pgbackrest-config.js";
import type { TClusterBackup, TResolvedRepository } from "./local-backup-config.js";
import { databaseNameOf, odooDirectory } from "./local-placement.js";

export const filestoreDirectoryOf = (root: string, organization: string, environment: Pick<TEnvironmentSpec, "name">) =>
  join(odooDirectory(root, organization, environment.name), "data", "filestore", databaseNameOf(environment));

const EMPTY_MARKER = ".carehost-empty";

export const filestoreTag = (environment: string) => `env:${environment}`;
/** The tag pairing a snapshot with the pgBackRest backups of the same run (their carehost-run annotation). */
export const backupRunTag = (runId: string) => `carehost-run:${runId}`;

type TFilestoreLocationOf<K extends TRepositoryType> = (
  item: TResolvedRepository & { readonly repository: TRepositoryOf<K> },
  path: string,
) => Omit<TResticRepository, "cacheDirectory">;

/** An access key the repository was resolved without (it is then skipped, so this means a bug, named). */
const missingKey = (description: string): never => {
  throw new DomainError(`${description} has no access key to write the filestore with`);
};

/** Where each type of repository keeps the filestore's restic repository, and what restic (and rclone) need to reach it. */
const filestoreLocations: { readonly [K in TRepositoryType]: TFilestoreLocationOf<K> } = {
  posix: ({ repository, cipherPass }, path) => {
    const location = join(repository.path, path);
    return {
      description: `repository ${JSON.stringify(repository.name)} (${location})`,
      location,
      env: { RESTIC_PASSWORD: cipherPass },
    };
  },
  azure: ({ repository, cipherPass, azureKey }, path) => {
    const description = `Azure repository ${JSON.stringify(repository.name)} (container ${repository.container}, prefix ${repository.path}/${path}, at ${azureEndpointUrl(repository)})`;
    const { location, env } = resticAzureLocation(repository, azureKey ?? missingKey(description), path);
    return { description, location, env: { ...env, RESTIC_PASSWORD: cipherPass } };
  },
  // restic's s3 backend, beside pgBackRest's files under the organization's prefix: the same
  // bucket, endpoint, URI style and CA. The access key reaches restic only through its environment.
  s3: ({ repository, cipherPass, s3Key }, path) => {
    const { host, port, pathStyle } = repository.endpoint;
    const location = `s3:https://${port === 443 ? host : `${host}:${port}`}/${repository.bucket}${repository.path}/${path}`;
    const description = `S3 repository ${JSON.stringify(repository.name)} (${location.slice("s3:".length)})`;
    const key = s3Key ?? missingKey(description);
    return {
      description,
      location,
      env: {
        RESTIC_PASSWORD: cipherPass,
        AWS_ACCESS_KEY_ID: key.accessKeyId,
        AWS_SECRET_ACCESS_KEY: key.secretAccessKey,
        AWS_DEFAULT_REGION: repository.region,
      },
      flags: [
        ...(pathStyle ? ["-o", "s3.bucket-lookup=path"] : []),
        ...(repository.caFile === undefined ? [] : ["--cacert", repository.caFile]),
      ],
    };
  },
};

/** restic's cache (index and tree blobs) for every repository, under the carehost data dir. */
export const resticCacheDirectoryOf = (home: string): string => join(home, "cache", "restic");

/** The restic repository beside every repository pgBackRest writes to, in the same order, under the same passphrase. */
export function filestoreRepositoriesOf(
  backup: Pick<TClusterBackup, "repositories" | "filestorePath">,
  cacheDirectory: string,
): TResticRepository[] {
  return backup.repositories.map((item) => {
    // One cast: TypeScript cannot relate `filestoreLocations[type]` to the member of the union it was picked by.
    const locationOf = filestoreLocations[item.repository.type] as TFilestoreLocationOf<TRepositoryType>;
    return { ...locationOf(item, backup.filestorePath), cacheDirectory };
  });
}

/** Snapshots the environment's filestore into every repository; returns the first repository's summary. */
export async function snapshotFilestore(
  repositories: readonly TResticRepository[],
  directory: string,
  input: { organization: string; environment: string; backupRunId?: string },
): Promise<TFilestoreBackup> {
  // An environment without attachments yet still gets a snapshot: "empty" is a state to restore,
  // and restic refuses an empty snapshot, so an empty filestore holds this one marker file.
  await mkdir(directory, { recursive: true, mode: 0o750 });
  if ((await readdir(directory)).length === 0)
    await writeFile(
      join(directory, EMPTY_MARKER),
      "carehost: this filestore held no attachment when it was first backed up\n",
    );
  const tags = [
    filestoreTag(input.environment),
    ...(input.backupRunId === undefined ? [] : [backupRunTag(input.backupRunId)]),
  ];
  const results: TFilestoreBackup[] = [];
  for (const repository of repositories) {
    await ensureResticRepository(repository);
    results.push(await resticBackup(repository, directory, { host: input.organization, tags }));
  }
  if (results[0] === undefined) throw new NotFoundError("no repository to snapshot the filestore into");
  return results[0];
}

/**
 * The newest modification time below a directory, of files and directories alike: adding a file
 * changes it, and so does removing one (its directory's mtime moves). Undefined when empty.
 */
export async function newestChange(directory: string): Promise<Date | undefined> {
  let newest = 0;
  const walk = async (path: string): Promise<void> => {
    for (const entry of await readdir(path, { withFileTypes: true }).catch(() => [])) {
      const child = join(path, entry.name);
      newest = Math.max(newest, (await stat(child)).mtimeMs);
      if (entry.isDirectory()) await walk(child);
    }
  };
  const own = await stat(directory).catch(() => undefined);
  if (own === undefined) return undefined;
  newest = own.mtimeMs;
  await walk(directory);
  return new Date(newest);
}

async function filesBelow(directory: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (path: string): Promise<void> => {
    for (const entry of await readdir(path, { withFileTypes: true })) {
      const child = join(path, entry.name);
      if (entry.isDirectory()) await walk(child);
      else found.push(relative(directory, child));
    }
  };
  await walk(directory);
  return found;
}

/** Beside the live filestore while a restore replaces it: the restored one coming in, the live one set aside. */
export const filestoreSwapNamesOf = (live: string) => ({ incoming: `${live}.restored`, outgoing: `${live}.replaced` });

/** Puts a restored filestore in place of the live one: the live one is set aside until the new one has its name. */
export async function swapInFilestore(live: string, incoming: string): Promise<void> {
  const { outgoing } = filestoreSwapNamesOf(live);
  await rm(outgoing, { recursive: true, force: true });
  await mkdir(dirname(live), { recursive: true, mode: 0o750 });
  if (
    await stat(live).then(
      () => true,
      () => false,
    )
  )
    await rename(live, outgoing);
  await rename(incoming, live);
  await rm(outgoing, { recursive: true, force: true });
}

export type TFilestoreRestore = {
  readonly snapshots: readonly string[];
  readonly files: number;
  readonly excludedNewer: number;
};

/**
 * Restores the environment's filestore as it was at `at` (undefined: the newest snapshot) into
 * `destination`, which must not exist yet. Every restored file is verified against its snapshot.
 */
export async function restoreFilestore(
  repository: TResticRepository,
  environment: string,
  at: Date | undefined,
  destination: string,
): Promise<TFilestoreRestore> {
  const snapshots = await resticSnapshots(repository, filestoreTag(environment));
  if (snapshots.length === 0)
    throw new NotFoundError(
      `${repository.description} holds no filestore snapshot of environment ${JSON.stringify(environment)}`,
    );
  await mkdir(destination, { recursive: true, mode: 0o750 });
  if (at === undefined) {
    const newest = snapshots.at(-1)!;
    await resticRestore(repository, newest.id, destination);
    return { snapshots: [newest.id], files: (await filesBelow(destination)).length, excludedNewer: 0 };
  }
  const before = snapshots.filter((snapshot) => snapshot.time <= at).at(-1);
  const after = snapshots.find((snapshot) => snapshot.time > at);
  const used = [after, before].filter((snapshot): snapshot is TFilestoreSnapshot => snapshot !== undefined);
  if (before === undefined && after === undefined)
    throw new NotFoundError(
      `no filestore snapshot of ${JSON.stringify(environment)} in ${repository.description} can restore ${at.toISOString()}`,
    );
  const staging = `${destination}.staging`;
  await rm(staging, { recursive: true, force: true });
  let files = 0;
  let excludedNewer = 0;
  try {
    for (const [index, snapshot] of used.entries()) {
      const directory = join(staging, String(index));
      await resticRestore(repository, snapshot.id, directory);
      for (const path of await filesBelow(directory)) {
        const source = join(directory, path);
        if ((await stat(source)).mtimeMs > at.getTime()) {
          excludedNewer += 1;
          continue;
        }
        const target = join(destination, path);
        if (
          await stat(target).then(
            () => true,
            () => false,
          )
        )
          continue;
        await mkdir(dirname(target), { recursive: true, mode: 0o750 });
        await rename(source, target);
        files += 1;
      }
    }
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return { snapshots: used.map((snapshot) => snapshot.id), files, excludedNewer };
}
