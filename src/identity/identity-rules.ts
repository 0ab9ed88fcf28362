// What the recorded organizations' `identity` asks of carehost's own sign-in, and what carehost
// makes of it. Users and sessions are carehost's, not an organization's (one user may administer
// several organizations), so each rule is the strictest of the recorded organizations': the
// shortest idle timeout, and no local users while any organization allows none. `posture` reads
// this same value back, so a control passes on what the identity service enforces, not on the spec.
import type { TPlatformEnforcement } from "../policy/policy-types.js";
import type { TSessionLimits } from "./identity-types.js";

/** One recorded organization's identity settings (the latest revision of its spec). */
export type TOrganizationIdentityRules = {
  readonly organization: string;
  readonly sessionIdleTimeoutMinutes: number;
  readonly localUsersAllowed: boolean;
};

/** The username of the admin `carehost up` creates on the first start: the break-glass account. */
export const BOOTSTRAP_ADMIN = "admin";

export type TIdentityRules = {
  readonly session: TSessionLimits;
  /** Organizations that allow no local users; while one does, only the bootstrap admin signs in with a password, as break-glass. */
  readonly localUsersRefusedBy: readonly string[];
};

/** The strictest rules of the recorded organizations; never an idle timeout longer than carehost's fixed default. */
export function identityRulesOf(
  fixed: TSessionLimits,
  organizations: readonly TOrganizationIdentityRules[],
): TIdentityRules {
  return {
    session: {
      ...fixed,
      idleMinutes: Math.min(
        fixed.idleMinutes,
        ...organizations.map((organization) => organization.sessionIdleTimeoutMinutes),
      ),
    },
    localUsersRefusedBy: organizations
      .filter((organization) => !organization.localUsersAllowed)
      .map((organization) => organization.organization)
      .sort(),
  };
}

/** What carehost's sign-in enforces under `rules`, as the identity controls read it. */
export const platformEnforcementOf = (rules: TIdentityRules): TPlatformEnforcement => ({
  sessionIdleMinutes: rules.session.idleMinutes,
  mfa: {
    enforced: false,
    reason:
      "carehost's sign-in asks for a password alone: it has no second factor yet (the identity work of issue 17 adds TOTP)",
  },
  // An organization that declares identity.oidc signs its people in through that provider
  // (identity-oidc.ts): discovery, PKCE, the ID token's checks, allowedDomains and roleMappings.
  oidc: { enforced: true },
  localUsers: rules.localUsersRefusedBy.length > 0 ? "refused" : "allowed",
});
