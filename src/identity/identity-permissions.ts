import { ForbiddenError } from "../lib/errors.js";
import {
  ALL_ORGANIZATIONS,
  actorName,
  roles,
  type TActor,
  type TRequestContext,
  type TRole,
} from "../lib/request-context.js";
import type { TIdentityAudit } from "./identity-types.js";

export const permissions = [
  "status:read",
  "metrics:read",
  "alert:manage",
  "environment:read",
  "spec:read",
  "spec:plan",
  "spec:apply",
  "change:read",
  "change:request",
  "change:approve",
  "backup:read",
  "backup:run",
  "restore:run",
  "audit:read",
  "audit:export",
  "audit:verify",
  "evidence:export",
  "secret:read",
  "secret:reveal",
  "secret:rotate",
  "user:read",
  "user:manage",
  "token:manage-own",
  "token:manage-any",
] as const;
export type Permission = (typeof permissions)[number];

// Deny by default: a permission a role does not list is refused. Every role may manage its own API
// tokens, because a credential for one's own read access changes nothing that is being governed.
// metrics:read is every role's too: the series say no more than status does, and the scrape token
// Prometheus holds is best a viewer's, bound over the organizations it monitors (README).
export const rolePermissions: Record<TRole, readonly Permission[]> = {
  "platform-admin": permissions,
  // An operator is who is on call: it silences and acknowledges alerts.
  operator: [
    "status:read",
    "metrics:read",
    "alert:manage",
    "environment:read",
    "spec:read",
    "spec:plan",
    "spec:apply",
    "change:read",
    "change:request",
    "backup:read",
    "backup:run",
    "restore:run",
    "secret:read",
    "secret:rotate",
    "token:manage-own",
  ],
  // Approving is kept apart from applying (separation of duties): an approver cannot apply.
  approver: [
    "status:read",
    "metrics:read",
    "environment:read",
    "spec:read",
    "spec:plan",
    "change:read",
    "change:approve",
    "token:manage-own",
  ],
  // Reads everything, including the audit log and who has access, and changes nothing.
  auditor: [
    "status:read",
    "metrics:read",
    "environment:read",
    "spec:read",
    "change:read",
    "backup:read",
    "audit:read",
    "audit:export",
    "audit:verify",
    "evidence:export",
    "user:read",
    "token:manage-own",
  ],
  viewer: ["status:read", "metrics:read", "environment:read", "spec:read", "token:manage-own"],
};

const granted = new Map<TRole, ReadonlySet<Permission>>(roles.map((role) => [role, new Set(rolePermissions[role])]));

/**
 * What a check is about: the organization an action targets (a spec's metadata.name, the
 * organization of an environment, run or secret); every organization at once (users, other
 * people's tokens, the whole audit log, whose export carries every entry); or some organization,
 * for a listing that is then cut down to scopeOf() and for one's own tokens.
 */
export type TAuthorizationScope = { readonly organization: string } | "every-organization" | "some-organization";

/** Where an actor holds a permission: every organization, or only those listed (perhaps none). */
export type TPermissionScope =
  { readonly all: true } | { readonly all: false; readonly organizations: readonly string[] };

export const scopeOf = (actor: TActor, permission: Permission): TPermissionScope => {
  if (actor.kind === "system") return { all: true };
  if (actor.kind !== "user") return { all: false, organizations: [] };
  const covering = actor.bindings.filter((binding) => granted.get(binding.role)?.has(permission) ?? false);
  if (covering.some((binding) => binding.organization === ALL_ORGANIZATIONS)) return { all: true };
  return { all: false, organizations: [...new Set(covering.map((binding) => binding.organization))].sort() };
};

export const inScope = (scope: TPermissionScope, organization: string): boolean =>
  scope.all || scope.organizations.includes(organization);

/**
 * System actors are carehost's own process (the scheduler, local CLI commands run by whoever holds
 * the database credentials), which could bypass any check anyway; anonymous callers get nothing.
 * A user holds a permission where one of their role bindings grants it, and nowhere else.
 */
export const can = (
  actor: TActor,
  permission: Permission,
  scope: TAuthorizationScope = "every-organization",
): boolean => {
  const held = scopeOf(actor, permission);
  if (scope === "every-organization") return held.all;
  if (scope === "some-organization") return held.all || held.organizations.length > 0;
  return inScope(held, scope.organization);
};

const scopeWords = (scope: TAuthorizationScope): string =>
  scope === "every-organization"
    ? " over every organization"
    : scope === "some-organization"
      ? ""
      : ` on organization ${scope.organization}`;

/**
 * Records a refusal without throwing, for lookups that answer "not found" rather than reveal that
 * another organization's environment or run exists (README: "Who may do what, where"). A plain
 * append, not a recordChange: a refusal is an observation and changes no row.
 */
export const recordDenial = async (
  ctx: TRequestContext,
  permission: Permission,
  audit: TIdentityAudit,
  target: string,
  scope: TAuthorizationScope = "every-organization",
): Promise<void> => {
  const role = ctx.actor.kind === "user" ? ctx.actor.role : null;
  const organization =
    scope === "every-organization" ? ALL_ORGANIZATIONS : scope === "some-organization" ? undefined : scope.organization;
  await audit.append(ctx, {
    type: "access.denied",
    outcome: "denied",
    target,
    payload: { permission, role, ...(organization === undefined ? {} : { organization }) },
  });
};

/** Refuses with ForbiddenError, after recording the refusal: a denied action is an audit event too. */
export const authorize = async (
  ctx: TRequestContext,
  permission: Permission,
  audit: TIdentityAudit,
  target: string = permission,
  scope: TAuthorizationScope = "every-organization",
): Promise<void> => {
  if (can(ctx.actor, permission, scope)) return;
  await recordDenial(ctx, permission, audit, target, scope);
  const role = ctx.actor.kind === "user" ? ctx.actor.role : null;
  throw new ForbiddenError(
    `${actorName(ctx.actor)}${role ? ` (${role})` : ""} is not allowed ${permission}${scopeWords(scope)}`,
  );
};

/** authorize() on the organization an action targets. */
export const authorizeOrganization = (
  ctx: TRequestContext,
  permission: Permission,
  organization: string,
  audit: TIdentityAudit,
  target = `organization/${organization}`,
): Promise<void> => authorize(ctx, permission, audit, target, { organization });

/** For a listing: refuses a caller who holds the permission nowhere, else says where it is held. */
export const authorizeListing = async (
  ctx: TRequestContext,
  permission: Permission,
  audit: TIdentityAudit,
  target: string = permission,
): Promise<TPermissionScope> => {
  await authorize(ctx, permission, audit, target, "some-organization");
  return scopeOf(ctx.actor, permission);
};
