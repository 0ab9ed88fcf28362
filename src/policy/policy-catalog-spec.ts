// Controls over the parsed carehost.yaml: what the organization asks for, checked before anything
// is rendered or applied. Messages name the offending value and what is required; the engine adds
// the control id, the citations and the environment.
import { longestCronGapMinutes, parseCron } from "../spec/cron.js";
import type { TEnvironmentSpec } from "../spec/spec-schema.js";
import { formatMinutes } from "../spec/spec-semantic.js";
import { DEFAULT_RECOVERY_OBJECTIVES, objectiveFor } from "./policy-objectives.js";
import type { TObjectiveTable } from "./policy-objectives.js";
import type { TSpecControl } from "./policy-types.js";

/** Odoo supports the last three major versions; 16.0 left support when 19.0 shipped (Sept 2025). */
export const SUPPORTED_ODOO_VERSIONS: readonly string[] = ["17.0", "18.0", "19.0"];
/** Automatic logoff for PHI (164.312(a)(2)(iii)); the spec's own default. */
export const PHI_MAX_SESSION_IDLE_MINUTES = 15;

/** Why an identity control is not enforced where no carehost server was asked (validate runs offline). */
const NO_PLATFORM =
  "what carehost enforces at sign-in is read from its server (carehost posture); offline, only the declaration was checked";

const DATA_CLASS_LABEL = { phi: "PHI", confidential: "confidential", internal: "internal", public: "public" } as const;
const label = (environment: TEnvironmentSpec) => `${DATA_CLASS_LABEL[environment.dataClass]} ${environment.tier}`;
const quoted = (value: string) => JSON.stringify(value);

const isProduction = (environment: TEnvironmentSpec) => environment.tier === "production";
const isPhi = (environment: TEnvironmentSpec) => environment.dataClass === "phi";
const backupEnabled = (environment: TEnvironmentSpec) => environment.backup.enabled;
const SHA256_DIGEST = /@sha256:[0-9a-f]{64}$/;
const COMMIT_SHA = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

function isWholeAddressSpace(cidr: string): boolean {
  return cidr.endsWith("/0");
}

/** The spec controls, judged against `objectives` (the baseline, or a tightened copy of it). */
export function createSpecControls(objectives: TObjectiveTable = DEFAULT_RECOVERY_OBJECTIVES): readonly TSpecControl[] {
  return [
    {
      id: "CH-ISO-001",
      title: "PHI and confidential production environments use dedicated hosting",
      citations: ["164.308(a)(4)", "164.312(a)(1)"],
      severity: "critical",
      enforcement: "mandatory",
      subject: "spec",
      appliesTo: (environment) =>
        isProduction(environment) && (environment.dataClass === "phi" || environment.dataClass === "confidential"),
      check: ({ environment }, report) => {
        if (environment.hosting !== "dedicated") {
          report.fail(`${label(environment)} must be dedicated (hosting: ${environment.hosting})`, {
            path: "hosting",
            actual: environment.hosting,
          });
        }
      },
    },
    {
      id: "CH-ISO-002",
      title: "Non-production environments holding PHI use dedicated hosting",
      citations: ["164.308(a)(4)", "164.312(a)(1)"],
      severity: "high",
      enforcement: "mandatory",
      subject: "spec",
      // Production is CH-ISO-001; PHI in staging or training is no less PHI.
      appliesTo: (environment) => isPhi(environment) && !isProduction(environment),
      check: ({ environment }, report) => {
        if (environment.hosting !== "dedicated") {
          report.fail(`${label(environment)} holds PHI and must be dedicated (hosting: ${environment.hosting})`, {
            path: "hosting",
            actual: environment.hosting,
          });
        }
      },
    },
    {
      id: "CH-BAK-001",
      title: "Production and PHI environments are backed up",
      citations: ["164.308(a)(7)(ii)(A)", "164.310(d)(2)(iv)"],
      severity: "critical",
      enforcement: "mandatory",
      subject: "spec",
      appliesTo: (environment) => isProduction(environment) || isPhi(environment),
      check: ({ environment }, report) => {
        if (!environment.backup.enabled) {
          report.fail(`${label(environment)} must be backed up (backup.enabled: false)`, {
            path: "backup.enabled",
            actual: false,
          });
        }
      },
    },
    {
      id: "CH-BAK-002",
      title: "Every backup repository an environment writes to is encrypted",
      citations: ["164.312(a)(2)(iv)", "164.310(d)(2)(iv)"],
      severity: "critical",
      enforcement: "mandatory",
      subject: "spec",
      appliesTo: (environment) => backupEnabled(environment) && environment.dataClass !== "public",
      check: ({ organization, environment }, report) => {
        if (!environment.backup.enabled) return;
        for (const name of environment.backup.repositories) {
          const repository = organization.backupRepositories.find((candidate) => candidate.name === name);
          if (repository === undefined) {
            report.fail(
              `backup repository ${quoted(name)} is not declared in backupRepositories, so its encryption cannot be verified`,
              {
                path: "backup.repositories",
                actual: name,
              },
            );
          } else if (repository.cipherSecretRef === undefined) {
            report.fail(
              `backup repository ${quoted(name)} (${repository.type}) must be encrypted: set cipherSecretRef`,
              {
                path: `backupRepositories.${name}.cipherSecretRef`,
              },
            );
          }
        }
      },
    },
    {
      id: "CH-BAK-003",
      title: "PHI production is backed up to two repositories, at least one offsite",
      citations: ["164.308(a)(7)(ii)(A)", "164.308(a)(7)(ii)(B)", "164.310(d)(2)(iv)"],
      severity: "high",
      enforcement: "mandatory",
      subject: "spec",
      appliesTo: (environment) => isPhi(environment) && isProduction(environment) && backupEnabled(environment),
      check: ({ organization, environment }, report) => {
        if (!environment.backup.enabled) return;
        const names = environment.backup.repositories;
        if (names.length < 2) {
          report.fail(
            `PHI production must write backups to at least 2 repositories (repositories: ${names.join(", ")})`,
            { path: "backup.repositories", actual: names },
          );
        }
        const offsite = names.filter((name) =>
          organization.backupRepositories.some((repository) => repository.name === name && repository.type !== "posix"),
        );
        if (offsite.length === 0) {
          report.fail(
            `PHI production must write backups to an offsite repository (azure or s3); none of ${names.join(", ")} is offsite`,
            {
              path: "backup.repositories",
              actual: names,
            },
          );
        }
      },
    },
    {
      id: "CH-BAK-004",
      title: "The recovery point objective is within the data-class objective",
      citations: ["164.308(a)(7)(ii)(A)", "164.308(a)(7)(ii)(E)"],
      severity: "high",
      enforcement: "mandatory",
      subject: "spec",
      appliesTo: (environment) => backupEnabled(environment) && objectiveFor(objectives, environment) !== undefined,
      check: ({ environment }, report) => {
        const objective = objectiveFor(objectives, environment);
        if (!environment.backup.enabled || objective === undefined) return;
        if (environment.backup.rpoMinutes > objective.rpoMinutes) {
          report.fail(
            `${label(environment)} requires an RPO of at most ${formatMinutes(objective.rpoMinutes)} (rpoMinutes: ${environment.backup.rpoMinutes})`,
            { path: "backup.rpoMinutes", actual: environment.backup.rpoMinutes },
          );
        }
      },
    },
    {
      id: "CH-BAK-005",
      title: "The recovery time objective is within the data-class objective",
      citations: ["164.308(a)(7)(ii)(B)", "164.308(a)(7)(ii)(E)"],
      severity: "high",
      enforcement: "mandatory",
      subject: "spec",
      appliesTo: (environment) => backupEnabled(environment) && objectiveFor(objectives, environment) !== undefined,
      check: ({ environment }, report) => {
        const objective = objectiveFor(objectives, environment);
        if (!environment.backup.enabled || objective === undefined) return;
        if (environment.backup.rtoMinutes > objective.rtoMinutes) {
          report.fail(
            `${label(environment)} requires an RTO of at most ${formatMinutes(objective.rtoMinutes)} (rtoMinutes: ${environment.backup.rtoMinutes})`,
            { path: "backup.rtoMinutes", actual: environment.backup.rtoMinutes },
          );
        }
      },
    },
    {
      id: "CH-DR-001",
      title: "Production and PHI backups are proven by scheduled restore drills",
      citations: ["164.308(a)(7)(ii)(D)", "164.308(a)(7)(ii)(B)"],
      severity: "high",
      enforcement: "mandatory",
      subject: "spec",
      appliesTo: (environment) => backupEnabled(environment) && (isProduction(environment) || isPhi(environment)),
      check: ({ environment }, report) => {
        if (environment.backup.enabled && environment.backup.restoreDrill === undefined) {
          report.fail(`${label(environment)} must schedule restore drills (backup.restoreDrill is not set)`, {
            path: "backup.restoreDrill",
          });
        }
      },
    },
    {
      id: "CH-DR-002",
      title: "Restore drills run at least as often as the data class requires",
      citations: ["164.308(a)(7)(ii)(D)"],
      severity: "medium",
      enforcement: "mandatory",
      subject: "spec",
      // Without a drill, CH-DR-001 fails; this control judges the rate of a drill that exists.
      appliesTo: (environment) =>
        environment.backup.enabled &&
        environment.backup.restoreDrill !== undefined &&
        objectiveFor(objectives, environment)?.restoreDrillMaxIntervalMinutes !== undefined,
      check: ({ environment }, report) => {
        const maxInterval = objectiveFor(objectives, environment)?.restoreDrillMaxIntervalMinutes;
        if (!environment.backup.enabled || environment.backup.restoreDrill === undefined || maxInterval === undefined)
          return;
        const expression = environment.backup.restoreDrill.schedule;
        const parsed = parseCron(expression);
        const gap = parsed.ok ? longestCronGapMinutes([parsed.schedule]) : Infinity;
        if (gap > maxInterval) {
          report.fail(
            `${label(environment)} requires a restore drill at least every ${formatMinutes(maxInterval)} (restoreDrill.schedule ${quoted(expression)} leaves up to ${formatMinutes(gap)} between drills)`,
            { path: "backup.restoreDrill.schedule", actual: expression },
          );
        }
      },
    },
    {
      id: "CH-MNT-001",
      title: "Production has a maintenance window for approved changes",
      citations: ["164.308(a)(1)(ii)(B)", "164.308(a)(7)(ii)(C)"],
      severity: "medium",
      enforcement: "mandatory",
      subject: "spec",
      appliesTo: isProduction,
      check: ({ environment }, report) => {
        // The schema fills the window from defaults; this guards specs built by other means.
        const window = environment.maintenanceWindow as TEnvironmentSpec["maintenanceWindow"] | undefined;
        if (window === undefined || window.slots.length === 0) {
          report.fail(
            "production must have a maintenance window (none set, and defaults.maintenanceWindow is not set)",
            { path: "maintenanceWindow" },
          );
        }
      },
    },
    {
      id: "CH-NET-001",
      title: "PHI environments admit only listed networks, not the whole internet",
      citations: ["164.312(a)(1)", "164.308(a)(4)", "164.312(e)(1)"],
      severity: "high",
      enforcement: "mandatory",
      subject: "spec",
      appliesTo: isPhi,
      check: ({ environment }, report) => {
        const open = environment.ingress.allowedCidrs.filter(isWholeAddressSpace);
        if (open.length > 0) {
          report.fail(
            `${label(environment)} must restrict ingress to known networks (allowedCidrs contains ${open.join(", ")})`,
            {
              path: "ingress.allowedCidrs",
              actual: open,
            },
          );
        }
      },
    },
    {
      id: "CH-NET-002",
      title: "Every environment is reached by declared host names",
      citations: ["164.312(e)(1)"],
      severity: "medium",
      enforcement: "mandatory",
      subject: "spec",
      // A TLS certificate is issued for names; without one the ingress would answer on a bare IP.
      appliesTo: () => true,
      check: ({ environment }, report) => {
        if (environment.ingress.hostnames.length === 0) {
          report.fail("ingress must declare at least one host name (hostnames is empty)", {
            path: "ingress.hostnames",
            actual: [],
          });
        }
      },
    },
    {
      id: "CH-ODOO-001",
      title: "Production and PHI environments run a supported Odoo version",
      citations: ["164.308(a)(1)(ii)(B)", "164.308(a)(5)(ii)(B)"],
      severity: "high",
      enforcement: "mandatory",
      subject: "spec",
      appliesTo: (environment) => isProduction(environment) || isPhi(environment),
      check: ({ environment }, report) => {
        if (!SUPPORTED_ODOO_VERSIONS.includes(environment.odoo.version)) {
          report.fail(
            `Odoo ${environment.odoo.version} no longer receives security fixes; use one of ${SUPPORTED_ODOO_VERSIONS.join(", ")} (odoo.version: ${quoted(environment.odoo.version)})`,
            { path: "odoo.version", actual: environment.odoo.version },
          );
        }
      },
    },
    {
      id: "CH-SUP-001",
      title: "Production images are pinned by digest",
      citations: ["164.312(c)(1)", "164.308(a)(1)(ii)(B)"],
      severity: "medium",
      enforcement: "advisory",
      subject: "spec",
      appliesTo: isProduction,
      check: ({ environment }, report) => {
        if (!SHA256_DIGEST.test(environment.odoo.image)) {
          report.fail(
            `production image should be pinned with @sha256:<digest> so what runs is what was approved (odoo.image: ${quoted(environment.odoo.image)})`,
            {
              path: "odoo.image",
              actual: environment.odoo.image,
            },
          );
        }
      },
    },
    {
      id: "CH-SUP-002",
      title: "Production custom addons are pinned to a commit",
      citations: ["164.312(c)(1)", "164.308(a)(1)(ii)(B)"],
      severity: "medium",
      enforcement: "advisory",
      subject: "spec",
      appliesTo: (environment) => isProduction(environment) && environment.odoo.customAddons !== undefined,
      check: ({ environment }, report) => {
        const ref = environment.odoo.customAddons?.ref;
        if (ref !== undefined && !COMMIT_SHA.test(ref)) {
          report.fail(
            `production custom addons should be pinned to a full commit SHA, not a branch or tag (odoo.customAddons.ref: ${quoted(ref)})`,
            {
              path: "odoo.customAddons.ref",
              actual: ref,
            },
          );
        }
      },
    },
    {
      id: "CH-IAM-001",
      title: "Organizations holding PHI require multi-factor authentication",
      citations: ["164.312(d)", "90 FR 898"],
      severity: "critical",
      enforcement: "mandatory",
      subject: "spec",
      appliesTo: isPhi,
      check: ({ organization, platform }, report) => {
        if (!organization.identity.mfaRequired) {
          report.fail("an organization holding PHI must require MFA for every sign-in (identity.mfaRequired: false)", {
            path: "identity.mfaRequired",
            actual: false,
          });
          return;
        }
        // mfaRequired: true is an intention; only carehost's own sign-in asking a second factor passes.
        if (platform === undefined) report.notEnforced(NO_PLATFORM);
        else if (!platform.mfa.enforced) report.notEnforced(`identity.mfaRequired is true, but ${platform.mfa.reason}`);
      },
    },
    {
      id: "CH-IAM-002",
      title: "Sessions of organizations holding PHI log off after 15 idle minutes",
      citations: ["164.312(a)(2)(iii)"],
      severity: "high",
      enforcement: "mandatory",
      subject: "spec",
      appliesTo: isPhi,
      check: ({ organization, platform }, report) => {
        const minutes = organization.identity.sessionIdleTimeoutMinutes;
        if (minutes > PHI_MAX_SESSION_IDLE_MINUTES) {
          report.fail(
            `an organization holding PHI must log idle sessions off within ${PHI_MAX_SESSION_IDLE_MINUTES} minutes (identity.sessionIdleTimeoutMinutes: ${minutes})`,
            { path: "identity.sessionIdleTimeoutMinutes", actual: minutes },
          );
          return;
        }
        if (platform === undefined) report.notEnforced(NO_PLATFORM);
        else if (platform.sessionIdleMinutes > PHI_MAX_SESSION_IDLE_MINUTES) {
          report.fail(
            `carehost ends idle sessions after ${platform.sessionIdleMinutes} minutes, not within ${PHI_MAX_SESSION_IDLE_MINUTES} (identity.sessionIdleTimeoutMinutes: ${minutes} is not what carehost enforces)`,
            { path: "platform.sessionIdleMinutes", actual: platform.sessionIdleMinutes },
          );
        }
      },
    },
    {
      id: "CH-IAM-003",
      title: "People sign in through the organization's identity provider when it declares one",
      citations: ["164.312(d)", "164.312(a)(2)(i)", "164.308(a)(3)(ii)(C)"],
      severity: "high",
      enforcement: "mandatory",
      subject: "spec",
      // Per environment like every spec control, though the provider is the organization's.
      appliesTo: () => true,
      check: ({ organization, platform }, report) => {
        if (organization.identity.oidc === undefined) {
          report.notApplicable("the organization declares no OIDC provider (identity.oidc is not set)");
          return;
        }
        if (platform === undefined) report.notEnforced(NO_PLATFORM);
        else if (!platform.oidc.enforced)
          report.notEnforced(`identity.oidc names ${organization.identity.oidc.issuer}, but ${platform.oidc.reason}`);
        // carehost signs people in through the provider; only refusing local passwords makes it the only way in.
        else if (organization.identity.localUsersAllowed || platform.localUsers !== "refused")
          report.notEnforced(
            `identity.oidc names ${organization.identity.oidc.issuer}, but local passwords are still allowed (identity.localUsersAllowed: true): people can sign in around the provider`,
          );
      },
    },
    {
      id: "CH-IAM-004",
      title: "Local users are refused when the organization allows none",
      citations: ["164.312(a)(2)(i)", "164.308(a)(4)(ii)(C)"],
      severity: "high",
      enforcement: "mandatory",
      subject: "spec",
      appliesTo: () => true,
      check: ({ organization, platform }, report) => {
        if (organization.identity.localUsersAllowed) {
          report.notApplicable("the organization allows local users (identity.localUsersAllowed: true)");
          return;
        }
        if (platform === undefined) report.notEnforced(NO_PLATFORM);
        else if (platform.localUsers !== "refused") {
          report.fail(
            "identity.localUsersAllowed is false, but carehost still creates local users and signs them in with a password",
            { path: "platform.localUsers", actual: platform.localUsers },
          );
        }
      },
    },
  ];
}

export const SPEC_CONTROLS: readonly TSpecControl[] = createSpecControls();
