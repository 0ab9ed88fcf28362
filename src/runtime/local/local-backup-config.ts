// What pgBackRest needs for one cluster of the local runtime: its stanza, repositories (posix on
// this host, Azure Blob containers, S3 buckets), passphrases and keys from the secret store, and
// the archive settings derived from the strictest RPO of the environments in the cluster. A
// repository whose key was never stored, or that cannot be written whole (an Azure endpoint
// rclone cannot reach for the filestore), is reported as skipped, never silently dropped: every
// repository written holds both the database and the filestore. A key of the wrong shape is an
// error naming the secret.
import { chown, lstat, mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { ensureAzureContainer } from "../../backup/azure-container.js";
import { clusterPassphrase } from "../../backup/backup-passphrase.js";
import {
  archiveSettings,
  azureKeyVariable,
  cipherPassVariable,
  renderPgbackrestConf,
  s3KeySecretVariable,
  s3KeyVariable,
} from "../../backup/pgbackrest-config.js";
import type { TBackupRepository, TRepositoryOf, TRepositoryType } from "../../backup/pgbackrest-config.js";
import { rcloneAzureLimitation } from "../../backup/rclone-azure.js";
import type { TStanzaAccess } from "../../backup/pgbackrest-command.js";
import type { TSkippedRepository } from "../../backup/recovery-driver.js";
import { ensureS3Bucket, s3CredentialsFrom } from "../../backup/s3-bucket.js";
import type { TS3Credentials } from "../../backup/s3-bucket.js";
import { ValidationError } from "../../lib/errors.js";
import { azureEndpointOf, combinedTiers, s3EndpointOf } from "../../render/data-tier/data-tier-backup.js";
import { generatePassword } from "../../secrets/secrets-generate.js";
import type { TBackupRepositorySpec, TEnvironmentSpec } from "../../spec/spec-schema.js";
import { assertRepositoriesConfined, caFilePathOf, posixRepositoryPathOf } from "./local-confinement.js";
import type { TClusterPlacement } from "./local-placement.js";
import { secretNames } from "./local-placement.js";
import { CLUSTER_ADMIN_ROLE, dataDirectoryOf } from "./postgres-cluster.js";
import type { TPostgresCluster } from "./postgres-cluster.js";
import type { TRuntimeSecrets } from "./runtime-ca.js";
import { readInstanceRecord } from "./runtime-instance.js";

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
  readonly skipped: readonly TSkippedRepository[];
  /** Where in each repository the filestore's restic repository is: `filestore/<stanza>` (`filestore`, shared, for a cluster from before per-cluster passphrases). */
  readonly filestorePath: string;
};

/** The cluster's backup configuration (undefined when it writes to no repository at all) and the declared repositories it skips. */
export type TClusterRepositories = {
  readonly backup: TClusterBackup | undefined;
  readonly skipped: readonly TSkippedRepository[];
};

export type TResolvedRepository = {
  readonly repository: TBackupRepository;
  readonly cipherPass: string;
  readonly azureKey?: string;
  readonly s3Key?: TS3Credentials;
};

type TBackedUpEnvironment = TEnvironmentSpec & { backup: Extract<TEnvironmentSpec["backup"], { enabled: true }> };
const backedUp = (environment: TEnvironmentSpec): environment is TBackedUpEnvironment => environment.backup.enabled;

export const socketDirectoryOf = (cluster: Pick<TPostgresCluster, "directory">) => join(cluster.directory, "run");
const backupWorkDirectoryOf = (cluster: Pick<TPostgresCluster, "directory">) => join(cluster.directory, "pgbackrest");
export const pgbackrestConfigPathOf = (cluster: Pick<TPostgresCluster, "directory">) =>
  join(backupWorkDirectoryOf(cluster), "pgbackrest.conf");

type TClusterBackupInput = {
  readonly organization: string;
  readonly home: string;
  /** Roots beyond the data dir a posix repository or a CA file may lead to (CAREHOST_ALLOWED_PATHS). */
  readonly allowedRoots: readonly string[];
  readonly placement: TClusterPlacement;
  readonly cluster: TPostgresCluster;
  readonly repositories: readonly TBackupRepositorySpec[];
  readonly secrets: TRuntimeSecrets;
  readonly createSecrets: boolean;
};

export const clusterBackupOf = async (input: TClusterBackupInput): Promise<TClusterBackup | undefined> =>
  (await clusterRepositoriesOf(input)).backup;

/** Resolves every declared repository of the cluster's backed-up environments: the ones written make its backup configuration, the others are skipped with why. */
export async function clusterRepositoriesOf(input: TClusterBackupInput): Promise<TClusterRepositories> {
  const environments = input.placement.environments.filter(backedUp);
  if (environments.length === 0) return { backup: undefined, skipped: [] };
  await assertRepositoriesConfined(input.organization, input.repositories, input);
  const names = [...new Set(environments.flatMap((environment) => environment.backup.repositories))].sort();
  const declared = names
    .map((name) => input.repositories.find((repository) => repository.name === name))
    .filter((repository) => repository !== undefined);
  const skipped: TSkippedRepository[] = [];
  const resolved: TResolvedRepository[] = [];
  for (const spec of declared) {
    const repository = await resolveRepository(spec, input);
    if (typeof repository === "string") skipped.push({ name: spec.name, type: spec.type, reason: repository });
    else resolved.push(repository);
  }
  if (resolved.length === 0) return { backup: undefined, skipped };
  const stanza = input.cluster.name;
  // Each cluster's stanza and filestore are encrypted under a passphrase of their own, derived
  // from the repository's (backup-passphrase.ts); a cluster created before keeps the repository's.
  const record = await readInstanceRecord(input.cluster.directory);
  const perCluster = record === undefined || record.backupPassphrases === "per-cluster";
  const keyed = perCluster
    ? resolved.map((item) => ({
        ...item,
        cipherPass: clusterPassphrase(item.cipherPass, {
          organization: input.organization,
          repository: item.repository.name,
          stanza,
        }),
      }))
    : resolved;
  const env: Record<string, string> = {
    PGPASSWORD: await input.secrets.current(secretNames.clusterAdmin(input.organization, input.cluster.name)),
  };
  keyed.forEach((item, index) =>
    Object.assign(
      env,
      { [cipherPassVariable(index)]: item.cipherPass },
      kindOf(item.repository).keyEnvironment(item, index),
    ),
  );
  const repositories = keyed.map((item) => item.repository);
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
    retention: combinedTiers(environments.map((environment) => environment.backup.retention)),
  });
  const rpoMinutes = Math.min(...environments.map((environment) => environment.backup.rpoMinutes));
  const backup: TClusterBackup = {
    access: { stanza, configPath, owner: input.cluster.owner, env },
    confText: text,
    archive: archiveSettings({ configPath, stanza, rpoMinutes }),
    socketDirectory,
    workDirectory,
    repositories: keyed,
    repositoryPaths: repositories.flatMap((repository) => (repository.type === "posix" ? [repository.path] : [])),
    skipped,
    filestorePath: perCluster ? `filestore/${stanza}` : "filestore",
  };
  return { backup, skipped };
}

/** Secret names of a repository: its passphrase (carehost makes it) and its access key (you bring it). */
export const repositorySecretNames = (organization: string, repository: TBackupRepositorySpec) => ({
  cipher: `backup/${organization}/${repository.cipherSecretRef ?? `${repository.name}-cipher`}`,
  key: repository.type === "posix" ? undefined : `backup/${organization}/${repository.keySecretRef}`,
});

export { azureEndpointOf, s3EndpointOf };

type TRepositorySpecOf<K extends TRepositoryType> = Extract<TBackupRepositorySpec, { type: K }>;
type TResolveInput = {
  readonly organization: string;
  readonly home: string;
  readonly secrets: TRuntimeSecrets;
  readonly createSecrets: boolean;
};

type TRepositoryKind<K extends TRepositoryType> = {
  /** The repository as pgBackRest and restic address it, with its access key read from the stored secret. */
  resolve(
    spec: TRepositorySpecOf<K>,
    organization: string,
    home: string,
    key: { readonly name: string; readonly value: string } | undefined,
  ): Omit<TResolvedRepository, "cipherPass"> & { repository: TRepositoryOf<K> };
  /** pgBackRest's environment variables for the access key of repository N (never in the file or argv). */
  keyEnvironment(item: TResolvedRepository, index: number): Record<string, string>;
  /** Why this runtime cannot write the repository whole, database and filestore (undefined: it can). */
  limitation(repository: TRepositoryOf<K>): string | undefined;
  /** Creates what pgBackRest writes into but does not create itself (a container, a bucket); idempotent. */
  ensureStorage(item: TResolvedRepository & { repository: TRepositoryOf<K> }): Promise<void>;
};

/** Everything the local runtime does differently per repository type, picked once by type. */
const repositoryKinds: { readonly [K in TRepositoryType]: TRepositoryKind<K> } = {
  posix: {
    resolve: (spec, organization, home) => ({
      repository: { name: spec.name, type: "posix", path: posixRepositoryPathOf(home, spec.path, organization) },
    }),
    keyEnvironment: () => ({}),
    limitation: () => undefined,
    // prepareBackupDirectories creates the directory, with the cluster's account as owner.
    ensureStorage: async () => undefined,
  },
  azure: {
    resolve: (spec, organization, home, key) => ({
      repository: {
        name: spec.name,
        type: "azure",
        account: spec.account,
        container: spec.container,
        path: `/${organization}`,
        ...(spec.endpoint === undefined ? {} : { endpoint: azureEndpointOf({ ...spec, endpoint: spec.endpoint }) }),
        ...(spec.caFile === undefined ? {} : { caFile: caFilePathOf(home, spec.caFile) }),
      },
      ...(key === undefined ? {} : { azureKey: key.value }),
    }),
    keyEnvironment: (item, index) => (item.azureKey === undefined ? {} : { [azureKeyVariable(index)]: item.azureKey }),
    limitation: (repository) => {
      const limitation = rcloneAzureLimitation(repository);
      return limitation === undefined ? undefined : `container ${repository.container}: ${limitation}`;
    },
    ensureStorage: ({ repository, azureKey }) => ensureAzureContainer(repository, azureKey ?? ""),
  },
  s3: {
    resolve: (spec, organization, home, key) => ({
      repository: {
        name: spec.name,
        type: "s3",
        bucket: spec.bucket,
        region: spec.region,
        path: `/${organization}`,
        endpoint: s3EndpointOf(spec),
        ...(spec.caFile === undefined ? {} : { caFile: caFilePathOf(home, spec.caFile) }),
      },
      ...(key === undefined ? {} : { s3Key: s3CredentialsFrom(key.value, key.name) }),
    }),
    limitation: () => undefined,
    keyEnvironment: (item, index) =>
      item.s3Key === undefined
        ? {}
        : { [s3KeyVariable(index)]: item.s3Key.accessKeyId, [s3KeySecretVariable(index)]: item.s3Key.secretAccessKey },
    ensureStorage: async ({ repository, s3Key }) => {
      if (s3Key === undefined)
        throw new ValidationError(`S3 repository ${JSON.stringify(repository.name)} has no access key`);
      await ensureS3Bucket(repository, s3Key);
    },
  },
};
// One cast: TypeScript cannot relate `repositoryKinds[type]` to the member of the union it was picked by.
const kindOf = (repository: { readonly type: TRepositoryType }) =>
  repositoryKinds[repository.type] as TRepositoryKind<TRepositoryType>;

/** Creates the repository's container or bucket when missing (before stanza-create). */
export const ensureRepositoryStorage = (item: TResolvedRepository): Promise<void> =>
  kindOf(item.repository).ensureStorage(item);

async function resolveRepository(
  spec: TBackupRepositorySpec,
  input: TResolveInput,
): Promise<TResolvedRepository | string> {
  const names = repositorySecretNames(input.organization, spec);
  let key: { name: string; value: string } | undefined;
  if (names.key !== undefined) {
    const value = await input.secrets.current(names.key).catch(() => undefined);
    if (value === undefined)
      return `its key ${JSON.stringify(names.key)} is not in the secret store; add it with: carehost secrets set ${names.key}`;
    key = { name: names.key, value };
  }
  const located = kindOf(spec).resolve(spec, input.organization, input.home, key);
  // A repository without the filestore would not restore on its own: it is skipped whole, and says why.
  const limitation = kindOf(spec).limitation(located.repository);
  if (limitation !== undefined) return limitation;
  // pgBackRest cannot re-key a repository: this passphrase is created once and never rotated in place.
  if (input.createSecrets) await input.secrets.ensure(names.cipher, () => generatePassword(32));
  const cipherPass = await input.secrets.current(names.cipher).catch(() => undefined);
  if (cipherPass === undefined)
    return `its passphrase ${JSON.stringify(names.cipher)} does not exist yet; run carehost apply`;
  return { ...located, cipherPass };
}

/**
 * Creates the directories pgBackRest writes, owned by the cluster's account (parents traversable
 * only). Only what it creates is handed over: a directory that was there already (a repository
 * path the host's operator made, or a carehost one from before) must already be the account's,
 * and is never re-owned; a symbolic link is refused.
 */
export async function prepareBackupDirectories(
  backup: Pick<TClusterBackup, "workDirectory" | "socketDirectory" | "repositoryPaths">,
  owner: TPostgresCluster["owner"],
): Promise<void> {
  for (const directory of [
    backup.workDirectory,
    join(backup.workDirectory, "log"),
    backup.socketDirectory,
    ...backup.repositoryPaths,
  ]) {
    await mkdir(dirname(directory), { recursive: true, mode: 0o711 });
    const created = await mkdir(directory, { mode: 0o700 }).then(
      () => true,
      (error: NodeJS.ErrnoException) => {
        if (error.code === "EEXIST") return false;
        throw error;
      },
    );
    if (owner === undefined) continue;
    if (created) {
      await chown(directory, owner.uid, owner.gid);
      continue;
    }
    const existing = await lstat(directory);
    if (!existing.isDirectory())
      throw new ValidationError(
        `${directory} exists and is not a directory${existing.isSymbolicLink() ? " (a symbolic link, which carehost does not follow)" : ""}; remove it or choose another path`,
      );
    if (existing.uid !== owner.uid)
      throw new ValidationError(
        `${directory} exists and belongs to uid ${existing.uid}, not to ${owner.name}, which writes the backups; carehost does not change the owner of what it did not create: chown ${owner.name} it yourself, or choose another path`,
      );
  }
}
