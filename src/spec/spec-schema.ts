// The carehost.yaml schema: the single source of truth for what an organization spec may say.
// The JSON Schema editors use is generated from it (spec-json-schema.ts), and the loader
// (spec-loader.ts) adds the checks that span several fields (spec-semantic.ts).
//
// Every object is strict: in a compliance spec a misspelt key ("rpoMinuts") must be an error, not
// a silently ignored setting. Secrets never appear here; fields ending in "SecretRef" name a
// secret held in carehost's encrypted secret store.
import { z } from "zod";
import { parseCron } from "./cron.js";
import {
  cidrProblem,
  DNS_LABEL_PATTERN,
  fqdnProblem,
  HH_MM_PATTERN,
  IMAGE_PATTERN,
  ODOO_MODULE_PATTERN,
  SECRET_REF_PATTERN,
  timeZoneProblem,
} from "./spec-formats.js";
import { fieldPathsOf } from "./spec-field-paths.js";
import { ALERT_SEVERITIES, DEFAULT_RESOLVE_AFTER, RULE_NAMES } from "../monitor/monitor-rules.js";
import { PSEUDONYM_KINDS } from "../copies/copies-pseudonym.js";
import { roles } from "../lib/request-context.js";

export const SPEC_API_VERSION = "carehost.io/v1";
export const MAX_ENVIRONMENT_NAME_LENGTH = 40;
export const MINUTES_PER_WEEK = 7 * 24 * 60;
// Below this a restore cannot be run and verified (fetch, replay WAL, health check, switch traffic).
export const MIN_RTO_MINUTES = 5;

const show = (value: unknown): string => JSON.stringify(value) ?? String(value);

/** A string checked by a function that explains what is wrong with it. */
const checkedString = (problem: (value: string) => string | undefined) =>
  z.string().superRefine((value, ctx) => {
    const reason = problem(value);
    if (reason !== undefined) ctx.addIssue({ code: "custom", message: `${show(value)} ${reason}`, input: value });
  });

const patternString = (pattern: RegExp, expectation: string) =>
  z.string().regex(pattern, { error: (issue) => `${show(issue.input)} ${expectation}` });

const dnsLabel = (maxLength = 63) =>
  patternString(DNS_LABEL_PATTERN, "is not a DNS label (lowercase letters, digits and inner hyphens)").max(maxLength, {
    error: (issue) => `${show(issue.input)} is longer than ${maxLength} characters`,
  });

const secretRef = () =>
  patternString(SECRET_REF_PATTERN, "is not a secret reference name (lowercase letters, digits, '.', '_', '-')");
const displayName = () => z.string().trim().min(1, { error: "must not be empty" }).max(200);
const fqdn = () => checkedString(fqdnProblem);
const cidr = () => checkedString(cidrProblem);
const timeZone = () => checkedString(timeZoneProblem);
const cron = () =>
  checkedString((value) => {
    const parsed = parseCron(value);
    return parsed.ok ? undefined : `is not a valid cron expression: ${parsed.error}`;
  });
/** A URL as a message may show it: whatever stands before an @ (a user, a password, a token) is cut out. */
const showUrl = (value: unknown): string =>
  typeof value === "string" ? show(value.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, "$1…@")) : show(value);

/**
 * No credentials in a URL: a spec is committed, shown to viewers and audited, so a token or
 * password in it would be a secret in all three. ssh's user name (git@) is not a secret; an https
 * user name is (a token often stands in it). The message never repeats the URL, which would
 * repeat the secret, and says where the credential goes instead.
 */
const withoutCredentials = (schema: z.ZodURL, instead: string) =>
  schema.refine(
    (value) => {
      const url = new URL(value);
      return url.password === "" && (url.protocol === "ssh:" || url.username === "");
    },
    { error: `carries credentials in the URL (user:password@ or a token@); remove them: ${instead}` },
  );

/** An https:// URL without credentials; `instead` says where the credential goes (the secret store, by a *SecretRef). */
const httpsUrl = (instead: string) =>
  withoutCredentials(
    z.url({ protocol: /^https$/, error: (issue) => `${showUrl(issue.input)} is not an https:// URL` }),
    instead,
  );
const inTheSecretStore = (field: string) =>
  `a credential belongs in carehost's secret store (carehost secrets set <name>), named by ${field}`;
const count = () => z.int().min(0);

// ---------------------------------------------------------------------------------------------
// Organization-level sections

const EntitySchema = z.strictObject({
  name: dnsLabel().describe("Stable identifier of the legal unit, referenced by environments[].entity."),
  displayName: displayName().describe("Human-readable name, e.g. Northwind General Hospital."),
  kind: z
    .enum(["hospital", "clinic", "lab", "pharmacy", "other"])
    .describe("What kind of provider this legal unit is."),
  parent: dnsLabel().optional().describe("Name of the entity this one belongs to (a clinic of a hospital group)."),
});

const OidcSchema = z.strictObject({
  issuer: httpsUrl(inTheSecretStore("clientSecretRef")).describe(
    "OIDC issuer URL; discovery is read from <issuer>/.well-known/openid-configuration.",
  ),
  clientId: z.string().min(1).describe("Client ID registered for carehost at the provider."),
  clientSecretRef: secretRef()
    .optional()
    .describe("Name of the secret holding the client secret; omit for a public client using PKCE."),
  allowedDomains: z
    .array(fqdn())
    .min(1)
    .describe(
      "Email domains whose users may sign in. Required so that a shared issuer (e.g. a multi-tenant Entra ID) cannot admit strangers.",
    ),
  groupsClaim: z
    .string()
    .regex(/^[A-Za-z0-9_:./-]{1,100}$/, {
      error: (issue) => `${show(issue.input)} is not a claim name (1-100 letters, digits, '_', ':', '.', '/', '-')`,
    })
    .default("groups")
    .describe(
      'The ID token (or userinfo) claim that lists the person\'s groups or roles at the provider: "groups" (Okta, Keycloak, Entra ID group IDs) or "roles" (Entra ID app roles). Default "groups".',
    ),
  roleMappings: z
    .array(
      z.strictObject({
        group: z
          .string()
          .min(1, { error: "must not be empty" })
          .max(200)
          .describe(
            "A value of the groups claim, exactly as the provider sends it (an Entra ID group is its object ID).",
          ),
        role: z
          .enum(roles, { error: (issue) => `${show(issue.input)} is not one of ${roles.join(", ")}` })
          .describe("The carehost role a member of the group holds over this organization."),
      }),
    )
    .superRefine((mappings, ctx) => {
      const seen = new Set<string>();
      mappings.forEach((mapping, index) => {
        const key = `${mapping.group}\u0000${mapping.role}`;
        if (seen.has(key))
          ctx.addIssue({
            code: "custom",
            path: [index],
            message: `group ${show(mapping.group)} is mapped to role ${mapping.role} twice`,
            input: mapping,
          });
        seen.add(key);
      });
    })
    .default([])
    .describe(
      "Which provider groups hold which carehost role over this organization. At every sign-in the person's role bindings for this organization are set from their mapped groups; groups listed nowhere here are ignored, and a person none of whose groups maps to a role is refused.",
    ),
});

const IdentitySchema = z.strictObject({
  localUsersAllowed: z
    .boolean()
    .describe("Whether carehost's own user accounts (argon2id passwords + TOTP) may sign in."),
  oidc: OidcSchema.optional().describe("Single sign-on through an OpenID Connect provider."),
  mfaRequired: z
    .boolean()
    .default(true)
    .describe("Require a second factor for every sign-in (HIPAA NPRM 2025). Default true."),
  sessionIdleTimeoutMinutes: z
    .int()
    .min(1)
    .max(24 * 60)
    .default(15)
    .describe("Automatic logoff after this many idle minutes (164.312(a)(2)(iii)). Default 15."),
  sessionMaxHours: z
    .int()
    .min(1)
    .max(24)
    .default(12)
    .describe("A session ends this many hours after sign-in however active it is; at most 24. Default 12."),
});

/** An https:// or ssh:// Git URL with no credentials in it (withoutCredentials). */
const gitUrl = () =>
  withoutCredentials(
    z.url({
      protocol: /^(https|ssh)$/,
      error: (issue) => `${showUrl(issue.input)} is not an https:// or ssh:// Git URL`,
    }),
    "Git reads them from the host's Git configuration (a credential helper or an SSH key of the account carehost runs as), never from the spec",
  );

const repositoryName = () => dnsLabel().describe("Name referenced by environments[].backup.repositories.");
const cipherSecretRef = () =>
  secretRef()
    .optional()
    .describe("Name of the secret holding the repository encryption passphrase (pgBackRest aes-256-cbc).");

const caFile = () =>
  checkedString((value) => (value.split("/").includes("..") ? "must not contain '..' segments" : undefined))
    .optional()
    .describe(
      "PEM file with the CA that signed a private endpoint's certificate (relative to the carehost data dir); default the system's CAs.",
    );

const BackupRepositorySchema = z.discriminatedUnion("type", [
  z.strictObject({
    name: repositoryName(),
    type: z.literal("posix").describe("A directory on the control-plane host."),
    path: checkedString((value) =>
      value.split("/").includes("..") ? "must not contain '..' segments" : undefined,
    ).describe("Directory for the repository; a relative path is resolved against the carehost data dir."),
    cipherSecretRef: cipherSecretRef(),
  }),
  z.strictObject({
    name: repositoryName(),
    type: z.literal("azure").describe("An Azure Blob Storage container (HTTPS only)."),
    account: patternString(
      /^[a-z0-9]{3,24}$/,
      "is not an Azure storage account name (3-24 lowercase letters and digits)",
    ).describe("Storage account name."),
    container: patternString(/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/, "is not an Azure container name").describe(
      "Blob container name.",
    ),
    endpoint: httpsUrl(inTheSecretStore("keySecretRef"))
      .optional()
      .describe(
        "Blob endpoint override: a sovereign cloud as https://<account>.<blob service domain> (e.g. blob.core.usgovcloudapi.net), Azurite as https://host:port/<account>; default https://<account>.blob.core.windows.net.",
      ),
    keySecretRef: secretRef().describe("Name of the secret holding the storage account's shared key."),
    caFile: caFile(),
    cipherSecretRef: cipherSecretRef(),
  }),
  z.strictObject({
    name: repositoryName(),
    type: z.literal("s3").describe("An S3-compatible bucket."),
    bucket: patternString(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, "is not an S3 bucket name").describe("Bucket name."),
    region: patternString(
      /^[a-z0-9][a-z0-9-]*$/,
      "is not a region name (lowercase letters, digits and '-', e.g. us-east-1)",
    ).describe("Bucket region, e.g. us-east-1."),
    endpoint: httpsUrl(inTheSecretStore("keySecretRef"))
      .optional()
      .describe(
        "Endpoint override for S3-compatible stores (https://host[:port], addressed with path-style URIs); default AWS for the region.",
      ),
    keySecretRef: secretRef().describe(
      "Name of the secret holding the access key ID (first line) and the secret access key (second line).",
    ),
    caFile: caFile(),
    cipherSecretRef: cipherSecretRef(),
  }),
]);

// ---------------------------------------------------------------------------------------------
// Environment sections

const OdooSchema = z.strictObject({
  version: z.enum(["16.0", "17.0", "18.0", "19.0"]).describe("Odoo major version."),
  image: patternString(
    IMAGE_PATTERN,
    "is not a container image reference ([registry/]name[:tag][@sha256:digest])",
  ).describe("Container image; pin with @sha256:<digest> so what runs is what was approved."),
  workers: count().describe(
    "HTTP worker processes (Odoo --workers; 0 means threaded mode, for development only). Rule of thumb: 2 x CPU + 1.",
  ),
  cronWorkers: count().describe("Cron worker threads (Odoo --max-cron-threads)."),
  modules: z
    .array(patternString(ODOO_MODULE_PATTERN, "is not an Odoo module technical name"))
    .describe("Modules to install (technical names)."),
  customAddons: z
    .strictObject({
      repository: gitUrl().describe("Git repository with the addons."),
      ref: z.string().min(1).describe("Branch, tag or commit to deploy; a commit SHA makes deployments reproducible."),
    })
    .optional()
    .describe("Custom addons deployed next to the standard ones."),
});

const DatabaseSchema = z.strictObject({
  postgresVersion: z.literal([15, 16, 17]).describe("PostgreSQL major version."),
  storageGi: z.int().min(1).describe("Database volume size in GiB."),
  highAvailability: z
    .boolean()
    .default(false)
    .describe("Run a synchronous standby that takes over on failure. Default false."),
});

const RedisSchema = z.strictObject({
  enabled: z.boolean().describe("Run Redis for sessions (needed when several web replicas share sessions)."),
  maxMemoryMb: z.int().min(16).default(256).describe("Redis maxmemory in MiB. Default 256."),
  image: patternString(IMAGE_PATTERN, "is not a container image reference ([registry/]name[:tag][@sha256:digest])")
    .default("docker.io/library/redis:7.4")
    .describe(
      "Redis image for container targets (Kubernetes, Compose); pin with @sha256:<digest> in production, e.g. from your registry mirror.",
    ),
});

const BackupScheduleSchema = z.strictObject({
  full: cron().describe("Cron (5 fields, UTC) for full backups."),
  differential: cron()
    .optional()
    .describe("Cron (5 fields, UTC) for differential backups (changes since the last full)."),
  incremental: cron()
    .optional()
    .describe("Cron (5 fields, UTC) for incremental backups (changes since the last backup of any type)."),
});

const RetentionSchema = z.strictObject({
  daily: count().describe("Keep one backup per day for this many days."),
  weekly: count().describe("Keep one backup per week for this many weeks."),
  monthly: count().describe("Keep one backup per month for this many months."),
});

const EnabledBackupSchema = z.strictObject({
  enabled: z.literal(true).describe("Back this environment up (pgBackRest with continuous WAL archiving)."),
  schedule: BackupScheduleSchema.describe("When backups run. WAL is archived continuously in between."),
  retention: RetentionSchema.describe("How long backups are kept (grandfather-father-son)."),
  rpoMinutes: z.int().min(1).describe("Recovery point objective: the most data, in minutes, that a restore may lose."),
  rtoMinutes: z
    .int()
    .min(MIN_RTO_MINUTES, {
      error: (issue) =>
        `rtoMinutes ${show(issue.input)} is not achievable: a restore takes at least ${MIN_RTO_MINUTES} minutes to run and verify`,
    })
    .describe(
      "Recovery time objective: the longest, in minutes, a restore may take until the environment serves again.",
    ),
  repositories: z.array(dnsLabel()).min(1).describe("Names of backupRepositories[] every backup is written to."),
  restoreDrill: z
    .strictObject({ schedule: cron().describe("Cron (5 fields, UTC) for the drill.") })
    .optional()
    .describe("Regular restore into a throwaway copy that measures the achieved RPO and RTO."),
});

// With backups disabled there is nothing to schedule and no objective that can be met, so any
// other key is an error that says so rather than a generic "unknown key".
const DisabledBackupSchema = z.strictObject(
  { enabled: z.literal(false).describe("Do not back this environment up.") },
  {
    error: (issue) =>
      issue.code === "unrecognized_keys"
        ? "backup is disabled; remove it, or set enabled: true (an objective without backups cannot be met)"
        : undefined,
  },
);

const BackupSchema = z.discriminatedUnion("enabled", [EnabledBackupSchema, DisabledBackupSchema]);

const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] as const;

const MaintenanceWindowSchema = z.strictObject({
  timeZone: timeZone().describe("IANA time zone the slots are written in, e.g. America/New_York."),
  slots: z
    .array(
      z.strictObject({
        day: z.enum(WEEKDAYS).describe("Day the slot starts."),
        start: patternString(HH_MM_PATTERN, "is not a time of day HH:MM between 00:00 and 23:59").describe(
          "Local start time, HH:MM (24 h). A time that occurs twice on the day clocks fall back is its first occurrence; one that does not occur (spring forward) is read with the offset before the gap (RFC 5545).",
        ),
        durationMinutes: z
          .int()
          .min(1, { error: (issue) => `durationMinutes ${show(issue.input)} must be at least 1` })
          .max(MINUTES_PER_WEEK, {
            error: (issue) => `durationMinutes ${show(issue.input)} is longer than a week (${MINUTES_PER_WEEK})`,
          })
          .describe(
            "Length of the slot in elapsed minutes; a slot may run past midnight. Across a daylight-saving change it keeps its length and its local end moves.",
          ),
      }),
    )
    .min(1)
    .describe("Weekly slots in which approved changes may be applied. Slots must not overlap."),
});

const IngressSchema = z.strictObject({
  hostnames: z.array(fqdn()).min(1).describe("Host names the environment answers on; unique across all environments."),
  allowedCidrs: z
    .array(cidr())
    .min(1)
    .describe(
      "Source networks allowed to connect (CIDR, IPv4 or IPv6). Use 0.0.0.0/0 and ::/0 to allow everyone explicitly.",
    ),
});

const DataSourceSchema = z.strictObject({
  copyFrom: dnsLabel(MAX_ENVIRONMENT_NAME_LENGTH).describe("Name of the environment whose data is copied here."),
  deidentify: z
    .boolean()
    .default(true)
    .describe(
      "PHI comes into this environment only neutralized and de-identified (carehost restore SOURCE --into ENV --deidentify): a plain restore of PHI into it is refused (exit 3). Default true.",
    ),
});

const sqlName = () =>
  patternString(
    /^[a-z_][a-z0-9_]{0,62}$/,
    "is not a PostgreSQL table or column name as Odoo makes them (lowercase, digits, _)",
  );

const DeidentifySchema = z.strictObject({
  tables: z
    .array(
      z.strictObject({
        table: sqlName().describe("Table of a custom module, e.g. x_lab_result."),
        model: patternString(/^[a-z][a-z0-9_.]*$/, "is not an Odoo model name (e.g. x_lab.result)")
          .optional()
          .describe("The table's Odoo model: its attachments (ir_attachment.res_model) are replaced too."),
        columns: z
          .array(
            z.strictObject({
              name: sqlName().describe("Column name."),
              kind: z
                .enum(PSEUDONYM_KINDS)
                .describe(
                  "Pseudonym that keeps the value's format: name, email, phone (digits), text, html, date (same year), identifier, street, city, zip; clear empties it.",
                ),
            }),
          )
          .min(1)
          .describe("Columns that hold identifying data, each with the kind of pseudonym that replaces it."),
      }),
    )
    .default([])
    .describe("Tables and columns beyond Odoo's own (res_partner, hr_employee, res_users, mail_message, ...)."),
});

const EnvironmentSchema = z.strictObject({
  name: dnsLabel(MAX_ENVIRONMENT_NAME_LENGTH).describe(
    `Environment name (DNS label, at most ${MAX_ENVIRONMENT_NAME_LENGTH} characters); unique.`,
  ),
  displayName: displayName().optional().describe("Human-readable name."),
  entity: dnsLabel().describe("Name of the entities[] item that owns this environment."),
  tier: z.enum(["production", "staging", "development", "training", "dr"]).describe("What the environment is for."),
  dataClass: z
    .enum(["phi", "confidential", "internal", "public"])
    .describe("Most sensitive data the environment holds."),
  hosting: z
    .enum(["dedicated", "shared"])
    .describe("Dedicated infrastructure, or shared with other environments of the organization."),
  odoo: OdooSchema.describe("The Odoo application tier."),
  database: DatabaseSchema.describe("The environment's PostgreSQL cluster."),
  redis: RedisSchema.describe("Redis for sessions."),
  backup: BackupSchema.describe("Backups, objectives and restore drills."),
  maintenanceWindow: MaintenanceWindowSchema.optional().describe(
    "When changes may be applied; defaults.maintenanceWindow when omitted.",
  ),
  ingress: IngressSchema.describe("How users reach the environment."),
  dataSource: DataSourceSchema.optional().describe("For non-production copies: which environment the data comes from."),
  deidentify: DeidentifySchema.optional().describe(
    "What else in this environment's database identifies people (custom modules' tables), replaced in every de-identified copy made from it.",
  ),
});

/** Every field an environment can declare, as a plan names it (odoo.workers); what standardChanges may list. */
export const ENVIRONMENT_FIELD_PATHS = fieldPathsOf(EnvironmentSchema);
/** The class of standard change carehost assumes when a spec lists none. */
export const NON_PRODUCTION = "non-production";
export const MAX_APPROVALS = 10;

const StandardChangeSchema = z
  .strictObject({
    environments: z
      .literal(NON_PRODUCTION, {
        error: (issue) => `${show(issue.input)} is not a class of environments (write "${NON_PRODUCTION}")`,
      })
      .optional()
      .describe(`"${NON_PRODUCTION}": any change to an environment whose tier is not production.`),
    environment: dnsLabel(MAX_ENVIRONMENT_NAME_LENGTH)
      .optional()
      .describe("An environment (environments[].name) some of whose fields are standard; listed with fields."),
    fields: z
      .array(
        z.string().refine((path) => ENVIRONMENT_FIELD_PATHS.has(path), {
          error: (issue) =>
            `${show(issue.input)} is not a field of an environment (a dotted path such as odoo.workers or backup.retention)`,
        }),
      )
      .min(1, { error: "must list at least one field" })
      .optional()
      .describe(
        "Fields of that environment whose change is pre-approved, as plan names them (odoo.workers); a field covers what is under it (odoo covers odoo.workers). A change that restarts production is never standard.",
      ),
  })
  .superRefine((item, ctx) => {
    if ((item.environments === undefined) === (item.environment === undefined))
      ctx.addIssue({
        code: "custom",
        message: `a standard change names either environments: ${NON_PRODUCTION} or one environment with its fields`,
        input: item,
      });
    else if (item.environment !== undefined && item.fields === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["fields"],
        message: `environment ${show(item.environment)} needs the fields whose change is standard, e.g. [odoo.workers]`,
        input: item,
      });
    else if (item.environments !== undefined && item.fields !== undefined)
      ctx.addIssue({
        code: "custom",
        path: ["fields"],
        message: `fields belong to one environment; ${NON_PRODUCTION} covers every field of every environment outside production`,
        input: item,
      });
  });

const isoInstant = () =>
  z.iso
    .datetime({
      offset: true,
      error: (issue) =>
        `${show(issue.input)} is not an ISO 8601 date-time with a zone, e.g. 2026-12-20T00:00:00-05:00 or 2026-12-20T05:00:00Z`,
    })
    .describe("ISO 8601 date-time with a zone (Z or ±hh:mm).");

const FreezeSchema = z
  .strictObject({
    from: isoInstant().describe("When the freeze begins (inclusive), ISO 8601 with a zone."),
    to: isoInstant().describe("When the freeze ends (exclusive), ISO 8601 with a zone."),
    reason: z
      .string()
      .trim()
      .min(1, { error: "must not be empty" })
      .max(200)
      .describe("Why changes stop, e.g. year-end close."),
  })
  .superRefine((freeze, ctx) => {
    if (Date.parse(freeze.to) <= Date.parse(freeze.from))
      ctx.addIssue({
        code: "custom",
        path: ["to"],
        message: `the freeze ends (${freeze.to}) before it begins (${freeze.from})`,
        input: freeze.to,
      });
  });

const ChangeManagementSchema = z.strictObject({
  approvalsRequired: z
    .int()
    .min(1, {
      error: (issue) => `approvalsRequired ${show(issue.input)} must be at least 1 (someone other than the requester)`,
    })
    .max(MAX_APPROVALS, { error: (issue) => `approvalsRequired ${show(issue.input)} is more than ${MAX_APPROVALS}` })
    .optional()
    .describe(
      "Approvals a normal change needs, each by someone other than the requester and each other. Default: 2 for a change to a production environment holding PHI, 1 otherwise.",
    ),
  standardChanges: z
    .array(StandardChangeSchema)
    .optional()
    .describe(
      `Pre-approved classes of change, applied by carehost apply without approval (still recorded as change requests). Default: [{ environments: ${NON_PRODUCTION} }].`,
    ),
  freezes: z
    .array(FreezeSchema)
    .optional()
    .describe("Periods in which carehost refuses every change but an emergency one."),
});

export const APPROVED_BY_REFUSED =
  "an exception is approved in carehost, by someone other than whoever applies the spec that proposes it (carehost exception list, carehost exception approve <organization> <id>); remove approvedBy";

const PolicyExceptionSchema = z.strictObject({
  controlId: patternString(/^CH-[A-Z]{2,5}-\d{3}$/, "is not a control id (CH-<AREA>-NNN)").describe(
    "The control that is accepted to fail, e.g. CH-NET-002.",
  ),
  environment: dnsLabel(MAX_ENVIRONMENT_NAME_LENGTH).describe(
    "The environment the exception covers; one exception per control and environment.",
  ),
  owner: z.string().trim().min(1).max(200).describe("Who answers for the accepted risk (email or user name)."),
  reason: z.string().trim().min(1).max(500).describe("Why the control cannot be met now, and what compensates."),
  expires: z
    .string()
    .min(1)
    .describe("ISO date (valid through that day, UTC) or date-time with a zone; at most 366 days ahead."),
  // Whoever writes the spec could write any name here: approval is given in carehost instead.
  approvedBy: z.never({ error: APPROVED_BY_REFUSED }).optional().describe(`Not accepted: ${APPROVED_BY_REFUSED}`),
});

const GitopsSchema = z.strictObject({
  repository: gitUrl().describe(
    "Remote every render is pushed to after its local commit; Argo CD syncs from it. Credentials come from the host's Git configuration, never from the spec.",
  ),
  targetRevision: z.string().min(1).default("main").describe("Branch Argo CD follows. Default main."),
});

const promDuration = () => patternString(/^\d{1,4}[smhd]$/, "is not a Prometheus duration such as 30s, 5m, 2h or 1d");

/** Where an alert receiver listens: http(s), no credentials in the URL (a token belongs in the receiver's network policy or a proxy). */
const receiverUrl = () =>
  withoutCredentials(
    z.url({
      protocol: /^https?$/,
      error: (issue) => `${showUrl(issue.input)} is not an http:// or https:// URL`,
    }),
    "alert receivers are reached without credentials in the spec",
  );

const AlertDestinationFields = {
  webhook: receiverUrl()
    .optional()
    .describe("A receiver of Alertmanager's webhook payload (version 4), POSTed once per alert state change."),
  alertmanager: receiverUrl()
    .optional()
    .describe(
      "An Alertmanager's base URL: alerts are posted to its /api/v2/alerts (re-sent while firing), and it routes them on.",
    ),
  email: z
    .array(z.email({ error: (issue) => `${show(issue.input)} is not an email address` }))
    .min(1)
    .optional()
    .describe("Addresses mailed over the SMTP server carehost is configured with (CAREHOST_SMTP_URL)."),
};
const hasDestination = (route: { webhook?: string; alertmanager?: string; email?: string[] }) =>
  route.webhook !== undefined || route.alertmanager !== undefined || route.email !== undefined;
const NO_DESTINATION = "names no destination: give webhook, alertmanager or email";

const AlertRouteSchema = z
  .strictObject({
    match: z
      .strictObject({
        severity: z
          .array(z.enum(ALERT_SEVERITIES))
          .min(1)
          .optional()
          .describe("The severities this route takes (every one when left out)."),
        entity: dnsLabel()
          .optional()
          .describe("Only alerts of environments this entities[] item owns (every entity's when left out)."),
      })
      .default({})
      .describe("Which alerts the route takes; every route an alert matches receives it."),
    ...AlertDestinationFields,
  })
  .refine(hasDestination, { error: NO_DESTINATION });

const EscalationSchema = z
  .strictObject({
    after: promDuration().describe("How long a critical alert may fire unacknowledged before it is escalated."),
    ...AlertDestinationFields,
  })
  .refine(hasDestination, { error: NO_DESTINATION });

const RESERVED_ALERT_LABELS = ["severity", "source", "organization", "environment", "instance", "alertname"];

const AlertRuleOverrideSchema = z.strictObject({
  rule: z
    .enum(RULE_NAMES, {
      error: (issue) => `${show(issue.input)} is not a rule carehost ships (one of ${RULE_NAMES.join(", ")})`,
    })
    .describe("The shipped rule this overrides; each has a runbook at docs/runbooks/<rule>.md."),
  enabled: z.boolean().optional().describe("false leaves the rule out of the rendered rules. Default true."),
  for: promDuration()
    .optional()
    .describe("How long the condition must hold before the alert fires (the rule's own by default)."),
  resolveAfter: promDuration()
    .optional()
    .describe(
      `How long the condition must stay clear before a firing alert resolves (hysteresis: a condition that comes and goes within it fires and resolves once). Default ${DEFAULT_RESOLVE_AFTER}; rendered as keep_firing_for.`,
    ),
  severity: z.enum(ALERT_SEVERITIES).optional().describe("critical, warning or info; routes are chosen by it."),
  threshold: z
    .number()
    .nonnegative()
    .optional()
    .describe("The rule's threshold, in the unit its runbook names (a fraction, seconds, days or a count)."),
  labels: z
    .record(
      patternString(/^[a-zA-Z_][a-zA-Z0-9_]{0,62}$/, "is not a Prometheus label name").refine(
        (name) => !RESERVED_ALERT_LABELS.includes(name),
        { error: (issue) => `label ${show(issue.input)} is carehost's own (${RESERVED_ALERT_LABELS.join(", ")})` },
      ),
      z.string().min(1).max(200),
    )
    .optional()
    .describe("Labels added to the alert, e.g. team: dba, for routing in Alertmanager."),
});

const MonitoringSchema = z.strictObject({
  rules: z
    .array(AlertRuleOverrideSchema)
    .default([])
    .superRefine((overrides, ctx) => {
      overrides.forEach((override, index) => {
        if (overrides.findIndex((other) => other.rule === override.rule) !== index)
          ctx.addIssue({
            code: "custom",
            path: [index, "rule"],
            message: `rule ${override.rule} is overridden twice; merge the two`,
            input: override.rule,
          });
      });
    })
    .describe("Overrides of the alert rules carehost ships: for-duration, severity, threshold, labels, or off."),
  routes: z
    .array(AlertRouteSchema)
    .default([])
    .describe(
      "Where carehost sends the organization's alerts, chosen by severity and entity: an Alertmanager webhook receiver, an Alertmanager, email.",
    ),
  escalation: EscalationSchema.optional().describe(
    "Where a critical alert goes when nobody acknowledges it (carehost alerts ack) in time.",
  ),
});

/** The longest a restored copy of PHI may live, in hours (a month). */
export const MAX_PHI_COPY_HOURS = 720;
/** How long a restored copy of PHI lives unless the spec allows less (or the restore asks for less). */
export const DEFAULT_PHI_COPY_HOURS = 24;

const CopiesSchema = z.strictObject({
  maxPhiHours: z
    .number()
    .int()
    .min(1)
    .max(MAX_PHI_COPY_HOURS)
    .default(DEFAULT_PHI_COPY_HOURS)
    .describe(
      `The longest a restored copy holding PHI (carehost restore ENV --into NAME, without --deidentify) lives before carehost tears it down, in hours (1 to ${MAX_PHI_COPY_HOURS}). Default ${DEFAULT_PHI_COPY_HOURS}; a copy gets ${DEFAULT_PHI_COPY_HOURS} h or this, whichever is less, unless the restore asks for less.`,
    ),
});

const DefaultsSchema = z.strictObject({
  maintenanceWindow: MaintenanceWindowSchema.optional().describe(
    "Maintenance window of environments that declare none.",
  ),
});

const OrganizationInputSchema = z.strictObject({
  apiVersion: z.literal(SPEC_API_VERSION).describe("Spec format version."),
  kind: z.literal("Organization").describe("What this file declares."),
  metadata: z
    .strictObject({
      name: dnsLabel().describe("Organization identifier (DNS label)."),
      displayName: displayName().describe("Organization name as people write it."),
    })
    .describe("Who this spec describes."),
  entities: z.array(EntitySchema).min(1).describe("Legal units (a hospital and its clinics) that own environments."),
  identity: IdentitySchema.describe("How people sign in to carehost."),
  backupRepositories: z
    .array(BackupRepositorySchema)
    .default([])
    .describe("Where backups are stored. Credentials are referenced by secret name only."),
  defaults: DefaultsSchema.optional().describe("Values environments inherit when they do not set them."),
  environments: z.array(EnvironmentSchema).min(1).describe("The Odoo environments of the organization."),
  gitops: GitopsSchema.optional().describe(
    "Where rendered manifests are delivered; without it, a bare repository in the carehost data dir.",
  ),
  copies: CopiesSchema.optional().describe(
    "Restored copies of environments' data: how long one holding PHI may live (carehost copies lists them).",
  ),
  monitoring: MonitoringSchema.optional().describe(
    "Alerting: the shipped rules' overrides. Rendered as a Prometheus rules file (GET /api/monitoring/rules) and a PrometheusRule.",
  ),
  changeManagement: ChangeManagementSchema.optional().describe(
    "How changes are governed: approvals, pre-approved (standard) changes, freezes. Changes to production need approval by default.",
  ),
  policyExceptions: z
    .array(PolicyExceptionSchema)
    .default([])
    .describe(
      "Documented exceptions to controls, proposed by whoever applies the spec: 'pending' (the control fails) until someone else approves the version in carehost (carehost exception approve), then 'excepted' with owner, reason, expiry and approver; audited; never a silent skip.",
    ),
});

export const MISSING_WINDOW_MESSAGE = "no maintenanceWindow, and defaults.maintenanceWindow is not set";

/**
 * The organization spec. Parsing resolves defaults: every environment of the output has a
 * maintenance window. A missing one is also reported by the semantic checks, which run even when
 * other parts of the spec are invalid; the issue here keeps the schema sound on its own.
 */
export const OrganizationSpecSchema = OrganizationInputSchema.transform((organization, ctx) => {
  const environments = organization.environments.map((environment, index) => {
    const maintenanceWindow = environment.maintenanceWindow ?? organization.defaults?.maintenanceWindow;
    if (maintenanceWindow === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["environments", index],
        message: MISSING_WINDOW_MESSAGE,
        input: environment,
      });
      return z.NEVER;
    }
    return { ...environment, maintenanceWindow };
  });
  return { ...organization, environments };
});

// Parts the semantic checks parse on their own, so that one invalid environment does not hide
// cross-reference errors in the others.
export const SpecPartSchemas = {
  enabledBackup: EnabledBackupSchema,
  maintenanceSlots: MaintenanceWindowSchema.shape.slots,
} as const;

export type TOrganizationSpec = z.output<typeof OrganizationSpecSchema>;
export type TOrganizationSpecInput = z.input<typeof OrganizationSpecSchema>;
export type TEnvironmentSpec = TOrganizationSpec["environments"][number];
export type TDeidentifySpec = z.output<typeof DeidentifySchema>;
export type TEntitySpec = z.output<typeof EntitySchema>;
export type TBackupRepositorySpec = z.output<typeof BackupRepositorySchema>;
export type TBackupSpec = z.output<typeof BackupSchema>;
export type TChangeManagementSpec = z.output<typeof ChangeManagementSchema>;
export type TStandardChangeSpec = z.output<typeof StandardChangeSchema>;
export type TFreezeSpec = z.output<typeof FreezeSchema>;
export type TMaintenanceWindowSpec = z.output<typeof MaintenanceWindowSchema>;
export type TWeekday = (typeof WEEKDAYS)[number];
export { WEEKDAYS };
