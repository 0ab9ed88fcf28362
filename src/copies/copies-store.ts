// The copies table (migration 18): where every copy of an environment's data went, what class of
// data it holds, who asked for it and when it goes. Plain SQL on carehost's database.
import type { TSqlClient, TSqlValue } from "../store/store-types.js";

export type TCopyKind = "copy" | "environment";
export type TCopyDataClass = "phi" | "deidentified" | "confidential" | "internal" | "public";

export type TCopyRecord = {
  readonly id: number;
  readonly organization: string;
  /** The copy's name (a restored copy), or the declared environment the data went into. */
  readonly name: string;
  readonly kind: TCopyKind;
  readonly sourceEnvironment: string;
  readonly sourceDataClass: "phi" | "confidential" | "internal" | "public";
  /** The instant restored: an ISO time, "latest", or "lsn …". */
  readonly restoredTo: string;
  readonly dataClass: TCopyDataClass;
  readonly restoreRunId: number;
  readonly owner: string;
  readonly port: number | null;
  /** The verification's checks (names and details, never a value), for a de-identified copy. */
  readonly verification: unknown;
  readonly createdAt: Date;
  readonly expiresAt: Date | null;
  readonly removedAt: Date | null;
  readonly removedBy: string | null;
  readonly removalReason: string | null;
};

type TQueryable = Pick<TSqlClient, "query">;

type TRow = {
  id: string | number;
  organization: string;
  name: string;
  kind: TCopyKind;
  source_environment: string;
  source_data_class: TCopyRecord["sourceDataClass"];
  restored_to: string;
  data_class: TCopyDataClass;
  restore_run_id: string | number;
  owner: string;
  port: number | null;
  verification: unknown;
  created_at: Date | string;
  expires_at: Date | string | null;
  removed_at: Date | string | null;
  removed_by: string | null;
  removal_reason: string | null;
};

const date = (value: Date | string | null): Date | null => (value === null ? null : new Date(value));
const fromRow = (row: TRow): TCopyRecord => ({
  id: Number(row.id),
  organization: row.organization,
  name: row.name,
  kind: row.kind,
  sourceEnvironment: row.source_environment,
  sourceDataClass: row.source_data_class,
  restoredTo: row.restored_to,
  dataClass: row.data_class,
  restoreRunId: Number(row.restore_run_id),
  owner: row.owner,
  port: row.port,
  verification: typeof row.verification === "string" ? JSON.parse(row.verification) : row.verification,
  createdAt: date(row.created_at)!,
  expiresAt: date(row.expires_at),
  removedAt: date(row.removed_at),
  removedBy: row.removed_by,
  removalReason: row.removal_reason,
});

export type TNewCopy = Omit<TCopyRecord, "id" | "removedAt" | "removedBy" | "removalReason">;

/**
 * Records a copy. The data a restore put into a declared environment replaces what an earlier
 * restore put there: that row ends (superseded) in the same transaction.
 */
export async function insertCopy(tx: TQueryable, copy: TNewCopy): Promise<TCopyRecord> {
  // Restoring into a declared environment replaces what it held; a new copy's name was refused by
  // the runtime while its directory exists, so a live row of that name is one whose copy is gone.
  await tx.query(
    "UPDATE copies SET removed_at = $3, removed_by = $4, removal_reason = 'superseded by a later restore' WHERE organization = $1 AND name = $2 AND removed_at IS NULL",
    [copy.organization, copy.name, copy.createdAt, copy.owner],
  );
  const { rows } = await tx.query<TRow>(
    `INSERT INTO copies (organization, name, kind, source_environment, source_data_class, restored_to, data_class,
                         restore_run_id, owner, port, verification, created_at, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING *`,
    [
      copy.organization,
      copy.name,
      copy.kind,
      copy.sourceEnvironment,
      copy.sourceDataClass,
      copy.restoredTo,
      copy.dataClass,
      copy.restoreRunId,
      copy.owner,
      copy.port,
      copy.verification === undefined || copy.verification === null ? null : JSON.stringify(copy.verification),
      copy.createdAt,
      copy.expiresAt,
    ] as TSqlValue[],
  );
  return fromRow(rows[0]!);
}

/** Live copies (not removed), oldest first; of the organizations given, or every one. */
export async function liveCopies(db: TQueryable, organizations?: readonly string[]): Promise<TCopyRecord[]> {
  const { rows } = await db.query<TRow>(
    organizations === undefined
      ? "SELECT * FROM copies WHERE removed_at IS NULL ORDER BY created_at, id"
      : "SELECT * FROM copies WHERE removed_at IS NULL AND organization = ANY($1) ORDER BY created_at, id",
    organizations === undefined ? [] : [[...organizations]],
  );
  return rows.map(fromRow);
}

/** The live copy of that name, if any. */
export async function liveCopy(db: TQueryable, organization: string, name: string): Promise<TCopyRecord | undefined> {
  const { rows } = await db.query<TRow>(
    "SELECT * FROM copies WHERE organization = $1 AND name = $2 AND removed_at IS NULL",
    [organization, name],
  );
  return rows[0] === undefined ? undefined : fromRow(rows[0]);
}

/** Live copies whose expiry has passed at `now`. */
export async function expiredCopies(db: TQueryable, now: Date): Promise<TCopyRecord[]> {
  const { rows } = await db.query<TRow>(
    "SELECT * FROM copies WHERE removed_at IS NULL AND expires_at IS NOT NULL AND expires_at <= $1 ORDER BY expires_at, id",
    [now],
  );
  return rows.map(fromRow);
}

/** Ends a live copy's row; false when it had already ended (another replica removed it). */
export async function markRemoved(
  tx: TQueryable,
  id: number,
  removal: { at: Date; by: string; reason: string },
): Promise<boolean> {
  const { rows } = await tx.query(
    "UPDATE copies SET removed_at = $2, removed_by = $3, removal_reason = $4 WHERE id = $1 AND removed_at IS NULL RETURNING id",
    [id, removal.at, removal.by, removal.reason],
  );
  return rows.length > 0;
}

/** The policy's view of a recorded copy at `at` (policy-types TLiveCopy). */
export const liveCopyView = (copy: TCopyRecord, at: Date) => ({
  name: copy.name,
  kind: copy.kind,
  sourceEnvironment: copy.sourceEnvironment,
  sourceDataClass: copy.sourceDataClass,
  dataClass: copy.dataClass,
  verified:
    copy.verification !== null &&
    typeof copy.verification === "object" &&
    (copy.verification as { ok?: unknown }).ok === true,
  expiresAt: copy.expiresAt?.toISOString() ?? null,
  pastExpiry: copy.expiresAt !== null && copy.expiresAt.getTime() <= at.getTime(),
});
