// What pgBackRest needs for one cluster of the local runtime: its stanza, repositories (posix on
// this host), passphrases from the secret store, and the archive settings derived from the
// strictest RPO of the environments in the cluster. Repository types other than posix are not
// reachable by this runtime's configuration yet and are reported, not silently dropped.
import { chown, mkdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { archiveSettings, cipherPassVariable, renderPgbackrestConf } from "../../backup/pgbackrest-config.js";
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
  readonly repositoryPaths: readonly string[];
  /** Repositories of the spec this runtime does not write to, with why. */
  readonly skipped: readonly string[];
};

type TBackedUpEnvironment = TEnvironmentSpec & { backup: Extract<TEnvironmentSpec["backup"], { enabled: true }> };
const backedUp = (environment: TEnvironmentSpec): environment is TBackedUpEnvironment => environment.backup.enabled;

export const socketDirectoryOf = (cluster: Pick<TPostgresCluster, "directory">) => join(cluster.directory, "run");

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
  const posix = declared.filter((repository) => repository.type === "posix");
  const skipped = declared.filter((repository) => repository.type !== "posix").map((repository) => `${repository.name} (${repository.type}): not written by the local runtime yet`);
  if (posix.length === 0) return undefined;
  const repositories = posix.map((repository) => ({ name: repository.name, type: "posix" as const, path: resolve(input.home, repository.path, input.organization) }));
  const env: Record<string, string> = { PGPASSWORD: await input.secrets.current(secretNames.clusterAdmin(input.organization, input.cluster.name)) };
  for (const [index, repository] of posix.entries()) {
    const secret = `backup/${input.organization}/${repository.cipherSecretRef ?? `${repository.name}-cipher`}`;
    // pgBackRest cannot re-key a repository: this passphrase is created once and never rotated in place.
    if (input.createSecrets) await input.secrets.ensure(secret, () => generatePassword(32));
    env[cipherPassVariable(index)] = await input.secrets.current(secret);
  }
  const stanza = input.cluster.name;
  const workDirectory = join(input.cluster.directory, "pgbackrest");
  const configPath = join(workDirectory, "pgbackrest.conf");
  const socketDirectory = socketDirectoryOf(input.cluster);
  const retention = Math.max(2, ...environments.map((environment) => environment.backup.retention.weekly + environment.backup.retention.monthly));
  const { text } = renderPgbackrestConf({
    stanza,
    dataDirectory: dataDirectoryOf(input.cluster),
    port: input.cluster.port,
    socketDirectory,
    adminUser: CLUSTER_ADMIN_ROLE,
    workDirectory,
    repositories,
    fullBackupsKept: retention,
  });
  const rpoMinutes = Math.min(...environments.map((environment) => environment.backup.rpoMinutes));
  return {
    access: { stanza, configPath, owner: input.cluster.owner, env },
    confText: text,
    archive: archiveSettings({ configPath, stanza, rpoMinutes }),
    socketDirectory,
    workDirectory,
    repositoryPaths: repositories.map((repository) => repository.path),
    skipped,
  };
}

/** Creates the directories pgBackRest writes, owned by the cluster's account (parents traversable only). */
export async function prepareBackupDirectories(backup: TClusterBackup, owner: TPostgresCluster["owner"]): Promise<void> {
  for (const directory of [backup.workDirectory, join(backup.workDirectory, "log"), backup.socketDirectory, ...backup.repositoryPaths]) {
    await mkdir(dirname(directory), { recursive: true, mode: 0o711 });
    await mkdir(directory, { recursive: true, mode: 0o700 });
    if (owner !== undefined) await chown(directory, owner.uid, owner.gid);
  }
}
