// What pgBackRest needs for one cluster of the local runtime: its stanza, repositories (posix on
// this host, Azure Blob containers), passphrases and keys from the secret store, and the archive
// settings derived from the strictest RPO of the environments in the cluster. A repository this
// runtime cannot write to (S3 for now, an Azure one whose key was never stored, or whose endpoint
// rclone cannot reach for the filestore) is reported as skipped, never silently dropped: every
// repository written holds both the database and the filestore.
import { chown, mkdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { archiveSettings, azureKeyVariable, cipherPassVariable, renderPgbackrestConf } from "../../backup/pgbackrest-config.js";
import type { TAzureRepository, TBackupRepository } from "../../backup/pgbackrest-config.js";
import { rcloneAzureLimitation } from "../../backup/rclone-azure.js";
import type { TStanzaAccess } from "../../backup/pgbackrest-command.js";
import { generatePassword } from "../../secrets/secrets-generate.js";
import type { TBackupRepositorySpec, TEnvironmentSpec } from "../../spec/spec-schema.js";
import type { TClusterPlacement } from "./local-placement.js";
import { secretNames } from "./local-placement.js";
import { CLUSTER_ADMIN_ROLE, dataDirectoryOf } from "./postgres-cluster.js";
import type { TPostgresCluster } from "./postgres-cluster.js";
import type { TRuntimeSecrets } from "./runtime-ca.js";

export type TClusterBackup = {
  readonly access: TStanzaAccess;
  readonly confText: string;
  readonly archive: Record<string, string>;
  readonly socketDirectory: string;
  readonly workDirectory: string;
  /** The repositories written, in pgBackRest's order (repo1, repo2, …), with their secrets. */
  readonly repositories: readonly TResolvedRepository[];
  /** Directories of the posix repositories (created and owned by the cluster's account). */
  readonly repositoryPaths: readonly string[];
  /** Repositories of the spec this runtime does not write to, with why. */
  readonly skipped: readonly string[];
};

export type TResolvedRepository = { readonly repository: TBackupRepository; readonly cipherPass: string; readonly azureKey?: string };

type TBackedUpEnvironment = TEnvironmentSpec & { backup: Extract<TEnvironmentSpec["backup"], { enabled: true }> };
const backedUp = (environment: TEnvironmentSpec): environment is TBackedUpEnvironment => environment.backup.enabled;

export const socketDirectoryOf = (cluster: Pick<TPostgresCluster, "directory">) => join(cluster.directory, "run");
const backupWorkDirectoryOf = (cluster: Pick<TPostgresCluster, "directory">) => join(cluster.directory, "pgbackrest");
export const pgbackrestConfigPathOf = (cluster: Pick<TPostgresCluster, "directory">) => join(backupWorkDirectoryOf(cluster), "pgbackrest.conf");

export async function clusterBackupOf(input: {
  readonly organization: string;
  readonly home: string;
  readonly placement: TClusterPlacement;
  readonly cluster: TPostgresCluster;
  readonly repositories: readonly TBackupRepositorySpec[];
  readonly secrets: TRuntimeSecrets;
  readonly createSecrets: boolean;
}): Promise<TClusterBackup | undefined> {
  const environments = input.placement.environments.filter(backedUp);
  if (environments.length === 0) return undefined;
  const names = [...new Set(environments.flatMap((environment) => environment.backup.repositories))].sort();
  const declared = names.map((name) => input.repositories.find((repository) => repository.name === name)).filter((repository) => repository !== undefined);
  const skipped: string[] = [];
  const resolved: TResolvedRepository[] = [];
  for (const spec of declared) {
    const repository = await resolveRepository(spec, input);
    if (typeof repository === "string") skipped.push(`${spec.name} (${spec.type}): ${repository}`);
    else resolved.push(repository);
  }
  if (resolved.length === 0) return undefined;
  const env: Record<string, string> = { PGPASSWORD: await input.secrets.current(secretNames.clusterAdmin(input.organization, input.cluster.name)) };
  resolved.forEach((item, index) => {
    env[cipherPassVariable(index)] = item.cipherPass;
    if (item.azureKey !== undefined) env[azureKeyVariable(index)] = item.azureKey;
  });
  const repositories = resolved.map((item) => item.repository);
  const stanza = input.cluster.name;
  const workDirectory = backupWorkDirectoryOf(input.cluster);
  const configPath = pgbackrestConfigPathOf(input.cluster);
  const socketDirectory = socketDirectoryOf(input.cluster);
  const { text } = renderPgbackrestConf({
    stanza,
    dataDirectory: dataDirectoryOf(input.cluster),
    port: input.cluster.port,
    socketDirectory,
    adminUser: CLUSTER_ADMIN_ROLE,
    workDirectory,
    repositories,
  });
  const rpoMinutes = Math.min(...environments.map((environment) => environment.backup.rpoMinutes));
  return {
    access: { stanza, configPath, owner: input.cluster.owner, env },
    confText: text,
    archive: archiveSettings({ configPath, stanza, rpoMinutes }),
    socketDirectory,
    workDirectory,
    repositories: resolved,
    repositoryPaths: repositories.flatMap((repository) => (repository.type === "posix" ? [repository.path] : [])),
    skipped,
  };
}

/** Secret names of a repository: its passphrase (carehost makes it) and its access key (you bring it). */
export const repositorySecretNames = (organization: string, repository: TBackupRepositorySpec) => ({
  cipher: `backup/${organization}/${repository.cipherSecretRef ?? `${repository.name}-cipher`}`,
  key: repository.type === "posix" ? undefined : `backup/${organization}/${repository.keySecretRef}`,
});

/** An Azure endpoint of the spec as pgBackRest addresses it: host, port, and path-style URIs when the account is in the path (Azurite). */
export const azureEndpointOf = (endpoint: string, account: string) => {
  const url = new URL(endpoint);
  return { host: url.hostname, port: url.port === "" ? 443 : Number(url.port), pathStyle: url.pathname.split("/").filter(Boolean)[0] === account };
};

async function resolveRepository(
  spec: TBackupRepositorySpec,
  input: { readonly organization: string; readonly home: string; readonly secrets: TRuntimeSecrets; readonly createSecrets: boolean },
): Promise<TResolvedRepository | string> {
  const names = repositorySecretNames(input.organization, spec);
  if (spec.type === "s3") return "not written by the local runtime yet";
  let azureKey: string | undefined;
  if (names.key !== undefined) {
    azureKey = await input.secrets.current(names.key).catch(() => undefined);
    if (azureKey === undefined) return `its key ${JSON.stringify(names.key)} is not in the secret store; add it with: carehost secrets set ${names.key}`;
  }
  // pgBackRest cannot re-key a repository: this passphrase is created once and never rotated in place.
  if (input.createSecrets) await input.secrets.ensure(names.cipher, () => generatePassword(32));
  const cipherPass = await input.secrets.current(names.cipher).catch(() => undefined);
  if (cipherPass === undefined) return `its passphrase ${JSON.stringify(names.cipher)} does not exist yet; run carehost apply`;
  if (spec.type === "posix") return { repository: { name: spec.name, type: "posix", path: resolve(input.home, spec.path, input.organization) }, cipherPass };
  const repository: TAzureRepository = {
    name: spec.name,
    type: "azure",
    account: spec.account,
    container: spec.container,
    path: `/${input.organization}`,
    ...(spec.endpoint === undefined ? {} : { endpoint: azureEndpointOf(spec.endpoint, spec.account) }),
    ...(spec.caFile === undefined ? {} : { caFile: resolve(input.home, spec.caFile) }),
  };
  // A repository without the filestore would not restore on its own: it is skipped whole, and says why.
  const limitation = rcloneAzureLimitation(repository);
  if (limitation !== undefined) return `container ${spec.container}: ${limitation}`;
  return { repository, cipherPass, ...(azureKey === undefined ? {} : { azureKey }) };
}

/** Creates the directories pgBackRest writes, owned by the cluster's account (parents traversable only). */
export async function prepareBackupDirectories(backup: TClusterBackup, owner: TPostgresCluster["owner"]): Promise<void> {
  for (const directory of [backup.workDirectory, join(backup.workDirectory, "log"), backup.socketDirectory, ...backup.repositoryPaths]) {
    await mkdir(dirname(directory), { recursive: true, mode: 0o711 });
    await mkdir(directory, { recursive: true, mode: 0o700 });
    if (owner !== undefined) await chown(directory, owner.uid, owner.gid);
  }
}
