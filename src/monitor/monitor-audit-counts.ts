// Failed sign-ins and privilege changes, counted from the audit log for monitoring. The log is
// append-only and its sequence numbers have no gaps, so the counts are read once from the start
// and then only from the last sequence number seen: a probe round costs the entries since the last.
import type { TSqlExecutor } from "../store/store-types.js";

/** The events that change who may do what: a new user, a role or binding granted, changed or ended. */
export const PRIVILEGE_EVENTS = [
  "user.created",
  "user.access_granted",
  "user.access_revoked",
  "user.role_changed",
  "user.disabled",
] as const;
/** A refused sign-in is recorded on its own once per window, and the rest of the window as a count (identity-login-limits.ts). */
const FAILED_SIGN_IN_EVENTS = ["auth.login.failed", "auth.login.failures", "auth.token_rejected"] as const;

export type TAuditCounts = {
  /** Sign-ins refused for a wrong password or user, and presented tokens refused (revoked, expired, wrong secret). */
  readonly failedSignIns: number;
  /** Refused sign-ins by how they were refused: a password sign-in, or a token presented. */
  readonly failedSignInsBy: Readonly<Record<"password" | "token", number>>;
  readonly privilegeChanges: Readonly<Record<(typeof PRIVILEGE_EVENTS)[number], number>>;
};

const BATCH = 5000;

export const auditCountsFactory = ({ db }: { db: Pick<TSqlExecutor, "query"> }) => {
  let nextSeq = 0;
  const failedSignInsBy = { password: 0, token: 0 };
  const privilegeChanges = Object.fromEntries(PRIVILEGE_EVENTS.map((type) => [type, 0])) as Record<
    (typeof PRIVILEGE_EVENTS)[number],
    number
  >;
  const types = [...FAILED_SIGN_IN_EVENTS, ...PRIVILEGE_EVENTS];
  // One read at a time: two probe rounds overlapping would count a batch twice.
  let reading: Promise<TAuditCounts> | undefined;

  const readNew = async (): Promise<TAuditCounts> => {
    for (;;) {
      const { rows } = await db.query<{ seq: number | string; type: string; entry: string }>(
        "SELECT seq, type, entry FROM audit_entries WHERE seq >= $1 AND type = ANY($2::text[]) ORDER BY seq LIMIT $3",
        [nextSeq, types, BATCH],
      );
      for (const row of rows) {
        if (row.type === "auth.login.failed") failedSignInsBy.password += 1;
        else if (row.type === "auth.token_rejected") failedSignInsBy.token += 1;
        else if (row.type === "auth.login.failures") {
          const payload = (JSON.parse(row.entry) as { payload?: { failed?: number } }).payload;
          failedSignInsBy.password += payload?.failed ?? 0;
        } else if (row.type in privilegeChanges) privilegeChanges[row.type as keyof typeof privilegeChanges] += 1;
        nextSeq = Number(row.seq) + 1;
      }
      if (rows.length < BATCH) break;
    }
    return {
      failedSignIns: failedSignInsBy.password + failedSignInsBy.token,
      failedSignInsBy: { ...failedSignInsBy },
      privilegeChanges: { ...privilegeChanges },
    };
  };

  return {
    /** The counts so far, reading only the entries appended since the last call. */
    read: (): Promise<TAuditCounts> => (reading ??= readNew().finally(() => (reading = undefined))),
  };
};

export type TAuditCounter = ReturnType<typeof auditCountsFactory>;
