// Walks every control of the catalog, one row per control id: each row makes false what carehost
// enforces or reads back for that control (a rendered file, a value read from a running system,
// carehost's own sign-in), not what the spec declares, and proves the control then fails or says it
// is not enforced. A control whose only input is the spec names the code that acts on the
// declaration, so that flipping the declaration is flipping what carehost does. The catalog cannot
// grow without a row here.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { kubernetesObjects } from "../render/kubernetes/kubernetes-render.js";
import { archiveTimeoutSeconds } from "../backup/pgbackrest-config.js";
import { instanceNameOf } from "../spec/spec-hosting.js";
import { loadSpecText } from "../spec/spec-loader.js";
import type { TEnvironmentSpec, TOrganizationSpec } from "../spec/spec-schema.js";
import { DANGEROUS_REDIS_COMMANDS } from "./policy-catalog-live.js";
import { POLICY_CATALOG } from "./policy-catalog.js";
import { evaluatePolicy } from "./policy-engine.js";
import type { TControlResult } from "./policy-engine.js";
import type { TManifestObject, TPlatformEnforcement } from "./policy-types.js";

const NOW = new Date("2026-01-15T12:00:00Z");
const EXAMPLE = fileURLToPath(new URL("../../examples/northwind-health.yaml", import.meta.url));

/* eslint-disable @typescript-eslint/no-explicit-any -- a row reaches into rendered objects and read-back state of any shape */
type TWalkState = {
  organization: TOrganizationSpec;
  platform: { -readonly [K in keyof TPlatformEnforcement]: TPlatformEnforcement[K] };
  artifacts: Record<string, Record<string, any>>;
  live: Record<string, Record<string, any>>;
  manifests: Record<string, any[]>;
};

const demo = (): TOrganizationSpec => {
  const loaded = loadSpecText(readFileSync(EXAMPLE, "utf8"), EXAMPLE);
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  return loaded.spec;
};

/** What carehost renders, reads back and enforces when everything holds. */
function compliantState(): TWalkState {
  const organization = demo();
  const typeOf = (name: string) =>
    organization.backupRepositories.find((repository) => repository.name === name)?.type ?? "posix";
  const perEnvironment = <T>(make: (environment: TEnvironmentSpec) => T) =>
    Object.fromEntries(organization.environments.map((environment) => [environment.name, make(environment)]));
  return {
    organization,
    platform: { sessionIdleMinutes: 15, mfa: { enforced: true }, oidc: { enforced: true }, localUsers: "refused" },
    artifacts: perEnvironment((environment) => ({
      odooConf: {
        list_db: "False",
        proxy_mode: "True",
        db_name: environment.name,
        dbfilter: `^${environment.name}$`,
        admin_passwd: "$pbkdf2-sha512$600000$c2FsdA$aGFzaA",
        db_sslmode: "verify-full",
      },
      pgHba: "local all postgres peer\nhostssl all all 10.0.0.0/8 scram-sha-256\nhost all all 0.0.0.0/0 reject\n",
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
    })),
    live: perEnvironment((environment) => ({
      // What the restores recorded: prod's PHI de-identified (and verified) into staging, and a PHI copy of prod within its expiry.
      copies:
        environment.name === "staging"
          ? [
              {
                name: "staging",
                kind: "environment",
                sourceEnvironment: "prod",
                sourceDataClass: "phi",
                dataClass: "deidentified",
                verified: true,
                expiresAt: null,
                pastExpiry: false,
              },
            ]
          : environment.name === "prod"
            ? [
                {
                  name: "prod-bug-4711",
                  kind: "copy",
                  sourceEnvironment: "prod",
                  sourceDataClass: "phi",
                  dataClass: "phi",
                  verified: false,
                  expiresAt: "2026-01-16T12:00:00.000Z",
                  pastExpiry: false,
                },
              ]
            : [],
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
              bindAddresses: ["127.0.0.1"],
              protectedMode: true,
              defaultUserEnabled: false,
              renamedOrDisabledCommands: [...DANGEROUS_REDIS_COMMANDS],
              tlsPort: 6380,
            },
          }
        : {}),
      ...(environment.backup.enabled
        ? {
            backup: {
              written: environment.backup.repositories.map((name) => ({ name, type: typeOf(name) })),
              skipped: [],
            },
          }
        : {}),
    })),
    manifests: perEnvironment(
      (environment) => JSON.parse(JSON.stringify(kubernetesObjects(organization, environment.name))) as any[],
    ),
  };
}

const evaluate = (state: TWalkState) =>
  evaluatePolicy({
    controls: POLICY_CATALOG,
    subjects: {
      spec: state.organization.environments.map((environment) => ({
        organization: state.organization,
        environment,
        platform: state.platform,
      })),
      artifact: state.organization.environments.map((environment) => ({
        environment,
        artifacts: state.artifacts[environment.name]!,
      })),
      live: state.organization.environments.map((environment) => ({
        environment,
        live: state.live[environment.name]!,
      })),
      manifest: state.organization.environments.map((environment) => ({
        environment,
        objects: state.manifests[environment.name] as TManifestObject[],
      })),
    },
    now: NOW,
  });

const environment = (state: TWalkState, name: string) =>
  state.organization.environments.find((item) => item.name === name)!;
const backupOf = (state: TWalkState, name: string) => {
  const backup = environment(state, name).backup;
  if (!backup.enabled) throw new Error(`${name} is not backed up`);
  return backup;
};
const prodWeb = (state: TWalkState) =>
  state.manifests.prod!.find((object) => object.kind === "Deployment" && object.metadata.name === "odoo-web").spec
    .template.spec;

type TRow = {
  /** What the control judges, as carehost enforces or reads it back. */
  readonly reads: string;
  /**
   * "enforcement": the row changes what carehost enforces or reads back and leaves the spec as it
   * is. "declaration": the spec value is the very input carehost acts on (named in `reads`); the
   * row changes it, and `actsOn` proves carehost does what it now says.
   */
  readonly kind: "enforcement" | "declaration";
  readonly environment?: string;
  /** Brings the demo where the control applies, when it does not on its own. */
  readonly setup?: (state: TWalkState) => void;
  readonly breakIt: (state: TWalkState) => void;
  readonly expect: "fail" | "not-enforced";
  readonly actsOn?: (state: TWalkState) => void;
};

const ROWS: Readonly<Record<string, TRow>> = {
  // Spec controls: carehost acts on the declaration itself.
  "CH-ISO-001": {
    kind: "declaration",
    reads: "local-placement: a dedicated environment gets a cluster of its own",
    breakIt: (s) => void (environment(s, "prod").hosting = "shared"),
    expect: "fail",
    actsOn: (s) => assert.equal(instanceNameOf(environment(s, "prod")), "shared"),
  },
  "CH-ISO-002": {
    kind: "declaration",
    reads: "local-placement: a shared environment is a tenant of the shared cluster",
    environment: "staging",
    setup: (s) => void Object.assign(environment(s, "staging"), { dataClass: "phi", hosting: "dedicated" }),
    breakIt: (s) => void (environment(s, "staging").hosting = "shared"),
    expect: "fail",
    actsOn: (s) => assert.equal(instanceNameOf(environment(s, "staging")), "shared"),
  },
  "CH-BAK-001": {
    kind: "declaration",
    reads: "recovery-service schedules backups only of environments with backup.enabled",
    breakIt: (s) => void (environment(s, "prod").backup = { enabled: false }),
    expect: "fail",
  },
  "CH-BAK-002": {
    kind: "declaration",
    reads: "local-backup-config: the repository's passphrase secret, named by cipherSecretRef",
    breakIt: (s) => void delete (s.organization.backupRepositories[0] as { cipherSecretRef?: string }).cipherSecretRef,
    expect: "fail",
  },
  "CH-BAK-003": {
    kind: "declaration",
    reads: "the repositories pgBackRest and restic are configured with (what is really written: CH-BAK-006)",
    breakIt: (s) => void (backupOf(s, "prod").repositories = ["local"]),
    expect: "fail",
  },
  "CH-BAK-004": {
    kind: "declaration",
    reads: "archive_timeout, a quarter of the RPO; drills measure the RPO achieved",
    breakIt: (s) => void (backupOf(s, "prod").rpoMinutes = 60),
    expect: "fail",
    actsOn: (s) => assert.equal(archiveTimeoutSeconds(backupOf(s, "prod").rpoMinutes), 300),
  },
  "CH-BAK-005": {
    kind: "declaration",
    reads: "the RTO objective every drill is measured against",
    breakIt: (s) => void (backupOf(s, "prod").rtoMinutes = 600),
    expect: "fail",
  },
  "CH-DR-001": {
    kind: "declaration",
    reads: "recovery-service runs drills on backup.restoreDrill.schedule",
    breakIt: (s) => void delete backupOf(s, "prod").restoreDrill,
    expect: "fail",
  },
  "CH-DR-002": {
    kind: "declaration",
    reads: "recovery-service runs drills on backup.restoreDrill.schedule",
    breakIt: (s) => void (backupOf(s, "prod").restoreDrill = { schedule: "0 9 1 * *" }),
    expect: "fail",
  },
  "CH-MNT-001": {
    kind: "declaration",
    reads: "recovery-service refuses a restore over production outside its maintenance window",
    breakIt: (s) => void delete (environment(s, "prod") as Partial<TEnvironmentSpec>).maintenanceWindow,
    expect: "fail",
  },
  "CH-NET-001": {
    kind: "declaration",
    reads: "the rendered ingress allowlist",
    breakIt: (s) => void environment(s, "prod").ingress.allowedCidrs.push("0.0.0.0/0"),
    expect: "fail",
  },
  "CH-NET-002": {
    kind: "declaration",
    reads: "the host names the ingress and its certificate are rendered for",
    environment: "training",
    breakIt: (s) => void (environment(s, "training").ingress.hostnames = []),
    expect: "fail",
  },
  "CH-DATA-001": {
    kind: "enforcement",
    reads:
      "the copies table: the restore of prod's PHI into staging recorded as de-identified only with a passed verification",
    environment: "staging",
    breakIt: (s) => void (s.live.staging!.copies[0].dataClass = "phi"),
    expect: "fail",
  },
  "CH-DATA-002": {
    kind: "enforcement",
    reads: "the copies table: a restored copy of prod's PHI still live past its expiry",
    environment: "prod",
    breakIt: (s) => void (s.live.prod!.copies[0].pastExpiry = true),
    expect: "fail",
  },
  "CH-ODOO-001": {
    kind: "declaration",
    reads: "the Odoo version rendered into every target",
    breakIt: (s) => void (environment(s, "prod").odoo.version = "16.0"),
    expect: "fail",
  },
  "CH-SUP-001": {
    kind: "declaration",
    reads: "the image rendered into every target",
    breakIt: (s) => void (environment(s, "prod").odoo.image = "odoo:17.0"),
    expect: "fail",
  },
  "CH-SUP-002": {
    kind: "declaration",
    reads: "the addons commit rendered into every target",
    breakIt: (s) =>
      void (environment(s, "prod").odoo.customAddons = { repository: "https://git.example/addons.git", ref: "main" }),
    expect: "fail",
  },

  // carehost's own sign-in (identity-rules.ts), the spec left as it is.
  "CH-IAM-001": {
    kind: "enforcement",
    reads: "a second factor at carehost's sign-in",
    breakIt: (s) => void (s.platform.mfa = { enforced: false, reason: "no second factor" }),
    expect: "not-enforced",
  },
  "CH-IAM-002": {
    kind: "enforcement",
    reads: "the idle timeout carehost's sessions end after",
    breakIt: (s) => void (s.platform.sessionIdleMinutes = 30),
    expect: "fail",
  },
  "CH-IAM-003": {
    kind: "enforcement",
    reads: "sign-in through the organization's OIDC provider",
    breakIt: (s) => void (s.platform.oidc = { enforced: false, reason: "no OIDC sign-in" }),
    expect: "not-enforced",
  },
  "CH-IAM-004": {
    kind: "enforcement",
    reads: "whether carehost refuses local users",
    breakIt: (s) => void (s.platform.localUsers = "allowed"),
    expect: "fail",
  },

  // Rendered files, as the runtime wrote them.
  "CH-ODOO-002": {
    kind: "enforcement",
    reads: "odoo.conf list_db",
    breakIt: (s) => void (s.artifacts.prod!.odooConf.list_db = "True"),
    expect: "fail",
  },
  "CH-ODOO-003": {
    kind: "enforcement",
    reads: "the ingress's blocked paths",
    breakIt: (s) => void (s.artifacts.prod!.ingress.blockedPaths = []),
    expect: "fail",
  },
  "CH-ODOO-004": {
    kind: "enforcement",
    reads: "odoo.conf proxy_mode",
    breakIt: (s) => void (s.artifacts.prod!.odooConf.proxy_mode = "False"),
    expect: "fail",
  },
  "CH-ODOO-005": {
    kind: "enforcement",
    reads: "odoo.conf dbfilter",
    breakIt: (s) => void (s.artifacts.prod!.odooConf.dbfilter = ".*"),
    expect: "fail",
  },
  "CH-ODOO-006": {
    kind: "enforcement",
    reads: "odoo.conf admin_passwd",
    breakIt: (s) => void (s.artifacts.prod!.odooConf.admin_passwd = "admin"),
    expect: "fail",
  },
  "CH-ODOO-007": {
    kind: "enforcement",
    reads: "odoo.conf db_sslmode",
    breakIt: (s) => void (s.artifacts.prod!.odooConf.db_sslmode = "prefer"),
    expect: "fail",
  },
  "CH-DB-002": {
    kind: "enforcement",
    reads: "pg_hba.conf as written",
    breakIt: (s) => void (s.artifacts.prod!.pgHba += "hostssl all all 10.1.0.0/16 trust\n"),
    expect: "fail",
  },
  "CH-DB-003": {
    kind: "enforcement",
    reads: "pg_hba.conf as written",
    breakIt: (s) => void (s.artifacts.prod!.pgHba += "host all all 10.1.0.0/16 scram-sha-256\n"),
    expect: "fail",
  },
  "CH-DB-004": {
    kind: "enforcement",
    reads: "postgresql.conf ssl",
    breakIt: (s) => void (s.artifacts.prod!.postgresqlConf.ssl = "off"),
    expect: "fail",
  },
  "CH-DB-005": {
    kind: "enforcement",
    reads: "postgresql.conf password_encryption",
    breakIt: (s) => void (s.artifacts.prod!.postgresqlConf.password_encryption = "md5"),
    expect: "fail",
  },
  "CH-DB-006": {
    kind: "enforcement",
    reads: "postgresql.conf pgaudit",
    breakIt: (s) => void (s.artifacts.prod!.postgresqlConf["pgaudit.log"] = "none"),
    expect: "fail",
  },
  "CH-RDS-001": {
    kind: "enforcement",
    reads: "redis.conf port",
    breakIt: (s) => void (s.artifacts.prod!.redisConf.port = "6379"),
    expect: "fail",
  },
  "CH-BAK-007": {
    kind: "enforcement",
    reads:
      "the restic jobs of the target's rendered files (backup.sh, the filestore CronJobs, the local runtime's repositories)",
    breakIt: (s) => void (s.artifacts.prod!.backup.repositories[1].filestore = { written: false, reason: "no job" }),
    expect: "fail",
  },
  "CH-BAK-008": {
    kind: "enforcement",
    reads:
      "pgbackrest.conf's repoN-cipher-type, the Stanza's cipherConfig and the ScheduledBackups of the target's files",
    breakIt: (s) => void (s.artifacts.prod!.backup.repositories[1].database = { written: true, cipher: "none" }),
    expect: "fail",
  },
  "CH-NET-003": {
    kind: "enforcement",
    reads: "the ingress's TLS",
    breakIt: (s) => void (s.artifacts.prod!.ingress.tls = false),
    expect: "fail",
  },
  "CH-NET-004": {
    kind: "enforcement",
    reads: "the ingress's HSTS",
    breakIt: (s) => void (s.artifacts.prod!.ingress.hsts = false),
    expect: "fail",
  },

  // Read back from the running PostgreSQL, Redis and backup configuration.
  "CH-DB-001": {
    kind: "enforcement",
    reads: "synchronous standbys in pg_stat_replication",
    breakIt: (s) => void (s.live.prod!.postgres.synchronousStandbys = 0),
    expect: "fail",
  },
  "CH-DB-007": {
    kind: "enforcement",
    reads: "pg_authid.rolsuper of Odoo's role",
    breakIt: (s) => void (s.live.prod!.postgres.roleSuperuser = true),
    expect: "fail",
  },
  "CH-DB-008": {
    kind: "enforcement",
    reads: "pg_authid.rolcreaterole",
    breakIt: (s) => void (s.live.prod!.postgres.roleCreateRole = true),
    expect: "fail",
  },
  "CH-DB-009": {
    kind: "enforcement",
    reads: "pg_authid.rolcreatedb",
    breakIt: (s) => void (s.live.prod!.postgres.roleCreateDb = true),
    expect: "fail",
  },
  "CH-DB-010": {
    kind: "enforcement",
    reads: "has_database_privilege('public', …, 'CONNECT')",
    breakIt: (s) => void (s.live.prod!.postgres.publicConnect = true),
    expect: "fail",
  },
  "CH-DB-011": {
    kind: "enforcement",
    reads: "SHOW ssl",
    breakIt: (s) => void (s.live.prod!.postgres.ssl = false),
    expect: "fail",
  },
  "CH-DB-012": {
    kind: "enforcement",
    reads: "SHOW password_encryption",
    breakIt: (s) => void (s.live.prod!.postgres.passwordEncryption = "md5"),
    expect: "fail",
  },
  "CH-DB-013": {
    kind: "enforcement",
    reads: "pg_hba_file_rules",
    breakIt: (s) => void s.live.prod!.postgres.hbaMethods.push("trust"),
    expect: "fail",
  },
  "CH-DB-014": {
    kind: "enforcement",
    reads: "SHOW shared_preload_libraries",
    breakIt: (s) => void (s.live.prod!.postgres.sharedPreloadLibraries = []),
    expect: "fail",
  },
  "CH-DB-015": {
    kind: "enforcement",
    reads: "SHOW data_checksums",
    breakIt: (s) => void (s.live.prod!.postgres.dataChecksums = false),
    expect: "fail",
  },
  "CH-BAK-006": {
    kind: "enforcement",
    reads: "the repositories the runtime configured pgBackRest and restic with",
    breakIt: (s) => {
      const backup = s.live.prod!.backup;
      backup.written = backup.written.filter((repository: { name: string }) => repository.name !== "offsite");
      backup.skipped = [{ name: "offsite", type: "azure", reason: "its key is not in the secret store" }];
    },
    expect: "fail",
  },
  "CH-RDS-002": {
    kind: "enforcement",
    reads: "CONFIG GET bind",
    breakIt: (s) => void (s.live.prod!.redis.bindAddresses = ["0.0.0.0"]),
    expect: "fail",
  },
  "CH-RDS-003": {
    kind: "enforcement",
    reads: "CONFIG GET protected-mode",
    breakIt: (s) => void (s.live.prod!.redis.protectedMode = false),
    expect: "fail",
  },
  "CH-RDS-004": {
    kind: "enforcement",
    reads: "the commands Redis still accepts",
    breakIt: (s) => void (s.live.prod!.redis.renamedOrDisabledCommands = []),
    expect: "fail",
  },
  "CH-RDS-005": {
    kind: "enforcement",
    reads: "ACL GETUSER default",
    breakIt: (s) => void (s.live.prod!.redis.defaultUserEnabled = true),
    expect: "fail",
  },
  "CH-RDS-006": {
    kind: "enforcement",
    reads: "CONFIG GET tls-port",
    breakIt: (s) => void delete s.live.prod!.redis.tlsPort,
    expect: "fail",
  },

  // The Kubernetes objects as rendered for GitOps.
  "CH-KUBE-001": {
    kind: "enforcement",
    reads: "the rendered pod's securityContext",
    breakIt: (s) => void (prodWeb(s).containers[0].securityContext.privileged = true),
    expect: "fail",
  },
  "CH-KUBE-002": {
    kind: "enforcement",
    reads: "the rendered pod's volumes",
    breakIt: (s) => void prodWeb(s).volumes.push({ name: "docker", hostPath: { path: "/var/run/docker.sock" } }),
    expect: "fail",
  },
  "CH-KUBE-003": {
    kind: "enforcement",
    reads: "the rendered container image",
    breakIt: (s) => void (prodWeb(s).containers[0].image = "odoo:latest"),
    expect: "fail",
  },
  "CH-KUBE-004": {
    kind: "enforcement",
    reads: "the rendered container resources",
    breakIt: (s) => void delete prodWeb(s).containers[0].resources.limits.memory,
    expect: "fail",
  },
  "CH-KUBE-005": {
    kind: "enforcement",
    reads: "the rendered NetworkPolicies",
    breakIt: (s) =>
      void (s.manifests.prod = s.manifests.prod!.filter((object) => object.metadata.name !== "default-deny")),
    expect: "fail",
  },
  "CH-KUBE-006": {
    kind: "enforcement",
    reads: "the rendered production image",
    breakIt: (s) => void (prodWeb(s).containers[0].image = "odoo:17.0"),
    expect: "fail",
  },
  "CH-KUBE-007": {
    kind: "enforcement",
    reads: "the rendered container environment",
    breakIt: (s) => void prodWeb(s).containers[0].env.push({ name: "PGPASSWORD", value: "hunter2" }),
    expect: "fail",
  },
  "CH-KUBE-008": {
    kind: "enforcement",
    reads: "the rendered securityContext",
    breakIt: (s) => void (prodWeb(s).containers[0].securityContext.readOnlyRootFilesystem = false),
    expect: "fail",
  },
  "CH-KUBE-009": {
    kind: "enforcement",
    reads: "the rendered pod's service account token",
    breakIt: (s) => void (prodWeb(s).automountServiceAccountToken = true),
    expect: "fail",
  },
};
/* eslint-enable @typescript-eslint/no-explicit-any */

const resultOf = (results: readonly TControlResult[], controlId: string, environmentName: string) => {
  const result = results.find((item) => item.controlId === controlId && item.environment === environmentName);
  assert.ok(result, `no result for ${controlId} on ${environmentName}`);
  return result;
};

void describe("every control fails, or says it is not enforced, when what carehost enforces is made false", () => {
  void it("has exactly one row per control of the catalog", () => {
    assert.deepEqual(Object.keys(ROWS).sort(), POLICY_CATALOG.map((control) => control.id).sort());
  });

  void it("starts from a state where every control passes", () => {
    const report = evaluate(compliantState());
    assert.deepEqual(
      report.results
        .filter((result) => result.status !== "pass" && result.status !== "not-applicable")
        .map((result) => `${result.controlId}@${result.environment}: ${result.status}`),
      [],
    );
  });

  for (const [controlId, row] of Object.entries(ROWS)) {
    void it(`${controlId}: ${row.reads}`, () => {
      const state = compliantState();
      const where = row.environment ?? "prod";
      row.setup?.(state);
      assert.equal(resultOf(evaluate(state).results, controlId, where).status, "pass", "passes before");
      const declared = JSON.stringify(state.organization);
      row.breakIt(state);
      if (row.kind === "enforcement")
        assert.equal(
          JSON.stringify(state.organization),
          declared,
          "the spec still declares the same: only what carehost enforces changed",
        );
      row.actsOn?.(state);
      const result = resultOf(evaluate(state).results, controlId, where);
      assert.equal(result.status, row.expect, JSON.stringify(result.messages));
      assert.ok(result.messages.length > 0, "says why");
    });
  }
});
