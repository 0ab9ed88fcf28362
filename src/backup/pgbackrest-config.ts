// pgbackrest.conf for one cluster (one stanza), and the postgresql.conf settings that archive its
// WAL there. Pure. Secrets are never in the file: the caller passes them as the environment
// variables `secretEnvironmentNames` lists (PGBACKREST.md: secrets in the environment, not the file).
import { cpus } from "node:os";
import { PGBACKREST_CIPHER_TYPE, pgbackrestRetentionLines } from "../render/data-tier/data-tier-backup.js";
import type { TRetentionTiers } from "../render/data-tier/data-tier-backup.js";
import { archiveTimeoutSeconds } from "../render/data-tier/data-tier-postgres.js";

export { archiveTimeoutSeconds };

export type TPosixRepository = {
  readonly name: string;
  readonly type: "posix";
  /** Absolute directory of the repository. */
  readonly path: string;
};

/** An Azure Blob Storage container; `host`/`port` set for an endpoint other than <account>.blob.core.windows.net. */
export type TAzureRepository = {
  readonly name: string;
  readonly type: "azure";
  readonly account: string;
  readonly container: string;
  /** Prefix inside the container (one per organization). */
  readonly path: string;
  readonly endpoint?: { readonly host: string; readonly port: number; readonly pathStyle: boolean };
  /** CA bundle for a private endpoint's certificate (Azurite, a proxy); default the system store. */
  readonly caFile?: string;
};

/** An S3 bucket (AWS, or an S3-compatible store at `endpoint`). */
export type TS3Repository = {
  readonly name: string;
  readonly type: "s3";
  readonly bucket: string;
  readonly region: string;
  /** Prefix inside the bucket (one per organization). */
  readonly path: string;
  /** s3.<region>.amazonaws.com with virtual-host URIs, or the spec's endpoint with path-style URIs. */
  readonly endpoint: { readonly host: string; readonly port: number; readonly pathStyle: boolean };
  /** CA bundle for a private endpoint's certificate; default the system store. */
  readonly caFile?: string;
};

export type TBackupRepository = TPosixRepository | TAzureRepository | TS3Repository;
export type TRepositoryType = TBackupRepository["type"];
/** The repository of one type, for tables that hold one entry per type. */
export type TRepositoryOf<K extends TRepositoryType> = Extract<TBackupRepository, { type: K }>;

export type TPgbackrestConfigInput = {
  readonly stanza: string;
  readonly dataDirectory: string;
  readonly port: number;
  /** Directory of the cluster's Unix socket (pgBackRest connects through it, as the cluster admin). */
  readonly socketDirectory: string;
  readonly adminUser: string;
  /** Directory for the spool, lock and log files. */
  readonly workDirectory: string;
  readonly repositories: readonly TBackupRepository[];
  /** The spec's tiers (combined over the cluster's environments): pgBackRest keeps full backups long enough for all of them. */
  readonly retention: TRetentionTiers;
  /** Parallel processes; default one per core of this host, at most four (a container target fixes it). */
  readonly processMax?: number;
};

/** pgBackRest's parallelism: one process per core, at most four (more only contends for the same disk). */
export const processMax = (cores = cpus().length) => Math.min(4, Math.max(1, cores));

/** Environment variable holding repository N's encryption passphrase. */
export const cipherPassVariable = (index: number) => `PGBACKREST_REPO${index + 1}_CIPHER_PASS`;
/** Environment variable holding Azure repository N's shared key. */
export const azureKeyVariable = (index: number) => `PGBACKREST_REPO${index + 1}_AZURE_KEY`;
/** Environment variables holding S3 repository N's access key ID and secret access key. */
export const s3KeyVariable = (index: number) => `PGBACKREST_REPO${index + 1}_S3_KEY`;
export const s3KeySecretVariable = (index: number) => `PGBACKREST_REPO${index + 1}_S3_KEY_SECRET`;

/** A value written into a `key=value` line of pgbackrest.conf as it is: no line break, space or `=`. */
const plainValue = (value: string, what: string) => {
  if (!/^[A-Za-z0-9._:-]+$/.test(value))
    throw new TypeError(`${what} ${JSON.stringify(value)} is not a plain value for pgbackrest.conf`);
  return value;
};

/**
 * pgBackRest addresses Azure in one of two ways. Host-style (Azure, its sovereign clouds): the host
 * is `<account>.<azure-endpoint>`, so only the suffix is given. Path-style (Azurite): any host, the
 * account first in the path. storage-host alone would switch pgBackRest to path-style URIs, which
 * Azure itself refuses.
 */
function azureEndpointLines(
  account: string,
  endpoint: NonNullable<TAzureRepository["endpoint"]>,
  repo: string,
): string[] {
  const host = plainValue(endpoint.host, "endpoint host");
  if (endpoint.pathStyle)
    return [`${repo}-storage-host=${host}`, `${repo}-storage-port=${endpoint.port}`, `${repo}-azure-uri-style=path`];
  if (!host.startsWith(`${account}.`))
    throw new TypeError(
      `Azure endpoint host ${JSON.stringify(host)} does not begin with the account ${JSON.stringify(account)}`,
    );
  return [`${repo}-azure-endpoint=${host.slice(account.length + 1)}`, `${repo}-storage-port=${endpoint.port}`];
}

type TRepositoryKind<K extends TRepositoryType> = {
  /** The repository's lines of pgbackrest.conf (never a secret). */
  lines(repository: TRepositoryOf<K>, repo: string): string[];
  /** The environment variables that carry its secrets besides the passphrase. */
  secretVariables(index: number): string[];
};

/** What each type of repository writes into pgbackrest.conf and needs in the environment, picked once by type. */
const repositoryKinds: { readonly [K in TRepositoryType]: TRepositoryKind<K> } = {
  posix: {
    lines: (repository, repo) => [`${repo}-type=posix`, `${repo}-path=${repository.path}`],
    secretVariables: () => [],
  },
  azure: {
    lines: (repository, repo) => [
      `${repo}-type=azure`,
      `${repo}-azure-account=${repository.account}`,
      `${repo}-azure-container=${repository.container}`,
      `${repo}-path=${repository.path}`,
      ...(repository.endpoint === undefined ? [] : azureEndpointLines(repository.account, repository.endpoint, repo)),
      ...(repository.caFile === undefined ? [] : [`${repo}-storage-ca-file=${repository.caFile}`]),
    ],
    secretVariables: (index) => [azureKeyVariable(index)],
  },
  s3: {
    lines: (repository, repo) => [
      `${repo}-type=s3`,
      `${repo}-s3-bucket=${plainValue(repository.bucket, "bucket")}`,
      `${repo}-s3-region=${plainValue(repository.region, "region")}`,
      `${repo}-s3-endpoint=${plainValue(repository.endpoint.host, "endpoint host")}`,
      `${repo}-storage-port=${repository.endpoint.port}`,
      ...(repository.endpoint.pathStyle ? [`${repo}-s3-uri-style=path`] : []),
      `${repo}-path=${repository.path}`,
      ...(repository.caFile === undefined ? [] : [`${repo}-storage-ca-file=${repository.caFile}`]),
    ],
    secretVariables: (index) => [s3KeyVariable(index), s3KeySecretVariable(index)],
  },
};
// One cast: TypeScript cannot relate `repositoryKinds[repository.type]` to the member of the union it was picked by.
const kindOf = (repository: TBackupRepository) => repositoryKinds[repository.type] as TRepositoryKind<TRepositoryType>;

export function renderPgbackrestConf(input: TPgbackrestConfigInput): {
  text: string;
  secretEnvironmentNames: string[];
} {
  if (input.repositories.length === 0) throw new TypeError(`stanza ${JSON.stringify(input.stanza)} has no repository`);
  if (!/^[a-z0-9][a-z0-9-]*$/.test(input.stanza))
    throw new TypeError(`stanza ${JSON.stringify(input.stanza)} is not a plain name`);
  const files = input.repositories.flatMap((repository) => [
    repository.path,
    ...("caFile" in repository && repository.caFile !== undefined ? [repository.caFile] : []),
  ]);
  for (const path of [input.dataDirectory, input.socketDirectory, input.workDirectory, ...files]) {
    if (!path.startsWith("/") || /[\n\r=]/.test(path))
      throw new TypeError(`path ${JSON.stringify(path)} is not a plain absolute path`);
  }
  const global: string[] = [];
  input.repositories.forEach((repository, index) => {
    const repo = `repo${index + 1}`;
    global.push(
      `# ${repo}: ${repository.name}`,
      ...kindOf(repository).lines(repository, repo),
      `${repo}-cipher-type=${PGBACKREST_CIPHER_TYPE}`,
      // Small files bundled into larger ones: fewer files to write, open and sync (a 1.1 GB
      // cluster's full backup 20% faster here) and far fewer requests to an object store.
      `${repo}-bundle=y`,
      // A floor by time that holds every tier; the local runtime thins down to the tiers with
      // `expire --set` (backup-retention.ts), and a carehost that is down never deletes within them.
      ...pgbackrestRetentionLines(repo, input.retention),
    );
  });
  const lines = [
    "# Rendered by carehost; secrets come from the environment, never from this file.",
    "[global]",
    ...global,
    // Zstandard at its fastest level: a 1.1 GB cluster's full backup in 190 MB instead of lz4's
    // 317 MB, and no slower to take or restore (less to encrypt and write; bench/backup's cluster,
    // two or three runs each). Level 3, pgBackRest's default, took a quarter longer, no smaller.
    "compress-type=zst",
    "compress-level=1",
    `process-max=${input.processMax ?? processMax()}`,
    // Asynchronous archiving: PostgreSQL hands WAL over at once and pgBackRest pushes it in batches.
    "archive-async=y",
    `spool-path=${input.workDirectory}/spool`,
    `lock-path=${input.workDirectory}/lock`,
    `log-path=${input.workDirectory}/log`,
    "log-level-console=warn",
    "log-level-file=info",
    "start-fast=y",
    "delta=y",
    "",
    `[${input.stanza}]`,
    `pg1-path=${input.dataDirectory}`,
    `pg1-port=${input.port}`,
    `pg1-socket-path=${input.socketDirectory}`,
    `pg1-user=${input.adminUser}`,
    "",
  ];
  const secretEnvironmentNames = input.repositories.flatMap((repository, index) => [
    cipherPassVariable(index),
    ...kindOf(repository).secretVariables(index),
  ]);
  return { text: lines.join("\n"), secretEnvironmentNames };
}

export function archiveSettings(input: {
  configPath: string;
  stanza: string;
  rpoMinutes: number;
}): Record<string, string> {
  return {
    archive_mode: "on",
    archive_command: `'pgbackrest --config=${input.configPath} --stanza=${input.stanza} archive-push %p'`,
    archive_timeout: `${archiveTimeoutSeconds(input.rpoMinutes)}s`,
  };
}
