import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { loadSpecText } from "../spec/spec-loader.js";
import type { TBackupArtifact } from "./policy-types.js";
import type { TEnvironmentSpec, TOrganizationSpec } from "../spec/spec-schema.js";
import { parsePgHba } from "./policy-catalog-artifact.js";
import { DANGEROUS_REDIS_COMMANDS, isLoopbackOrPrivateAddress } from "./policy-catalog-live.js";
import { createSpecControls } from "./policy-catalog-spec.js";
import { createPolicyCatalog, POLICY_CATALOG } from "./policy-catalog.js";
import { HIPAA_CITATIONS, isHipaaCitation } from "./policy-citations.js";
import { evaluatePolicy } from "./policy-engine.js";
import type { TControlResult, TPostureReport } from "./policy-engine.js";
import { DEFAULT_RECOVERY_OBJECTIVES, tightenObjectives } from "./policy-objectives.js";
import { CONTROL_ID_PATTERN } from "./policy-types.js";
import type {
  TAnyControl,
  TLiveBackupState,
  TLiveCopy,
  TLivePostgresState,
  TLiveRedisState,
  TPlatformEnforcement,
} from "./policy-types.js";

const EXAMPLE_PATH = fileURLToPath(new URL("../../examples/northwind-health.yaml", import.meta.url));
const NOW = new Date("2026-01-15T12:00:00Z");

type TMutable<T> = { -readonly [K in keyof T]: T[K] };
type TArtifactState = {
  odooConf?: Record<string, string>;
  pgHba?: string;
  postgresqlConf?: Record<string, string>;
  redisConf?: Record<string, string>;
  ingress?: { blockedPaths: string[]; tls: boolean; hsts: boolean };
  backup?: { repositories: TBackupArtifact["repositories"] };
};
type TLiveState = {
  postgres?: TMutable<TLivePostgresState>;
  redis?: TMutable<TLiveRedisState>;
  backup?: TMutable<TLiveBackupState>;
  cannotProvide?: { synchronousStandby?: string };
  copies?: TLiveCopy[];
};
/** Everything a mutation may change: the spec, what carehost's sign-in enforces, and per environment the rendered artifacts and the live state. */
type TState = {
  organization: TOrganizationSpec;
  platform: TMutable<TPlatformEnforcement>;
  artifacts: Record<string, TArtifactState>;
  live: Record<string, TLiveState>;
};

function loadDemoSpec(): TOrganizationSpec {
  const result = loadSpecText(readFileSync(EXAMPLE_PATH, "utf8"), EXAMPLE_PATH);
  if (!result.ok) throw new Error(`the demo spec does not load: ${JSON.stringify(result.errors)}`);
  return result.spec;
}

/** What carehost should render for an environment: the compliant baseline. */
function compliantArtifacts(environment: TEnvironmentSpec): TArtifactState {
  return {
    odooConf: {
      list_db: "False",
      proxy_mode: "True",
      db_name: environment.name,
      dbfilter: `^${environment.name}$`,
      admin_passwd: "$pbkdf2-sha512$600000$c2FsdA$aGFzaA",
      db_sslmode: "verify-full",
    },
    pgHba: [
      "# TYPE DATABASE USER ADDRESS METHOD",
      "local all postgres peer",
      "hostssl all all 10.0.0.0/8 scram-sha-256",
      "host all all 0.0.0.0/0 reject",
      "",
    ].join("\n"),
    postgresqlConf: {
      ssl: "on",
      password_encryption: "'scram-sha-256'",
      shared_preload_libraries: "'pgaudit'",
      "pgaudit.log": "'read, write, ddl, role'",
    },
    ...(environment.redis.enabled ? { redisConf: { port: "0", "tls-port": "6380", "protected-mode": "yes" } } : {}),
    ingress: { blockedPaths: ["/web/database*"], tls: true, hsts: true },
    ...(environment.backup.enabled
      ? {
          backup: {
            repositories: environment.backup.repositories.map((name) => ({
              name,
              database: { written: true, cipher: "aes-256-cbc" },
              filestore: { written: true, cipher: "restic" },
            })),
          },
        }
      : {}),
  };
}

/** A case that changes an environment's repositories gets them backed up as rendered, unless it broke one itself. */
function withBackupOf(environment: TEnvironmentSpec, artifacts: TArtifactState): TArtifactState {
  if (!environment.backup.enabled || artifacts.backup === undefined) return artifacts;
  const known = artifacts.backup.repositories;
  const compliant = compliantArtifacts(environment).backup?.repositories ?? [];
  return {
    ...artifacts,
    backup: {
      repositories: compliant.map(
        (repository) => known.find((candidate) => candidate.name === repository.name) ?? repository,
      ),
    },
  };
}

function compliantLive(organization: TOrganizationSpec, environment: TEnvironmentSpec): TLiveState {
  const repositoryOf = (name: string) => ({
    name,
    type: organization.backupRepositories.find((repository) => repository.name === name)?.type ?? "posix",
  });
  return {
    ...(environment.backup.enabled
      ? { backup: { written: environment.backup.repositories.map(repositoryOf), skipped: [] } }
      : {}),
    postgres: {
      roleSuperuser: false,
      roleCreateRole: false,
      roleCreateDb: false,
      publicConnect: false,
      ssl: true,
      passwordEncryption: "scram-sha-256",
      hbaMethods: ["peer", "scram-sha-256", "reject"],
      sharedPreloadLibraries: ["pgaudit"],
      dataChecksums: true,
      synchronousStandbys: 1,
    },
    ...(environment.redis.enabled
      ? {
          redis: {
            bindAddresses: ["127.0.0.1", "-::1", "10.20.4.7"],
            protectedMode: true,
            defaultUserEnabled: false,
            renamedOrDisabledCommands: DANGEROUS_REDIS_COMMANDS.map((command) => command.toLowerCase()),
            tlsPort: 6380,
          },
        }
      : {}),
  };
}

function demoState(): TState {
  const organization = loadDemoSpec();
  return {
    organization,
    platform: { sessionIdleMinutes: 15, mfa: { enforced: true }, oidc: { enforced: true }, localUsers: "refused" },
    artifacts: Object.fromEntries(
      organization.environments.map((environment) => [environment.name, compliantArtifacts(environment)]),
    ),
    live: Object.fromEntries(
      organization.environments.map((environment) => [environment.name, compliantLive(organization, environment)]),
    ),
  };
}

function evaluate(state: TState, controls: readonly TAnyControl[] = POLICY_CATALOG): TPostureReport {
  const { organization } = state;
  return evaluatePolicy({
    controls,
    subjects: {
      spec: organization.environments.map((environment) => ({ organization, environment, platform: state.platform })),
      artifact: organization.environments.map((environment) => ({
        environment,
        artifacts: withBackupOf(environment, state.artifacts[environment.name] ?? {}),
      })),
      live: organization.environments.map((environment) => ({ environment, live: state.live[environment.name] ?? {} })),
    },
    now: NOW,
  });
}

/** A copy carehost recorded from prod's PHI: into a declared environment, or a restored copy with its expiry. */
const recordedCopy = (name: string, kind: "copy" | "environment", dataClass: "phi" | "deidentified"): TLiveCopy => ({
  name,
  kind,
  sourceEnvironment: "prod",
  sourceDataClass: "phi",
  dataClass,
  verified: dataClass === "deidentified",
  expiresAt: kind === "copy" ? "2026-01-14T12:00:00.000Z" : null,
  pastExpiry: false,
});

function environmentOf(state: TState, name: string): TEnvironmentSpec {
  const environment = state.organization.environments.find((candidate) => candidate.name === name);
  if (environment === undefined) throw new Error(`no environment ${name}`);
  return environment;
}

function enabledBackup(environment: TEnvironmentSpec) {
  if (!environment.backup.enabled) throw new Error(`backups of ${environment.name} are disabled`);
  return environment.backup;
}

const artifactsOf = (state: TState, name: string): TArtifactState => state.artifacts[name] ?? {};
const odooConf = (state: TState, name: string) => artifactsOf(state, name).odooConf ?? {};
const postgresqlConf = (state: TState, name: string) => artifactsOf(state, name).postgresqlConf ?? {};
const ingress = (state: TState, name: string) =>
  artifactsOf(state, name).ingress ?? { blockedPaths: [], tls: false, hsts: false };
function livePostgres(state: TState, name: string): TMutable<TLivePostgresState> {
  const postgres = state.live[name]?.postgres;
  if (postgres === undefined) throw new Error(`no live postgres for ${name}`);
  return postgres;
}
function liveRedis(state: TState, name: string): TMutable<TLiveRedisState> {
  const redis = state.live[name]?.redis;
  if (redis === undefined) throw new Error(`no live redis for ${name}`);
  return redis;
}

const failuresOf = (report: TPostureReport) =>
  report.results
    .filter((result) => result.status === "fail")
    .map((result) => `${result.controlId}@${result.environment}`);
const resultOf = (report: TPostureReport, controlId: string, environment: string): TControlResult => {
  const result = report.results.find(
    (candidate) => candidate.controlId === controlId && candidate.environment === environment,
  );
  if (result === undefined) throw new Error(`no result for ${controlId}@${environment}`);
  return result;
};

type TCase = {
  readonly controlId: string;
  readonly environment: string;
  readonly name: string;
  /** Brings the demo to a state where the control applies and passes (when the demo alone does not). */
  readonly setup?: (state: TState) => void;
  /** One change that must fail this control, and no other. */
  readonly mutate: (state: TState) => void;
  /** Part of the expected failure message (or of the reason it is not enforced). */
  readonly expect: string;
  /** What the change makes of the control: a failure, or a gap when carehost stops enforcing something nothing in the spec can fix. */
  readonly status?: "fail" | "not-enforced";
};

const CASES: readonly TCase[] = [
  // Spec controls.
  {
    controlId: "CH-ISO-001",
    environment: "prod",
    name: "PHI production on shared hosting",
    mutate: (s) => void (environmentOf(s, "prod").hosting = "shared"),
    expect: "PHI production must be dedicated (hosting: shared)",
  },
  {
    controlId: "CH-ISO-001",
    environment: "staging",
    name: "confidential production on shared hosting",
    setup: (s) => {
      const prod = environmentOf(s, "prod");
      const { dataSource: _copy, ...staging } = environmentOf(s, "staging");
      const promoted = {
        ...staging,
        tier: "production",
        hosting: "dedicated",
        odoo: structuredClone(prod.odoo),
        backup: structuredClone(prod.backup),
      } as const;
      s.organization.environments = s.organization.environments.map((environment) =>
        environment.name === "staging" ? promoted : environment,
      );
    },
    mutate: (s) => void (environmentOf(s, "staging").hosting = "shared"),
    expect: "confidential production must be dedicated (hosting: shared)",
  },
  {
    controlId: "CH-ISO-002",
    environment: "staging",
    name: "PHI staging on shared hosting",
    setup: (s) => {
      const staging = environmentOf(s, "staging");
      Object.assign(staging, { dataClass: "phi", hosting: "dedicated" });
      enabledBackup(staging).restoreDrill = { schedule: "0 9 * * sat" };
    },
    mutate: (s) => void (environmentOf(s, "staging").hosting = "shared"),
    expect: "PHI staging holds PHI and must be dedicated (hosting: shared)",
  },
  {
    controlId: "CH-BAK-001",
    environment: "prod",
    name: "production without backups",
    mutate: (s) => void (environmentOf(s, "prod").backup = { enabled: false }),
    expect: "must be backed up (backup.enabled: false)",
  },
  {
    controlId: "CH-BAK-002",
    environment: "staging",
    name: "backup repository without a cipher",
    mutate: (s) => {
      s.organization.backupRepositories.push({ name: "scratch", type: "posix", path: "scratch/" });
      enabledBackup(environmentOf(s, "staging")).repositories = ["scratch"];
    },
    expect: 'backup repository "scratch" (posix) must be encrypted: set cipherSecretRef',
  },
  {
    controlId: "CH-BAK-003",
    environment: "prod",
    name: "PHI production with one repository",
    mutate: (s) => void (enabledBackup(environmentOf(s, "prod")).repositories = ["offsite"]),
    expect: "at least 2 repositories (repositories: offsite)",
  },
  {
    controlId: "CH-BAK-003",
    environment: "prod",
    name: "PHI production without an offsite repository",
    mutate: (s) => {
      s.organization.backupRepositories.push({
        name: "local-two",
        type: "posix",
        path: "backups-two/",
        cipherSecretRef: "two-cipher",
      });
      enabledBackup(environmentOf(s, "prod")).repositories = ["local", "local-two"];
    },
    expect: "offsite repository (azure or s3); none of local, local-two is offsite",
  },
  {
    controlId: "CH-BAK-004",
    environment: "prod",
    name: "RPO weaker than PHI production allows",
    mutate: (s) => void (enabledBackup(environmentOf(s, "prod")).rpoMinutes = 30),
    expect: "PHI production requires an RPO of at most 15 min (rpoMinutes: 30)",
  },
  {
    controlId: "CH-BAK-005",
    environment: "prod",
    name: "RTO weaker than PHI production allows",
    mutate: (s) => void (enabledBackup(environmentOf(s, "prod")).rtoMinutes = 300),
    expect: "PHI production requires an RTO of at most 4 h (rtoMinutes: 300)",
  },
  {
    controlId: "CH-DR-001",
    environment: "prod",
    name: "no restore drill",
    mutate: (s) => void delete enabledBackup(environmentOf(s, "prod")).restoreDrill,
    expect: "PHI production must schedule restore drills",
  },
  {
    controlId: "CH-DR-002",
    environment: "prod",
    name: "monthly drill for PHI production",
    mutate: (s) => void (enabledBackup(environmentOf(s, "prod")).restoreDrill = { schedule: "0 9 1 * *" }),
    expect:
      'restore drill at least every 7 days (restoreDrill.schedule "0 9 1 * *" leaves up to 31 days between drills)',
  },
  {
    controlId: "CH-MNT-001",
    environment: "prod",
    name: "production without a maintenance window",
    mutate: (s) => void delete (environmentOf(s, "prod") as Partial<TEnvironmentSpec>).maintenanceWindow,
    expect: "production must have a maintenance window",
  },
  {
    controlId: "CH-NET-001",
    environment: "prod",
    name: "PHI open to the internet",
    mutate: (s) => void environmentOf(s, "prod").ingress.allowedCidrs.push("0.0.0.0/0"),
    expect: "must restrict ingress to known networks (allowedCidrs contains 0.0.0.0/0)",
  },
  {
    controlId: "CH-NET-001",
    environment: "prod",
    name: "PHI open to the IPv6 internet",
    mutate: (s) => void environmentOf(s, "prod").ingress.allowedCidrs.push("::/0"),
    expect: "allowedCidrs contains ::/0",
  },
  {
    controlId: "CH-NET-002",
    environment: "training",
    name: "no host names",
    mutate: (s) => void (environmentOf(s, "training").ingress.hostnames = []),
    expect: "at least one host name",
  },
  {
    controlId: "CH-ODOO-001",
    environment: "prod",
    name: "Odoo out of support",
    mutate: (s) => void (environmentOf(s, "prod").odoo.version = "16.0"),
    expect: 'Odoo 16.0 no longer receives security fixes; use one of 17.0, 18.0, 19.0 (odoo.version: "16.0")',
  },
  {
    controlId: "CH-SUP-001",
    environment: "prod",
    name: "production image by tag",
    mutate: (s) => void (environmentOf(s, "prod").odoo.image = "registry.northwind-health.example/odoo/odoo:17.0"),
    expect: 'odoo.image: "registry.northwind-health.example/odoo/odoo:17.0"',
  },
  {
    controlId: "CH-SUP-002",
    environment: "prod",
    name: "production addons by branch",
    mutate: (s) =>
      void (environmentOf(s, "prod").odoo.customAddons = { repository: "https://git.example/addons.git", ref: "main" }),
    expect: 'odoo.customAddons.ref: "main"',
  },
  {
    controlId: "CH-IAM-001",
    environment: "prod",
    name: "no MFA with PHI",
    mutate: (s) => void (s.organization.identity.mfaRequired = false),
    expect: "must require MFA for every sign-in (identity.mfaRequired: false)",
  },
  {
    controlId: "CH-IAM-001",
    environment: "prod",
    name: "MFA declared, no second factor at carehost's sign-in",
    mutate: (s) => void (s.platform.mfa = { enforced: false, reason: "carehost signs in with a password alone" }),
    expect: "identity.mfaRequired is true, but carehost signs in with a password alone",
    status: "not-enforced",
  },
  {
    controlId: "CH-IAM-002",
    environment: "prod",
    name: "30-minute idle sessions with PHI",
    mutate: (s) => void (s.organization.identity.sessionIdleTimeoutMinutes = 30),
    expect: "within 15 minutes (identity.sessionIdleTimeoutMinutes: 30)",
  },
  {
    controlId: "CH-IAM-002",
    environment: "prod",
    name: "15 declared, carehost ends idle sessions after 30",
    mutate: (s) => void (s.platform.sessionIdleMinutes = 30),
    expect: "carehost ends idle sessions after 30 minutes, not within 15",
  },
  {
    controlId: "CH-IAM-003",
    environment: "staging",
    name: "OIDC declared, carehost has no OIDC sign-in",
    mutate: (s) => void (s.platform.oidc = { enforced: false, reason: "carehost has no OIDC sign-in" }),
    expect: "but carehost has no OIDC sign-in",
    status: "not-enforced",
  },
  {
    controlId: "CH-IAM-004",
    environment: "training",
    name: "local users allowed by carehost though the organization allows none",
    mutate: (s) => void (s.platform.localUsers = "allowed"),
    expect: "carehost still creates local users",
  },

  // Artifact controls.
  {
    controlId: "CH-ODOO-002",
    environment: "prod",
    name: "list_db left on",
    mutate: (s) => void (odooConf(s, "prod").list_db = "True"),
    expect: 'list_db = False so the database manager is not exposed (list_db: "True")',
  },
  {
    controlId: "CH-ODOO-002",
    environment: "prod",
    name: "list_db unset (Odoo's default is True)",
    mutate: (s) => void delete odooConf(s, "prod").list_db,
    expect: "(list_db: not set)",
  },
  {
    controlId: "CH-ODOO-003",
    environment: "prod",
    name: "only the manager page blocked",
    mutate: (s) => void (ingress(s, "prod").blockedPaths = ["/web/database/manager"]),
    expect: "the ingress must block /web/database/* (not blocked: /web/database/selector, /web/database/list",
  },
  {
    controlId: "CH-ODOO-004",
    environment: "prod",
    name: "proxy_mode off",
    mutate: (s) => void (odooConf(s, "prod").proxy_mode = "False"),
    expect: 'proxy_mode = True behind the ingress (proxy_mode: "False")',
  },
  {
    controlId: "CH-ODOO-005",
    environment: "prod",
    name: "dbfilter matching everything",
    mutate: (s) => void (odooConf(s, "prod").dbfilter = ".*"),
    expect: 'pin dbfilter to "^prod$" (dbfilter: ".*")',
  },
  {
    controlId: "CH-ODOO-005",
    environment: "prod",
    name: "dbfilter by subdomain",
    mutate: (s) => void (odooConf(s, "prod").dbfilter = "^%d$"),
    expect: '(dbfilter: "^%d$")',
  },
  {
    controlId: "CH-ODOO-005",
    environment: "prod",
    name: "dbfilter pinned to another database",
    mutate: (s) => void (odooConf(s, "prod").dbfilter = "^staging$"),
    expect: '(dbfilter: "^staging$")',
  },
  {
    controlId: "CH-ODOO-006",
    environment: "prod",
    name: "master password in plain text",
    mutate: (s) => void (odooConf(s, "prod").admin_passwd = "admin"),
    expect: "(admin_passwd is in plain text)",
  },
  {
    controlId: "CH-ODOO-006",
    environment: "prod",
    name: "master password unset",
    mutate: (s) => void delete odooConf(s, "prod").admin_passwd,
    expect: "(admin_passwd is not set)",
  },
  {
    controlId: "CH-ODOO-007",
    environment: "prod",
    name: "db_sslmode prefer",
    mutate: (s) => void (odooConf(s, "prod").db_sslmode = "prefer"),
    expect: 'db_sslmode = verify-full (db_sslmode: "prefer")',
  },
  {
    controlId: "CH-DB-002",
    environment: "prod",
    name: "trust in pg_hba.conf",
    mutate: (s) => void (artifactsOf(s, "prod").pgHba += "hostssl all all 10.1.0.0/16 trust\n"),
    expect: 'pg_hba.conf line 5 must use scram-sha-256 or cert (method: trust: "hostssl all all 10.1.0.0/16 trust")',
  },
  {
    controlId: "CH-DB-002",
    environment: "prod",
    name: "md5 with address and mask",
    mutate: (s) => void (artifactsOf(s, "prod").pgHba += "hostssl all all 10.1.0.0 255.255.0.0 md5\n"),
    expect: "(method: md5:",
  },
  {
    controlId: "CH-DB-003",
    environment: "prod",
    name: "plaintext host line",
    mutate: (s) => void (artifactsOf(s, "prod").pgHba += "host all all 10.1.0.0/16 scram-sha-256\n"),
    expect: "pg_hba.conf line 5 admits connections without TLS; use hostssl (type: host:",
  },
  {
    controlId: "CH-DB-004",
    environment: "prod",
    name: "ssl off",
    mutate: (s) => void (postgresqlConf(s, "prod").ssl = "off"),
    expect: 'ssl = on (ssl: "off")',
  },
  {
    controlId: "CH-DB-005",
    environment: "prod",
    name: "md5 verifiers",
    mutate: (s) => void (postgresqlConf(s, "prod").password_encryption = "md5"),
    expect: 'password_encryption = scram-sha-256 (password_encryption: "md5")',
  },
  {
    controlId: "CH-DB-006",
    environment: "prod",
    name: "no pgaudit and log_statement mod",
    mutate: (s) => {
      const conf = postgresqlConf(s, "prod");
      conf.shared_preload_libraries = "'pg_stat_statements'";
      conf.log_statement = "'mod'";
    },
    expect: "must load pgaudit with pgaudit.log set, or set log_statement = all",
  },
  {
    controlId: "CH-DB-006",
    environment: "prod",
    name: "pgaudit loaded but logging nothing",
    mutate: (s) => void (postgresqlConf(s, "prod")["pgaudit.log"] = "none"),
    expect: 'pgaudit.log: "none"',
  },
  {
    controlId: "CH-RDS-001",
    environment: "prod",
    name: "plaintext Redis port",
    mutate: (s) => void ((artifactsOf(s, "prod").redisConf ?? {}).port = "6379"),
    expect: 'tls-port and port 0 so no plaintext port is open (tls-port: "6380", port: "6379")',
  },
  {
    controlId: "CH-BAK-007",
    environment: "prod",
    name: "filestore left out of a declared repository",
    mutate: (s) => {
      const backup = artifactsOf(s, "prod").backup;
      if (backup !== undefined)
        backup.repositories = backup.repositories.map((repository) =>
          repository.name === "offsite"
            ? { ...repository, filestore: { written: false, reason: "no job writes it" } }
            : repository,
        );
    },
    expect: 'the filestore is not backed up to repository "offsite", which the environment declares (no job writes it)',
  },
  {
    controlId: "CH-BAK-008",
    environment: "prod",
    name: "database backed up with server-side encryption only",
    mutate: (s) => {
      const backup = artifactsOf(s, "prod").backup;
      if (backup !== undefined)
        backup.repositories = backup.repositories.map((repository) =>
          repository.name === "offsite"
            ? { ...repository, database: { written: true, cipher: "AES256 (server-side)" } }
            : repository,
        );
    },
    expect: 'the database goes to repository "offsite" without client-side encryption (cipher: "AES256 (server-side)")',
  },
  {
    controlId: "CH-NET-003",
    environment: "prod",
    name: "ingress without TLS",
    mutate: (s) => void (ingress(s, "prod").tls = false),
    expect: "HTTPS only (tls: false)",
  },
  {
    controlId: "CH-NET-004",
    environment: "staging",
    name: "ingress without HSTS",
    mutate: (s) => void (ingress(s, "staging").hsts = false),
    expect: "(hsts: false)",
  },

  // Live controls.
  {
    controlId: "CH-DB-001",
    environment: "prod",
    name: "PHI production without HA",
    mutate: (s) => {
      environmentOf(s, "prod").database.highAvailability = false;
      livePostgres(s, "prod").synchronousStandbys = 0;
    },
    expect: "database.highAvailability: false, no synchronous standby streams",
  },
  {
    controlId: "CH-DB-001",
    environment: "prod",
    name: "HA declared, no standby streams",
    mutate: (s) => void (livePostgres(s, "prod").synchronousStandbys = 0),
    expect: "none streams (pg_stat_replication: 0 synchronous standbys)",
  },
  {
    controlId: "CH-DB-001",
    environment: "prod",
    name: "HA declared on a runtime that runs no standby",
    mutate: (s) => {
      livePostgres(s, "prod").synchronousStandbys = 0;
      (s.live.prod ??= {}).cannotProvide = { synchronousStandby: "this runtime runs no standby" };
    },
    expect: "database.highAvailability is true, but this runtime runs no standby",
    status: "not-enforced",
  },
  {
    controlId: "CH-BAK-006",
    environment: "prod",
    name: "the offsite repository skipped for a missing key",
    mutate: (s) => {
      const backup = s.live.prod?.backup;
      if (backup === undefined) throw new Error("no live backup for prod");
      backup.written = backup.written.filter((repository) => repository.name !== "offsite");
      backup.skipped = [{ name: "offsite", type: "azure", reason: "its key is not in the secret store" }];
    },
    expect:
      'backup repository "offsite" (azure) is declared but not written: its key is not in the secret store (backups go to: local)',
  },
  {
    controlId: "CH-DB-007",
    environment: "prod",
    name: "superuser role",
    mutate: (s) => void (livePostgres(s, "prod").roleSuperuser = true),
    expect: "must not be a superuser (rolsuper: true)",
  },
  {
    controlId: "CH-DB-008",
    environment: "prod",
    name: "CREATEROLE",
    mutate: (s) => void (livePostgres(s, "prod").roleCreateRole = true),
    expect: "CREATEROLE (rolcreaterole: true)",
  },
  {
    controlId: "CH-DB-009",
    environment: "training",
    name: "CREATEDB",
    mutate: (s) => void (livePostgres(s, "training").roleCreateDb = true),
    expect: "CREATEDB (rolcreatedb: true)",
  },
  {
    controlId: "CH-DB-010",
    environment: "prod",
    name: "PUBLIC keeps CONNECT",
    mutate: (s) => void (livePostgres(s, "prod").publicConnect = true),
    expect: "revoked from PUBLIC (PUBLIC has CONNECT)",
  },
  {
    controlId: "CH-DB-011",
    environment: "prod",
    name: "ssl off live",
    mutate: (s) => void (livePostgres(s, "prod").ssl = false),
    expect: "ssl = on (ssl: off)",
  },
  {
    controlId: "CH-DB-012",
    environment: "prod",
    name: "md5 live",
    mutate: (s) => void (livePostgres(s, "prod").passwordEncryption = "md5"),
    expect: '(password_encryption: "md5")',
  },
  {
    controlId: "CH-DB-013",
    environment: "prod",
    name: "trust loaded",
    mutate: (s) => void (livePostgres(s, "prod").hbaMethods = ["scram-sha-256", "trust"]),
    expect: "(loaded methods include trust)",
  },
  {
    controlId: "CH-DB-014",
    environment: "prod",
    name: "pgaudit not loaded",
    mutate: (s) => void (livePostgres(s, "prod").sharedPreloadLibraries = ["pg_stat_statements"]),
    expect: 'must load pgaudit (shared_preload_libraries: "pg_stat_statements")',
  },
  {
    controlId: "CH-DB-015",
    environment: "prod",
    name: "no data checksums",
    mutate: (s) => void (livePostgres(s, "prod").dataChecksums = false),
    expect: "(data_checksums: off)",
  },
  {
    controlId: "CH-RDS-002",
    environment: "prod",
    name: "Redis on every interface",
    mutate: (s) => void (liveRedis(s, "prod").bindAddresses = ["0.0.0.0", "127.0.0.1"]),
    expect: "(bind: 0.0.0.0)",
  },
  {
    controlId: "CH-RDS-002",
    environment: "prod",
    name: "Redis on a public address",
    mutate: (s) => void (liveRedis(s, "prod").bindAddresses = ["127.0.0.1", "203.0.113.7"]),
    expect: "(bind: 203.0.113.7)",
  },
  {
    controlId: "CH-RDS-002",
    environment: "prod",
    name: "Redis bind unset",
    mutate: (s) => void (liveRedis(s, "prod").bindAddresses = []),
    expect: "(bind is empty: every interface)",
  },
  {
    controlId: "CH-RDS-003",
    environment: "prod",
    name: "protected mode off",
    mutate: (s) => void (liveRedis(s, "prod").protectedMode = false),
    expect: "(protected-mode: no)",
  },
  {
    controlId: "CH-RDS-004",
    environment: "prod",
    name: "CONFIG still enabled",
    mutate: (s) =>
      void (liveRedis(s, "prod").renamedOrDisabledCommands = ["FLUSHALL", "FLUSHDB", "DEBUG", "SHUTDOWN", "MODULE"]),
    expect: "(still enabled: CONFIG)",
  },
  {
    controlId: "CH-RDS-005",
    environment: "prod",
    name: "default user on",
    mutate: (s) => void (liveRedis(s, "prod").defaultUserEnabled = true),
    expect: '"default" (user default is on)',
  },
  {
    controlId: "CH-RDS-006",
    environment: "prod",
    name: "no TLS port",
    mutate: (s) => void delete liveRedis(s, "prod").tlsPort,
    expect: "must serve TLS (tls-port: not set)",
  },
  {
    controlId: "CH-DATA-001",
    environment: "staging",
    name: "a plain restore of prod's PHI recorded in staging",
    setup: (s) =>
      void (s.live.staging = { ...s.live.staging, copies: [recordedCopy("staging", "environment", "deidentified")] }),
    mutate: (s) =>
      void (s.live.staging = { ...s.live.staging, copies: [recordedCopy("staging", "environment", "phi")] }),
    expect: 'holds a restore of PHI environment "prod" recorded as data class phi, and is dataClass confidential',
  },
  {
    controlId: "CH-DATA-002",
    environment: "prod",
    name: "a PHI copy past its expiry",
    setup: (s) => void (s.live.prod = { ...s.live.prod, copies: [recordedCopy("prod-1403", "copy", "phi")] }),
    mutate: (s) =>
      void (s.live.prod = {
        ...s.live.prod,
        copies: [{ ...recordedCopy("prod-1403", "copy", "phi"), pastExpiry: true }],
      }),
    expect: 'copy "prod-1403" holds PHI and is still live past its expiry (2026-01-14T12:00:00.000Z)',
  },
];

void describe("the control catalog", () => {
  void it("has at least 25 controls over the three subjects", () => {
    assert.ok(POLICY_CATALOG.length >= 25, `${POLICY_CATALOG.length} controls`);
    for (const subject of ["spec", "artifact", "live"] as const) {
      assert.ok(POLICY_CATALOG.filter((control) => control.subject === subject).length >= 7, `${subject} controls`);
    }
  });

  void it("has unique ids of the form CH-<AREA>-NNN", () => {
    const ids = POLICY_CATALOG.map((control) => control.id);
    assert.equal(new Set(ids).size, ids.length, `duplicate ids in ${ids.join(" ")}`);
    for (const id of ids) assert.match(id, CONTROL_ID_PATTERN);
  });

  void it("cites only the safeguards listed in CONTROLS.md, at least one rule section each", () => {
    for (const control of POLICY_CATALOG) {
      assert.ok(control.citations.length > 0, `${control.id} cites nothing`);
      for (const citation of control.citations) assert.ok(isHipaaCitation(citation), `${control.id} cites ${citation}`);
      assert.ok(
        control.citations.some((citation) => citation.startsWith("164.")),
        `${control.id} cites only the proposed rule`,
      );
      assert.equal(new Set(control.citations).size, control.citations.length, `${control.id} repeats a citation`);
    }
    // The citation list mirrors CONTROLS.md: every standard of the matrix is present.
    for (const standard of [
      "164.308(a)(1)",
      "164.308(a)(7)",
      "164.308(b)(1)",
      "164.310(d)(1)",
      "164.312(a)(1)",
      "164.312(b)",
      "164.312(d)",
      "164.312(e)(1)",
    ]) {
      assert.ok(standard in HIPAA_CITATIONS, standard);
    }
  });

  void it("has a title and severity on every control", () => {
    for (const control of POLICY_CATALOG) {
      assert.ok(control.title.length > 10, control.id);
      assert.ok(["critical", "high", "medium", "low"].includes(control.severity), control.id);
    }
  });

  void it("has a failing case for every control in the table below (manifest controls: policy-catalog-manifest.test.ts)", () => {
    const covered = new Set(CASES.map((testCase) => testCase.controlId));
    const missing = POLICY_CATALOG.filter((control) => control.subject !== "manifest")
      .map((control) => control.id)
      .filter((id) => !covered.has(id));
    assert.deepEqual(missing, []);
    const unknown = [...covered].filter((id) => !POLICY_CATALOG.some((control) => control.id === id));
    assert.deepEqual(unknown, []);
  });
});

void describe("the demo organization (examples/northwind-health.yaml) with a compliant rendering and live state", () => {
  const report = evaluate(demoState());

  void it("passes every control, mandatory and advisory", () => {
    assert.deepEqual(failuresOf(report), []);
    assert.deepEqual(report.mandatoryViolations, []);
    assert.equal(report.summary.fail, 0);
  });

  void it("passes every mandatory spec control that applies, and marks the rest not applicable", () => {
    const specResults = report.results.filter((result) => result.subject === "spec");
    assert.ok(specResults.every((result) => result.status === "pass" || result.status === "not-applicable"));
    assert.equal(resultOf(report, "CH-ISO-001", "prod").status, "pass");
    assert.equal(resultOf(report, "CH-ISO-001", "staging").status, "not-applicable");
    assert.equal(resultOf(report, "CH-BAK-001", "training").status, "not-applicable");
    assert.equal(resultOf(report, "CH-RDS-002", "staging").status, "not-applicable");
  });
});

void describe("each control", () => {
  for (const testCase of CASES) {
    void it(`${testCase.controlId} on ${testCase.environment}: ${testCase.name}`, () => {
      const state = demoState();
      testCase.setup?.(state);
      const before = evaluate(state);
      assert.equal(
        resultOf(before, testCase.controlId, testCase.environment).status,
        "pass",
        "passes before the change",
      );
      assert.deepEqual(failuresOf(before), [], "the setup fails nothing");

      testCase.mutate(state);
      const after = evaluate(state);
      const result = resultOf(after, testCase.controlId, testCase.environment);
      const status = testCase.status ?? "fail";
      assert.equal(result.status, status);
      // An organization-wide setting (identity) fails the control in every environment; nothing else fails.
      const failed = failuresOf(after);
      assert.ok(
        failed.every((item) => item.startsWith(`${testCase.controlId}@`)),
        `the change fails this control only: ${failed.join(", ")}`,
      );
      assert.equal(failed.includes(`${testCase.controlId}@${testCase.environment}`), status === "fail");
      assert.ok(
        result.messages.some((message) => message.includes(testCase.expect)),
        `expected a message containing ${JSON.stringify(testCase.expect)}, got ${JSON.stringify(result.messages)}`,
      );
      const control = POLICY_CATALOG.find((candidate) => candidate.id === testCase.controlId);
      const isViolation = after.mandatoryViolations.some((violation) => violation.controlId === testCase.controlId);
      assert.equal(
        isViolation,
        status === "fail" && control?.enforcement === "mandatory",
        "only mandatory failures are violations; a gap is not one",
      );
      if (status === "not-enforced") {
        const gaps = after.results.filter((candidate) => candidate.status === "not-enforced");
        assert.ok(
          gaps.length > 0 && gaps.every((candidate) => candidate.controlId === testCase.controlId),
          "only this control becomes a gap",
        );
        assert.equal(after.summary.notEnforced, gaps.length, "counted apart from the passes");
      }
    });
  }
});

void describe("artifacts and live state that were not provided", () => {
  void it("fail the controls that need them instead of passing silently", () => {
    const state = demoState();
    delete artifactsOf(state, "prod").odooConf;
    delete state.live.prod?.redis;
    const report = evaluate(state);
    assert.deepEqual(failuresOf(report).sort(), [
      "CH-ODOO-002@prod",
      "CH-ODOO-004@prod",
      "CH-ODOO-005@prod",
      "CH-ODOO-006@prod",
      "CH-ODOO-007@prod",
      "CH-RDS-002@prod",
      "CH-RDS-003@prod",
      "CH-RDS-004@prod",
      "CH-RDS-005@prod",
      "CH-RDS-006@prod",
    ]);
    assert.deepEqual(resultOf(report, "CH-ODOO-002", "prod").messages, [
      "odoo.conf was not rendered, so this control cannot be verified",
    ]);
    assert.deepEqual(resultOf(report, "CH-RDS-003", "prod").messages, [
      "Redis state was not read back, so this control cannot be verified",
    ]);
  });

  void it("fail every PostgreSQL live control when PostgreSQL was not read back", () => {
    const state = demoState();
    delete state.live.training?.postgres;
    const failing = failuresOf(evaluate(state));
    assert.deepEqual(
      failing,
      ["CH-DB-007", "CH-DB-008", "CH-DB-009", "CH-DB-010", "CH-DB-011", "CH-DB-012", "CH-DB-013", "CH-DB-015"].map(
        (id) => `${id}@training`,
      ),
    );
  });
});

void describe("recovery objectives", () => {
  void it("match the baseline of the issue for PHI production", () => {
    assert.deepEqual(DEFAULT_RECOVERY_OBJECTIVES.phi.production, {
      rpoMinutes: 15,
      rtoMinutes: 240,
      restoreDrillMaxIntervalMinutes: 7 * 24 * 60,
    });
    assert.equal(DEFAULT_RECOVERY_OBJECTIVES.confidential.production?.rpoMinutes, 60);
    assert.equal(DEFAULT_RECOVERY_OBJECTIVES.confidential.production?.rtoMinutes, 480);
  });

  void it("may be tightened by the organization, and the tighter objective is enforced", () => {
    const tightened = tightenObjectives(DEFAULT_RECOVERY_OBJECTIVES, { phi: { production: { rpoMinutes: 5 } } });
    assert.deepEqual(tightened.phi.production, {
      rpoMinutes: 5,
      rtoMinutes: 240,
      restoreDrillMaxIntervalMinutes: 7 * 24 * 60,
    });
    assert.equal(DEFAULT_RECOVERY_OBJECTIVES.phi.production?.rpoMinutes, 15, "the baseline is not modified");
    const report = evaluate(demoState(), createPolicyCatalog(tightened));
    assert.deepEqual(failuresOf(report), ["CH-BAK-004@prod"]);
    assert.deepEqual(resultOf(report, "CH-BAK-004", "prod").messages, [
      "PHI production requires an RPO of at most 5 min (rpoMinutes: 15)",
    ]);
  });

  void it("may set an objective where the baseline has none", () => {
    const tightened = tightenObjectives(DEFAULT_RECOVERY_OBJECTIVES, {
      confidential: { staging: { rpoMinutes: 720, rtoMinutes: 480 } },
    });
    const report = evaluate(demoState(), createSpecControls(tightened));
    assert.deepEqual(failuresOf(report), ["CH-BAK-004@staging"]);
  });

  void it("may not be loosened: the error names the field, the value and the baseline", () => {
    assert.throws(
      () =>
        tightenObjectives(DEFAULT_RECOVERY_OBJECTIVES, { phi: { production: { rpoMinutes: 60, rtoMinutes: 100 } } }),
      (error: unknown) => {
        assert.ok(error instanceof Error && "details" in error);
        assert.deepEqual(error.details, [
          {
            path: "objectives.phi.production.rpoMinutes",
            message: "60 is looser than the baseline 15; an organization may tighten objectives, not loosen them",
          },
        ]);
        return true;
      },
    );
    assert.throws(
      () => tightenObjectives(DEFAULT_RECOVERY_OBJECTIVES, { confidential: { staging: { rpoMinutes: 60 } } }),
      /may only be tightened/,
    );
    assert.throws(
      () => tightenObjectives(DEFAULT_RECOVERY_OBJECTIVES, { phi: { production: { rtoMinutes: 0 } } }),
      /may only be tightened/,
    );
  });
});

void describe("helpers", () => {
  void it("parsePgHba finds the method with CIDR, with address and mask, and on local lines", () => {
    const entries = parsePgHba(
      "local all all peer\nhost all all 10.0.0.0 255.0.0.0 md5 # legacy\nhostssl all all ::1/128 scram-sha-256 clientcert=verify-full\n\n# comment\n",
    );
    assert.deepEqual(
      entries.map((entry) => [entry.line, entry.type, entry.method]),
      [
        [1, "local", "peer"],
        [2, "host", "md5"],
        [3, "hostssl", "scram-sha-256"],
      ],
    );
  });

  void it("peer is accepted on the local socket only", () => {
    const state = demoState();
    artifactsOf(state, "prod").pgHba += "hostssl all all 10.2.0.0/16 peer\n";
    assert.deepEqual(failuresOf(evaluate(state)), ["CH-DB-002@prod"]);
  });

  void it("isLoopbackOrPrivateAddress accepts loopback and private networks and refuses wildcards and public addresses", () => {
    for (const address of [
      "127.0.0.1",
      "-::1",
      "::1",
      "10.1.2.3",
      "172.16.0.1",
      "172.31.255.255",
      "192.168.1.1",
      "fd12:3456::1",
      "fe80::1",
    ]) {
      assert.ok(isLoopbackOrPrivateAddress(address), address);
    }
    for (const address of ["0.0.0.0", "*", "::", "-::*", "172.32.0.1", "8.8.8.8", "2001:db8::1", "redis.example"]) {
      assert.ok(!isLoopbackOrPrivateAddress(address), address);
    }
  });
});
