// restic, for the Odoo filestore. Why restic: it is packaged by Debian and well kept, encrypts
// every repository (AES-256 with a key derived by scrypt from the passphrase), and deduplicates by
// content, so a filestore whose attachments never change is copied once and each later snapshot
// costs only the new files. Snapshots are tagged with the environment and, when taken with a
// database backup, with the backup run's id (pgBackRest annotates its backups with the same id),
// so the two can be paired. A repository is a directory, an S3 bucket (restic's own s3 backend),
// or an Azure container reached through rclone (rclone-azure.ts: Debian's restic 0.14 cannot
// address an Azure endpoint other than Azure's own). The passphrase and any storage key reach
// restic and rclone only through their environment, and are cut out of any error message.
import { DomainError } from "../lib/errors.js";
import { filestoreForgetArguments } from "../render/data-tier/data-tier-backup.js";
import { runCommand, RuntimeCommandError } from "../lib/runtime-command.js";
import type { TPipedCommand } from "../lib/runtime-command.js";

export type TResticRepository = {
  /** For messages: the repository's name in the spec and where it is (container, bucket, endpoint), never a secret. */
  readonly description: string;
  /** What restic calls the repository: a directory, s3:https://<host>[:<port>]/<bucket>/<path>, or rclone:<remote>:<container>/<path>. */
  readonly location: string;
  /** RESTIC_PASSWORD, and the rclone settings of a remote repository (RCLONE_CONFIG_<REMOTE>_*). */
  readonly env: Readonly<Record<string, string>>;
  /** restic's cache (index and tree blobs), so a snapshot does not re-read the repository. */
  readonly cacheDirectory: string;
  /** Global options before the command (a CA file, backend options such as -o s3.bucket-lookup=path); never a secret. */
  readonly flags?: readonly string[];
};

export type TFilestoreSnapshot = { readonly id: string; readonly time: Date; readonly tags: readonly string[] };
export type TFilestoreBackup = {
  readonly snapshotId: string;
  readonly files: number;
  readonly bytes: number;
  readonly bytesAdded: number;
  readonly filesNew: number;
};

/** restic on a repository, as a command to run or to pipe (runPipeline): the passphrase and keys in its environment only. */
export const resticCommand = (repository: TResticRepository, args: readonly string[]): TPipedCommand => ({
  file: "restic",
  args: [...(repository.flags ?? []), ...args],
  env: {
    ...repository.env,
    RESTIC_REPOSITORY: repository.location,
    RESTIC_CACHE_DIR: repository.cacheDirectory,
    RESTIC_PROGRESS_FPS: "0.2",
  },
});

export async function restic(
  repository: TResticRepository,
  args: readonly string[],
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<string> {
  try {
    const command = resticCommand(repository, args);
    const { stdout } = await runCommand(command.file, command.args, {
      env: command.env ?? {},
      timeoutMs: options.timeoutMs ?? 60 * 60_000,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    });
    return stdout;
  } catch (error) {
    const detail =
      error instanceof RuntimeCommandError ? error.message.replace(/^.*? failed /, "failed ") : String(error);
    throw new DomainError(
      `restic ${args[0] ?? ""} for ${repository.description} ${withoutSecrets(detail, repository.env)}`,
    );
  }
}

/** Passphrases and keys of the environment, replaced wherever a message repeats one (rclone prints its settings at debug level). */
export const withoutSecrets = (text: string, env: Readonly<Record<string, string>>) =>
  Object.entries(env)
    .filter(([name, value]) => /(PASSWORD|_KEY)$/.test(name) && value.length > 0)
    .reduce((redacted, [name, value]) => redacted.split(value).join(`[${name}]`), text);

/** Repositories this process has seen open with their passphrase: asking again costs a restic start per backup. */
const knownRepositories = new Set<string>();

/** Initializes the repository unless it exists (`cat config` reads it with the passphrase). */
export async function ensureResticRepository(repository: TResticRepository): Promise<boolean> {
  if (knownRepositories.has(repository.location)) return false;
  const exists = await restic(repository, ["cat", "config"]).then(
    () => true,
    () => false,
  );
  if (!exists) await restic(repository, ["init"]);
  knownRepositories.add(repository.location);
  return !exists;
}

/** Snapshots the contents of `directory` (stored relative to it, so a restore lands where it is asked to). */
export async function resticBackup(
  repository: TResticRepository,
  directory: string,
  input: { host: string; tags: readonly string[] },
): Promise<TFilestoreBackup> {
  const output = await restic(
    repository,
    ["backup", "--json", "--host", input.host, ...input.tags.flatMap((tag) => ["--tag", tag]), "."],
    { cwd: directory },
  );
  const summary = output
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map(
      (line) =>
        JSON.parse(line) as {
          message_type?: string;
          snapshot_id?: string;
          total_files_processed?: number;
          total_bytes_processed?: number;
          data_added?: number;
          files_new?: number;
        },
    )
    .find((message) => message.message_type === "summary");
  if (summary?.snapshot_id === undefined) throw new DomainError(`restic backup of ${directory} reported no snapshot`);
  return {
    snapshotId: summary.snapshot_id,
    files: summary.total_files_processed ?? 0,
    bytes: summary.total_bytes_processed ?? 0,
    bytesAdded: summary.data_added ?? 0,
    filesNew: summary.files_new ?? 0,
  };
}

export async function resticSnapshots(repository: TResticRepository, tag: string): Promise<TFilestoreSnapshot[]> {
  const listed = JSON.parse((await restic(repository, ["snapshots", "--json", "--tag", tag])) || "[]") as
    { id: string; time: string; tags?: string[] }[] | null;
  return (listed ?? [])
    .map((item) => ({ id: item.id, time: new Date(item.time), tags: item.tags ?? [] }))
    .toSorted((a, b) => a.time.getTime() - b.time.getTime());
}

/** Restores a snapshot into `target`, re-reading every restored file against the snapshot's hashes. */
export async function resticRestore(repository: TResticRepository, snapshotId: string, target: string): Promise<void> {
  await restic(repository, ["restore", snapshotId, "--target", target, "--verify"]);
}

/**
 * Removes the locks of restic processes that no longer run on this host (a restic killed with
 * carehost): restic 0.14 leaves them, and they block forget and check for good. `unlock` without
 * --remove-all never touches the lock of a process that is still alive.
 */
const removeStaleLocks = (repository: TResticRepository) => restic(repository, ["unlock"]);

/** Removes the snapshots of one tag no tier keeps, and the data only they referenced. */
export async function resticForget(
  repository: TResticRepository,
  tag: string,
  keep: { withinDays: number; weekly: number; monthly: number },
): Promise<string[]> {
  await removeStaleLocks(repository);
  const output = await restic(repository, [
    "forget",
    "--json",
    "--prune",
    "--tag",
    tag,
    "--group-by",
    "",
    ...filestoreForgetArguments({ daily: keep.withinDays, weekly: keep.weekly, monthly: keep.monthly }),
  ]);
  const groups = JSON.parse(output.split("\n").find((line) => line.startsWith("[")) ?? "[]") as {
    remove?: { id: string }[] | null;
  }[];
  return groups.flatMap((group) => (group.remove ?? []).map((snapshot) => snapshot.id));
}

/** Checks the repository's structure and, with `readData`, re-reads and re-hashes every pack. */
export async function resticCheck(
  repository: TResticRepository,
  readData = true,
): Promise<{ ok: boolean; output: string }> {
  try {
    await removeStaleLocks(repository);
    return { ok: true, output: await restic(repository, ["check", ...(readData ? ["--read-data"] : [])]) };
  } catch (error) {
    return { ok: false, output: error instanceof Error ? error.message : String(error) };
  }
}

/** Regular files in a snapshot (what a restore of it must produce). */
export async function resticFileCount(repository: TResticRepository, snapshotId: string): Promise<number> {
  const lines = (await restic(repository, ["ls", "--json", snapshotId]))
    .split("\n")
    .filter((line) => line.startsWith("{"));
  return lines.filter((line) => (JSON.parse(line) as { struct_type?: string; type?: string }).type === "file").length;
}
