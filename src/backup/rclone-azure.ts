// rclone's view of an Azure Blob repository, as environment variables for an on-the-fly remote
// (`:azureblob:<container>`): no rclone.conf on disk, so the shared key is only ever in the
// environment of the process that needs it. restic reaches Azure through rclone (restic 0.14 in
// Debian cannot address a custom endpoint such as Azurite's), and carehost creates a repository's
// container with it before pgBackRest's stanza-create (pgBackRest does not create containers).
import { runCommand } from "../runtime/local/runtime-command.js";
import type { TAzureRepository } from "./pgbackrest-config.js";

export const rcloneAzureRemote = (repository: TAzureRepository, key: string): { remote: string; env: Record<string, string> } => ({
  remote: `:azureblob:${repository.container}`,
  env: {
    RCLONE_AZUREBLOB_ACCOUNT: repository.account,
    RCLONE_AZUREBLOB_KEY: key,
    ...(repository.endpoint === undefined
      ? {}
      : { RCLONE_AZUREBLOB_ENDPOINT: `https://${repository.endpoint.host}:${repository.endpoint.port}${repository.endpoint.pathStyle ? `/${repository.account}` : ""}` }),
    ...(repository.caFile === undefined ? {} : { RCLONE_CA_CERT: repository.caFile }),
    // No config file is read or written: every setting is above.
    RCLONE_CONFIG: "/dev/null",
  },
});

/** Creates the repository's container when it does not exist (rclone mkdir is idempotent). */
export async function ensureAzureContainer(repository: TAzureRepository, key: string): Promise<void> {
  const { remote, env } = rcloneAzureRemote(repository, key);
  await runCommand("rclone", ["mkdir", remote], { env, timeoutMs: 120_000 });
}
