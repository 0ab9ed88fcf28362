// PostgreSQL's files in a Compose bundle: postgresql.conf (TLS, scram-sha-256, WAL archiving),
// pg_hba.conf, the first-start script that creates Odoo's role, and pgBackRest's configuration
// with the entrypoint that hands it its repository credentials from secret files.
import type { TBackupRepositorySpec, TEnvironmentSpec, TOrganizationSpec } from "../../spec/spec-schema.js";
import { odooConnectionLimit } from "../odoo/odoo-conf.js";
import { ODOO_DATABASE } from "./compose-odoo.js";
import { backupPassphraseSecretName, backupRepositoriesOf, SECRET_NAMES } from "./compose-secrets.js";

export const POSTGRES_PATHS = {
  conf: "/etc/postgresql/postgresql.conf",
  hba: "/etc/postgresql/pg_hba.conf",
  initRole: "/docker-entrypoint-initdb.d/10-odoo-role.sh",
  entrypoint: "/etc/carehost/postgres-entrypoint.sh",
  data: "/var/lib/postgresql/data",
  socketDir: "/var/run/postgresql",
  pgbackrestConf: "/etc/pgbackrest/pgbackrest.conf",
  /** Each posix repository is a volume mounted here under its name. */
  posixRepositoryRoot: "/var/lib/pgbackrest",
} as const;

/** Connections beyond Odoo's: superuser reserve, pgBackRest, carehost's maintenance sessions. */
const EXTRA_CONNECTIONS = 10;

/** 1 GiB per four Odoo processes, at least 2 GiB: the cluster serves only this environment. */
export const postgresMemoryMiB = (environment: TEnvironmentSpec): number =>
  Math.max(2048, 1024 * Math.ceil((environment.odoo.workers + environment.odoo.cronWorkers + 2) / 4));

export const postgresCpus = (environment: TEnvironmentSpec): number =>
  Math.max(2, Math.ceil((environment.odoo.workers + environment.odoo.cronWorkers + 2) / 4));

/** WAL is archived at least twice per RPO, and at least every hour when the RPO is long. */
export const archiveTimeoutSeconds = (rpoMinutes: number): number =>
  Math.min(3600, Math.max(60, Math.floor((rpoMinutes * 60) / 2)));

/** The pgBackRest stanza: one cluster per environment. */
export const stanzaOf = (environment: TEnvironmentSpec): string => environment.name;

export function renderPostgresqlConf(environment: TEnvironmentSpec): string {
  const memory = postgresMemoryMiB(environment);
  const backup = environment.backup;
  const archiving = backup.enabled
    ? [
        "# Continuous WAL archiving to every repository (pgBackRest pushes to all of them).",
        "archive_mode = on",
        `archive_command = 'pgbackrest --stanza=${stanzaOf(environment)} archive-push %p'`,
        `archive_timeout = ${archiveTimeoutSeconds(backup.rpoMinutes)}  # rpoMinutes ${backup.rpoMinutes}`,
      ]
    : ["# backup.enabled is false: no WAL archiving.", "archive_mode = off"];
  const lines = [
    "# Rendered by carehost from the organization spec; edits are overwritten and reported as drift.",
    `# environment: ${environment.name} (${environment.tier}, ${environment.dataClass}), PostgreSQL ${environment.database.postgresVersion}`,
    "listen_addresses = '*'",
    "port = 5432",
    `hba_file = '${POSTGRES_PATHS.hba}'`,
    `unix_socket_directories = '${POSTGRES_PATHS.socketDir}'`,
    `max_connections = ${odooConnectionLimit(environment) + EXTRA_CONNECTIONS}`,
    "",
    "# Encryption in transit and password hashing (164.312(e)(1), 164.312(d)).",
    "ssl = on",
    `ssl_cert_file = '/run/secrets/${SECRET_NAMES.postgresServerCertificate}'`,
    `ssl_key_file = '/run/secrets/${SECRET_NAMES.postgresServerKey}'`,
    "ssl_min_protocol_version = 'TLSv1.2'",
    "password_encryption = 'scram-sha-256'",
    "",
    `# Memory sized for a container limit of ${memory} MiB.`,
    `shared_buffers = ${Math.floor(memory / 4)}MB`,
    `effective_cache_size = ${Math.floor((memory * 3) / 4)}MB`,
    `maintenance_work_mem = ${Math.floor(memory / 16)}MB`,
    "work_mem = 16MB",
    "",
    "wal_level = replica",
    "max_wal_senders = 4",
    ...archiving,
    "",
    "# Audit trail of who connected and what changed the schema (164.312(b)).",
    "log_destination = 'stderr'",
    "log_connections = on",
    "log_disconnections = on",
    "log_statement = 'ddl'",
    "log_line_prefix = '%m [%p] %q%u@%d from %h '",
    "log_timezone = 'UTC'",
    "timezone = 'UTC'",
    "",
  ];
  return lines.join("\n");
}

export function renderPgHba(): string {
  return [
    "# Rendered by carehost. Every connection authenticates with scram-sha-256; TCP only over TLS.",
    "# TYPE    DATABASE  USER  ADDRESS    METHOD",
    "local     all       all              scram-sha-256",
    "hostssl   all       all   0.0.0.0/0  scram-sha-256",
    "hostssl   all       all   ::/0       scram-sha-256",
    "hostnossl all       all   0.0.0.0/0  reject",
    "hostnossl all       all   ::/0       reject",
    "",
  ].join("\n");
}

/**
 * First start only (the image runs /docker-entrypoint-initdb.d on an empty data directory). Odoo's
 * role may own its database but is neither superuser nor allowed to create databases (ODOO.md).
 * The password is read by psql from the secret file (backquote expansion), never put in argv.
 */
export function renderInitRoleScript(environment: TEnvironmentSpec): string {
  const { name, user } = ODOO_DATABASE;
  return [
    "#!/bin/sh",
    "# Rendered by carehost; sourced by the postgres image's entrypoint when the cluster is created.",
    "set -eu",
    "psql -v ON_ERROR_STOP=1 --username \"$POSTGRES_USER\" --dbname postgres <<'SQL'",
    `\\set odoo_password \`cat /run/secrets/${SECRET_NAMES.odooDatabasePassword}\``,
    "SET log_statement = 'none';",
    `CREATE ROLE ${user} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION CONNECTION LIMIT ${odooConnectionLimit(environment)} PASSWORD :'odoo_password';`,
    `CREATE DATABASE ${name} OWNER ${user} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C.UTF-8' TEMPLATE template0;`,
    `REVOKE ALL ON DATABASE ${name} FROM PUBLIC;`,
    `GRANT CONNECT, TEMPORARY ON DATABASE ${name} TO ${user};`,
    "SQL",
    "",
  ].join("\n");
}

const envPrefix = (index: number) => `PGBACKREST_REPO${index + 1}`;

/** Host of an https endpoint, which is what pgBackRest's *-endpoint options take. */
const endpointHost = (url: string): string => new URL(url).host;

/** Days a full backup must be kept so that the daily, weekly and monthly retention all hold. */
export const retentionDays = (retention: { daily: number; weekly: number; monthly: number }): number =>
  Math.max(1, retention.daily, retention.weekly * 7, retention.monthly * 31);

export function renderPgbackrestConf(organization: TOrganizationSpec, environment: TEnvironmentSpec): string {
  const backup = environment.backup;
  if (!backup.enabled)
    throw new TypeError(
      `environment ${JSON.stringify(environment.name)} has backups disabled; there is no pgbackrest.conf`,
    );
  const repositoryLines = backupRepositoriesOf(organization, environment).flatMap((repository, index) => {
    const repo = `repo${index + 1}`;
    const lines = [`# ${repository.name} (${repository.type})`];
    if (repository.type === "posix") {
      lines.push(`${repo}-type=posix`, `${repo}-path=${POSTGRES_PATHS.posixRepositoryRoot}/${repository.name}`);
    } else if (repository.type === "azure") {
      lines.push(
        `${repo}-type=azure`,
        `${repo}-azure-account=${repository.account}`,
        `${repo}-azure-container=${repository.container}`,
        `${repo}-azure-key-type=shared`,
        ...(repository.endpoint === undefined ? [] : [`${repo}-azure-endpoint=${endpointHost(repository.endpoint)}`]),
        `${repo}-path=/${organization.metadata.name}/${environment.name}`,
      );
    } else {
      lines.push(
        `${repo}-type=s3`,
        `${repo}-s3-bucket=${repository.bucket}`,
        `${repo}-s3-region=${repository.region}`,
        `${repo}-s3-endpoint=${repository.endpoint === undefined ? `s3.${repository.region}.amazonaws.com` : endpointHost(repository.endpoint)}`,
        `${repo}-path=/${organization.metadata.name}/${environment.name}`,
      );
    }
    if (repository.cipherSecretRef !== undefined) lines.push(`${repo}-cipher-type=aes-256-cbc`);
    // pgBackRest has no grandfather-father-son retention: full backups are kept long enough for
    // the longest of the three; carehost's expire job thins them out.
    lines.push(`${repo}-retention-full-type=time`, `${repo}-retention-full=${retentionDays(backup.retention)}`, "");
    return lines;
  });
  const lines = [
    "# Rendered by carehost from the organization spec; edits are overwritten and reported as drift.",
    "# Repository keys and passphrases come from PGBACKREST_REPO<n>_* variables set by the entrypoint",
    "# from secret files; they are never written here.",
    "[global]",
    ...repositoryLines,
    "compress-type=zst",
    "start-fast=y",
    "log-level-console=info",
    "log-level-stderr=warn",
    "log-level-file=off",
    "lock-path=/tmp/pgbackrest",
    "",
    `[${stanzaOf(environment)}]`,
    `pg1-path=${POSTGRES_PATHS.data}`,
    `pg1-socket-path=${POSTGRES_PATHS.socketDir}`,
    "",
  ];
  return lines.join("\n");
}

const secretExport = (variable: string, secretName: string, line?: 1 | 2): string =>
  line === undefined
    ? `export ${variable}="$(cat /run/secrets/${secretName})"`
    : `export ${variable}="$(sed -n ${line}p /run/secrets/${secretName})"`;

function repositoryExports(environment: TEnvironmentSpec, repository: TBackupRepositorySpec, index: number): string[] {
  const prefix = envPrefix(index);
  const lines: string[] = [];
  if (repository.type === "azure") lines.push(secretExport(`${prefix}_AZURE_KEY`, repository.keySecretRef));
  if (repository.type === "s3") {
    lines.push(
      secretExport(`${prefix}_S3_KEY`, repository.keySecretRef, 1),
      secretExport(`${prefix}_S3_KEY_SECRET`, repository.keySecretRef, 2),
    );
  }
  if (repository.cipherSecretRef !== undefined)
    lines.push(secretExport(`${prefix}_CIPHER_PASS`, backupPassphraseSecretName(repository, environment)));
  return lines;
}

/**
 * PostgreSQL runs archive_command as its own child, so the repository credentials must be in the
 * server's environment: exported here from secret files, then the image's entrypoint takes over.
 */
export function renderPostgresEntrypoint(organization: TOrganizationSpec, environment: TEnvironmentSpec): string {
  const exports = backupRepositoriesOf(organization, environment).flatMap((repository, index) =>
    repositoryExports(environment, repository, index),
  );
  return [
    "#!/bin/sh",
    "# Rendered by carehost; edits are overwritten and reported as drift.",
    "set -eu",
    "# Without pgBackRest every archive_command fails and WAL fills the disk: refuse to start instead.",
    "if ! command -v pgbackrest >/dev/null 2>&1; then",
    '  echo "carehost: backups are enabled but this image has no pgbackrest; use an image that includes it" >&2',
    "  exit 1",
    "fi",
    "mkdir -p /tmp/pgbackrest",
    ...exports,
    `exec docker-entrypoint.sh postgres -c config_file=${POSTGRES_PATHS.conf}`,
    "",
  ].join("\n");
}
