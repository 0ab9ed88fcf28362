// Controls over what carehost renders from the spec (odoo.conf, pg_hba.conf, postgresql.conf,
// redis.conf, the ingress), checked in `plan` before anything reaches a server. An artifact a
// control needs but that was not rendered is a failure: a missing file is not evidence of safety.
import type { TEnvironmentSpec } from "../spec/spec-schema.js";
import type { TArtifactControl, TControlReport, TRenderedArtifacts } from "./policy-types.js";

/** The routes of Odoo's database manager, guarded only by the master password (ODOO.md). */
export const ODOO_DATABASE_MANAGER_ROUTES: readonly string[] = [
  "/web/database/manager",
  "/web/database/selector",
  "/web/database/list",
  "/web/database/create",
  "/web/database/duplicate",
  "/web/database/drop",
  "/web/database/backup",
  "/web/database/restore",
  "/web/database/change_password",
];
/** pg_hba methods that authenticate with a strong proof: SCRAM, a client certificate, or the OS user on the local socket. */
const STRONG_HBA_METHODS = new Set(["scram-sha-256", "cert", "reject"]);
const LOCAL_ONLY_HBA_METHODS = new Set(["peer"]);

const quoted = (value: string) => JSON.stringify(value);
const TRUE_VALUES = new Set(["true", "1", "yes", "on"]);
const FALSE_VALUES = new Set(["false", "0", "no", "off"]);
const isTrue = (value: string | undefined) => value !== undefined && TRUE_VALUES.has(value.trim().toLowerCase());
const isFalse = (value: string | undefined) => value !== undefined && FALSE_VALUES.has(value.trim().toLowerCase());
/** postgresql.conf values may be quoted: ssl = 'on'. */
const unquote = (value: string | undefined) => value?.trim().replace(/^'(.*)'$/, "$1");
const show = (value: string | undefined) => (value === undefined ? "not set" : quoted(value));

type THbaEntry = { readonly line: number; readonly type: string; readonly method: string; readonly text: string };

/** Parses pg_hba.conf records: type database user [address [mask]] method [options]. */
export function parsePgHba(text: string): THbaEntry[] {
  const entries: THbaEntry[] = [];
  text.split("\n").forEach((raw, index) => {
    const line = raw.replace(/#.*$/, "").trim();
    if (line === "" || line.startsWith("include")) return;
    const fields = line.split(/\s+/);
    const type = fields[0] ?? "";
    // local records have no address; host* records have one address (CIDR) or an address and a mask.
    let methodIndex = type === "local" ? 3 : 4;
    if (type !== "local" && /^\d+\.\d+\.\d+\.\d+$/.test(fields[4] ?? "") && !(fields[3] ?? "").includes("/"))
      methodIndex = 5;
    entries.push({ line: index + 1, type, method: (fields[methodIndex] ?? "").toLowerCase(), text: line });
  });
  return entries;
}

function requireArtifact<K extends keyof TRenderedArtifacts>(
  artifacts: TRenderedArtifacts,
  key: K,
  fileName: string,
  report: TControlReport,
): NonNullable<TRenderedArtifacts[K]> | undefined {
  const artifact = artifacts[key];
  if (artifact === null)
    report.notApplicable(
      `this runtime serves no ${fileName.replace(/^the /, "")}: nothing reaches Odoo from the network`,
    );
  else if (artifact === undefined)
    report.fail(`${fileName} was not rendered, so this control cannot be verified`, { path: key });
  return artifact ?? undefined;
}

const redisEnabled = (environment: TEnvironmentSpec) => environment.redis.enabled;
const backedUp = (environment: TEnvironmentSpec) => environment.backup.enabled;

/** The client-side ciphers a backup may be written with: pgBackRest's and restic's own (AES-256 always). */
const CLIENT_SIDE_CIPHERS: Readonly<Record<"database" | "filestore", readonly string[]>> = {
  database: ["aes-256-cbc", "restic"],
  filestore: ["restic"],
};

/** One check for the database's and the filestore's backups: every declared repository, encrypted client-side. */
const everyRepository =
  (part: "database" | "filestore", what: string): TArtifactControl["check"] =>
  ({ environment, artifacts }, report) => {
    if (!environment.backup.enabled) return;
    const backup = requireArtifact(artifacts, "backup", "the backup configuration", report);
    if (backup === undefined) return;
    for (const name of environment.backup.repositories) {
      const repository = backup.repositories.find((candidate) => candidate.name === name);
      const write = repository?.[part];
      // A declared repository without this part would not restore on its own: a failure, not a gap.
      if (write === undefined || !write.written) {
        report.fail(
          `${what} is not backed up to repository ${quoted(name)}, which the environment declares${write === undefined ? "" : ` (${write.reason})`}`,
          { path: `backup.repositories.${name}.${part}` },
        );
      } else if (!CLIENT_SIDE_CIPHERS[part].includes(write.cipher)) {
        report.fail(
          `${what} goes to repository ${quoted(name)} without client-side encryption (cipher: ${quoted(write.cipher)})`,
          { path: `backup.repositories.${name}.${part}.cipher`, actual: write.cipher },
        );
      } else if (write.unverified !== undefined) {
        report.notEnforced(`${what} to repository ${quoted(name)}: ${write.unverified}`);
      }
    }
  };
const always = () => true;

export const ARTIFACT_CONTROLS: readonly TArtifactControl[] = [
  {
    id: "CH-ODOO-002",
    title: "odoo.conf hides the database list (list_db = False)",
    citations: ["164.312(a)(1)", "164.308(a)(4)"],
    severity: "critical",
    enforcement: "mandatory",
    subject: "artifact",
    appliesTo: always,
    check: ({ artifacts }, report) => {
      const conf = requireArtifact(artifacts, "odooConf", "odoo.conf", report);
      if (conf !== undefined && !isFalse(conf.list_db)) {
        report.fail(
          `odoo.conf must set list_db = False so the database manager is not exposed (list_db: ${show(conf.list_db)})`,
          { path: "odooConf.list_db", actual: conf.list_db },
        );
      }
    },
  },
  {
    id: "CH-ODOO-003",
    title: "The ingress blocks Odoo's database manager (/web/database/*)",
    citations: ["164.312(a)(1)", "164.308(a)(4)"],
    severity: "critical",
    enforcement: "mandatory",
    subject: "artifact",
    appliesTo: always,
    check: ({ artifacts }, report) => {
      const ingress = requireArtifact(artifacts, "ingress", "the ingress", report);
      if (ingress === undefined) return;
      const prefixes = ingress.blockedPaths.map((path) => path.replace(/\*+$/, "")).filter((prefix) => prefix !== "");
      const open = ODOO_DATABASE_MANAGER_ROUTES.filter((route) => !prefixes.some((prefix) => route.startsWith(prefix)));
      if (open.length > 0) {
        report.fail(`the ingress must block /web/database/* (not blocked: ${open.join(", ")})`, {
          path: "ingress.blockedPaths",
          actual: ingress.blockedPaths,
        });
      }
    },
  },
  {
    id: "CH-ODOO-004",
    title: "odoo.conf trusts the ingress's forwarded headers (proxy_mode = True)",
    citations: ["164.312(b)", "164.312(e)(1)"],
    severity: "medium",
    enforcement: "mandatory",
    subject: "artifact",
    appliesTo: always,
    check: ({ artifacts }, report) => {
      // Without it Odoo logs the ingress's address instead of the user's and builds http:// URLs.
      const conf = requireArtifact(artifacts, "odooConf", "odoo.conf", report);
      if (conf !== undefined && !isTrue(conf.proxy_mode)) {
        report.fail(`odoo.conf must set proxy_mode = True behind the ingress (proxy_mode: ${show(conf.proxy_mode)})`, {
          path: "odooConf.proxy_mode",
          actual: conf.proxy_mode,
        });
      }
    },
  },
  {
    id: "CH-ODOO-005",
    title: "odoo.conf pins dbfilter to the environment's database",
    citations: ["164.308(a)(4)", "164.312(a)(1)"],
    severity: "high",
    enforcement: "mandatory",
    subject: "artifact",
    appliesTo: always,
    check: ({ artifacts }, report) => {
      const conf = requireArtifact(artifacts, "odooConf", "odoo.conf", report);
      if (conf === undefined) return;
      const dbfilter = conf.dbfilter;
      const expected = conf.db_name === undefined ? undefined : `^${conf.db_name}$`;
      // Anchored, no wildcard and no %h/%d substitution: exactly one database can ever be served.
      const pinned =
        dbfilter !== undefined &&
        /^\^[A-Za-z0-9_-]+\$$/.test(dbfilter) &&
        (expected === undefined || dbfilter === expected);
      if (!pinned) {
        report.fail(
          `odoo.conf must pin dbfilter to ${expected === undefined ? "^<database>$" : quoted(expected)} (dbfilter: ${show(dbfilter)})`,
          {
            path: "odooConf.dbfilter",
            actual: dbfilter,
          },
        );
      }
    },
  },
  {
    id: "CH-ODOO-006",
    title: "odoo.conf sets a hashed master password (admin_passwd)",
    citations: ["164.308(a)(5)(ii)(D)", "164.312(d)"],
    severity: "critical",
    enforcement: "mandatory",
    subject: "artifact",
    appliesTo: always,
    check: ({ artifacts }, report) => {
      const conf = requireArtifact(artifacts, "odooConf", "odoo.conf", report);
      if (conf === undefined) return;
      const value = conf.admin_passwd;
      // Never echo the value: it is a password, or a hash of one.
      if (value === undefined || value.trim() === "")
        report.fail("odoo.conf must set admin_passwd to a pbkdf2-sha512 hash (admin_passwd is not set)", {
          path: "odooConf.admin_passwd",
        });
      else if (!value.startsWith("$pbkdf2-sha512$")) {
        report.fail("odoo.conf must set admin_passwd to a pbkdf2-sha512 hash (admin_passwd is in plain text)", {
          path: "odooConf.admin_passwd",
        });
      }
    },
  },
  {
    id: "CH-ODOO-007",
    title: "Odoo connects to PostgreSQL over verified TLS (db_sslmode = verify-full)",
    citations: ["164.312(e)(1)", "164.312(e)(2)(ii)"],
    severity: "high",
    enforcement: "mandatory",
    subject: "artifact",
    appliesTo: always,
    check: ({ artifacts }, report) => {
      const conf = requireArtifact(artifacts, "odooConf", "odoo.conf", report);
      if (conf !== undefined && conf.db_sslmode?.trim() !== "verify-full") {
        report.fail(`odoo.conf must set db_sslmode = verify-full (db_sslmode: ${show(conf.db_sslmode)})`, {
          path: "odooConf.db_sslmode",
          actual: conf.db_sslmode,
        });
      }
    },
  },
  {
    id: "CH-DB-002",
    title: "pg_hba.conf authenticates with scram-sha-256 or certificates, never trust",
    citations: ["164.312(d)", "164.308(a)(5)(ii)(D)"],
    severity: "critical",
    enforcement: "mandatory",
    subject: "artifact",
    appliesTo: always,
    check: ({ artifacts }, report) => {
      const hba = requireArtifact(artifacts, "pgHba", "pg_hba.conf", report);
      if (hba === undefined) return;
      for (const entry of parsePgHba(hba)) {
        const allowed =
          STRONG_HBA_METHODS.has(entry.method) || (entry.type === "local" && LOCAL_ONLY_HBA_METHODS.has(entry.method));
        if (!allowed) {
          report.fail(
            `pg_hba.conf line ${entry.line} must use scram-sha-256 or cert (method: ${entry.method || "missing"}: ${quoted(entry.text)})`,
            {
              path: `pgHba:${entry.line}`,
              actual: entry.method,
            },
          );
        }
      }
    },
  },
  {
    id: "CH-DB-003",
    title: "pg_hba.conf accepts network connections only over TLS (hostssl)",
    citations: ["164.312(e)(1)", "164.312(e)(2)(ii)"],
    severity: "critical",
    enforcement: "mandatory",
    subject: "artifact",
    appliesTo: always,
    check: ({ artifacts }, report) => {
      const hba = requireArtifact(artifacts, "pgHba", "pg_hba.conf", report);
      if (hba === undefined) return;
      for (const entry of parsePgHba(hba)) {
        if (
          (entry.type === "host" || entry.type === "hostnossl" || entry.type === "hostgssenc") &&
          entry.method !== "reject"
        ) {
          report.fail(
            `pg_hba.conf line ${entry.line} admits connections without TLS; use hostssl (type: ${entry.type}: ${quoted(entry.text)})`,
            {
              path: `pgHba:${entry.line}`,
              actual: entry.type,
            },
          );
        }
      }
    },
  },
  {
    id: "CH-DB-004",
    title: "postgresql.conf enables TLS (ssl = on)",
    citations: ["164.312(e)(1)", "164.312(e)(2)(ii)"],
    severity: "critical",
    enforcement: "mandatory",
    subject: "artifact",
    appliesTo: always,
    check: ({ artifacts }, report) => {
      const conf = requireArtifact(artifacts, "postgresqlConf", "postgresql.conf", report);
      if (conf !== undefined && !isTrue(unquote(conf.ssl))) {
        report.fail(`postgresql.conf must set ssl = on (ssl: ${show(conf.ssl)})`, {
          path: "postgresqlConf.ssl",
          actual: conf.ssl,
        });
      }
    },
  },
  {
    id: "CH-DB-005",
    title: "postgresql.conf stores scram-sha-256 password verifiers",
    citations: ["164.312(d)", "164.308(a)(5)(ii)(D)"],
    severity: "high",
    enforcement: "mandatory",
    subject: "artifact",
    appliesTo: always,
    check: ({ artifacts }, report) => {
      const conf = requireArtifact(artifacts, "postgresqlConf", "postgresql.conf", report);
      if (conf !== undefined && unquote(conf.password_encryption) !== "scram-sha-256") {
        report.fail(
          `postgresql.conf must set password_encryption = scram-sha-256 (password_encryption: ${show(conf.password_encryption)})`,
          {
            path: "postgresqlConf.password_encryption",
            actual: conf.password_encryption,
          },
        );
      }
    },
  },
  {
    id: "CH-DB-006",
    title: "PHI databases log statements with pgaudit or equivalent",
    citations: ["164.312(b)", "164.308(a)(1)(ii)(D)"],
    severity: "high",
    enforcement: "mandatory",
    subject: "artifact",
    appliesTo: (environment) => environment.dataClass === "phi",
    check: ({ artifacts }, report) => {
      const conf = requireArtifact(artifacts, "postgresqlConf", "postgresql.conf", report);
      if (conf === undefined) return;
      const libraries = (unquote(conf.shared_preload_libraries) ?? "").split(",").map((library) => library.trim());
      const pgauditLog = (unquote(conf["pgaudit.log"]) ?? "").trim().toLowerCase();
      const pgaudit = libraries.includes("pgaudit") && pgauditLog !== "" && pgauditLog !== "none";
      // log_statement = all is the equivalent: it records reads of PHI too, which "mod" does not.
      const statementLogging = unquote(conf.log_statement) === "all";
      if (!pgaudit && !statementLogging) {
        report.fail(
          `postgresql.conf must load pgaudit with pgaudit.log set, or set log_statement = all (shared_preload_libraries: ${show(conf.shared_preload_libraries)}, pgaudit.log: ${show(conf["pgaudit.log"])}, log_statement: ${show(conf.log_statement)})`,
          { path: "postgresqlConf.shared_preload_libraries", actual: conf.shared_preload_libraries },
        );
      }
    },
  },
  {
    id: "CH-RDS-001",
    title: "redis.conf accepts only TLS connections",
    citations: ["164.312(e)(1)", "164.312(e)(2)(ii)"],
    severity: "high",
    enforcement: "mandatory",
    subject: "artifact",
    appliesTo: redisEnabled,
    check: ({ artifacts }, report) => {
      const conf = requireArtifact(artifacts, "redisConf", "redis.conf", report);
      if (conf === undefined) return;
      const tlsPort = Number(conf["tls-port"] ?? "0");
      const plainPort = Number(conf.port ?? "6379");
      if (!(tlsPort > 0) || plainPort !== 0) {
        report.fail(
          `redis.conf must set tls-port and port 0 so no plaintext port is open (tls-port: ${show(conf["tls-port"])}, port: ${show(conf.port)})`,
          {
            path: "redisConf.port",
            actual: { port: conf.port, tlsPort: conf["tls-port"] },
          },
        );
      }
    },
  },
  {
    id: "CH-BAK-007",
    title: "The filestore is backed up to every repository the environment declares, encrypted client-side",
    citations: ["164.308(a)(7)(ii)(A)", "164.310(d)(2)(iv)", "164.312(a)(2)(iv)"],
    severity: "high",
    enforcement: "mandatory",
    subject: "artifact",
    appliesTo: backedUp,
    // Odoo's attachments are often patient documents: a database restored without them is not a recovery.
    check: everyRepository("filestore", "the filestore"),
  },
  {
    id: "CH-BAK-008",
    title: "The database is backed up to every repository the environment declares, encrypted client-side",
    citations: ["164.308(a)(7)(ii)(A)", "164.310(d)(2)(iv)", "164.312(a)(2)(iv)"],
    severity: "high",
    enforcement: "mandatory",
    subject: "artifact",
    appliesTo: backedUp,
    check: everyRepository("database", "the database"),
  },
  {
    id: "CH-NET-003",
    title: "The ingress terminates TLS",
    citations: ["164.312(e)(1)", "164.312(e)(2)(ii)"],
    severity: "critical",
    enforcement: "mandatory",
    subject: "artifact",
    appliesTo: always,
    check: ({ artifacts }, report) => {
      const ingress = requireArtifact(artifacts, "ingress", "the ingress", report);
      if (ingress !== undefined && !ingress.tls)
        report.fail("the ingress must serve HTTPS only (tls: false)", { path: "ingress.tls", actual: false });
    },
  },
  {
    id: "CH-NET-004",
    title: "The ingress sends Strict-Transport-Security",
    citations: ["164.312(e)(1)", "164.312(e)(2)(ii)"],
    severity: "medium",
    enforcement: "mandatory",
    subject: "artifact",
    appliesTo: always,
    check: ({ artifacts }, report) => {
      const ingress = requireArtifact(artifacts, "ingress", "the ingress", report);
      if (ingress !== undefined && !ingress.hsts)
        report.fail("the ingress must send HSTS so browsers never fall back to HTTP (hsts: false)", {
          path: "ingress.hsts",
          actual: false,
        });
    },
  },
];
