import { ALL_ORGANIZATIONS, type TRole, type TRoleBinding } from "../lib/request-context.js";
import { randomUUID } from "node:crypto";
import type { TSqlClient, TSqlExecutor } from "../store/store-types.js";
import type { TLoginLimits, TTokenInfo, TTokenKind, TUser } from "./identity-types.js";

// SQL for users, their role bindings, tokens and log-in attempts. No authorization here: the service decides who may
// call what; the store only keeps the data consistent.

type TUserRow = {
  id: string;
  username: string;
  role: TRole;
  password_hash: string | null;
  created_at: Date;
  created_by: string;
  disabled_at: Date | null;
  organizations: string[] | null;
};

export type TStoredUser = TUser & { readonly passwordHash: string | null };

const toUser = (row: TUserRow): TStoredUser => ({
  id: row.id,
  username: row.username,
  role: row.role,
  organizations: row.organizations ?? [],
  disabled: row.disabled_at !== null,
  createdAt: row.created_at,
  createdBy: row.created_by,
  passwordHash: row.password_hash,
});

export type TNewUser = {
  readonly id: string;
  readonly username: string;
  readonly role: TRole;
  readonly passwordHash: string | null;
  readonly createdAt: Date;
  readonly createdBy: string;
  /** The organizations the user's role is bound over (ALL_ORGANIZATIONS for every one). */
  readonly organizations: readonly string[];
};

export type TStoredToken = {
  readonly id: string;
  readonly kind: TTokenKind;
  readonly name: string | null;
  readonly secretSha256: string;
  readonly createdAt: Date;
  readonly expiresAt: Date | null;
  readonly lastUsedAt: Date | null;
  readonly revokedAt: Date | null;
  readonly user: {
    readonly id: string;
    readonly username: string;
    readonly role: TRole;
    readonly disabledAt: Date | null;
  };
};

export type TLoginReservation =
  | { readonly limited: false; readonly attemptId: number }
  | { readonly limited: true; readonly scope: "username" | "source"; readonly retryAfterSeconds: number };

// The organizations of the user's active bindings ride along with every user read.
const userColumns = `id, username, role, password_hash, created_at, created_by, disabled_at,
  (SELECT array_agg(DISTINCT b.organization ORDER BY b.organization) FROM role_bindings b
    WHERE b.user_id = users.id AND b.revoked_at IS NULL) AS organizations`;

const insertUserSql = `INSERT INTO users (id, username, role, password_hash, created_at, created_by)
  VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${userColumns}`;
const insertUserParams = (user: TNewUser) => [
  user.id,
  user.username,
  user.role,
  user.passwordHash,
  user.createdAt,
  user.createdBy,
];

/** Binds the user's role over each organization; one already bound stays as it was. Returns those added. */
const bindOrganizations = async (
  tx: TSqlExecutor,
  user: { id: string; role: TRole },
  organizations: readonly string[],
  at: Date,
  by: string,
): Promise<string[]> => {
  const added: string[] = [];
  for (const organization of organizations) {
    const { rows } = await tx.query(
      `INSERT INTO role_bindings (id, user_id, role, organization, created_at, created_by)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (user_id, role, organization) WHERE revoked_at IS NULL DO NOTHING RETURNING id`,
      [randomUUID(), user.id, user.role, organization, at, by],
    );
    if (rows.length > 0) added.push(organization);
  }
  return added;
};

const isUniqueViolation = (error: unknown): boolean => (error as { code?: unknown })?.code === "23505";

// Two-key advisory locks: namespace 1 for usernames, 2 for source addresses. Every caller takes
// the username lock before the source lock, so two log-ins can never wait on each other in a cycle.
const lockLoginKey = (tx: TSqlExecutor, namespace: 1 | 2, value: string) =>
  tx.query("SELECT pg_advisory_xact_lock($1, hashtext($2))", [namespace, value]);

/**
 * The newest failure that still keeps the limit in force, if any: the limit lifts once the
 * `limit`-th most recent failure leaves the window.
 */
const limitingFailure = async (
  tx: TSqlExecutor,
  sql: string,
  params: unknown[],
  limit: number,
): Promise<Date | undefined> => {
  const { rows } = await tx.query<{ attempted_at: Date }>(
    `${sql} ORDER BY attempted_at DESC OFFSET $${params.length + 1} LIMIT 1`,
    [...(params as never[]), limit - 1],
  );
  return rows[0]?.attempted_at;
};

export const identityStoreFactory = (db: Pick<TSqlClient, "query" | "transaction">) => ({
  findUserByUsername: async (username: string): Promise<TStoredUser | undefined> => {
    const { rows } = await db.query<TUserRow>(`SELECT ${userColumns} FROM users WHERE username = $1`, [username]);
    return rows[0] && toUser(rows[0]);
  },

  listUsers: async (): Promise<TStoredUser[]> =>
    (await db.query<TUserRow>(`SELECT ${userColumns} FROM users ORDER BY username`)).rows.map(toUser),

  /** Creates the user with their role bound over `user.organizations`; undefined when the username is taken. */
  insertUser: async (user: TNewUser): Promise<TStoredUser | undefined> => {
    try {
      return await db.transaction(async (tx) => {
        const { rows } = await tx.query<TUserRow>(insertUserSql, insertUserParams(user));
        const inserted = toUser(rows[0]!);
        await bindOrganizations(tx, inserted, user.organizations, user.createdAt, user.createdBy);
        return { ...inserted, organizations: [...new Set(user.organizations)].sort() };
      });
    } catch (error) {
      if (isUniqueViolation(error)) return undefined;
      throw error;
    }
  },

  /** The bindings authorization reads for a request: the user's active ones. */
  activeBindings: async (userId: string): Promise<TRoleBinding[]> =>
    (
      await db.query<TRoleBinding>(
        "SELECT role, organization FROM role_bindings WHERE user_id = $1 AND revoked_at IS NULL ORDER BY organization, role",
        [userId],
      )
    ).rows,

  /** Binds the user's role over more organizations; returns the user and the organizations newly bound. */
  grantOrganizations: (
    username: string,
    organizations: readonly string[],
    at: Date,
    by: string,
  ): Promise<{ user: TStoredUser; added: string[] } | "not-found"> =>
    db.transaction(async (tx) => {
      const current = await lockedUser(tx, username);
      if (!current) return "not-found";
      const added = await bindOrganizations(tx, current, organizations, at, by);
      return { user: (await readUser(tx, current.id))!, added };
    }),

  /**
   * Ends the user's bindings over the organizations named, unless that would leave no enabled
   * platform-admin over every organization (nobody could manage users any more).
   */
  revokeOrganizations: (
    username: string,
    organizations: readonly string[],
    at: Date,
    by: string,
  ): Promise<{ user: TStoredUser; removed: string[] } | "not-found" | "last-admin"> =>
    db.transaction(async (tx) => {
      await lockAdmins(tx);
      const current = await lockedUser(tx, username);
      if (!current) return "not-found";
      if (
        current.role === "platform-admin" &&
        organizations.includes(ALL_ORGANIZATIONS) &&
        !(await otherAdminExists(tx, current.id))
      )
        return "last-admin";
      const removed: string[] = [];
      for (const organization of organizations) {
        const { rows } = await tx.query(
          "UPDATE role_bindings SET revoked_at = $3, revoked_by = $4 WHERE user_id = $1 AND organization = $2 AND revoked_at IS NULL RETURNING id",
          [current.id, organization, at, by],
        );
        if (rows.length > 0) removed.push(organization);
      }
      return { user: (await readUser(tx, current.id))!, removed };
    }),

  bootstrapped: async (): Promise<boolean> => (await db.query("SELECT 1 FROM identity_bootstrap")).rows.length > 0,

  /**
   * Creates the first admin unless some replica already did. The singleton key decides the race:
   * a second replica's INSERT waits for the first to commit, then does nothing.
   */
  bootstrapAdmin: (admin: TNewUser): Promise<TStoredUser | undefined> =>
    db.transaction(async (tx) => {
      const { rows: won } = await tx.query(
        "INSERT INTO identity_bootstrap (admin_user_id, created_at) VALUES ($1, $2) ON CONFLICT (singleton) DO NOTHING RETURNING singleton",
        [admin.id, admin.createdAt],
      );
      if (won.length === 0) return undefined;
      const { rows } = await tx.query<TUserRow>(insertUserSql, insertUserParams(admin));
      const inserted = toUser(rows[0]!);
      await bindOrganizations(tx, inserted, admin.organizations, admin.createdAt, admin.createdBy);
      return { ...inserted, organizations: [...admin.organizations] };
    }),

  setPasswordHash: async (userId: string, passwordHash: string): Promise<void> => {
    await db.query("UPDATE users SET password_hash = $2 WHERE id = $1", [userId, passwordHash]);
  },

  /**
   * Changes a role unless that would leave no enabled platform-admin (nobody could manage users
   * any more). Locking the admins' rows makes two concurrent demotions see each other.
   */
  setRole: (
    username: string,
    role: TRole,
  ): Promise<{ before: TRole; user: TStoredUser } | "not-found" | "last-admin"> =>
    db.transaction(async (tx) => {
      await tx.query("SELECT id FROM users WHERE role = 'platform-admin' AND disabled_at IS NULL FOR UPDATE");
      const { rows } = await tx.query<TUserRow>(`SELECT ${userColumns} FROM users WHERE username = $1 FOR UPDATE`, [
        username,
      ]);
      const current = rows[0];
      if (!current) return "not-found";
      if (current.role === "platform-admin" && role !== "platform-admin" && !(await otherAdminExists(tx, current.id))) {
        return "last-admin";
      }
      // The user's bindings carry the role they were made with: they follow it to the new one.
      await tx.query("UPDATE role_bindings SET role = $3 WHERE user_id = $1 AND role = $2 AND revoked_at IS NULL", [
        current.id,
        current.role,
        role,
      ]);
      const { rows: updated } = await tx.query<TUserRow>(
        `UPDATE users SET role = $2 WHERE id = $1 RETURNING ${userColumns}`,
        [current.id, role],
      );
      return { before: current.role, user: toUser(updated[0]!) };
    }),

  /** Disables the user and revokes every token they hold, so re-enabling never revives a session. */
  disableUser: (
    username: string,
    at: Date,
    by: string,
  ): Promise<{ user: TStoredUser; revokedTokens: number } | "not-found" | "already-disabled" | "last-admin"> =>
    db.transaction(async (tx) => {
      await tx.query("SELECT id FROM users WHERE role = 'platform-admin' AND disabled_at IS NULL FOR UPDATE");
      const { rows } = await tx.query<TUserRow>(`SELECT ${userColumns} FROM users WHERE username = $1 FOR UPDATE`, [
        username,
      ]);
      const current = rows[0];
      if (!current) return "not-found";
      if (current.disabled_at) return "already-disabled";
      if (current.role === "platform-admin" && !(await otherAdminExists(tx, current.id))) return "last-admin";
      const { rows: updated } = await tx.query<TUserRow>(
        `UPDATE users SET disabled_at = $2, disabled_by = $3 WHERE id = $1 RETURNING ${userColumns}`,
        [current.id, at, by],
      );
      const { rows: revoked } = await tx.query(
        "UPDATE auth_tokens SET revoked_at = $2, revoked_by = $3 WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
        [current.id, at, by],
      );
      return { user: toUser(updated[0]!), revokedTokens: revoked.length };
    }),

  insertToken: async (token: {
    id: string;
    userId: string;
    kind: TTokenKind;
    name: string | null;
    secretSha256: string;
    createdAt: Date;
    createdFrom: string;
    expiresAt: Date | null;
  }): Promise<"created" | "name-taken"> => {
    try {
      await db.query(
        `INSERT INTO auth_tokens (id, user_id, kind, name, secret_sha256, created_at, created_from, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [
          token.id,
          token.userId,
          token.kind,
          token.name,
          token.secretSha256,
          token.createdAt,
          token.createdFrom,
          token.expiresAt,
        ],
      );
      return "created";
    } catch (error) {
      if (isUniqueViolation(error)) return "name-taken";
      throw error;
    }
  },

  findToken: async (id: string): Promise<TStoredToken | undefined> => {
    const { rows } = await db.query<{
      id: string;
      kind: TTokenKind;
      name: string | null;
      secret_sha256: string;
      created_at: Date;
      expires_at: Date | null;
      last_used_at: Date | null;
      revoked_at: Date | null;
      user_id: string;
      username: string;
      role: TRole;
      disabled_at: Date | null;
    }>(
      `SELECT t.id, t.kind, t.name, t.secret_sha256, t.created_at, t.expires_at, t.last_used_at, t.revoked_at,
              u.id AS user_id, u.username, u.role, u.disabled_at
         FROM auth_tokens t JOIN users u ON u.id = t.user_id
        WHERE t.id = $1`,
      [id],
    );
    const row = rows[0];
    if (!row) return undefined;
    return {
      id: row.id,
      kind: row.kind,
      name: row.name,
      secretSha256: row.secret_sha256,
      createdAt: row.created_at,
      expiresAt: row.expires_at,
      lastUsedAt: row.last_used_at,
      revokedAt: row.revoked_at,
      user: { id: row.user_id, username: row.username, role: row.role, disabledAt: row.disabled_at },
    };
  },

  /** The condition keeps replicas racing on one token from writing more than once a minute. */
  recordTokenUse: async (id: string, at: Date, precisionMs: number): Promise<void> => {
    await db.query(
      "UPDATE auth_tokens SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at <= $3)",
      [id, at, new Date(at.getTime() - precisionMs)],
    );
  },

  /** False when the token was already revoked. */
  revokeToken: async (id: string, at: Date, by: string): Promise<boolean> =>
    (
      await db.query(
        "UPDATE auth_tokens SET revoked_at = $2, revoked_by = $3 WHERE id = $1 AND revoked_at IS NULL RETURNING id",
        [id, at, by],
      )
    ).rows.length > 0,

  /** Tokens that still work (not revoked, not past expiry), of one user or of everyone. */
  listActiveTokens: async (userId: string | undefined, at: Date): Promise<TTokenInfo[]> => {
    const { rows } = await db.query<{
      id: string;
      kind: TTokenKind;
      name: string | null;
      username: string;
      created_at: Date;
      expires_at: Date | null;
      last_used_at: Date | null;
    }>(
      `SELECT t.id, t.kind, t.name, u.username, t.created_at, t.expires_at, t.last_used_at
         FROM auth_tokens t JOIN users u ON u.id = t.user_id
        WHERE t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $1)
          AND ($2::uuid IS NULL OR t.user_id = $2::uuid)
        ORDER BY u.username, t.created_at`,
      [at, userId ?? null],
    );
    return rows.map((row) => ({
      id: row.id,
      kind: row.kind,
      name: row.name,
      username: row.username,
      createdAt: row.created_at,
      expiresAt: row.expires_at,
      lastUsedAt: row.last_used_at,
    }));
  },

  /**
   * Checks both limits and, if neither is reached, records the attempt as failed before the
   * password is checked. Check and record happen under one lock, so replicas receiving a burst of
   * guesses at once cannot all slip under the limit; an attempt that dies mid-check counts against
   * the caller.
   */
  reserveLoginAttempt: (attempt: {
    username: string;
    sourceAddress: string;
    at: Date;
    limits: TLoginLimits;
  }): Promise<TLoginReservation> =>
    db.transaction(async (tx) => {
      const { username, sourceAddress, at, limits } = attempt;
      const windowStart = new Date(at.getTime() - limits.windowSeconds * 1000);
      await lockLoginKey(tx, 1, username);
      await lockLoginKey(tx, 2, sourceAddress);
      // A success ends the username's run of failures: the owner got in, so the earlier guesses are
      // no longer an attack in progress on that account.
      const byUsername = await limitingFailure(
        tx,
        `SELECT attempted_at FROM login_attempts
          WHERE username = $1 AND outcome = 'failed' AND attempted_at > $2
            AND attempted_at > coalesce((SELECT max(attempted_at) FROM login_attempts
                                          WHERE username = $1 AND outcome = 'succeeded'), '-infinity')`,
        [username, windowStart],
        limits.perUsername,
      );
      // A success does not reset the source: one valid account must not launder guesses at others.
      const bySource = byUsername
        ? undefined
        : await limitingFailure(
            tx,
            "SELECT attempted_at FROM login_attempts WHERE source_address = $1 AND outcome = 'failed' AND attempted_at > $2",
            [sourceAddress, windowStart],
            limits.perSourceAddress,
          );
      const limitedBy = byUsername ?? bySource;
      const outcome = limitedBy ? "rate_limited" : "failed";
      const { rows } = await tx.query<{ id: number }>(
        "INSERT INTO login_attempts (username, source_address, outcome, attempted_at) VALUES ($1, $2, $3, $4) RETURNING id",
        [username, sourceAddress, outcome, at],
      );
      if (!limitedBy) return { limited: false, attemptId: rows[0]!.id };
      const liftsAt = limitedBy.getTime() + limits.windowSeconds * 1000;
      return {
        limited: true,
        scope: byUsername ? "username" : "source",
        retryAfterSeconds: Math.max(1, Math.ceil((liftsAt - at.getTime()) / 1000)),
      };
    }),

  markLoginSucceeded: async (attemptId: number): Promise<void> => {
    await db.query("UPDATE login_attempts SET outcome = 'succeeded' WHERE id = $1", [attemptId]);
  },
});

/** Another enabled platform-admin bound over every organization: one who can still manage users. */
const otherAdminExists = async (tx: TSqlExecutor, userId: string): Promise<boolean> =>
  (
    await tx.query(
      `SELECT 1 FROM users u JOIN role_bindings b ON b.user_id = u.id AND b.role = 'platform-admin'
          AND b.organization = '*' AND b.revoked_at IS NULL
        WHERE u.role = 'platform-admin' AND u.disabled_at IS NULL AND u.id <> $1 LIMIT 1`,
      [userId],
    )
  ).rows.length > 0;

// Locking the admins' rows makes two concurrent demotions, disables or revocations see each other.
const lockAdmins = (tx: TSqlExecutor) =>
  tx.query("SELECT id FROM users WHERE role = 'platform-admin' AND disabled_at IS NULL FOR UPDATE");

const lockedUser = async (tx: TSqlExecutor, username: string): Promise<TStoredUser | undefined> => {
  const { rows } = await tx.query<TUserRow>(`SELECT ${userColumns} FROM users WHERE username = $1 FOR UPDATE`, [
    username,
  ]);
  return rows[0] && toUser(rows[0]);
};

const readUser = async (tx: TSqlExecutor, id: string): Promise<TStoredUser | undefined> => {
  const { rows } = await tx.query<TUserRow>(`SELECT ${userColumns} FROM users WHERE id = $1`, [id]);
  return rows[0] && toUser(rows[0]);
};

export type TIdentityStore = ReturnType<typeof identityStoreFactory>;
