// SQL for the audit tables (migration 0002). Every function takes the executor it runs on so the
// log can compose them inside one transaction.
import type { TSqlClient, TSqlExecutor } from "../store/store-types.js";
import { canonicalEntry, actorNameOf, type TPendingEntry } from "./audit-entry.js";
import { leafHash } from "./audit-merkle.js";
import type { TAuditListQuery, TAuditPublicKey, TCheckpoint } from "./audit-types.js";

/** bytea arrives as a Buffer from pg and as a Uint8Array from PGlite. */
export const asBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

export type TWrittenBatch = { readonly firstSeq: number; readonly leaves: readonly Buffer[] };

/**
 * Appends entries inside the caller's transaction: lock the head row (so replicas take turns and
 * seq stays gap-free), number the entries, insert them with one statement, move the head. Arrays
 * go in through unnest so the statement has 7 parameters whatever the batch size. The head stays
 * locked until the transaction ends, so a state change written with its entries holds other
 * appends only for the rest of that transaction.
 */
export const writeEntries = async (tx: TSqlExecutor, pending: readonly TPendingEntry[]): Promise<TWrittenBatch> => {
  const { rows } = await tx.query<{ size: number }>("SELECT size FROM audit_head FOR UPDATE");
  const firstSeq = rows[0]!.size;
  const seqs: number[] = [];
  const entries: string[] = [];
  const leaves: Buffer[] = [];
  for (const [offset, item] of pending.entries()) {
    const entry = canonicalEntry(firstSeq + offset, item);
    seqs.push(firstSeq + offset);
    entries.push(entry);
    leaves.push(leafHash(entry));
  }
  await tx.query(
    `INSERT INTO audit_entries (seq, entry, leaf_hash, type, actor, target, time)
       SELECT seq, entry, decode(leaf_hex, 'hex'), type, actor, target, time::timestamptz
       FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
         AS batch (seq, entry, leaf_hex, type, actor, target, time)`,
    [
      seqs,
      entries,
      leaves.map((leaf) => leaf.toString("hex")),
      pending.map((item) => item.type),
      pending.map((item) => actorNameOf(item.actor)),
      pending.map((item) => item.target),
      pending.map((item) => item.time),
    ],
  );
  await tx.query("UPDATE audit_head SET size = $1", [firstSeq + pending.length]);
  return { firstSeq, leaves };
};

/** Appends entries in a transaction of their own. */
export const writeBatch = (db: TSqlClient, pending: readonly TPendingEntry[]): Promise<TWrittenBatch> =>
  db.transaction((tx) => writeEntries(tx, pending));

/** The first `limit` entries at or beyond `fromSeq` (rows past the head should not exist). */
export const readEntryRowsFrom = async (db: TSqlExecutor, fromSeq: number, limit: number): Promise<TEntryRow[]> => {
  const { rows } = await db.query<{ seq: number; entry: string; leaf_hash: Uint8Array }>(
    "SELECT seq, entry, leaf_hash FROM audit_entries WHERE seq >= $1 ORDER BY seq LIMIT $2",
    [fromSeq, limit],
  );
  return rows.map((row) => ({ seq: row.seq, entry: row.entry, leafHash: asBuffer(row.leaf_hash) }));
};

export const readHeadSize = async (db: TSqlExecutor): Promise<number> =>
  (await db.query<{ size: number }>("SELECT size FROM audit_head")).rows[0]?.size ?? 0;

export type TEntryRow = { readonly seq: number; readonly entry: string; readonly leafHash: Buffer };

// Reads go by bounded seq ranges, not "seq >= x ORDER BY seq LIMIT n": without fresh statistics
// (right after a bulk load) the planner answers the latter by sorting every row above x, which
// made reading 1M entries 15 s instead of 2.

/** Entries with seq in [fromSeq, toSeq), in seq order. Keep the range to a batch. */
export const readEntryRows = async (db: TSqlExecutor, fromSeq: number, toSeq: number): Promise<TEntryRow[]> => {
  const { rows } = await db.query<{ seq: number; entry: string; leaf_hash: Uint8Array }>(
    "SELECT seq, entry, leaf_hash FROM audit_entries WHERE seq >= $1 AND seq < $2 ORDER BY seq",
    [fromSeq, toSeq],
  );
  return rows.map((row) => ({ seq: row.seq, entry: row.entry, leafHash: asBuffer(row.leaf_hash) }));
};

/** Stored leaf hashes only (no entry text): for rebuilding the tree under a signed root. */
export const readLeafHashRows = async (db: TSqlExecutor, fromSeq: number, toSeq: number) => {
  const { rows } = await db.query<{ seq: number; leaf_hash: Uint8Array }>(
    "SELECT seq, leaf_hash FROM audit_entries WHERE seq >= $1 AND seq < $2 ORDER BY seq",
    [fromSeq, toSeq],
  );
  return rows.map((row) => ({ seq: row.seq, leafHash: asBuffer(row.leaf_hash) }));
};

export const listEntryRows = async (
  db: TSqlExecutor,
  query: TAuditListQuery,
): Promise<{ seq: number; entry: string }[]> => {
  const conditions: string[] = [];
  const params: (string | number | Date)[] = [];
  const where = (sql: string, value: string | number | Date): void => {
    params.push(value);
    conditions.push(sql.replace("?", `$${params.length}`));
  };
  if (query.from) where("time >= ?", query.from);
  if (query.to) where("time <= ?", query.to);
  if (query.type) where("type = ?", query.type);
  if (query.target) where("target = ?", query.target);
  if (query.afterSeq !== undefined) where("seq > ?", query.afterSeq);
  params.push(query.limit);
  const { rows } = await db.query<{ seq: number; entry: string }>(
    `SELECT seq, entry FROM audit_entries ${conditions.length ? `WHERE ${conditions.join(" AND ")}` : ""}
     ORDER BY seq LIMIT $${params.length}`,
    params,
  );
  return rows;
};

/** First and last seq (below treeSize) of the entries whose time lies in [from, to]. */
export const seqSpanOf = async (db: TSqlExecutor, from: Date | undefined, to: Date | undefined, treeSize: number) => {
  const { rows } = await db.query<{ first: number | null; last: number | null }>(
    `SELECT min(seq) AS first, max(seq) AS last FROM audit_entries
     WHERE seq < $1 AND ($2::timestamptz IS NULL OR time >= $2) AND ($3::timestamptz IS NULL OR time <= $3)`,
    [treeSize, from ?? null, to ?? null],
  );
  const span = rows[0];
  return span && span.first !== null && span.last !== null ? { first: span.first, last: span.last } : undefined;
};

type TCheckpointRow = { tree_size: number; root_hash: Uint8Array; time: Date; signature: Uint8Array; key_id: string };
const CHECKPOINT_COLUMNS = "tree_size, root_hash, time, signature, key_id";

const checkpointOf = (row: TCheckpointRow): TCheckpoint => ({
  treeSize: row.tree_size,
  rootHash: asBuffer(row.root_hash).toString("hex"),
  time: new Date(row.time).toISOString(),
  keyId: row.key_id,
  signature: asBuffer(row.signature).toString("base64"),
});

export const listCheckpoints = async (db: TSqlExecutor): Promise<TCheckpoint[]> =>
  (await db.query<TCheckpointRow>(`SELECT ${CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY tree_size`)).rows.map(
    checkpointOf,
  );

/** The newest checkpoint whose tree size is at most `maxSize` (default: the newest). */
export const latestCheckpoint = async (
  db: TSqlExecutor,
  maxSize = Number.MAX_SAFE_INTEGER,
): Promise<TCheckpoint | undefined> => {
  const { rows } = await db.query<TCheckpointRow>(
    `SELECT ${CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE tree_size <= $1 ORDER BY tree_size DESC LIMIT 1`,
    [maxSize],
  );
  return rows[0] && checkpointOf(rows[0]);
};

/** Inserts a checkpoint; when another replica already signed this size, returns theirs. */
export const insertCheckpoint = async (db: TSqlExecutor, checkpoint: TCheckpoint): Promise<TCheckpoint> => {
  await db.query(
    `INSERT INTO audit_checkpoints (tree_size, root_hash, time, signature, key_id)
     VALUES ($1, decode($2, 'hex'), $3::timestamptz, decode($4, 'base64'), $5) ON CONFLICT (tree_size) DO NOTHING`,
    [checkpoint.treeSize, checkpoint.rootHash, checkpoint.time, checkpoint.signature, checkpoint.keyId],
  );
  const { rows } = await db.query<TCheckpointRow>(
    `SELECT ${CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE tree_size = $1`,
    [checkpoint.treeSize],
  );
  return checkpointOf(rows[0]!);
};

export const registerSigningKey = async (db: TSqlExecutor, key: TAuditPublicKey): Promise<void> => {
  await db.query(
    "INSERT INTO audit_signing_keys (key_id, public_key) VALUES ($1, $2) ON CONFLICT (key_id) DO NOTHING",
    [key.keyId, key.publicKeyPem],
  );
};

export const listSigningKeys = async (db: TSqlExecutor): Promise<TAuditPublicKey[]> =>
  (
    await db.query<{ key_id: string; public_key: string }>(
      "SELECT key_id, public_key FROM audit_signing_keys ORDER BY created_at, key_id",
    )
  ).rows.map((row) => ({ keyId: row.key_id, publicKeyPem: row.public_key }));
