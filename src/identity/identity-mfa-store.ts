// SQL for the second factor: TOTP secrets (sealed), recovery codes (hashed) and the tickets of
// sign-ins waiting on their second factor. No authorization here; the service decides who may call.
import type { TSealed } from "../secrets/secrets-envelope.js";
import type { TSqlExecutor } from "../store/store-types.js";

export type TStoredTotp = {
  readonly userId: string;
  readonly enrolmentId: string;
  readonly sealed: TSealed;
  readonly confirmedAt: Date | null;
  readonly lastStep: number | null;
};

export type TStoredTicket = {
  readonly userId: string;
  readonly loginAttemptId: number;
  readonly breakGlassReason: string | null;
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly failures: number;
  readonly endedAt: Date | null;
};

type TTotpRow = {
  user_id: string;
  enrolment_id: string;
  ciphertext: Uint8Array;
  iv: Uint8Array;
  tag: Uint8Array;
  wrapped_key: Uint8Array;
  wrap_iv: Uint8Array;
  wrap_tag: Uint8Array;
  master_key_id: string;
  confirmed_at: Date | null;
  last_step: number | null;
};

/** The name a user's TOTP secret is sealed under: the envelope authenticates it, so a row copied to another user does not open. */
export const totpSealName = (userId: string, enrolmentId: string): string => `identity/totp/${userId}/${enrolmentId}`;

const toTotp = (row: TTotpRow): TStoredTotp => ({
  userId: row.user_id,
  enrolmentId: row.enrolment_id,
  sealed: {
    name: totpSealName(row.user_id, row.enrolment_id),
    version: 1,
    ciphertext: Buffer.from(row.ciphertext),
    iv: Buffer.from(row.iv),
    tag: Buffer.from(row.tag),
    wrappedKey: Buffer.from(row.wrapped_key),
    wrapIv: Buffer.from(row.wrap_iv),
    wrapTag: Buffer.from(row.wrap_tag),
    masterKeyId: row.master_key_id,
  },
  confirmedAt: row.confirmed_at,
  lastStep: row.last_step,
});

export const mfaStoreFactory = (db: Pick<TSqlExecutor, "query">) => ({
  findTotp: async (userId: string): Promise<TStoredTotp | undefined> => {
    const { rows } = await db.query<TTotpRow>("SELECT * FROM user_totp WHERE user_id = $1", [userId]);
    return rows[0] && toTotp(rows[0]);
  },

  /** The secret of an enrolment begun: replaces one begun before and never confirmed, never a confirmed one. */
  beginTotp: async (totp: { userId: string; enrolmentId: string; sealed: TSealed; at: Date }): Promise<boolean> => {
    const { sealed } = totp;
    const { rows } = await db.query(
      `INSERT INTO user_totp (user_id, enrolment_id, ciphertext, iv, tag, wrapped_key, wrap_iv, wrap_tag, master_key_id, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
       ON CONFLICT (user_id) DO UPDATE SET enrolment_id = EXCLUDED.enrolment_id, ciphertext = EXCLUDED.ciphertext,
         iv = EXCLUDED.iv, tag = EXCLUDED.tag, wrapped_key = EXCLUDED.wrapped_key, wrap_iv = EXCLUDED.wrap_iv,
         wrap_tag = EXCLUDED.wrap_tag, master_key_id = EXCLUDED.master_key_id, created_at = EXCLUDED.created_at
         WHERE user_totp.confirmed_at IS NULL
       RETURNING user_id`,
      [
        totp.userId,
        totp.enrolmentId,
        sealed.ciphertext,
        sealed.iv,
        sealed.tag,
        sealed.wrappedKey,
        sealed.wrapIv,
        sealed.wrapTag,
        sealed.masterKeyId,
        totp.at,
      ],
    );
    return rows.length > 0;
  },

  /**
   * Accepts `step` for the user's enrolment `enrolmentId` only if it is later than the last step
   * accepted: one statement, so two replicas handed the same code at once accept it once.
   * Confirms an enrolment begun. False: the code was used already (or the enrolment was replaced).
   */
  acceptStep: async (userId: string, enrolmentId: string, step: number, at: Date): Promise<boolean> =>
    (
      await db.query(
        `UPDATE user_totp SET last_step = $3, confirmed_at = coalesce(confirmed_at, $4)
          WHERE user_id = $1 AND enrolment_id = $2 AND (last_step IS NULL OR last_step < $3) RETURNING user_id`,
        [userId, enrolmentId, step, at],
      )
    ).rows.length > 0,

  replaceRecoveryCodes: async (userId: string, codeSha256s: readonly string[], at: Date): Promise<void> => {
    await db.query("DELETE FROM user_recovery_codes WHERE user_id = $1", [userId]);
    for (const codeSha256 of codeSha256s)
      await db.query("INSERT INTO user_recovery_codes (user_id, code_sha256, created_at) VALUES ($1, $2, $3)", [
        userId,
        codeSha256,
        at,
      ]);
  },

  /** Marks an unused recovery code used; the number left, or undefined when it was not an unused code of the user's. */
  useRecoveryCode: async (userId: string, codeSha256: string, at: Date): Promise<number | undefined> => {
    const used = await db.query(
      `UPDATE user_recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_sha256 = $2 AND used_at IS NULL
       RETURNING code_sha256`,
      [userId, codeSha256, at],
    );
    if (used.rows.length === 0) return undefined;
    const { rows } = await db.query<{ left: number }>(
      "SELECT count(*)::int AS left FROM user_recovery_codes WHERE user_id = $1 AND used_at IS NULL",
      [userId],
    );
    return rows[0]!.left;
  },

  /** Forgets the user's second factor: secret and recovery codes. Whether there was one. */
  removeSecondFactor: async (userId: string): Promise<boolean> => {
    await db.query("DELETE FROM user_recovery_codes WHERE user_id = $1", [userId]);
    return (await db.query("DELETE FROM user_totp WHERE user_id = $1 RETURNING user_id", [userId])).rows.length > 0;
  },

  insertTicket: async (ticket: {
    secretSha256: string;
    userId: string;
    loginAttemptId: number;
    breakGlassReason: string | null;
    createdAt: Date;
    createdFrom: string;
    expiresAt: Date;
  }): Promise<void> => {
    await db.query(
      `INSERT INTO sign_in_tickets (secret_sha256, user_id, login_attempt_id, break_glass_reason, created_at, created_from, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [
        ticket.secretSha256,
        ticket.userId,
        ticket.loginAttemptId,
        ticket.breakGlassReason,
        ticket.createdAt,
        ticket.createdFrom,
        ticket.expiresAt,
      ],
    );
  },

  /** The ticket, locked until the transaction ends: two answers to one ticket are taken one after the other. */
  lockTicket: async (secretSha256: string): Promise<TStoredTicket | undefined> => {
    const { rows } = await db.query<{
      user_id: string;
      login_attempt_id: number;
      break_glass_reason: string | null;
      created_at: Date;
      expires_at: Date;
      failures: number;
      ended_at: Date | null;
    }>("SELECT * FROM sign_in_tickets WHERE secret_sha256 = $1 FOR UPDATE", [secretSha256]);
    const row = rows[0];
    return (
      row && {
        userId: row.user_id,
        loginAttemptId: row.login_attempt_id,
        breakGlassReason: row.break_glass_reason,
        createdAt: row.created_at,
        expiresAt: row.expires_at,
        failures: row.failures,
        endedAt: row.ended_at,
      }
    );
  },

  /** Counts a wrong answer; ends the ticket once it has had `allowed` of them. The failures so far. */
  failTicket: async (secretSha256: string, allowed: number, at: Date): Promise<number> => {
    const { rows } = await db.query<{ failures: number }>(
      `UPDATE sign_in_tickets SET failures = failures + 1,
              ended_at = CASE WHEN failures + 1 >= $2 THEN $3 ELSE ended_at END
        WHERE secret_sha256 = $1 RETURNING failures`,
      [secretSha256, allowed, at],
    );
    return rows[0]?.failures ?? allowed;
  },

  endTicket: async (secretSha256: string, at: Date): Promise<void> => {
    await db.query("UPDATE sign_in_tickets SET ended_at = $2 WHERE secret_sha256 = $1 AND ended_at IS NULL", [
      secretSha256,
      at,
    ]);
  },

  /** Forgets tickets past expiry: a ticket has no use after it. */
  forgetOldTickets: async (at: Date): Promise<void> => {
    await db.query("DELETE FROM sign_in_tickets WHERE expires_at <= $1", [at]);
  },

  /** Which factor the session passed; null for a session without one, or an API token. */
  secondFactorOf: async (tokenId: string): Promise<"totp" | "recovery-code" | null> => {
    const { rows } = await db.query<{ second_factor: "totp" | "recovery-code" | null }>(
      "SELECT second_factor FROM auth_tokens WHERE id = $1",
      [tokenId],
    );
    return rows[0]?.second_factor ?? null;
  },

  setSecondFactor: async (tokenId: string, factor: "totp" | "recovery-code"): Promise<void> => {
    await db.query("UPDATE auth_tokens SET second_factor = $2 WHERE id = $1", [tokenId, factor]);
  },

  /** Revokes the user's live sessions (not their API tokens); how many. */
  revokeSessions: async (userId: string, at: Date, by: string): Promise<number> =>
    (
      await db.query(
        `UPDATE auth_tokens SET revoked_at = $2, revoked_by = $3
          WHERE user_id = $1 AND kind = 'session' AND revoked_at IS NULL RETURNING id`,
        [userId, at, by],
      )
    ).rows.length,
});

export type TMfaStore = ReturnType<typeof mfaStoreFactory>;
