// What the recorded organizations' `identity` asks of carehost's own sign-in, and what carehost
// makes of it. Users and sessions are carehost's, not an organization's (one user may administer
// several organizations), so each rule is the strictest of the recorded organizations': the
// shortest idle timeout and absolute lifetime, and no local users while any organization allows
// none. A second factor is asked of a user when any organization their role bindings cover
// requires one (every recorded organization for a binding over "*"): a user bound to several
// organizations gets the strictest of theirs. `posture` reads this same value back, so a control
// passes on what the identity service enforces, not on the spec.
import { ALL_ORGANIZATIONS, type TRoleBinding } from "../lib/request-context.js";
import type { TPlatformEnforcement } from "../policy/policy-types.js";
import type { TSessionLimits } from "./identity-types.js";

/** One recorded organization's identity settings (the latest revision of its spec). */
export type TOrganizationIdentityRules = {
  readonly organization: string;
  readonly sessionIdleTimeoutMinutes: number;
  readonly localUsersAllowed: boolean;
  readonly mfaRequired: boolean;
  /** identity.sessionMaxHours: a session's absolute lifetime. */
  readonly sessionMaxHours: number;
  /** Whether the spec names an OIDC provider (identity.oidc): the bootstrap admin is then break-glass only. */
  readonly oidcConfigured: boolean;
};

/** The username of the admin `carehost up` creates on the first start: the break-glass account. */
export const BOOTSTRAP_ADMIN = "admin";

export type TIdentityRules = {
  readonly session: TSessionLimits;
  /** Organizations that allow no local users; while one does, only the bootstrap admin signs in with a password, as break-glass. */
  readonly localUsersRefusedBy: readonly string[];
  /** Organizations that require a second factor of whoever is bound to them. */
  readonly mfaRequiredBy: readonly string[];
  /** Organizations that sign people in through OIDC; while one does, a password sign-in of the bootstrap admin is break-glass. */
  readonly oidcConfiguredBy: readonly string[];
};

const namesWhere = (
  organizations: readonly TOrganizationIdentityRules[],
  holds: (organization: TOrganizationIdentityRules) => boolean,
): string[] =>
  organizations
    .filter(holds)
    .map((organization) => organization.organization)
    .sort();

/**
 * The strictest rules of the recorded organizations: never an idle timeout longer than carehost's
 * fixed default; the absolute lifetime the shortest sessionMaxHours, or the fixed one while none
 * is recorded.
 */
export function identityRulesOf(
  fixed: TSessionLimits,
  organizations: readonly TOrganizationIdentityRules[],
): TIdentityRules {
  return {
    session: {
      absoluteHours:
        organizations.length === 0
          ? fixed.absoluteHours
          : Math.min(...organizations.map((organization) => organization.sessionMaxHours)),
      idleMinutes: Math.min(
        fixed.idleMinutes,
        ...organizations.map((organization) => organization.sessionIdleTimeoutMinutes),
      ),
    },
    localUsersRefusedBy: namesWhere(organizations, (organization) => !organization.localUsersAllowed),
    mfaRequiredBy: namesWhere(organizations, (organization) => organization.mfaRequired),
    oidcConfiguredBy: namesWhere(organizations, (organization) => organization.oidcConfigured),
  };
}

/** The organizations whose requirement makes a user with these bindings pass a second factor; empty: none asks it. */
export const secondFactorRequiredBy = (rules: TIdentityRules, bindings: readonly TRoleBinding[]): string[] => {
  if (bindings.some((binding) => binding.organization === ALL_ORGANIZATIONS)) return [...rules.mfaRequiredBy];
  const bound = new Set(bindings.map((binding) => binding.organization));
  return rules.mfaRequiredBy.filter((organization) => bound.has(organization));
};

/** Whether a password sign-in of the bootstrap admin is break-glass: an organization allows no local users or signs in through OIDC. */
export const breakGlassBy = (rules: TIdentityRules): string[] =>
  [...new Set([...rules.localUsersRefusedBy, ...rules.oidcConfiguredBy])].sort();

/** What carehost's sign-in enforces under `rules`, as the identity controls read it. */
export const platformEnforcementOf = (rules: TIdentityRules): TPlatformEnforcement => ({
  sessionIdleMinutes: rules.session.idleMinutes,
  // Asked of every local user bound to an organization that requires it (secondFactorRequiredBy),
  // at sign-in, before any session exists; sessions and API tokens cannot be had around it.
  mfa: { enforced: true },
  // An organization that declares identity.oidc signs its people in through that provider
  // (identity-oidc.ts): discovery, PKCE, the ID token's checks, allowedDomains and roleMappings.
  oidc: { enforced: true },
  localUsers: rules.localUsersRefusedBy.length > 0 ? "refused" : "allowed",
});
