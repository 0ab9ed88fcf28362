// Checks that span several fields or sections: names, references, schedules, windows.
//
// They read the raw parsed YAML rather than the schema's output, so they run even when other parts
// of the spec are invalid: a typo in one environment must not hide a dangling reference in another.
// A check that needs a typed part (a backup block, a list of slots) parses just that part, and
// stays silent when it does not parse: the schema has already reported why.
//
// Policy (is PHI backed up? is production dedicated?) is not checked here; that is the policy
// module's job. A spec error means the spec is inconsistent or cannot be carried out.
import { RESERVED_ORGANIZATION_NAMES } from "../lib/data-dir.js";
import { longestCronGapMinutes, parseCron } from "./cron.js";
import type { TCronSchedule } from "./cron.js";
import type { TSpecIssue } from "./spec-issues.js";
import type { TPathSegment } from "./spec-locate.js";
import { MISSING_WINDOW_MESSAGE, MINUTES_PER_WEEK, SpecPartSchemas, WEEKDAYS } from "./spec-schema.js";

type TRecord = Readonly<Record<string, unknown>>;

const MINUTES_PER_DAY = 24 * 60;
// Retention tiers measured at their longest: a "monthly" backup may be 31 days from the next.
const RETENTION_TIER_MINUTES = {
  daily: MINUTES_PER_DAY,
  weekly: 7 * MINUTES_PER_DAY,
  monthly: 31 * MINUTES_PER_DAY,
} as const;

const isRecord = (value: unknown): value is TRecord =>
  typeof value === "object" && value !== null && !Array.isArray(value);
const field = (value: unknown, key: string): unknown => (isRecord(value) ? value[key] : undefined);
const list = (value: unknown): readonly unknown[] => (Array.isArray(value) ? value : []);
const text = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined);
const quoted = (value: string) => JSON.stringify(value);
const known = (names: Iterable<string>) => {
  const all = [...names];
  return all.length === 0 ? "none are declared" : `declared: ${all.join(", ")}`;
};

export function formatMinutes(minutes: number): string {
  if (!Number.isFinite(minutes)) return "never";
  if (minutes % MINUTES_PER_DAY === 0)
    return `${minutes / MINUTES_PER_DAY} day${minutes === MINUTES_PER_DAY ? "" : "s"}`;
  if (minutes % 60 === 0) return `${minutes / 60} h`;
  return `${minutes} min`;
}

/** Reports the second and later uses of each name in `section`, at the repeated name. */
function duplicateNames(items: readonly unknown[], section: string, noun: string): TSpecIssue[] {
  const firstIndex = new Map<string, number>();
  const issues: TSpecIssue[] = [];
  items.forEach((item, index) => {
    const name = text(field(item, "name"));
    if (name === undefined) return;
    const first = firstIndex.get(name);
    if (first === undefined) firstIndex.set(name, index);
    else
      issues.push({
        path: [section, index, "name"],
        target: "value",
        message: `${noun} name ${quoted(name)} is already used by ${section}[${first}]`,
      });
  });
  return issues;
}

function namesOf(items: readonly unknown[]): Set<string> {
  return new Set(items.map((item) => text(field(item, "name"))).filter((name): name is string => name !== undefined));
}

function entityParents(entities: readonly unknown[], entityNames: ReadonlySet<string>): TSpecIssue[] {
  const parentOf = new Map<string, string>();
  for (const entity of entities) {
    const name = text(field(entity, "name"));
    const parent = text(field(entity, "parent"));
    if (name !== undefined && parent !== undefined) parentOf.set(name, parent);
  }
  const issues: TSpecIssue[] = [];
  entities.forEach((entity, index) => {
    const name = text(field(entity, "name"));
    const parent = text(field(entity, "parent"));
    if (name === undefined || parent === undefined) return;
    const path = ["entities", index, "parent"];
    if (!entityNames.has(parent)) {
      issues.push({
        path,
        target: "value",
        message: `parent ${quoted(parent)} is not an entity (${known(entityNames)})`,
      });
      return;
    }
    const chain = [name];
    const seen = new Set(chain);
    for (let current: string | undefined = parent; current !== undefined; current = parentOf.get(current)) {
      chain.push(current);
      if (current === name) {
        issues.push({
          path,
          target: "value",
          message: `entity ${quoted(name)} is its own ancestor (${chain.join(" -> ")})`,
        });
        break;
      }
      // A loop that does not pass through this entity is reported at the entities on it.
      if (seen.has(current)) break;
      seen.add(current);
    }
  });
  return issues;
}

function identityCanSignIn(identity: unknown): TSpecIssue[] {
  if (field(identity, "localUsersAllowed") === false && field(identity, "oidc") === undefined) {
    return [
      {
        path: ["identity", "localUsersAllowed"],
        target: "value",
        message: "nobody could sign in: localUsersAllowed is false and no oidc provider is configured",
      },
    ];
  }
  return [];
}

type TSlotInterval = { start: number; duration: number; label: string };

/** Slots repeat weekly, so two slots overlap when either starts inside the other, modulo a week. */
function overlappingSlots(window: unknown, windowPath: readonly TPathSegment[]): TSpecIssue[] {
  const parsed = SpecPartSchemas.maintenanceSlots.safeParse(field(window, "slots"));
  if (!parsed.success) return [];
  const intervals: TSlotInterval[] = parsed.data.map((slot) => {
    const [hours = 0, minutes = 0] = slot.start.split(":").map(Number);
    const start = WEEKDAYS.indexOf(slot.day) * MINUTES_PER_DAY + hours * 60 + minutes;
    return {
      start,
      duration: slot.durationMinutes,
      label: `${slot.day} ${slot.start} for ${slot.durationMinutes} min`,
    };
  });
  const issues: TSpecIssue[] = [];
  intervals.forEach((slot, index) => {
    const earlier = intervals.findIndex((other, otherIndex) => {
      if (otherIndex >= index) return false;
      const fromOther = (slot.start - other.start + MINUTES_PER_WEEK) % MINUTES_PER_WEEK;
      const fromSlot = (other.start - slot.start + MINUTES_PER_WEEK) % MINUTES_PER_WEEK;
      return fromOther < other.duration || fromSlot < slot.duration;
    });
    const other = intervals[earlier];
    if (other) {
      issues.push({
        path: [...windowPath, "slots", index],
        target: "value",
        message: `slot ${slot.label} overlaps slots[${earlier}] (${other.label})`,
      });
    }
  });
  return issues;
}

/**
 * The backup rules. WAL is archived continuously in carehost, so the data a restore can lose is
 * bounded by archive_timeout, not by the backup schedule; a schedule never makes a small RPO
 * unreachable. What the schedule does bound is this:
 *
 * 1. Retention must outlast the longest gap between consecutive backups (full, differential and
 *    incremental taken together, computed from the cron expressions in UTC). Otherwise the newest
 *    backup can expire before the next one is taken, leaving nothing to replay WAL onto.
 *    Retention covers max(daily x 1 day, weekly x 7 days, monthly x 31 days).
 * 2. rpoMinutes must not exceed that longest gap. Restore drills and alerts are held to the declared
 *    objective; one looser than the schedule itself would let a broken WAL archive or skipped
 *    backups go unnoticed for longer than the schedule implies, so the objective would be
 *    meaningless.
 *
 * rpoMinutes >= 1 and rtoMinutes >= 5 are checked by the schema.
 */
function backupSchedule(backup: unknown, backupPath: readonly TPathSegment[]): TSpecIssue[] {
  const parsed = SpecPartSchemas.enabledBackup.safeParse(backup);
  if (!parsed.success) return [];
  const { schedule, retention, rpoMinutes } = parsed.data;
  const schedules = [schedule.full, schedule.differential, schedule.incremental]
    .map((expression) => (expression === undefined ? undefined : parseCron(expression)))
    .flatMap((result): TCronSchedule[] => (result?.ok ? [result.schedule] : []));
  const longestGap = longestCronGapMinutes(schedules);
  const retentionMinutes = Math.max(
    retention.daily * RETENTION_TIER_MINUTES.daily,
    retention.weekly * RETENTION_TIER_MINUTES.weekly,
    retention.monthly * RETENTION_TIER_MINUTES.monthly,
  );
  const issues: TSpecIssue[] = [];
  if (longestGap > retentionMinutes) {
    issues.push({
      path: [...backupPath, "retention"],
      target: "value",
      message: `retention keeps backups for ${formatMinutes(retentionMinutes)}, but scheduled backups are up to ${formatMinutes(longestGap)} apart: the newest backup could expire before the next one exists`,
    });
  }
  if (rpoMinutes > longestGap) {
    issues.push({
      path: [...backupPath, "rpoMinutes"],
      target: "value",
      message: `rpoMinutes ${rpoMinutes} is looser than the backup schedule, which takes a backup at least every ${longestGap} minutes (${formatMinutes(longestGap)}); declare at most ${longestGap}`,
    });
  }
  return issues;
}

function environmentReferences(
  environment: unknown,
  index: number,
  names: { entities: ReadonlySet<string>; repositories: ReadonlySet<string>; environments: ReadonlySet<string> },
): TSpecIssue[] {
  const issues: TSpecIssue[] = [];
  const path = ["environments", index];
  const entity = text(field(environment, "entity"));
  if (entity !== undefined && !names.entities.has(entity)) {
    issues.push({
      path: [...path, "entity"],
      target: "value",
      message: `entity ${quoted(entity)} is not declared in entities (${known(names.entities)})`,
    });
  }
  const backup = field(environment, "backup");
  const listed = new Set<string>();
  list(field(backup, "repositories")).forEach((repository, repositoryIndex) => {
    if (typeof repository !== "string") return;
    const repositoryPath = [...path, "backup", "repositories", repositoryIndex];
    if (!names.repositories.has(repository)) {
      issues.push({
        path: repositoryPath,
        target: "value",
        message: `backup repository ${quoted(repository)} is not declared in backupRepositories (${known(names.repositories)})`,
      });
    } else if (listed.has(repository)) {
      issues.push({
        path: repositoryPath,
        target: "value",
        message: `backup repository ${quoted(repository)} is listed twice`,
      });
    }
    listed.add(repository);
  });
  const dataSource = field(environment, "dataSource");
  const copyFrom = text(field(dataSource, "copyFrom"));
  const name = text(field(environment, "name"));
  if (field(environment, "tier") === "production" && dataSource !== undefined) {
    issues.push({
      path: [...path, "dataSource"],
      target: "value",
      message: "dataSource is for non-production copies; a production environment's data is its own",
    });
  } else if (copyFrom !== undefined && copyFrom === name) {
    issues.push({
      path: [...path, "dataSource", "copyFrom"],
      target: "value",
      message: `environment ${quoted(copyFrom)} cannot copy its data from itself`,
    });
  } else if (copyFrom !== undefined && !names.environments.has(copyFrom)) {
    issues.push({
      path: [...path, "dataSource", "copyFrom"],
      target: "value",
      message: `copyFrom ${quoted(copyFrom)} is not an environment (${known(names.environments)})`,
    });
  }
  return issues;
}

/**
 * An environment's name is its database's name on PostgreSQL (local-placement.ts). PostgreSQL's
 * own databases are refused: an environment named postgres would own the database (and, on
 * PostgreSQL 15, the public schema) where carehost administers the cluster as superuser, and
 * template0/template1 are what every new database is copied from.
 */
const RESERVED_ENVIRONMENT_NAMES: Readonly<Record<string, string>> = {
  postgres: "PostgreSQL's maintenance database, where carehost administers each cluster as superuser",
  template0: "PostgreSQL's pristine template database",
  template1: "PostgreSQL's template for every new database",
};

function reservedEnvironmentName(environment: unknown, index: number): TSpecIssue[] {
  const name = text(field(environment, "name"));
  const reason = name === undefined ? undefined : RESERVED_ENVIRONMENT_NAMES[name];
  return reason === undefined
    ? []
    : [
        {
          path: ["environments", index, "name"],
          target: "value",
          message: `environment name ${quoted(name!)} is reserved: an environment's database takes its name, and ${quoted(name!)} is ${reason}; choose another name`,
        },
      ];
}

/**
 * An organization's name is a directory of carehost's data dir wherever a posix repository sits at
 * `path: .` (<data dir>/<organization>), and beside its GitOps repositories: it may not be the
 * name of one of carehost's own entries there.
 */
function reservedOrganizationName(metadata: unknown): TSpecIssue[] {
  const name = text(field(metadata, "name"));
  const reason = name === undefined ? undefined : RESERVED_ORGANIZATION_NAMES[name];
  return reason === undefined
    ? []
    : [
        {
          path: ["metadata", "name"],
          target: "value",
          message: `organization name ${quoted(name!)} is reserved: carehost's data dir keeps ${reason} under that name, and the organization's directories would collide with it; choose another name`,
        },
      ];
}

function uniqueHostnames(environments: readonly unknown[]): TSpecIssue[] {
  const owner = new Map<string, string>();
  const issues: TSpecIssue[] = [];
  environments.forEach((environment, index) => {
    const label = `environments[${index}]${text(field(environment, "name")) ? ` (${text(field(environment, "name"))})` : ""}`;
    list(field(field(environment, "ingress"), "hostnames")).forEach((hostname, hostnameIndex) => {
      if (typeof hostname !== "string") return;
      const key = hostname.toLowerCase();
      const first = owner.get(key);
      if (first === undefined) owner.set(key, label);
      else
        issues.push({
          path: ["environments", index, "ingress", "hostnames", hostnameIndex],
          target: "value",
          message: `host name ${quoted(hostname)} is already used by ${first}`,
        });
    });
  });
  return issues;
}

/** A standard change names a declared environment: a class for one that does not exist would never apply, silently. */
function standardChangeReferences(changeManagement: unknown, environments: ReadonlySet<string>): TSpecIssue[] {
  const issues: TSpecIssue[] = [];
  list(field(changeManagement, "standardChanges")).forEach((item, index) => {
    const environment = text(field(item, "environment"));
    if (environment === undefined || environments.has(environment)) return;
    issues.push({
      path: ["changeManagement", "standardChanges", index, "environment"],
      target: "value",
      message: `environment ${quoted(environment)} is not declared in environments (${known(environments)})`,
    });
  });
  return issues;
}

/** A route chosen by entity names a declared one: a misspelt entity would route nothing, silently. */
function alertRouteEntities(monitoring: unknown, entities: ReadonlySet<string>): TSpecIssue[] {
  const issues: TSpecIssue[] = [];
  list(field(monitoring, "routes")).forEach((route, index) => {
    const entity = text(field(field(route, "match"), "entity"));
    if (entity === undefined || entities.has(entity)) return;
    issues.push({
      path: ["monitoring", "routes", index, "match", "entity"],
      target: "value",
      message: `entity ${quoted(entity)} is not declared in entities (${known(entities)})`,
    });
  });
  return issues;
}

/** Every cross-field problem in a parsed (not necessarily valid) spec. */
export function checkSpecSemantics(spec: unknown): TSpecIssue[] {
  const entities = list(field(spec, "entities"));
  const repositories = list(field(spec, "backupRepositories"));
  const environments = list(field(spec, "environments"));
  const names = {
    entities: namesOf(entities),
    repositories: namesOf(repositories),
    environments: namesOf(environments),
  };
  const defaultWindow = field(field(spec, "defaults"), "maintenanceWindow");

  const issues: TSpecIssue[] = [
    ...reservedOrganizationName(field(spec, "metadata")),
    ...duplicateNames(entities, "entities", "entity"),
    ...entityParents(entities, names.entities),
    ...duplicateNames(repositories, "backupRepositories", "backup repository"),
    ...duplicateNames(environments, "environments", "environment"),
    ...identityCanSignIn(field(spec, "identity")),
    ...overlappingSlots(defaultWindow, ["defaults", "maintenanceWindow"]),
    ...uniqueHostnames(environments),
    ...standardChangeReferences(field(spec, "changeManagement"), names.environments),
    ...alertRouteEntities(field(spec, "monitoring"), names.entities),
  ];
  environments.forEach((environment, index) => {
    const path = ["environments", index];
    issues.push(...reservedEnvironmentName(environment, index));
    issues.push(...environmentReferences(environment, index, names));
    const window = field(environment, "maintenanceWindow");
    if (window === undefined && defaultWindow === undefined && isRecord(environment)) {
      issues.push({ path, target: "value", message: MISSING_WINDOW_MESSAGE });
    }
    issues.push(...overlappingSlots(window, [...path, "maintenanceWindow"]));
    if (field(field(environment, "backup"), "enabled") === true)
      issues.push(...backupSchedule(field(environment, "backup"), [...path, "backup"]));
  });
  return issues;
}
