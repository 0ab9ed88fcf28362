// `carehost audit verify`: recompute every leaf from the stored entry text, rebuild the tree, and
// hold it against every signed checkpoint. Row checks name the first altered, missing or
// reordered entry; the signed roots catch what row checks cannot (an entry rewritten together with
// its stored leaf hash) and bound where it happened.
import type { TSqlExecutor } from "../store/store-types.js";
import { describeEntry, entryClaimsSeq } from "./audit-entry.js";
import { MerkleCache } from "./audit-merkle-cache.js";
import { hashesEqual, leafHash, verifyConsistency } from "./audit-merkle.js";
import { checkpointSignatureValid } from "./audit-signing.js";
import {
  listCheckpoints,
  listSigningKeys,
  readEntryRows,
  readEntryRowsFrom,
  readHeadSize,
  type TEntryRow,
} from "./audit-store.js";
import type { TAuditProblem, TAuditPublicKey, TAuditVerifyReport, TCheckpoint } from "./audit-types.js";

const BATCH_ROWS = 20_000;

export type TVerifyOptions = {
  /** Keys whose signatures count. A key registered in the database but not trusted here is reported. */
  readonly trustedKeyIds: ReadonlySet<string>;
};

type TRowCheckState = { expectedSeq: number; problems: TAuditProblem[]; tree: MerkleCache };

const entrySeqOf = (entry: string): number | undefined => {
  try {
    const seq = (JSON.parse(entry) as { seq?: unknown }).seq;
    return typeof seq === "number" ? seq : undefined;
  } catch {
    return undefined;
  }
};

const checkRow = (state: TRowCheckState, row: TEntryRow): void => {
  if (row.seq > state.expectedSeq) {
    const last = row.seq - 1;
    state.problems.push({
      kind: "missing",
      seq: state.expectedSeq,
      message:
        last === state.expectedSeq
          ? `entry #${state.expectedSeq} is missing (deleted): the log jumps from #${state.expectedSeq - 1} to #${row.seq}`
          : `entries #${state.expectedSeq}–#${last} are missing (deleted): the log jumps from #${state.expectedSeq - 1} to #${row.seq}`,
    });
  }
  state.expectedSeq = row.seq + 1;
  const recomputed = leafHash(row.entry);
  state.tree.append(recomputed);
  if (!hashesEqual(recomputed, row.leafHash)) {
    state.problems.push({
      kind: "altered",
      seq: row.seq,
      message: `${describeEntry(row.seq, row.entry)} was altered: its text no longer hashes to the leaf hash written with it`,
    });
    return;
  }
  if (!entryClaimsSeq(row.entry, row.seq)) {
    const entrySeq = entrySeqOf(row.entry);
    state.problems.push({
      kind: "reordered",
      seq: row.seq,
      message: `${describeEntry(row.seq, row.entry)} is out of place: the row at #${row.seq} holds the entry written as #${String(entrySeq)}`,
    });
  }
};

/** Reads entries in seq order in batches, fetching the next batch while hashing this one. */
const checkAllRows = async (db: TSqlExecutor, headSize: number, state: TRowCheckState): Promise<number> => {
  let checked = 0;
  const check = (rows: readonly TEntryRow[]): void => {
    for (const row of rows) checkRow(state, row);
    checked += rows.length;
  };
  let next = headSize > 0 ? readEntryRows(db, 0, Math.min(BATCH_ROWS, headSize)) : undefined;
  for (let start = 0; next; start += BATCH_ROWS) {
    const rows = await next;
    const following = start + BATCH_ROWS;
    next = following < headSize ? readEntryRows(db, following, Math.min(following + BATCH_ROWS, headSize)) : undefined;
    check(rows);
  }
  if (state.expectedSeq < headSize) {
    state.problems.push({
      kind: "missing",
      seq: state.expectedSeq,
      message: `entries #${state.expectedSeq}–#${headSize - 1} are missing (deleted): the head records ${headSize} entries, the table ends at #${state.expectedSeq - 1}`,
    });
  }
  // Rows past the head: inserted behind the log's back, or the head was wound back to hide them.
  for (let rows = await readEntryRowsFrom(db, headSize, BATCH_ROWS); rows.length > 0;) {
    for (const row of rows) {
      state.problems.push({
        kind: "altered",
        seq: row.seq,
        message: `${describeEntry(row.seq, row.entry)} lies beyond the log's head (${headSize} entries): the head was wound back or the row was inserted behind the log's back`,
      });
    }
    check(rows);
    rows = rows.length === BATCH_ROWS ? await readEntryRowsFrom(db, rows[rows.length - 1]!.seq + 1, BATCH_ROWS) : [];
  }
  return checked;
};

const describeCheckpoint = (checkpoint: TCheckpoint): string =>
  `checkpoint at tree size ${checkpoint.treeSize} (signed ${checkpoint.time})`;

const checkCheckpoints = (
  checkpoints: readonly TCheckpoint[],
  keys: ReadonlyMap<string, TAuditPublicKey>,
  options: TVerifyOptions,
  tree: MerkleCache,
  rowProblems: readonly TAuditProblem[],
): { problems: TAuditProblem[]; verified: number } => {
  const problems: TAuditProblem[] = [];
  let verified = 0;
  let lastMatchingSize = 0;
  let reportedRewrite = false;
  let previousTrusted: TCheckpoint | undefined;
  const firstRowProblemSeq = rowProblems.reduce(
    (first, problem) => Math.min(first, problem.seq ?? first),
    Number.MAX_SAFE_INTEGER,
  );
  for (const checkpoint of checkpoints) {
    const key = keys.get(checkpoint.keyId);
    if (!key || !options.trustedKeyIds.has(checkpoint.keyId)) {
      problems.push({
        kind: "unknown-key",
        checkpointTreeSize: checkpoint.treeSize,
        message: `${describeCheckpoint(checkpoint)} is signed by key ${checkpoint.keyId}, which is ${key ? "registered but not trusted" : "not registered"}`,
      });
      continue;
    }
    if (!checkpointSignatureValid(checkpoint, key)) {
      problems.push({
        kind: "bad-signature",
        checkpointTreeSize: checkpoint.treeSize,
        message: `${describeCheckpoint(checkpoint)} has an invalid signature`,
      });
      continue;
    }
    if (checkpoint.treeSize > tree.size) {
      problems.push({
        kind: "missing",
        seq: tree.size,
        checkpointTreeSize: checkpoint.treeSize,
        message: `${describeCheckpoint(checkpoint)} covers ${checkpoint.treeSize} entries but only ${tree.size} are stored`,
      });
      continue;
    }
    const rootMatches = tree.rootAt(checkpoint.treeSize).toString("hex") === checkpoint.rootHash;
    if (rootMatches) {
      verified += 1;
    } else if (!reportedRewrite && firstRowProblemSeq >= checkpoint.treeSize) {
      // No row check explains the mismatch, so entries and their leaf hashes were rewritten
      // together. The signed root proves it; the previous matching checkpoint bounds where.
      reportedRewrite = true;
      const first = lastMatchingSize;
      const last = checkpoint.treeSize - 1;
      problems.push({
        kind: "altered",
        seq: first,
        seqRange: [first, last],
        checkpointTreeSize: checkpoint.treeSize,
        message:
          first === last
            ? `entry #${first} was rewritten together with its leaf hash: ${describeCheckpoint(checkpoint)} does not match the stored entries`
            : `one or more of entries #${first}–#${last} were rewritten together with their leaf hashes: ${describeCheckpoint(checkpoint)} does not match the stored entries, the checkpoint at size ${first} does`,
      });
    }
    if (rootMatches) lastMatchingSize = Math.max(lastMatchingSize, checkpoint.treeSize);
    if (previousTrusted && rootMatches) {
      const proof = tree.consistencyProof(previousTrusted.treeSize, checkpoint.treeSize);
      const consistent = verifyConsistency(
        previousTrusted.treeSize,
        checkpoint.treeSize,
        Buffer.from(previousTrusted.rootHash, "hex"),
        Buffer.from(checkpoint.rootHash, "hex"),
        proof,
      );
      if (!consistent) {
        // The later signed history matches the data, the earlier one is not a prefix of it.
        problems.push({
          kind: "inconsistent-checkpoint",
          checkpointTreeSize: previousTrusted.treeSize,
          message: `${describeCheckpoint(previousTrusted)} is not a prefix of ${describeCheckpoint(checkpoint)}: the signed history forked`,
        });
      }
    }
    previousTrusted = checkpoint;
  }
  return { problems, verified };
};

export const verifyAuditLog = async (db: TSqlExecutor, options: TVerifyOptions): Promise<TAuditVerifyReport> => {
  const headSize = await readHeadSize(db);
  const [checkpoints, keyList] = await Promise.all([listCheckpoints(db), listSigningKeys(db)]);
  const state: TRowCheckState = { expectedSeq: 0, problems: [], tree: new MerkleCache() };
  const entriesChecked = await checkAllRows(db, headSize, state);
  const keys = new Map(keyList.map((key) => [key.keyId, key]));
  const checkpointResult = checkCheckpoints(checkpoints, keys, options, state.tree, state.problems);
  const problems = [...state.problems, ...checkpointResult.problems].sort(
    (a, b) => (a.seq ?? Number.MAX_SAFE_INTEGER) - (b.seq ?? Number.MAX_SAFE_INTEGER),
  );
  const firstBadSeq = problems[0]?.seq;
  return {
    ok: problems.length === 0,
    treeSize: headSize,
    entriesChecked,
    checkpointsVerified: checkpointResult.verified,
    problems,
    ...(firstBadSeq === undefined ? {} : { firstBadSeq }),
  };
};
