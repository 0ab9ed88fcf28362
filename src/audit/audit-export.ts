// The offline bundle: entries in a time range, each with its inclusion proof against a freshly
// signed checkpoint, the previous checkpoint with a consistency proof, and the public keys. An
// auditor checks it with tools/verify-audit-bundle.mjs and no access to carehost's database.
import { IntegrityError } from "../lib/errors.js";
import type { TSqlExecutor } from "../store/store-types.js";
import type { MerkleCache } from "./audit-merkle-cache.js";
import { hashesEqual, leafHash } from "./audit-merkle.js";
import { latestCheckpoint, listSigningKeys, readEntryRows, seqSpanOf } from "./audit-store.js";
import type { TAuditBundle, TCheckpoint } from "./audit-types.js";

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");
const PAGE = 10_000;

export type TBuildBundleInput = {
  readonly db: TSqlExecutor;
  /** Holds at least checkpoint.treeSize leaves. */
  readonly tree: MerkleCache;
  readonly checkpoint: TCheckpoint;
  readonly from?: Date | undefined;
  readonly to?: Date | undefined;
};

export const buildBundle = async ({ db, tree, checkpoint, from, to }: TBuildBundleInput): Promise<TAuditBundle> => {
  const entries: { seq: number; entry: string; inclusionProof: string[] }[] = [];
  // Every entry between the first and the last one in the time range, so the bundle is contiguous
  // in seq and an auditor can see that none was left out (times from several replicas may
  // interleave slightly).
  const span = await seqSpanOf(db, from, to, checkpoint.treeSize);
  for (let next = span?.first ?? 0; span && next <= span.last;) {
    const rows = await readEntryRows(db, next, Math.min(next + PAGE, span.last + 1));
    if (rows.length === 0 || rows[0]!.seq !== next)
      throw new IntegrityError(`audit entry #${next} is missing: run carehost audit verify`);
    for (const row of rows) {
      if (row.seq !== next) throw new IntegrityError(`audit entry #${next} is missing: run carehost audit verify`);
      // Refuse to hand an auditor an entry the tree does not vouch for.
      if (!hashesEqual(leafHash(row.entry), tree.leaf(row.seq))) {
        throw new IntegrityError(`audit entry #${row.seq} was altered: run carehost audit verify`);
      }
      entries.push({
        seq: row.seq,
        entry: row.entry,
        inclusionProof: tree.inclusionProof(row.seq, checkpoint.treeSize).map(hex),
      });
      next += 1;
    }
  }
  const previous = checkpoint.treeSize > 0 ? await latestCheckpoint(db, checkpoint.treeSize - 1) : undefined;
  const keyIds = new Set([checkpoint.keyId, ...(previous ? [previous.keyId] : [])]);
  const publicKeys = (await listSigningKeys(db)).filter((key) => keyIds.has(key.keyId));
  return {
    format: "carehost-audit-bundle/v1",
    range: { from: from?.toISOString() ?? null, to: to?.toISOString() ?? null },
    publicKeys,
    checkpoint,
    ...(previous
      ? {
          previousCheckpoint: previous,
          consistencyProof: tree.consistencyProof(previous.treeSize, checkpoint.treeSize).map(hex),
        }
      : {}),
    entries,
  };
};
