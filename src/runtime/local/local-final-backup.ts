// The final backup of an environment before its removal: a pg_dump of its database, encrypted
// like the filestore's backups (restic: AES-256, a key derived by scrypt from the passphrase), in
// one restic repository per organization under <data dir>/final-backups. The dump streams from
// pg_dump into restic, so the PHI it holds is never on disk unencrypted, and is then read back
// through pg_restore --list and compared with what was written before anything is dropped.
//
// Its passphrase is a secret of its own, `backup/<org>/final-backups-cipher`, made by carehost like
// the repositories' passphrases: an environment without backups has a final dump too, and a dump
// must stay readable after the repositories it was backed up to have left the spec. To read one
// on a host with the passphrase: RESTIC_PASSWORD=… restic -r <dir> dump <snapshot> /<env>.dump.
import { createHash } from "node:crypto";
import { join } from "node:path";
import { DomainError } from "../../lib/errors.js";
import { ensureResticRepository, resticCommand, withoutSecrets } from "../../backup/restic-command.js";
import type { TResticRepository } from "../../backup/restic-command.js";
import { RuntimeCommandError, runPipeline } from "../../lib/runtime-command.js";
import type { TPipedCommand } from "../../lib/runtime-command.js";
import type { TFinalBackup } from "../runtime-types.js";

export const finalBackupSecretName = (organization: string) => `backup/${organization}/final-backups-cipher`;

export const finalBackupRepositoryOf = (
  directory: string,
  organization: string,
  passphrase: string,
  cacheDirectory: string,
): TResticRepository => ({
  description: `final backups of ${organization}`,
  location: join(directory, organization),
  env: { RESTIC_PASSWORD: passphrase },
  cacheDirectory,
});

/** The dump's name inside its snapshot. */
export const finalDumpFileOf = (environment: string) => `${environment}.dump`;

const DUMP_TIMEOUT_MS = 6 * 60 * 60_000;

/** The bytes and SHA-256 of what flows through a pipeline. */
const measuring = () => {
  const hash = createHash("sha256");
  let bytes = 0;
  return {
    observe: (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
    },
    result: () => ({ bytes, sha256: hash.digest("hex") }),
  };
};

/** A failed command of the pipeline, its message without the repository's passphrase. */
const redacted = (repository: TResticRepository) => (error: unknown) => {
  if (error instanceof RuntimeCommandError)
    throw new DomainError(`final backup into ${repository.location}: ${withoutSecrets(error.message, repository.env)}`);
  throw error;
};

/**
 * Streams `dump` (pg_dump -Fc to its stdout) into a new snapshot of the repository, then reads the
 * snapshot back through `list` (pg_restore --list on its stdin): the same bytes, and a dump
 * pg_restore can read. Throws when either is not so; nothing is removed then.
 */
export async function takeFinalBackup(input: {
  readonly repository: TResticRepository;
  readonly environment: string;
  readonly dump: TPipedCommand;
  readonly list: TPipedCommand;
}): Promise<TFinalBackup> {
  const { repository, environment } = input;
  await ensureResticRepository(repository);
  const written = measuring();
  const backup = await runPipeline(
    input.dump,
    resticCommand(repository, [
      "backup",
      "--json",
      "--stdin",
      "--stdin-filename",
      finalDumpFileOf(environment),
      "--tag",
      `carehost-final:${environment}`,
    ]),
    { timeoutMs: DUMP_TIMEOUT_MS, observe: written.observe },
  ).catch(redacted(repository));
  const summary = backup.stdout
    .split("\n")
    .map((line) =>
      line.trim().startsWith("{") ? (JSON.parse(line) as { message_type?: string; snapshot_id?: string }) : {},
    )
    .find((line) => line.message_type === "summary");
  if (summary?.snapshot_id === undefined)
    throw new DomainError(`final backup into ${repository.location}: restic reported no snapshot`);
  const { bytes, sha256 } = written.result();
  const read = measuring();
  await runPipeline(
    resticCommand(repository, ["dump", summary.snapshot_id, `/${finalDumpFileOf(environment)}`]),
    input.list,
    {
      timeoutMs: DUMP_TIMEOUT_MS,
      observe: read.observe,
    },
  ).catch(redacted(repository));
  const readBack = read.result();
  if (readBack.bytes !== bytes || readBack.sha256 !== sha256)
    throw new DomainError(
      `final backup into ${repository.location}: snapshot ${summary.snapshot_id} reads back ${readBack.bytes} bytes (SHA-256 ${readBack.sha256}), not the ${bytes} written (${sha256})`,
    );
  return { path: repository.location, snapshotId: summary.snapshot_id, bytes, sha256 };
}
