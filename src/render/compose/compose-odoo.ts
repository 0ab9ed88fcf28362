// Odoo's files in a Compose bundle: odoo.conf for the web and the cron service, and the
// entrypoint that completes them from secret files at container start.
import type { TEnvironmentSpec } from "../../spec/spec-schema.js";
import { REDIS_TLS_PORT } from "../data-tier/data-tier-redis.js";
import { ODOO_LIMITS, renderOdooConf } from "../odoo/odoo-conf.js";
import { SECRET_NAMES } from "./compose-secrets.js";

export const ODOO_PATHS = {
  webConf: "/etc/odoo/odoo-web.conf",
  cronConf: "/etc/odoo/odoo-cron.conf",
  entrypoint: "/etc/carehost/odoo-entrypoint.sh",
  dataDir: "/var/lib/odoo",
  /** Private tmpfs for the completed odoo.conf and the libpq password file. */
  runtimeDir: "/run/odoo",
  standardAddons: "/usr/lib/python3/dist-packages/odoo/addons",
  /** Where the image carries the custom addons (built from customAddons.repository at ref). */
  customAddons: "/mnt/extra-addons",
} as const;

export const ODOO_DATABASE = { host: "postgres", port: 5432, name: "odoo", user: "odoo" } as const;
export const ODOO_HTTP_PORT = 8069;
export const ODOO_GEVENT_PORT = 8072;

const MIB = 1024 * 1024;

/**
 * Memory for a number of Odoo worker processes: each may grow to limit_memory_hard before Odoo
 * recycles it, plus the master and gevent processes.
 */
export const odooMemoryMiB = (workerProcesses: number): number =>
  Math.max(1, workerProcesses) * (ODOO_LIMITS.limitMemoryHardBytes / MIB) + 512;

/** CPUs from Odoo's sizing rule workers = 2 x CPU + 1, at least one. */
export const odooCpus = (workers: number): number => Math.max(1, Math.ceil((workers - 1) / 2));

/**
 * The cron service runs prefork with one HTTP worker: limit_time_* and limit_memory_* are only
 * enforced on prefork workers, so a runaway job is killed as it would be in the web service. The
 * HTTP worker answers the health check only; Traefik never routes to it.
 */
export const CRON_SERVICE_HTTP_WORKERS = 1;

export function renderOdooConfs(environment: TEnvironmentSpec): { web: string; cron: string } {
  const common = {
    environment,
    database: { ...ODOO_DATABASE, sslRootCertPath: `/run/secrets/${SECRET_NAMES.postgresCa}` },
    adminPasswordHash: { joinedAtStartFrom: `/run/secrets/${SECRET_NAMES.odooAdminPasswordHash}` },
    dataDir: ODOO_PATHS.dataDir,
    addonsPaths:
      environment.odoo.customAddons === undefined
        ? [ODOO_PATHS.standardAddons]
        : [ODOO_PATHS.standardAddons, ODOO_PATHS.customAddons],
    httpPort: ODOO_HTTP_PORT,
    geventPort: ODOO_GEVENT_PORT,
    // Traefik reaches Odoo over the Compose network; only the internal networks can connect.
    httpInterface: "0.0.0.0",
  } as const;
  return {
    // Web processes never run cron jobs, so scaling web out cannot run a job twice (ODOO.md).
    web: renderOdooConf({ ...common, maxCronThreads: 0 }),
    cron: renderOdooConf({
      ...common,
      workers: CRON_SERVICE_HTTP_WORKERS,
      maxCronThreads: environment.odoo.cronWorkers,
    }),
  };
}

const shellQuote = (value: string): string => `'${value.replace(/'/g, `'\\''`)}'`;

/**
 * Completes odoo.conf with admin_passwd and writes the libpq password file, both from secret
 * files into a private tmpfs: the hash and the password never reach the bundle, the image, the
 * environment of other processes, or argv.
 */
export function renderOdooEntrypoint(environment: TEnvironmentSpec): string {
  const redisLines = environment.redis.enabled
    ? [
        "",
        "# Sessions in Redis (OCA session_redis reads ODOO_SESSION_REDIS_URL), so web replicas share them.",
        `redis_password=$(cat /run/secrets/${SECRET_NAMES.redisOdooPassword})`,
        'case "$redis_password" in',
        "  *[!A-Za-z0-9._~-]*|'') echo \"carehost: the Redis password must be URL-safe\" >&2; exit 1 ;;",
        "esac",
        // TLS only (the data tier's Redis has no plaintext port), verified against the bundle's CA.
        `export ODOO_SESSION_REDIS_URL="rediss://odoo:$redis_password@redis:${REDIS_TLS_PORT}/0?ssl_cert_reqs=required&ssl_ca_certs=/run/secrets/${SECRET_NAMES.postgresCa}"`,
        "unset redis_password",
      ]
    : [];
  const lines = [
    "#!/bin/sh",
    "# Rendered by carehost; edits are overwritten and reported as drift.",
    "# Usage: odoo-entrypoint.sh <rendered odoo.conf> [odoo arguments]",
    "set -eu",
    "umask 077",
    'rendered_conf="$1"',
    "shift",
    `runtime_dir=${ODOO_PATHS.runtimeDir}`,
    "",
    `hash=$(cat /run/secrets/${SECRET_NAMES.odooAdminPasswordHash})`,
    'case "$hash" in',
    "  '$pbkdf2-sha512$'*) ;;",
    `  *) echo "carehost: /run/secrets/${SECRET_NAMES.odooAdminPasswordHash} is not a pbkdf2-sha512 hash; refusing to start" >&2; exit 1 ;;`,
    "esac",
    // odoo.conf has only the [options] section, so appending puts the key inside it.
    `{ cat "$rendered_conf"; printf 'admin_passwd = %s\\n' "$hash"; } > "$runtime_dir/odoo.conf"`,
    "unset hash",
    "",
    "# libpq's password file format escapes ':' and '\\'.",
    `db_password=$(sed -e 's/[\\\\:]/\\\\&/g' /run/secrets/${SECRET_NAMES.odooDatabasePassword})`,
    `printf '%s:%s:%s:%s:%s\\n' ${shellQuote(ODOO_DATABASE.host)} ${ODOO_DATABASE.port} ${shellQuote(ODOO_DATABASE.name)} ${shellQuote(ODOO_DATABASE.user)} "$db_password" > "$runtime_dir/pgpass"`,
    "unset db_password",
    'export PGPASSFILE="$runtime_dir/pgpass"',
    ...redisLines,
    "",
    'exec odoo --config "$runtime_dir/odoo.conf" "$@"',
    "",
  ];
  return lines.join("\n");
}
