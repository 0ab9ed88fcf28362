import { ALL_ORGANIZATIONS, type TRole, type TRoleBinding } from "../lib/request-context.js";
import { randomUUID } from "node:crypto";
import type { TSqlClient, TSqlExecutor, TSqlValue } from "../store/store-types.js";
import { loginWaitSeconds, type TFailureCount } from "./identity-login-limits.js";
import type { TLoginLimits, TSessionSecondFactor, TTokenInfo, TTokenKind, TUser } from "./identity-types.js";

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
  readonly expiresAt: Date;
  readonly lastUsedAt: Date | null;
  readonly revokedAt: Date | null;
  /** For a session: the second factor its sign-in passed (null: none). */
  readonly secondFactor: TSessionSecondFactor | null;
  readonly user: {
    readonly id: string;
    readonly username: string;
    readonly role: TRole;
    readonly disabledAt: Date | null;
  };
};

export type TLoginReservation =
  | { readonly limited: false; readonly attemptId: number }
  | {
      readonly limited: true;
      readonly scope: "source-and-username" | "source";
      readonly retryAfterSeconds: number;
      /** Whether this refusal is audited on its own or counted in its window's summary. */
      readonly audit: "record" | "summarise";
    };

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

// Every sign-in limit and audit window is keyed by the source address, so one lock per source
// serialises all the counting for it (namespace 2, as before: 1 was the per-username lock).
const lockSource = (tx: TSqlExecutor, sourceAddress: string) =>
  tx.query("SELECT pg_advisory_xact_lock(2, hashtext($1))", [sourceAddress]);

const failureCount = async (tx: TSqlExecutor, sql: string, params: unknown[]): Promise<TFailureCount> => {
  const { rows } = await tx.query<{ failures: number; last_failure_at: Date | null }>(
    `SELECT count(*)::int AS failures, max(attempted_at) AS last_failure_at FROM login_attempts WHERE outcome = 'failed' AND ${sql}`,
    params as never[],
  );
  return { failures: rows[0]!.failures, lastFailureAt: rows[0]!.last_failure_at };
};

/**
 * Files an attempt under the audit window of its key (source address, and the username or NULL):
 * the first attempt of a window is audited on its own and opens the window, the rest wait for the
 * window's summary. Call with the source's lock held.
 */
const fileForAudit = async (
  tx: TSqlExecutor,
  attempt: { id: number; sourceAddress: string; auditUsername: string | null; at: Date; windowSeconds: number },
): Promise<"record" | "summarise"> => {
  const { rows } = await tx.query<{ window_start: Date | null }>(
    `SELECT max(audit_window_start) AS window_start FROM login_attempts
      WHERE source_address = $1 AND audit_username IS NOT DISTINCT FROM $2 AND audit_window_start > $3`,
    [attempt.sourceAddress, attempt.auditUsername, new Date(attempt.at.getTime() - attempt.windowSeconds * 1000)],
  );
  const openWindow = rows[0]?.window_start ?? null;
  await tx.query(
    "UPDATE login_attempts SET audit_state = $2, audit_username = $3, audit_window_start = $4 WHERE id = $1",
    [attempt.id, openWindow ? "pending" : "recorded", attempt.auditUsername, openWindow ?? attempt.at],
  );
  return openWindow ? "summarise" : "record";
};

/** The attempts of one closed audit window that were not audited on their own. */
export type TLoginFailureSummary = {
  readonly sourceAddress: string;
  /** Null: refusals of a source limited across usernames. */
  readonly username: string | null;
  readonly windowStart: Date;
  readonly failed: number;
  readonly rateLimited: number;
  readonly firstAt: Date;
  readonly lastAt: Date;
};

export const identityStoreFactory = (db: Pick<TSqlClient, "query" | "transaction">) => ({
  findUserByUsername: async (username: string): Promise<TStoredUser | undefined> => {
    const { rows } = await db.query<TUserRow>(`SELECT ${userColumns} FROM users WHERE username = $1`, [username]);
    return rows[0] && toUser(rows[0]);
  },

  findUserById: (id: string): Promise<TStoredUser | undefined> => readUser(db, id),

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
    expiresAt: Date;
    /** The second factor the session's sign-in passed. */
    secondFactor?: TSessionSecondFactor | null;
  }): Promise<"created" | "name-taken"> => {
    try {
      await db.query(
        `INSERT INTO auth_tokens (id, user_id, kind, name, secret_sha256, created_at, created_from, expires_at, second_factor)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
        [
          token.id,
          token.userId,
          token.kind,
          token.name,
          token.secretSha256,
          token.createdAt,
          token.createdFrom,
          token.expiresAt,
          token.secondFactor ?? null,
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
      expires_at: Date;
      last_used_at: Date | null;
      revoked_at: Date | null;
      second_factor: TSessionSecondFactor | null;
      user_id: string;
      username: string;
      role: TRole;
      disabled_at: Date | null;
    }>(
      `SELECT t.id, t.kind, t.name, t.secret_sha256, t.created_at, t.expires_at, t.last_used_at, t.revoked_at,
              t.second_factor, u.id AS user_id, u.username, u.role, u.disabled_at
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
      secondFactor: row.second_factor,
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

  /**
   * Locks the user's row for a change to their tokens: a disable committed before it is seen, and
   * one that comes after waits and then revokes what this transaction issued. Undefined: no such user.
   */
  lockUserForTokens: async (userId: string): Promise<{ disabled: boolean } | undefined> => {
    const { rows } = await db.query<{ disabled_at: Date | null }>(
      "SELECT disabled_at FROM users WHERE id = $1 FOR UPDATE",
      [userId],
    );
    return rows[0] && { disabled: rows[0].disabled_at !== null };
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
      expires_at: Date;
      last_used_at: Date | null;
    }>(
      `SELECT t.id, t.kind, t.name, u.username, t.created_at, t.expires_at, t.last_used_at
         FROM auth_tokens t JOIN users u ON u.id = t.user_id
        WHERE t.revoked_at IS NULL AND t.expires_at > $1
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
   * Checks both limits and, if neither holds the source back, records the attempt as failed before
   * the password is checked. Check and record happen under the source's lock, so replicas receiving
   * a burst of guesses at once cannot all slip under the limit; an attempt that dies mid-check
   * counts against the caller. A refused attempt is filed for the audit here.
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
      await lockSource(tx, sourceAddress);
      // A success ends this source's run of failures for the username: the owner got in from here.
      const pair = await failureCount(
        tx,
        `source_address = $1 AND username = $2 AND attempted_at > $3
         AND attempted_at > coalesce((SELECT max(attempted_at) FROM login_attempts
                                       WHERE source_address = $1 AND username = $2 AND outcome = 'succeeded'), '-infinity')`,
        [sourceAddress, username, windowStart],
      );
      // A success does not reset the source: one valid account must not launder guesses at others.
      const source = await failureCount(tx, "source_address = $1 AND attempted_at > $2", [sourceAddress, windowStart]);
      const pairWait = loginWaitSeconds(pair, limits.perSourceAndUsername, limits, at);
      const sourceWait = loginWaitSeconds(source, limits.perSource, limits, at);
      const waitSeconds = Math.max(pairWait, sourceWait);
      const { rows } = await tx.query<{ id: number }>(
        "INSERT INTO login_attempts (username, source_address, outcome, attempted_at) VALUES ($1, $2, $3, $4) RETURNING id",
        [username, sourceAddress, waitSeconds > 0 ? "rate_limited" : "failed", at],
      );
      const attemptId = rows[0]!.id;
      if (waitSeconds === 0) return { limited: false, attemptId };
      const scope = pairWait >= sourceWait ? "source-and-username" : "source";
      const audit = await fileForAudit(tx, {
        id: attemptId,
        sourceAddress,
        auditUsername: scope === "source" ? null : username,
        at,
        windowSeconds: limits.windowSeconds,
      });
      return { limited: true, scope, retryAfterSeconds: waitSeconds, audit };
    }),

  markLoginSucceeded: async (attemptId: number): Promise<void> => {
    await db.query("UPDATE login_attempts SET outcome = 'succeeded' WHERE id = $1", [attemptId]);
  },

  /** Files a failed attempt for the audit: "record" when it is the first of its window. */
  settleLoginFailure: (attempt: {
    attemptId: number;
    username: string;
    sourceAddress: string;
    at: Date;
    windowSeconds: number;
  }): Promise<"record" | "summarise"> =>
    db.transaction(async (tx) => {
      await lockSource(tx, attempt.sourceAddress);
      return fileForAudit(tx, { ...attempt, id: attempt.attemptId, auditUsername: attempt.username });
    }),

  /**
   * Whether this transaction is the one sweeping closed audit windows. Two sweeps at once (replicas)
   * could each claim part of one window, writing two summaries for it, or deadlock over its rows;
   * the second one finds the lock taken and leaves the windows to the first.
   */
  takeLoginSweep: async (): Promise<boolean> =>
    (await db.query<{ taken: boolean }>("SELECT pg_try_advisory_xact_lock(3, 0) AS taken")).rows[0]!.taken,

  /**
   * Claims the waiting attempts of at most `limit` audit windows closed by `at`, the oldest first,
   * one summary per window. Run in the transaction that writes the summaries, so a summary the log
   * refuses un-claims its attempts.
   */
  claimClosedLoginWindows: async (at: Date, windowSeconds: number, limit: number): Promise<TLoginFailureSummary[]> => {
    const closedBefore = new Date(at.getTime() - windowSeconds * 1000);
    const { rows } = await db.query<{
      source_address: string;
      audit_username: string | null;
      audit_window_start: Date;
      failed: number;
      rate_limited: number;
      first_at: Date;
      last_at: Date;
    }>(
      `WITH due AS (
         SELECT DISTINCT source_address, audit_username, audit_window_start FROM login_attempts
          WHERE audit_state = 'pending' AND audit_window_start <= $1
          ORDER BY audit_window_start, source_address, audit_username LIMIT $2),
       claimed AS (
         UPDATE login_attempts a SET audit_state = 'summarised' FROM due
          WHERE a.audit_state = 'pending' AND a.source_address = due.source_address
            AND a.audit_username IS NOT DISTINCT FROM due.audit_username
            AND a.audit_window_start = due.audit_window_start
          RETURNING a.source_address, a.audit_username, a.audit_window_start, a.outcome, a.attempted_at)
       SELECT source_address, audit_username, audit_window_start,
              (count(*) FILTER (WHERE outcome = 'failed'))::int AS failed,
              (count(*) FILTER (WHERE outcome = 'rate_limited'))::int AS rate_limited,
              min(attempted_at) AS first_at, max(attempted_at) AS last_at
         FROM claimed GROUP BY source_address, audit_username, audit_window_start
        ORDER BY source_address, audit_window_start, audit_username`,
      [closedBefore, limit],
    );
    return rows.map((row) => ({
      sourceAddress: row.source_address,
      username: row.audit_username,
      windowStart: row.audit_window_start,
      failed: row.failed,
      rateLimited: row.rate_limited,
      firstAt: row.first_at,
      lastAt: row.last_at,
    }));
  },

  /** Forgets attempts too old to count that no summary waits on: the audit log holds their record. */
  forgetOldLoginAttempts: async (at: Date, windowSeconds: number): Promise<void> => {
    await db.query("DELETE FROM login_attempts WHERE attempted_at <= $1 AND audit_state <> 'pending'", [
      new Date(at.getTime() - windowSeconds * 1000),
    ]);
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

const readUser = async (tx: Pick<TSqlExecutor, "query">, id: string): Promise<TStoredUser | undefined> => {
  const { rows } = await tx.query<TUserRow>(`SELECT ${userColumns} FROM users WHERE id = $1`, [id]);
  return rows[0] && toUser(rows[0]);
};

export type TIdentityStore = ReturnType<typeof identityStoreFactory>;

/**
 * The store on a transaction that is already open (the audit log's recordChange): its statements
 * run on `tx`, and the transactions it would open itself join that one, so a change and its audit
 * entry commit together.
 */
export const identityStoreIn = (tx: TSqlExecutor): TIdentityStore =>
  identityStoreFactory({
    query: <TRow>(sql: string, params?: readonly TSqlValue[]) => tx.query<TRow>(sql, params),
    transaction: <T>(work: (joined: TSqlExecutor) => Promise<T>) => work(tx),
  });
