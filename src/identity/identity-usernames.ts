// The two kinds of username. A local user (a password, created by `carehost user create`) is a
// short name; a person who signs in through an organization's OIDC provider is named by the email
// address the provider vouched for. Only a local name may be chosen by hand and only an address
// contains '@', so a local account can never be made in advance under the name a single sign-on
// will use, and one never takes over the other.

export const localUsernamePattern = /^[a-z][a-z0-9._-]{1,63}$/;

/** A lowercase email address: a local part of 1-64 characters and a domain, as identity-oidc.ts names SSO users. */
export const ssoUsernamePattern = /^[a-z0-9_%+-][a-z0-9._%+-]{0,63}@[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$/;

/** Either kind: what lookups (grant, revoke, disable, sign-in) accept. */
export const usernamePattern = {
  test: (username: string): boolean => localUsernamePattern.test(username) || ssoUsernamePattern.test(username),
};
