// pgbackrest.conf for one cluster (one stanza), and the postgresql.conf settings that archive its
// WAL there. Pure. Secrets are never in the file: the caller passes them as the environment
// variables `secretEnvironmentNames` lists (PGBACKREST.md: secrets in the environment, not the file).
import { cpus } from "node:os";

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

export type TBackupRepository = TPosixRepository | TAzureRepository;

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
};

/**
 * pgBackRest's own count-based expiry is set out of reach: carehost expires full backups by its
 * daily/weekly/monthly tiers (backup-retention.ts) with `expire --set`, and a carehost that is
 * down keeps everything rather than deleting by a rule that ignores the tiers.
 */
export const RETENTION_FULL_CEILING = 9_999_999;

/** pgBackRest's parallelism: one process per core, at most four (more only contends for the same disk). */
export const processMax = (cores = cpus().length) => Math.min(4, Math.max(1, cores));

/** Environment variable holding repository N's encryption passphrase. */
export const cipherPassVariable = (index: number) => `PGBACKREST_REPO${index + 1}_CIPHER_PASS`;
/** Environment variable holding Azure repository N's shared key. */
export const azureKeyVariable = (index: number) => `PGBACKREST_REPO${index + 1}_AZURE_KEY`;

const repositoryLines = (repository: TBackupRepository, repo: string): string[] => {
  if (repository.type === "posix") return [`${repo}-type=posix`, `${repo}-path=${repository.path}`];
  return [
    `${repo}-type=azure`,
    `${repo}-azure-account=${repository.account}`,
    `${repo}-azure-container=${repository.container}`,
    `${repo}-path=${repository.path}`,
    ...(repository.endpoint === undefined
      ? []
      : [
          `${repo}-storage-host=${repository.endpoint.host}`,
          `${repo}-storage-port=${repository.endpoint.port}`,
          ...(repository.endpoint.pathStyle ? [`${repo}-azure-uri-style=path`] : []),
        ]),
    ...(repository.caFile === undefined ? [] : [`${repo}-storage-ca-file=${repository.caFile}`]),
  ];
};

export function renderPgbackrestConf(input: TPgbackrestConfigInput): { text: string; secretEnvironmentNames: string[] } {
  if (input.repositories.length === 0) throw new TypeError(`stanza ${JSON.stringify(input.stanza)} has no repository`);
  if (!/^[a-z0-9][a-z0-9-]*$/.test(input.stanza)) throw new TypeError(`stanza ${JSON.stringify(input.stanza)} is not a plain name`);
  const files = input.repositories.flatMap((repository) => [repository.path, ...(repository.type === "azure" && repository.caFile !== undefined ? [repository.caFile] : [])]);
  for (const path of [input.dataDirectory, input.socketDirectory, input.workDirectory, ...files]) {
    if (!path.startsWith("/") || /[\n\r=]/.test(path)) throw new TypeError(`path ${JSON.stringify(path)} is not a plain absolute path`);
  }
  const global: string[] = [];
  input.repositories.forEach((repository, index) => {
    const repo = `repo${index + 1}`;
    global.push(
      `# ${repo}: ${repository.name}`,
      ...repositoryLines(repository, repo),
      `${repo}-cipher-type=aes-256-cbc`,
      `${repo}-retention-full-type=count`,
      `${repo}-retention-full=${RETENTION_FULL_CEILING}`,
    );
  });
  const lines = [
    "# Rendered by carehost; secrets come from the environment, never from this file.",
    "[global]",
    ...global,
    // lz4: the fastest of pgBackRest's codecs; on small hosts zstd's better ratio costs backup and restore time, i.e. RTO.
    "compress-type=lz4",
    `process-max=${processMax()}`,
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
  const secretEnvironmentNames = input.repositories.flatMap((repository, index) => [cipherPassVariable(index), ...(repository.type === "azure" ? [azureKeyVariable(index)] : [])]);
  return { text: lines.join("\n"), secretEnvironmentNames };
}

/**
 * archive_timeout from the RPO: a segment is switched at least every quarter of the RPO, so a
 * crash loses at most that much even when writes are rare; never under 10 s (each switch costs a
 * 16 MB segment), never over 5 min.
 */
export const archiveTimeoutSeconds = (rpoMinutes: number) => Math.min(300, Math.max(10, Math.floor((rpoMinutes * 60) / 4)));

export function archiveSettings(input: { configPath: string; stanza: string; rpoMinutes: number }): Record<string, string> {
  return {
    archive_mode: "on",
    archive_command: `'pgbackrest --config=${input.configPath} --stanza=${input.stanza} archive-push %p'`,
    archive_timeout: `${archiveTimeoutSeconds(input.rpoMinutes)}s`,
  };
}
