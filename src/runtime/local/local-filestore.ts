// The Odoo filestore of the local runtime (<odoo data_dir>/filestore/<database>) in restic
// repositories beside pgBackRest's: a directory `filestore` inside each posix repository, and a
// `<organization>/filestore` prefix in each S3 bucket. Same passphrase as the repository's
// pgBackRest data, one restic repository per organization and repository, snapshots tagged per
// environment. Azure repositories hold the database only for now: Debian's restic 0.14 cannot
// address an Azure endpoint other than Azure's own.
//
// A point-in-time restore pairs the filestore with the database. Odoo writes an attachment's file
// once, under a name derived from its content, and never rewrites it, so the filestore as it was at
// T is: the files of the first snapshot taken after T whose modification time is at or before T,
// plus those of the last snapshot taken before T that a later garbage collection removed.
import { mkdir, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { ensureResticRepository, resticBackup, resticRestore, resticSnapshots } from "../../backup/restic-command.js";
import type { TFilestoreBackup, TFilestoreSnapshot, TResticRepository } from "../../backup/restic-command.js";
import { NotFoundError } from "../../lib/errors.js";
import type { TEnvironmentSpec } from "../../spec/spec-schema.js";
import type { TRepositoryOf, TRepositoryType } from "../../backup/pgbackrest-config.js";
import type { TClusterBackup, TResolvedRepository } from "./local-backup-config.js";
import { databaseNameOf, odooDirectory } from "./local-placement.js";

export const filestoreDirectoryOf = (root: string, organization: string, environment: Pick<TEnvironmentSpec, "name">) =>
  join(odooDirectory(root, organization, environment.name), "data", "filestore", databaseNameOf(environment));

const EMPTY_MARKER = ".carehost-empty";

export const filestoreTag = (environment: string) => `env:${environment}`;
export const backupLabelTag = (label: string) => `pgbackrest:${label}`;

type TFilestoreLocationOf<K extends TRepositoryType> = (item: TResolvedRepository & { readonly repository: TRepositoryOf<K> }) => Omit<TResticRepository, "cacheDirectory"> | undefined;

/**
 * restic's s3 backend, beside pgBackRest's files under the organization's prefix: the same bucket,
 * endpoint, URI style and CA. The access key reaches restic only through its environment.
 */
const s3Filestore: TFilestoreLocationOf<"s3"> = ({ repository, cipherPass, s3Key }) => {
  if (s3Key === undefined) return undefined;
  const { host, port, pathStyle } = repository.endpoint;
  return {
    location: `s3:https://${port === 443 ? host : `${host}:${port}`}/${repository.bucket}${repository.path}/filestore`,
    env: { RESTIC_PASSWORD: cipherPass, AWS_ACCESS_KEY_ID: s3Key.accessKeyId, AWS_SECRET_ACCESS_KEY: s3Key.secretAccessKey, AWS_DEFAULT_REGION: repository.region },
    flags: [...(pathStyle ? ["-o", "s3.bucket-lookup=path"] : []), ...(repository.caFile === undefined ? [] : ["--cacert", repository.caFile])],
  };
};

/** Where each type of repository keeps the filestore's restic repository (undefined: it keeps none). */
const filestoreLocations: { readonly [K in TRepositoryType]: TFilestoreLocationOf<K> } = {
  posix: ({ repository, cipherPass }) => ({ location: join(repository.path, "filestore"), env: { RESTIC_PASSWORD: cipherPass } }),
  // Debian's restic 0.14 cannot address an Azure endpoint other than Azure's own.
  azure: () => undefined,
  s3: s3Filestore,
};

/** The restic repositories of the filestore, one in each repository pgBackRest writes to that holds one, in the same order. */
export function filestoreRepositoriesOf(backup: TClusterBackup, cacheDirectory: string): TResticRepository[] {
  return backup.repositories.flatMap((item) => {
    const filestore = (filestoreLocations[item.repository.type] as TFilestoreLocationOf<TRepositoryType>)(item);
    return filestore === undefined ? [] : [{ ...filestore, cacheDirectory }];
  });
}

/** Snapshots the environment's filestore into every repository; returns the first repository's summary. */
export async function snapshotFilestore(
  repositories: readonly TResticRepository[],
  directory: string,
  input: { organization: string; environment: string; backupLabel?: string },
): Promise<TFilestoreBackup> {
  // An environment without attachments yet still gets a snapshot: "empty" is a state to restore,
  // and restic refuses an empty snapshot, so an empty filestore holds this one marker file.
  await mkdir(directory, { recursive: true, mode: 0o750 });
  if ((await readdir(directory)).length === 0) await writeFile(join(directory, EMPTY_MARKER), "carehost: this filestore held no attachment when it was first backed up\n");
  const tags = [filestoreTag(input.environment), ...(input.backupLabel === undefined ? [] : [backupLabelTag(input.backupLabel)])];
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

export type TFilestoreRestore = { readonly snapshots: readonly string[]; readonly files: number; readonly excludedNewer: number };

/**
 * Restores the environment's filestore as it was at `at` (undefined: the newest snapshot) into
 * `destination`, which must not exist yet. Every restored file is verified against its snapshot.
 */
export async function restoreFilestore(repository: TResticRepository, environment: string, at: Date | undefined, destination: string): Promise<TFilestoreRestore> {
  const snapshots = await resticSnapshots(repository, filestoreTag(environment));
  if (snapshots.length === 0) throw new NotFoundError(`the repository holds no filestore snapshot of environment ${JSON.stringify(environment)}`);
  await mkdir(destination, { recursive: true, mode: 0o750 });
  if (at === undefined) {
    const newest = snapshots.at(-1)!;
    await resticRestore(repository, newest.id, destination);
    return { snapshots: [newest.id], files: (await filesBelow(destination)).length, excludedNewer: 0 };
  }
  const before = snapshots.filter((snapshot) => snapshot.time <= at).at(-1);
  const after = snapshots.find((snapshot) => snapshot.time > at);
  const used = [after, before].filter((snapshot): snapshot is TFilestoreSnapshot => snapshot !== undefined);
  if (before === undefined && after === undefined) throw new NotFoundError(`no filestore snapshot of ${JSON.stringify(environment)} can restore ${at.toISOString()}`);
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
        if (await stat(target).then(() => true, () => false)) continue;
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
