// The PostgreSQL part of the data tier, derived once from the spec and rendered by every target
// (the local runtime's postgresql.conf, the Compose bundle's, the CloudNativePG Cluster's
// parameters): TLS, password hashing, connection logging, statement auditing, WAL archiving's
// timeout, and the pg_hba rules. Values are as postgresql.conf writes them (text quoted); the
// Kubernetes target unquotes them. Pure.

/** How statements are audited: pgaudit where it is installed, otherwise log_statement = all (both pass CH-DB-006). */
export type TStatementAudit = "pgaudit" | "log-statement-all" | "ddl";

export const quotePostgresValue = (value: string) => `'${value.replace(/'/g, "''")}'`;
export const unquotePostgresValue = (value: string) => value.replace(/^'(.*)'$/, "$1").replace(/''/g, "'");

/** What pgaudit records: reads count too, since HIPAA asks who viewed PHI, not only who changed it. */
export const PGAUDIT_LOG = "read, write, ddl, role";

/** The statement-auditing settings of one statement audit. */
export function statementAuditSettings(statementAudit: TStatementAudit): Record<string, string> {
  if (statementAudit === "pgaudit")
    return {
      shared_preload_libraries: quotePostgresValue("pgaudit"),
      "pgaudit.log": quotePostgresValue(PGAUDIT_LOG),
      "pgaudit.log_relation": "on",
      log_statement: quotePostgresValue("none"),
    };
  return { log_statement: quotePostgresValue(statementAudit === "log-statement-all" ? "all" : "ddl") };
}

/** The settings every target writes the same: encryption in transit, SCRAM verifiers, who connected. */
export function postgresSecuritySettings(): Record<string, string> {
  return {
    ssl: "on",
    ssl_min_protocol_version: quotePostgresValue("TLSv1.2"),
    password_encryption: quotePostgresValue("scram-sha-256"),
    log_connections: "on",
    log_disconnections: "on",
  };
}

/**
 * archive_timeout from the RPO: a segment is switched at least every quarter of the RPO, so a
 * crash loses at most that much even when writes are rare; never under 10 s (each switch ships a
 * segment), never over 5 min. Under a steady load segments fill sooner than that.
 */
export const archiveTimeoutSeconds = (rpoMinutes: number) =>
  Math.min(300, Math.max(10, Math.floor((rpoMinutes * 60) / 4)));

/** The strictest RPO of environments sharing one cluster: the cluster archives for the most demanding. */
export const strictestRpoMinutes = (rpoMinutes: readonly number[]) => Math.min(...rpoMinutes);

export type TPgHbaRule = {
  readonly type: "local" | "hostssl" | "hostnossl";
  readonly user: string;
  /** Absent for local rules. */
  readonly address?: string;
  readonly method: "scram-sha-256" | "reject";
};

/**
 * TLS and SCRAM only; everything else is refused explicitly, so a later line (or one the operator
 * of a target adds after carehost's) cannot open a hole. `clients` are the networks TLS clients
 * come from; `localUser` the one role allowed over the Unix socket (pgBackRest's), still SCRAM.
 */
export function pgHbaRules({
  clients,
  localUser,
}: {
  readonly clients: readonly string[];
  readonly localUser?: string;
}): TPgHbaRule[] {
  return [
    ...(localUser === undefined ? [] : [{ type: "local" as const, user: localUser, method: "scram-sha-256" as const }]),
    ...clients.map((address) => ({ type: "hostssl" as const, user: "all", address, method: "scram-sha-256" as const })),
    { type: "hostnossl", user: "all", address: "0.0.0.0/0", method: "reject" },
    { type: "hostnossl", user: "all", address: "::/0", method: "reject" },
  ];
}

/** One pg_hba.conf record per rule (database always "all"), columns aligned for a reader. */
export const pgHbaLine = (rule: TPgHbaRule) =>
  [rule.type.padEnd(10), "all".padEnd(9), rule.user.padEnd(5), (rule.address ?? "").padEnd(13), rule.method]
    .join(" ")
    .replace(/\s+$/, "");

export function renderPgHbaConf(rules: readonly TPgHbaRule[]): string {
  return [
    "# Rendered by carehost; edits are reported as drift and overwritten by `carehost apply`.",
    "# TYPE     DATABASE  USER  ADDRESS       METHOD",
    ...rules.map(pgHbaLine),
    "",
  ].join("\n");
}
