// SQL for single sign-on: sign-ins between their start and their callback (oidc_logins), the link
// from a provider's account to a carehost user (oidc_identities), and the role bindings a sign-in
// sets for its organization. No authorization and no protocol here: identity-oidc.ts decides.
import { randomUUID } from "node:crypto";
import type { TRole } from "../lib/request-context.js";
import type { TSqlExecutor } from "../store/store-types.js";

export type TPendingLogin = {
  readonly stateSha256: string;
  readonly organization: string;
  readonly issuer: string;
  readonly clientId: string;
  readonly nonce: string;
  readonly codeVerifier: string;
  readonly redirectUri: string;
  readonly createdFrom: string;
  readonly createdAt: Date;
  readonly expiresAt: Date;
};

type TLoginRow = {
  state_sha256: string;
  organization: string;
  issuer: string;
  client_id: string;
  nonce: string;
  code_verifier: string;
  redirect_uri: string;
  created_from: string;
  created_at: Date;
  expires_at: Date;
  consumed_at: Date | null;
};

const toLogin = (row: TLoginRow): TPendingLogin => ({
  stateSha256: row.state_sha256,
  organization: row.organization,
  issuer: row.issuer,
  clientId: row.client_id,
  nonce: row.nonce,
  codeVerifier: row.code_verifier,
  redirectUri: row.redirect_uri,
  createdFrom: row.created_from,
  createdAt: row.created_at,
  expiresAt: row.expires_at,
});

export type TConsumed =
  | { readonly outcome: "consumed"; readonly login: TPendingLogin }
  | { readonly outcome: "unknown" }
  | { readonly outcome: "expired"; readonly login: TPendingLogin }
  | { readonly outcome: "replayed"; readonly login: TPendingLogin; readonly consumedAt: Date };

export type TLinkedUser = {
  readonly userId: string;
  readonly username: string;
  readonly disabled: boolean;
};

/** Most privileged first: the role a user is shown with (whoami, users) is the first of its bindings here. */
const roleRank: readonly TRole[] = ["platform-admin", "operator", "approver", "auditor", "viewer"];

export const oidcStoreFactory = (db: Pick<TSqlExecutor, "query">) => ({
  /** Sign-ins started from `source` since `since` and not completed: a start is refused past a limit. */
  openLoginsFrom: async (source: string, since: Date): Promise<number> =>
    (
      await db.query<{ open: number }>(
        "SELECT count(*)::int AS open FROM oidc_logins WHERE created_from = $1 AND created_at > $2 AND consumed_at IS NULL",
        [source, since],
      )
    ).rows[0]!.open,

  insertLogin: async (login: TPendingLogin): Promise<void> => {
    await db.query(
      `INSERT INTO oidc_logins (state_sha256, organization, issuer, client_id, nonce, code_verifier, redirect_uri,
                                created_from, created_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [
        login.stateSha256,
        login.organization,
        login.issuer,
        login.clientId,
        login.nonce,
        login.codeVerifier,
        login.redirectUri,
        login.createdFrom,
        login.createdAt,
        login.expiresAt,
      ],
    );
  },

  /**
   * Claims the sign-in a callback's state names, once: the first callback consumes it (even if the
   * exchange that follows fails), so the same code and state presented again are refused here,
   * before anything reaches the provider. The row lock makes two callbacks at once see each other.
   */
  consumeLogin: async (stateSha256: string, at: Date): Promise<TConsumed> => {
    const { rows } = await db.query<TLoginRow>("SELECT * FROM oidc_logins WHERE state_sha256 = $1 FOR UPDATE", [
      stateSha256,
    ]);
    const row = rows[0];
    if (!row) return { outcome: "unknown" };
    if (row.consumed_at !== null) return { outcome: "replayed", login: toLogin(row), consumedAt: row.consumed_at };
    await db.query("UPDATE oidc_logins SET consumed_at = $2 WHERE state_sha256 = $1", [stateSha256, at]);
    if (row.expires_at.getTime() <= at.getTime()) return { outcome: "expired", login: toLogin(row) };
    return { outcome: "consumed", login: toLogin(row) };
  },

  /**
   * Forgets sign-ins past their expiry by a day: until then a replayed state is recognised as such
   * (and audited as a replay), afterwards it is simply unknown, which is refused just the same.
   */
  forgetOldLogins: async (at: Date): Promise<void> => {
    await db.query("DELETE FROM oidc_logins WHERE expires_at < $1", [new Date(at.getTime() - 86_400_000)]);
  },

  /** The user the provider's account is linked to, its row locked for the sign-in's changes. */
  lockLinkedUser: async (issuer: string, subject: string): Promise<TLinkedUser | undefined> => {
    const { rows } = await db.query<{ id: string; username: string; disabled_at: Date | null }>(
      `SELECT u.id, u.username, u.disabled_at FROM oidc_identities i JOIN users u ON u.id = i.user_id
        WHERE i.issuer = $1 AND i.subject = $2 FOR UPDATE OF u`,
      [issuer, subject],
    );
    const row = rows[0];
    return row && { userId: row.id, username: row.username, disabled: row.disabled_at !== null };
  },

  usernameTaken: async (username: string): Promise<boolean> =>
    (await db.query("SELECT 1 FROM users WHERE username = $1", [username])).rows.length > 0,

  /** A user without a password, linked to the provider's account: it can only sign in through that provider. */
  insertLinkedUser: async (user: {
    id: string;
    username: string;
    role: TRole;
    issuer: string;
    subject: string;
    email: string;
    at: Date;
    createdBy: string;
  }): Promise<void> => {
    await db.query(
      "INSERT INTO users (id, username, role, password_hash, created_at, created_by) VALUES ($1, $2, $3, NULL, $4, $5)",
      [user.id, user.username, user.role, user.at, user.createdBy],
    );
    await db.query(
      "INSERT INTO oidc_identities (issuer, subject, user_id, email, created_at, last_login_at) VALUES ($1, $2, $3, $4, $5, $5)",
      [user.issuer, user.subject, user.id, user.email, user.at],
    );
  },

  touchIdentity: async (issuer: string, subject: string, email: string, at: Date): Promise<void> => {
    await db.query("UPDATE oidc_identities SET email = $3, last_login_at = $4 WHERE issuer = $1 AND subject = $2", [
      issuer,
      subject,
      email,
      at,
    ]);
  },

  /**
   * Makes the user's active bindings over `organization` exactly `roles`: the others are ended, the
   * missing ones added. Bindings over other organizations are left as they are. Returns what changed.
   */
  setOrganizationBindings: async (
    userId: string,
    organization: string,
    roles: readonly TRole[],
    at: Date,
    by: string,
  ): Promise<{ added: TRole[]; removed: TRole[] }> => {
    const { rows: removed } = await db.query<{ role: TRole }>(
      `UPDATE role_bindings SET revoked_at = $4, revoked_by = $5
        WHERE user_id = $1 AND organization = $2 AND revoked_at IS NULL AND NOT (role = ANY($3::text[]))
        RETURNING role`,
      [userId, organization, [...roles], at, by],
    );
    const added: TRole[] = [];
    for (const role of roles) {
      const { rows } = await db.query(
        `INSERT INTO role_bindings (id, user_id, role, organization, created_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (user_id, role, organization) WHERE revoked_at IS NULL DO NOTHING RETURNING id`,
        [randomUUID(), userId, role, organization, at, by],
      );
      if (rows.length > 0) added.push(role);
    }
    return { added, removed: removed.map((row) => row.role).sort() };
  },

  /**
   * Sets the role the user is shown with to the most privileged of its active bindings (one
   * person may be an operator of one organization and a viewer of another); what the user may do
   * is in the bindings, never in this column.
   */
  showMostPrivilegedRole: async (userId: string, fallback: TRole): Promise<TRole> => {
    const { rows } = await db.query<{ role: TRole }>(
      "SELECT DISTINCT role FROM role_bindings WHERE user_id = $1 AND revoked_at IS NULL",
      [userId],
    );
    const held = new Set(rows.map((row) => row.role));
    const shown = roleRank.find((role) => held.has(role)) ?? fallback;
    await db.query("UPDATE users SET role = $2 WHERE id = $1", [userId, shown]);
    return shown;
  },
});

export type TOidcStore = ReturnType<typeof oidcStoreFactory>;

export const mostPrivilegedRole = (roles: readonly TRole[]): TRole | undefined =>
  roleRank.find((role) => roles.includes(role));
