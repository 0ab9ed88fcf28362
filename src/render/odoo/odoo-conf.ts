// odoo.conf, rendered the same way for every target (local runtime, Kubernetes ConfigMap, Compose).
// Pure and deterministic: the same input gives the same bytes. It never holds a secret: the
// database password reaches Odoo through libpq (PGPASSFILE or PGPASSWORD from a secret), and the
// master password only as its pbkdf2-sha512 hash (ODOO.md).
import type { TEnvironmentSpec } from "../../spec/spec-schema.js";

/** Limits from Odoo's deployment guide (ODOO.md); per worker process. */
export const ODOO_LIMITS = {
  limitMemorySoftBytes: 2048 * 1024 * 1024,
  limitMemoryHardBytes: 2560 * 1024 * 1024,
  limitTimeCpuSeconds: 60,
  limitTimeRealSeconds: 120,
  limitRequest: 65536,
} as const;

/** Connections each Odoo process may hold; with workers, each process has its own pool. */
export const ODOO_DB_MAXCONN = 8;

/** Connection limit for the environment's database role: every process at full pool, plus room for maintenance. */
export const odooConnectionLimit = (environment: TEnvironmentSpec): number =>
  // HTTP workers, cron workers, the gevent (websocket) process and the master each get a pool.
  (environment.odoo.workers + environment.odoo.cronWorkers + 2) * ODOO_DB_MAXCONN + 5;

export type TOdooConfInput = {
  readonly environment: TEnvironmentSpec;
  readonly database: {
    readonly host: string;
    readonly port: number;
    readonly name: string;
    readonly user: string;
    /** CA certificate libpq checks the server against (db_sslmode = verify-full). */
    readonly sslRootCertPath: string;
  };
  /**
   * The master password as Odoo's pbkdf2-sha512 hash (see odoo-admin-password.ts), or the secret
   * file an entrypoint appends it from at container start. The second form keeps the hash out of
   * bundles that are committed to Git (Compose, GitOps); the file is then incomplete on its own.
   */
  readonly adminPasswordHash: string | { readonly joinedAtStartFrom: string };
  readonly dataDir: string;
  readonly addonsPaths: readonly string[];
  readonly httpPort?: number;
  readonly geventPort?: number;
  /** Default 127.0.0.1 (a local proxy); a container reached over a network needs 0.0.0.0. */
  readonly httpInterface?: string;
  /** Overrides for split deployments: web processes without cron threads, a cron-only process. */
  readonly workers?: number;
  readonly maxCronThreads?: number;
};

const PBKDF2_HASH_PATTERN = /^\$pbkdf2-sha512\$\d+\$[./A-Za-z0-9]+\$[./A-Za-z0-9]+$/;

/** The [options] of odoo.conf as key → value, in the order they are written. */
export function odooConfOptions(input: TOdooConfInput): Record<string, string> {
  const { environment, database } = input;
  const { adminPasswordHash } = input;
  if (typeof adminPasswordHash === "string" && !PBKDF2_HASH_PATTERN.test(adminPasswordHash)) {
    throw new TypeError("adminPasswordHash is not a pbkdf2-sha512 hash; refusing to render a plain master password");
  }
  if (typeof adminPasswordHash !== "string" && !/^\/[A-Za-z0-9_./-]+$/.test(adminPasswordHash.joinedAtStartFrom)) {
    throw new TypeError(
      `adminPasswordHash.joinedAtStartFrom ${JSON.stringify(adminPasswordHash.joinedAtStartFrom)} is not a plain absolute path`,
    );
  }
  for (const [field, value] of [
    ["database.host", database.host],
    ["database.name", database.name],
    ["database.user", database.user],
    ["httpInterface", input.httpInterface ?? "127.0.0.1"],
  ] as const) {
    if (!/^[A-Za-z0-9_.:-]+$/.test(value))
      throw new TypeError(`${field} ${JSON.stringify(value)} is not a plain identifier`);
  }
  const escapedName = database.name.replace(/[.\\^$|?*+()[\]{}]/g, "\\$&");
  return {
    // The database manager is guarded only by the master password: never list or serve it.
    list_db: "False",
    dbfilter: `^${escapedName}$`,
    db_name: database.name,
    db_host: database.host,
    db_port: String(database.port),
    db_user: database.user,
    db_sslmode: "verify-full",
    db_maxconn: String(ODOO_DB_MAXCONN),
    ...(typeof adminPasswordHash === "string" ? { admin_passwd: adminPasswordHash } : {}),
    proxy_mode: "True",
    http_interface: input.httpInterface ?? "127.0.0.1",
    http_port: String(input.httpPort ?? 8069),
    gevent_port: String(input.geventPort ?? 8072),
    workers: String(input.workers ?? environment.odoo.workers),
    max_cron_threads: String(input.maxCronThreads ?? environment.odoo.cronWorkers),
    limit_memory_soft: String(ODOO_LIMITS.limitMemorySoftBytes),
    limit_memory_hard: String(ODOO_LIMITS.limitMemoryHardBytes),
    limit_time_cpu: String(ODOO_LIMITS.limitTimeCpuSeconds),
    limit_time_real: String(ODOO_LIMITS.limitTimeRealSeconds),
    limit_request: String(ODOO_LIMITS.limitRequest),
    data_dir: input.dataDir,
    addons_path: input.addonsPaths.join(","),
    log_level: "info",
    log_handler: ":INFO",
    // Demo data in a PHI system is a data-integrity hazard.
    without_demo: "all",
    server_wide_modules: "base,web",
  };
}

/** odoo.conf text; libpq reads the CA path from PGSSLROOTCERT, set alongside (odoo.conf has no key for it). */
export function renderOdooConf(input: TOdooConfInput): string {
  const options = odooConfOptions(input);
  const lines = [
    "; Rendered by carehost from the organization spec; edits are overwritten and reported as drift.",
    `; environment: ${input.environment.name} (${input.environment.tier}, ${input.environment.dataClass})`,
    ...(typeof input.adminPasswordHash === "string"
      ? []
      : [`; admin_passwd is appended at container start from ${input.adminPasswordHash.joinedAtStartFrom}`]),
    "[options]",
    ...Object.entries(options).map(([key, value]) => `${key} = ${value}`),
  ];
  return `${lines.join("\n")}\n`;
}

/** Parses the [options] section of an odoo.conf (for drift checks and the artifact controls). */
export function parseOdooConf(text: string): Record<string, string> {
  const options: Record<string, string> = {};
  let inOptions = false;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith(";") || line.startsWith("#")) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section !== null) {
      inOptions = section[1] === "options";
      continue;
    }
    const separator = line.indexOf("=");
    if (inOptions && separator > 0) options[line.slice(0, separator).trim()] = line.slice(separator + 1).trim();
  }
  return options;
}
