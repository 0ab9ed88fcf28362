// Controls over live state read back from the running PostgreSQL and Redis: what is actually
// enforced, which can drift from what was rendered (a hand-edited ALTER ROLE, a CONFIG SET).
// State that was not read back is a failure, never a pass.
import { isIPv4, isIPv6 } from "node:net";
import type { TEnvironmentSpec } from "../spec/spec-schema.js";
import type { TControlReport, TLiveControl, TLivePostgresState, TLiveRedisState, TLiveState } from "./policy-types.js";

/** Commands that wipe, reconfigure or stop Redis; none is needed by Odoo's session store. */
export const DANGEROUS_REDIS_COMMANDS: readonly string[] = [
  "FLUSHALL",
  "FLUSHDB",
  "CONFIG",
  "DEBUG",
  "SHUTDOWN",
  "MODULE",
];
const WEAK_HBA_METHODS = new Set(["trust", "password", "md5", "ident"]);

function postgresState(live: TLiveState, report: TControlReport): TLivePostgresState | undefined {
  if (live.postgres === undefined)
    report.fail("PostgreSQL state was not read back, so this control cannot be verified", { path: "postgres" });
  return live.postgres;
}

function redisState(live: TLiveState, report: TControlReport): TLiveRedisState | undefined {
  if (live.redis === undefined)
    report.fail("Redis state was not read back, so this control cannot be verified", { path: "redis" });
  return live.redis;
}

function ipv4Number(address: string): number {
  return address.split(".").reduce((total, part) => total * 256 + Number(part), 0);
}

/** Loopback or private (RFC 1918, RFC 4193 unique local, link-local) address; wildcards are not. */
export function isLoopbackOrPrivateAddress(bindAddress: string): boolean {
  // In redis.conf a leading "-" marks an address that may be unavailable; it still binds.
  const address = bindAddress.replace(/^-/, "").toLowerCase();
  if (isIPv4(address)) {
    const value = ipv4Number(address);
    const inNetwork = (network: string, prefix: number) =>
      Math.floor(value / 2 ** (32 - prefix)) === Math.floor(ipv4Number(network) / 2 ** (32 - prefix));
    return (
      inNetwork("127.0.0.0", 8) ||
      inNetwork("10.0.0.0", 8) ||
      inNetwork("172.16.0.0", 12) ||
      inNetwork("192.168.0.0", 16)
    );
  }
  if (isIPv6(address)) {
    if (address === "::1") return true;
    const firstGroup = Number.parseInt(address.split(":")[0] || "0", 16);
    // fc00::/7 unique local, fe80::/10 link-local.
    return (firstGroup & 0xfe00) === 0xfc00 || (firstGroup & 0xffc0) === 0xfe80;
  }
  return false;
}

const redisEnabled = (environment: TEnvironmentSpec) => environment.redis.enabled;
const always = () => true;

/** A mandatory control that fails when the Odoo role holds one PostgreSQL role attribute. */
const forbiddenRoleAttribute = (control: {
  id: string;
  title: string;
  citations: TLiveControl["citations"];
  severity: TLiveControl["severity"];
  field: "roleSuperuser" | "roleCreateRole" | "roleCreateDb";
  message: string;
}): TLiveControl => ({
  id: control.id,
  title: control.title,
  citations: control.citations,
  severity: control.severity,
  enforcement: "mandatory",
  subject: "live",
  appliesTo: always,
  check: ({ live }, report) => {
    const postgres = postgresState(live, report);
    if (postgres?.[control.field]) report.fail(control.message, { path: `postgres.${control.field}`, actual: true });
  },
});

const isPhiProduction = (environment: TEnvironmentSpec) =>
  environment.dataClass === "phi" && environment.tier === "production";

export const LIVE_CONTROLS: readonly TLiveControl[] = [
  {
    id: "CH-DB-001",
    title: "PHI production runs a highly available database",
    citations: ["164.308(a)(7)(ii)(B)", "164.308(a)(7)(ii)(C)"],
    severity: "medium",
    enforcement: "advisory",
    subject: "live",
    appliesTo: isPhiProduction,
    // Read from pg_stat_replication, not from database.highAvailability: a declared standby that
    // does not stream keeps nobody's data.
    check: ({ environment, live }, report) => {
      const postgres = postgresState(live, report);
      if (postgres === undefined || postgres.synchronousStandbys > 0) return;
      if (!environment.database.highAvailability) {
        report.fail(
          "PHI production should run a synchronous standby (database.highAvailability: false, no synchronous standby streams)",
          { path: "postgres.synchronousStandbys", actual: 0 },
        );
      } else if (live.cannotProvide?.synchronousStandby !== undefined) {
        report.notEnforced(`database.highAvailability is true, but ${live.cannotProvide.synchronousStandby}`);
      } else {
        report.fail(
          "PHI production declares a synchronous standby (database.highAvailability: true), but none streams (pg_stat_replication: 0 synchronous standbys)",
          { path: "postgres.synchronousStandbys", actual: 0 },
        );
      }
    },
  },
  {
    id: "CH-BAK-006",
    title: "Every backup is written to every repository the environment declares",
    citations: ["164.308(a)(7)(ii)(A)", "164.310(d)(2)(iv)"],
    severity: "high",
    enforcement: "mandatory",
    subject: "live",
    // CH-BAK-003 judges the declared repositories (two for PHI production, one offsite); this one,
    // that each of them is what the runtime really writes: a repository skipped for a missing key
    // leaves every backup in the others alone.
    appliesTo: (environment) => environment.backup.enabled,
    check: ({ live }, report) => {
      if (live.backup === undefined) {
        report.fail(
          "where backups are written was not read back from the runtime, so this control cannot be verified",
          { path: "backup" },
        );
        return;
      }
      const written = live.backup.written.map((repository) => repository.name).join(", ") || "none";
      for (const skipped of live.backup.skipped) {
        report.fail(
          `backup repository ${JSON.stringify(skipped.name)} (${skipped.type}) is declared but not written: ${skipped.reason} (backups go to: ${written})`,
          {
            path: `backup.skipped.${skipped.name}`,
            actual: skipped.reason,
          },
        );
      }
    },
  },
  forbiddenRoleAttribute({
    id: "CH-DB-007",
    title: "Odoo's database role is not a superuser",
    citations: ["164.308(a)(4)", "164.312(a)(1)"],
    severity: "critical",
    field: "roleSuperuser",
    message: "Odoo's database role must not be a superuser (rolsuper: true)",
  }),
  forbiddenRoleAttribute({
    id: "CH-DB-008",
    title: "Odoo's database role cannot create roles",
    citations: ["164.308(a)(4)(ii)(C)", "164.312(a)(1)"],
    severity: "high",
    field: "roleCreateRole",
    message: "Odoo's database role must not hold CREATEROLE (rolcreaterole: true)",
  }),
  forbiddenRoleAttribute({
    id: "CH-DB-009",
    title: "Odoo's database role cannot create databases",
    citations: ["164.308(a)(4)", "164.312(a)(1)"],
    severity: "medium",
    field: "roleCreateDb",
    message: "Odoo's database role must not hold CREATEDB (rolcreatedb: true)",
  }),
  {
    id: "CH-DB-010",
    title: "CONNECT on the Odoo database is revoked from PUBLIC",
    citations: ["164.308(a)(4)(ii)(B)", "164.312(a)(1)"],
    severity: "high",
    enforcement: "mandatory",
    subject: "live",
    appliesTo: always,
    check: ({ live }, report) => {
      const postgres = postgresState(live, report);
      if (postgres?.publicConnect) {
        report.fail("CONNECT on the Odoo database must be revoked from PUBLIC (PUBLIC has CONNECT)", {
          path: "postgres.publicConnect",
          actual: true,
        });
      }
    },
  },
  {
    id: "CH-DB-011",
    title: "PostgreSQL serves TLS",
    citations: ["164.312(e)(1)", "164.312(e)(2)(ii)"],
    severity: "critical",
    enforcement: "mandatory",
    subject: "live",
    appliesTo: always,
    check: ({ live }, report) => {
      const postgres = postgresState(live, report);
      if (postgres !== undefined && !postgres.ssl)
        report.fail("PostgreSQL must run with ssl = on (ssl: off)", { path: "postgres.ssl", actual: false });
    },
  },
  {
    id: "CH-DB-012",
    title: "PostgreSQL stores scram-sha-256 password verifiers",
    citations: ["164.312(d)", "164.308(a)(5)(ii)(D)"],
    severity: "high",
    enforcement: "mandatory",
    subject: "live",
    appliesTo: always,
    check: ({ live }, report) => {
      const postgres = postgresState(live, report);
      if (postgres !== undefined && postgres.passwordEncryption !== "scram-sha-256") {
        report.fail(
          `PostgreSQL must use password_encryption = scram-sha-256 (password_encryption: ${JSON.stringify(postgres.passwordEncryption)})`,
          {
            path: "postgres.passwordEncryption",
            actual: postgres.passwordEncryption,
          },
        );
      }
    },
  },
  {
    id: "CH-DB-013",
    title: "PostgreSQL's loaded pg_hba rules contain no trust or password-in-clear methods",
    citations: ["164.312(d)", "164.312(a)(1)"],
    severity: "critical",
    enforcement: "mandatory",
    subject: "live",
    appliesTo: always,
    check: ({ live }, report) => {
      const postgres = postgresState(live, report);
      const weak = postgres?.hbaMethods.filter((method) => WEAK_HBA_METHODS.has(method.toLowerCase())) ?? [];
      if (weak.length > 0) {
        report.fail(
          `PostgreSQL's pg_hba rules must use scram-sha-256 or cert (loaded methods include ${weak.join(", ")})`,
          { path: "postgres.hbaMethods", actual: weak },
        );
      }
    },
  },
  {
    id: "CH-DB-014",
    title: "PHI databases run with pgaudit loaded",
    citations: ["164.312(b)", "164.308(a)(1)(ii)(D)"],
    severity: "high",
    enforcement: "mandatory",
    subject: "live",
    appliesTo: (environment) => environment.dataClass === "phi",
    check: ({ live }, report) => {
      const postgres = postgresState(live, report);
      if (postgres !== undefined && !postgres.sharedPreloadLibraries.includes("pgaudit")) {
        report.fail(
          `PostgreSQL holding PHI must load pgaudit (shared_preload_libraries: ${JSON.stringify(postgres.sharedPreloadLibraries.join(","))})`,
          {
            path: "postgres.sharedPreloadLibraries",
            actual: postgres.sharedPreloadLibraries,
          },
        );
      }
    },
  },
  {
    id: "CH-DB-015",
    title: "PostgreSQL data checksums are enabled",
    citations: ["164.312(c)(1)", "164.312(c)(2)"],
    severity: "medium",
    enforcement: "advisory",
    subject: "live",
    // Enabling checksums needs the cluster stopped (pg_checksums), so it is advice, not a gate.
    appliesTo: always,
    check: ({ live }, report) => {
      const postgres = postgresState(live, report);
      if (postgres !== undefined && !postgres.dataChecksums) {
        report.fail(
          "PostgreSQL should run with data checksums so silent corruption is detected (data_checksums: off)",
          { path: "postgres.dataChecksums", actual: false },
        );
      }
    },
  },
  {
    id: "CH-RDS-002",
    title: "Redis listens only on loopback or private addresses",
    citations: ["164.312(a)(1)", "164.308(a)(4)"],
    severity: "critical",
    enforcement: "mandatory",
    subject: "live",
    appliesTo: redisEnabled,
    check: ({ live }, report) => {
      const redis = redisState(live, report);
      if (redis === undefined) return;
      if (redis.bindAddresses.length === 0) {
        report.fail("Redis must bind loopback or private addresses only (bind is empty: every interface)", {
          path: "redis.bindAddresses",
          actual: [],
        });
        return;
      }
      const exposed = redis.bindAddresses.filter((address) => !isLoopbackOrPrivateAddress(address));
      if (exposed.length > 0) {
        report.fail(`Redis must bind loopback or private addresses only (bind: ${exposed.join(" ")})`, {
          path: "redis.bindAddresses",
          actual: exposed,
        });
      }
    },
  },
  {
    id: "CH-RDS-003",
    title: "Redis runs in protected mode",
    citations: ["164.312(a)(1)"],
    severity: "high",
    enforcement: "mandatory",
    subject: "live",
    appliesTo: redisEnabled,
    check: ({ live }, report) => {
      const redis = redisState(live, report);
      if (redis !== undefined && !redis.protectedMode)
        report.fail("Redis must run with protected-mode yes (protected-mode: no)", {
          path: "redis.protectedMode",
          actual: false,
        });
    },
  },
  {
    id: "CH-RDS-004",
    title: "Redis's dangerous commands are disabled",
    citations: ["164.312(a)(1)", "164.312(c)(1)"],
    severity: "high",
    enforcement: "mandatory",
    subject: "live",
    appliesTo: redisEnabled,
    check: ({ live }, report) => {
      const redis = redisState(live, report);
      if (redis === undefined) return;
      const disabled = new Set(redis.renamedOrDisabledCommands.map((command) => command.toUpperCase()));
      const enabled = DANGEROUS_REDIS_COMMANDS.filter((command) => !disabled.has(command));
      if (enabled.length > 0) {
        report.fail(
          `Redis must disable or rename ${DANGEROUS_REDIS_COMMANDS.join(", ")} (still enabled: ${enabled.join(", ")})`,
          { path: "redis.renamedOrDisabledCommands", actual: enabled },
        );
      }
    },
  },
  {
    id: "CH-RDS-005",
    title: "Redis's default user is disabled; clients authenticate as named ACL users",
    citations: ["164.312(d)", "164.312(a)(2)(i)"],
    severity: "high",
    enforcement: "mandatory",
    subject: "live",
    appliesTo: redisEnabled,
    check: ({ live }, report) => {
      const redis = redisState(live, report);
      if (redis?.defaultUserEnabled)
        report.fail('Redis must disable the ACL user "default" (user default is on)', {
          path: "redis.defaultUserEnabled",
          actual: true,
        });
    },
  },
  {
    id: "CH-RDS-006",
    title: "Redis serves TLS",
    citations: ["164.312(e)(1)", "164.312(e)(2)(ii)"],
    severity: "high",
    enforcement: "mandatory",
    subject: "live",
    appliesTo: redisEnabled,
    check: ({ live }, report) => {
      const redis = redisState(live, report);
      if (redis !== undefined && !(redis.tlsPort !== undefined && redis.tlsPort > 0)) {
        report.fail(`Redis must serve TLS (tls-port: ${redis.tlsPort ?? "not set"})`, {
          path: "redis.tlsPort",
          actual: redis.tlsPort,
        });
      }
    },
  },
];
