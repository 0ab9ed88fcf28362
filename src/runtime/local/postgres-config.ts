// postgresql.conf and pg_hba.conf for a carehost-managed cluster. Pure: the reconciler writes what
// these return and treats any other content on disk as drift. The policy engine reads the same
// values (the artifact subject), so what is checked is what is written.
import {
  pgHbaRules,
  postgresSecuritySettings,
  quotePostgresValue,
  renderPgHbaConf,
  statementAuditSettings,
} from "../../render/data-tier/data-tier-postgres.js";
import type { TStatementAudit } from "../../render/data-tier/data-tier-postgres.js";
import type { TServerCertificate } from "./runtime-ca.js";

export type { TStatementAudit };

export type TPostgresConfigInput = {
  readonly port: number;
  readonly certificate: TServerCertificate;
  /** How statements are audited: pgaudit when installed, otherwise log_statement = all, for PHI. */
  readonly statementAudit: TStatementAudit;
  /** The sum of the tenants' connection limits; the cluster admits that plus maintenance headroom. */
  readonly tenantConnections: number;
  /** A private (0700) directory for the Unix socket pgBackRest connects through; none without backups. */
  readonly socketDirectory?: string;
  /** WAL archiving (archive_mode, archive_command, archive_timeout) when the cluster is backed up. */
  readonly archive?: Readonly<Record<string, string>>;
};

/** Connections kept for carehost's own maintenance and for superuser emergencies. */
export const ADMIN_CONNECTION_HEADROOM = 10;
/**
 * A shared cluster oversubscribes: each tenant's role keeps its own connection limit, but the
 * cluster as a whole stops here (each slot costs shared memory whether used or not).
 */
export const MAX_CLUSTER_CONNECTIONS = 500;

/**
 * The settings carehost writes whose context is `postmaster` in pg_settings: PostgreSQL reads them
 * only at start, so a change leaves them pending_restart and reconcileCluster restarts the cluster.
 * Every other setting it writes takes effect on reload. local-change.test.ts checks this list
 * against pg_settings of a running cluster.
 */
export const RESTART_SETTINGS: ReadonlySet<string> = new Set([
  "archive_mode",
  "listen_addresses",
  "logging_collector",
  "max_connections",
  "port",
  "shared_preload_libraries",
  "unix_socket_directories",
  "unix_socket_permissions",
  "wal_level",
]);

const quote = quotePostgresValue;

/** Settings in the order they are written; values are as PostgreSQL's SHOW prints them, quoted where text. */
export function postgresqlSettings(input: TPostgresConfigInput): Record<string, string> {
  const settings: Record<string, string> = {
    listen_addresses: quote("127.0.0.1"),
    port: String(input.port),
    // Network connections go through hostssl + SCRAM; the only socket is pgBackRest's, in a 0700
    // directory of the cluster's own account (and it still authenticates with SCRAM).
    unix_socket_directories: quote(input.socketDirectory ?? ""),
    ...(input.socketDirectory === undefined ? {} : { unix_socket_permissions: "0700" }),
    max_connections: String(
      Math.min(MAX_CLUSTER_CONNECTIONS, Math.max(20, input.tenantConnections + ADMIN_CONNECTION_HEADROOM)),
    ),
    ...postgresSecuritySettings(),
    ssl_cert_file: quote(input.certificate.certPath),
    ssl_key_file: quote(input.certificate.keyPath),
    ssl_ca_file: quote(input.certificate.caPath),
    wal_level: "replica",
    logging_collector: "on",
    log_directory: quote("log"),
    log_filename: quote("postgresql-%a.log"),
    log_truncate_on_rotation: "on",
    log_line_prefix: quote("%m [%p] %q%u@%d "),
  };
  Object.assign(settings, input.archive ?? {}, statementAuditSettings(input.statementAudit));
  return settings;
}

export function renderPostgresqlConf(settings: Readonly<Record<string, string>>): string {
  return [
    "# Rendered by carehost; edits are reported as drift and overwritten by `carehost apply`.",
    "# ALTER SYSTEM overrides land in postgresql.auto.conf and are reset the same way.",
    ...Object.entries(settings).map(([key, value]) => `${key} = ${value}`),
    "",
  ].join("\n");
}

/** The data tier's rules on loopback; the one local line is pgBackRest's (the cluster admin over the private socket, still SCRAM). */
export const renderPgHba = (adminRole: string): string =>
  renderPgHbaConf(pgHbaRules({ clients: ["127.0.0.1/32", "::1/128"], localUser: adminRole }));

/** key → value of a postgresql.conf (later lines win, as in PostgreSQL); values keep their quotes. */
export function parsePostgresqlConf(text: string): Record<string, string> {
  const settings: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const line = raw.replace(/(^|\s)#.*$/, "").trim();
    const match = /^([A-Za-z0-9_.]+)\s*=?\s*(.*)$/.exec(line);
    if (match?.[1] !== undefined && match[2] !== undefined) settings[match[1]] = match[2].trim();
  }
  return settings;
}
