import { ForbiddenError } from "../lib/errors.js";
import { actorName, roles, type TActor, type TRequestContext, type TRole } from "../lib/request-context.js";
import type { TIdentityAudit } from "./identity-types.js";

export const permissions = [
  "status:read",
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
export const rolePermissions: Record<TRole, readonly Permission[]> = {
  "platform-admin": permissions,
  operator: [
    "status:read",
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
  viewer: ["status:read", "environment:read", "spec:read", "token:manage-own"],
};

const granted = new Map<TRole, ReadonlySet<Permission>>(roles.map((role) => [role, new Set(rolePermissions[role])]));

/**
 * System actors are carehost's own process (the scheduler, local CLI commands run by whoever holds
 * the database credentials), which could bypass any check anyway; anonymous callers get nothing.
 */
export const can = (actor: TActor, permission: Permission): boolean => {
  switch (actor.kind) {
    case "system":
      return true;
    case "user":
      return granted.get(actor.role)?.has(permission) ?? false;
    default:
      return false;
  }
};

/** Refuses with ForbiddenError, after recording the refusal: a denied action is an audit event too. */
export const authorize = async (
  ctx: TRequestContext,
  permission: Permission,
  audit: TIdentityAudit,
  target: string = permission,
): Promise<void> => {
  if (can(ctx.actor, permission)) return;
  const role = ctx.actor.kind === "user" ? ctx.actor.role : null;
  await audit.append(ctx, { type: "access.denied", outcome: "denied", target, payload: { permission, role } });
  throw new ForbiddenError(`${actorName(ctx.actor)}${role ? ` (${role})` : ""} is not allowed ${permission}`);
};
