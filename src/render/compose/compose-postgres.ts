// PostgreSQL's files in a Compose bundle: postgresql.conf (TLS, scram-sha-256, WAL archiving),
// pg_hba.conf, the first-start script that creates Odoo's role, and pgBackRest's configuration
// with the entrypoint that hands it its repository credentials from secret files.
import { renderPgbackrestConf as renderPgbackrestConfText } from "../../backup/pgbackrest-config.js";
import type { TBackupRepositorySpec, TEnvironmentSpec, TOrganizationSpec } from "../../spec/spec-schema.js";
import { containerRepositoryOf } from "../data-tier/data-tier-backup.js";
import {
  archiveTimeoutSeconds,
  pgHbaRules,
  postgresSecuritySettings,
  renderPgHbaConf,
  statementAuditSettings,
} from "../data-tier/data-tier-postgres.js";
import type { TStatementAudit } from "../data-tier/data-tier-postgres.js";
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
  /** pgBackRest's spool, lock and log files (a tmpfs: PostgreSQL keeps a WAL segment until it is pushed). */
  pgbackrestWork: "/tmp/pgbackrest",
  /** Each posix repository is a volume mounted here under its name. */
  posixRepositoryRoot: "/var/lib/pgbackrest",
} as const;

/**
 * The postgres image of the bundle is built from the official one with Debian's pgaudit and
 * pgBackRest and restic from the PGDG and Debian archives (postgres/Dockerfile): pgaudit is how
 * every environment's statements are audited (CH-DB-006), so the image must have it.
 */
export const COMPOSE_STATEMENT_AUDIT: TStatementAudit = "pgaudit";

/** pgBackRest's parallelism in the container: fixed, so the bundle does not depend on the rendering host. */
const COMPOSE_PROCESS_MAX = 2;

/** Connections beyond Odoo's: superuser reserve, pgBackRest, carehost's maintenance sessions. */
const EXTRA_CONNECTIONS = 10;

const settingLines = (settings: Readonly<Record<string, string>>) =>
  Object.entries(settings).map(([key, value]) => `${key} = ${value}`);

/** 1 GiB per four Odoo processes, at least 2 GiB: the cluster serves only this environment. */
export const postgresMemoryMiB = (environment: TEnvironmentSpec): number =>
  Math.max(2048, 1024 * Math.ceil((environment.odoo.workers + environment.odoo.cronWorkers + 2) / 4));

export const postgresCpus = (environment: TEnvironmentSpec): number =>
  Math.max(2, Math.ceil((environment.odoo.workers + environment.odoo.cronWorkers + 2) / 4));

/** The pgBackRest stanza: one cluster per environment. */
export const stanzaOf = (environment: TEnvironmentSpec): string => environment.name;

export function renderPostgresqlConf(environment: TEnvironmentSpec): string {
  const memory = postgresMemoryMiB(environment);
  const backup = environment.backup;
  const archiving = backup.enabled
    ? [
        "# Continuous WAL archiving to every repository (pgBackRest pushes to all of them).",
        "archive_mode = on",
        `archive_command = 'pgbackrest --config=${POSTGRES_PATHS.pgbackrestConf} --stanza=${stanzaOf(environment)} archive-push %p'`,
        `archive_timeout = ${archiveTimeoutSeconds(backup.rpoMinutes)}s  # rpoMinutes ${backup.rpoMinutes}`,
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
    "# Encryption in transit, password hashing, who connected (164.312(e)(1), 164.312(d), 164.312(b)).",
    ...settingLines(postgresSecuritySettings()),
    `ssl_cert_file = '/run/secrets/${SECRET_NAMES.postgresServerCertificate}'`,
    `ssl_key_file = '/run/secrets/${SECRET_NAMES.postgresServerKey}'`,
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
    "# Audit trail of who read and changed what (164.312(b)).",
    ...settingLines(statementAuditSettings(COMPOSE_STATEMENT_AUDIT)),
    "log_destination = 'stderr'",
    "log_line_prefix = '%m [%p] %q%u@%d from %h '",
    "log_timezone = 'UTC'",
    "timezone = 'UTC'",
    "",
  ];
  return lines.join("\n");
}

/** The data tier's rules for clients on the bundle's networks; the one local line is pgBackRest's. */
export const renderPgHba = (): string =>
  renderPgHbaConf(pgHbaRules({ clients: ["0.0.0.0/0", "::/0"], localUser: "postgres" }));

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

/** The environment's repositories as the bundle's containers write them. */
export const composeRepositoriesOf = (organization: TOrganizationSpec, environment: TEnvironmentSpec) =>
  backupRepositoriesOf(organization, environment).map((repository) =>
    containerRepositoryOf(repository, {
      posixRoot: POSTGRES_PATHS.posixRepositoryRoot,
      prefix: `/${organization.metadata.name}/${environment.name}`,
    }),
  );

/** pgbackrest.conf from the data tier's model, with the container's paths: the same lines the local runtime writes. */
export function renderPgbackrestConf(organization: TOrganizationSpec, environment: TEnvironmentSpec): string {
  const backup = environment.backup;
  if (!backup.enabled)
    throw new TypeError(
      `environment ${JSON.stringify(environment.name)} has backups disabled; there is no pgbackrest.conf`,
    );
  return renderPgbackrestConfText({
    stanza: stanzaOf(environment),
    dataDirectory: POSTGRES_PATHS.data,
    port: 5432,
    socketDirectory: POSTGRES_PATHS.socketDir,
    adminUser: "postgres",
    workDirectory: POSTGRES_PATHS.pgbackrestWork,
    repositories: composeRepositoriesOf(organization, environment),
    retention: backup.retention,
    processMax: COMPOSE_PROCESS_MAX,
  }).text;
}

/** shared_preload_libraries names pgaudit: without it PostgreSQL would not start, so say why first. */
const pgauditCheck = (environment: TEnvironmentSpec) => [
  `if [ ! -f /usr/lib/postgresql/${environment.database.postgresVersion}/lib/pgaudit.so ]; then`,
  '  echo "carehost: this image has no pgaudit, which audits statements (CH-DB-006); build it from postgres/Dockerfile" >&2',
  "  exit 1",
  "fi",
];

/**
 * The bundle's PostgreSQL image: the official one plus pgaudit and pgBackRest from the PGDG
 * archive the official image already trusts, and restic from Debian, for the filestore. The
 * backup service runs the same image, so pgBackRest's version matches on both sides.
 */
export function renderPostgresDockerfile(environment: TEnvironmentSpec, baseImage: string): string {
  const version = environment.database.postgresVersion;
  return [
    "# Rendered by carehost; edits are overwritten and reported as drift.",
    `FROM ${baseImage}`,
    "RUN apt-get update \\",
    ` && apt-get install -y --no-install-recommends postgresql-${version}-pgaudit pgbackrest restic busybox ca-certificates \\`,
    " && rm -rf /var/lib/apt/lists/*",
    "",
  ].join("\n");
}

const secretExport = (variable: string, secretName: string, line?: 1 | 2): string =>
  line === undefined
    ? `export ${variable}="$(cat /run/secrets/${secretName})"`
    : `export ${variable}="$(sed -n ${line}p /run/secrets/${secretName})"`;

export function repositoryExports(
  environment: TEnvironmentSpec,
  repository: TBackupRepositorySpec,
  index: number,
): string[] {
  const prefix = envPrefix(index);
  const lines: string[] = [];
  if (repository.type === "azure") lines.push(secretExport(`${prefix}_AZURE_KEY`, repository.keySecretRef));
  if (repository.type === "s3") {
    lines.push(
      secretExport(`${prefix}_S3_KEY`, repository.keySecretRef, 1),
      secretExport(`${prefix}_S3_KEY_SECRET`, repository.keySecretRef, 2),
    );
  }
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
    ...pgauditCheck(environment),
    ...(environment.backup.enabled
      ? [
          "# Without pgBackRest every archive_command fails and WAL fills the disk: refuse to start instead.",
          "if ! command -v pgbackrest >/dev/null 2>&1; then",
          '  echo "carehost: backups are enabled but this image has no pgbackrest; use an image that includes it" >&2',
          "  exit 1",
          "fi",
          `mkdir -p ${POSTGRES_PATHS.pgbackrestWork}/spool ${POSTGRES_PATHS.pgbackrestWork}/lock ${POSTGRES_PATHS.pgbackrestWork}/log`,
        ]
      : []),
    ...exports,
    `exec docker-entrypoint.sh postgres -c config_file=${POSTGRES_PATHS.conf}`,
    "",
  ].join("\n");
}
