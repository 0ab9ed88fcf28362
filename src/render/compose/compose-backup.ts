// The bundle's backup service: pgBackRest takes the database's backups into every repository the
// environment declares (WAL is archived to all of them by PostgreSQL's archive_command), and
// restic snapshots Odoo's filestore into the same repositories, encrypted with the same
// passphrase, then forgets by the same tiers. It runs the bundle's PostgreSQL image (pgBackRest's
// version matches the server's), on the database's volumes, with busybox crond on the spec's
// schedule. Pure.
import type { TEnvironmentSpec, TOrganizationSpec } from "../../spec/spec-schema.js";
import { filestoreForgetArguments, filestorePathOf, resticTargetIfAny } from "../data-tier/data-tier-backup.js";
import type { TResticTarget } from "../data-tier/data-tier-backup.js";
import { ODOO_PATHS } from "./compose-odoo.js";
import { composeRepositoriesOf, POSTGRES_PATHS, repositoryExports, stanzaOf } from "./compose-postgres.js";
import { backupPassphraseSecretName, backupRepositoriesOf, SECRET_NAMES } from "./compose-secrets.js";

export const BACKUP_PATHS = {
  script: "/etc/carehost/backup.sh",
  /** busybox crond reads the crontab named after the user it runs as. */
  crontabs: "/etc/carehost/crontabs",
  filestore: `${ODOO_PATHS.dataDir}/filestore`,
} as const;

/** The user the service runs as: the postgres image's, which owns the data directory pgBackRest reads. */
export const BACKUP_USER = "postgres";

const shellQuote = (value: string) => `'${value.replace(/'/g, `'"'"'`)}'`;

/** The restic targets of the environment's filestore, one per repository, in pgBackRest's order. */
export const composeFilestoreTargetsOf = (
  organization: TOrganizationSpec,
  environment: TEnvironmentSpec,
): readonly (TResticTarget | string)[] =>
  composeRepositoriesOf(organization, environment).map((repository) =>
    resticTargetIfAny(repository, filestorePathOf(stanzaOf(environment))),
  );

export function renderBackupCrontab(environment: TEnvironmentSpec): string {
  if (!environment.backup.enabled)
    throw new TypeError(`environment ${JSON.stringify(environment.name)} has backups disabled`);
  const { schedule } = environment.backup;
  const line = (cron: string, type: string) => `${cron} /bin/sh ${BACKUP_PATHS.script} ${type}`;
  return [
    "# Rendered by carehost; times are UTC (the container's clock).",
    line(schedule.full, "full"),
    ...(schedule.differential === undefined ? [] : [line(schedule.differential, "diff")]),
    ...(schedule.incremental === undefined ? [] : [line(schedule.incremental, "incr")]),
    "",
  ].join("\n");
}

/**
 * One run: `backup.sh full|diff|incr`. The database to each repository in turn (pgBackRest writes
 * one repository per backup command), then the filestore to each. Secrets are read from the
 * secret files on every run, exported only to the commands that need them, never put in argv.
 */
export function renderBackupScript(organization: TOrganizationSpec, environment: TEnvironmentSpec): string {
  const stanza = stanzaOf(environment);
  const repositories = backupRepositoriesOf(organization, environment);
  const pgbackrest = `pgbackrest --config=${POSTGRES_PATHS.pgbackrestConf} --stanza=${stanza}`;
  const exports = repositories.flatMap((repository, index) => repositoryExports(environment, repository, index));
  const forget = filestoreForgetArguments(
    environment.backup.enabled ? environment.backup.retention : { daily: 1, weekly: 0, monthly: 0 },
  );
  const restic = composeFilestoreTargetsOf(organization, environment).flatMap((target, index) => {
    const repository = repositories[index];
    if (repository === undefined) return [];
    // Said in the file, so a reader (and CH-BAK-007) sees the repository lacks the filestore.
    if (typeof target === "string")
      return [`# filestore NOT written to ${repository.name}: ${target.replace(/\n/g, " ")}`];
    const keyFile = repository.type === "posix" ? undefined : `/run/secrets/${repository.keySecretRef}`;
    const keyExports =
      keyFile === undefined
        ? []
        : target.keyVariables.map((variable, line) => `  export ${variable}="$(sed -n ${line + 1}p ${keyFile})"`);
    const run = (args: string) =>
      `  restic -r ${shellQuote(target.location)} ${[...target.flags, ""].join(" ")}${args}`;
    return [
      `# filestore -> ${target.repository}`,
      "(",
      `  export RESTIC_PASSWORD="$(cat /run/secrets/${backupPassphraseSecretName(repository, environment)})"`,
      ...Object.entries(target.plain).map(([key, value]) => `  export ${key}=${shellQuote(value)}`),
      ...keyExports,
      `${run("cat config")} >/dev/null 2>&1 || ${run("init").trimStart()}`,
      `${run(`backup --tag env:${environment.name} ${BACKUP_PATHS.filestore}`)}`,
      `${run(`forget --prune --tag env:${environment.name} --group-by '' ${forget.join(" ")}`)}`,
      ")",
    ];
  });
  return [
    "#!/bin/sh",
    "# Rendered by carehost; edits are overwritten and reported as drift.",
    "set -eu",
    'type="$1"',
    'case "$type" in full|diff|incr) ;; *) echo "usage: backup.sh full|diff|incr" >&2; exit 2 ;; esac',
    "umask 077",
    `export PGPASSWORD="$(cat /run/secrets/${SECRET_NAMES.postgresSuperuserPassword})"`,
    ...exports,
    `mkdir -p ${POSTGRES_PATHS.pgbackrestWork}/spool ${POSTGRES_PATHS.pgbackrestWork}/lock ${POSTGRES_PATHS.pgbackrestWork}/log`,
    "# stanza-create is idempotent: the first run creates the stanza in every repository.",
    `${pgbackrest} stanza-create`,
    ...repositories.map(
      (repository, index) => `${pgbackrest} --repo=${index + 1} --type="$type" backup  # ${repository.name}`,
    ),
    ...restic,
    "",
  ].join("\n");
}
