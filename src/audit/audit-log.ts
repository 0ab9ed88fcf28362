// The audit log service: batched durable appends, signed checkpoints, proofs, verify, export.
//
// Appends are group-committed: every append made while no batch is being written joins the next
// batch, and a batch is one transaction (one INSERT plus the head update). Each caller's promise
// resolves only after COMMIT, so a resolved append is durable, and an idle log adds no delay.
import { IntegrityError, ValidationError } from "../lib/errors.js";
import type { TRequestContext } from "../lib/request-context.js";
import type { TSqlClient, TSqlExecutor } from "../store/store-types.js";
import { entryClaimsSeq, pendingEntryOf, type TPendingEntry } from "./audit-entry.js";
import { buildBundle } from "./audit-export.js";
import { MerkleCache } from "./audit-merkle-cache.js";
import { hashesEqual, leafHash } from "./audit-merkle.js";
import { checkpointSignatureValid, loadOrCreateSigningKey, signCheckpoint, type TSigningKey } from "./audit-signing.js";
import {
  insertCheckpoint,
  latestCheckpoint,
  listEntryRows,
  listSigningKeys,
  readEntryRows,
  readHeadSize,
  readLeafHashRows,
  registerSigningKey,
  writeBatch,
  writeEntries,
} from "./audit-store.js";
import {
  auditEventContext,
  type TAuditBundle,
  type TAuditEntry,
  type TAuditEvent,
  type TAuditEventUnder,
  type TAuditListQuery,
  type TAuditVerifyReport,
  type TCheckpoint,
} from "./audit-types.js";
import { verifyAuditLog } from "./audit-verify.js";

export type TAuditLogDeps = {
  readonly db: TSqlClient;
  /** Ed25519 private key file (PKCS#8 PEM, mode 0600) under the data dir; created on first use. */
  readonly signingKeyPath: string;
  /** Sign a checkpoint after this many new entries or this long, whichever comes first. */
  readonly checkpointEvery?: { readonly entries: number; readonly ms: number };
  readonly now?: () => Date;
  /** Most entries per transaction. */
  readonly maxBatch?: number;
  /** Further key ids whose checkpoints verify() accepts (rotated or other replicas' keys). */
  readonly trustedKeyIds?: readonly string[];
  /** Where failures of automatic checkpoints go; they never reject an append. */
  readonly onBackgroundError?: (error: unknown) => void;
};

export type TInclusionProof = {
  readonly seq: number;
  readonly treeSize: number;
  readonly leafHash: string;
  readonly rootHash: string;
  readonly proof: readonly string[];
};

export type TConsistencyProof = {
  readonly firstSize: number;
  readonly secondSize: number;
  readonly firstRoot: string;
  readonly secondRoot: string;
  readonly proof: readonly string[];
};

type TQueued = { pending: TPendingEntry; resolve: (value: { seq: number }) => void; reject: (error: unknown) => void };

const LOAD_ROWS = 50_000;
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

export const auditLogFactory = ({
  db,
  signingKeyPath,
  checkpointEvery = { entries: 1000, ms: 60_000 },
  now = () => new Date(),
  maxBatch = 2000,
  trustedKeyIds = [],
  onBackgroundError = (error) => process.emitWarning(`audit checkpoint failed: ${String(error)}`),
}: TAuditLogDeps) => {
  let signingKeyPromise: Promise<TSigningKey> | undefined;
  const signingKey = (): Promise<TSigningKey> =>
    (signingKeyPromise ??= (async () => {
      const key = await loadOrCreateSigningKey(signingKeyPath);
      await registerSigningKey(db, key);
      return key;
    })().catch((error: unknown) => {
      signingKeyPromise = undefined;
      throw error;
    }));
  const trustedKeys = async (): Promise<Set<string>> => new Set([(await signingKey()).keyId, ...trustedKeyIds]);

  // ---- the in-memory tree: proofs and checkpoint roots in O(log n) ----
  const tree = new MerkleCache();
  let treeLoading: Promise<void> = Promise.resolve();

  /** Leaves this process wrote itself are trusted as is, when they extend the tree in order. */
  const noteWritten = (firstSeq: number, leaves: readonly Buffer[]): void => {
    if (tree.size !== firstSeq) return;
    for (const leaf of leaves) tree.append(leaf);
  };

  const appendLoaded = (seq: number, leaf: Buffer): void => {
    if (seq < tree.size) return; // written by this process meanwhile
    if (seq > tree.size) throw new IntegrityError(`audit entry #${tree.size} is missing: run carehost audit verify`);
    tree.append(leaf);
  };

  /**
   * Brings the tree up to `size` leaves from the database. Leaves under the newest signed
   * checkpoint are taken from their stored hashes and must reproduce its signed root; newer ones
   * are recomputed from their entry text. So nothing this process signs or proves rests on a
   * stored hash that no signature vouches for.
   */
  const loadTree = async (size: number): Promise<void> => {
    if (tree.size === 0) {
      const anchor = await latestCheckpoint(db, size);
      if (anchor && anchor.treeSize > 0) {
        const trusted = await trustedKeys();
        const key = (await listSigningKeys(db)).find((candidate) => candidate.keyId === anchor.keyId);
        if (!key || !trusted.has(anchor.keyId) || !checkpointSignatureValid(anchor, key)) {
          throw new IntegrityError(
            `audit checkpoint at tree size ${anchor.treeSize} is not signed by a trusted key: run carehost audit verify`,
          );
        }
        for (let start = tree.size; start < anchor.treeSize; start += LOAD_ROWS) {
          const rows = await readLeafHashRows(
            db,
            Math.max(start, tree.size),
            Math.min(start + LOAD_ROWS, anchor.treeSize),
          );
          for (const row of rows) appendLoaded(row.seq, row.leafHash);
        }
        if (tree.size < anchor.treeSize || tree.rootAt(anchor.treeSize).toString("hex") !== anchor.rootHash) {
          throw new IntegrityError(
            `audit entries no longer match the checkpoint at tree size ${anchor.treeSize}: run carehost audit verify`,
          );
        }
      }
    }
    while (tree.size < size) {
      const rows = await readEntryRows(db, tree.size, Math.min(tree.size + LOAD_ROWS, size));
      if (rows.length === 0)
        throw new IntegrityError(`audit entry #${tree.size} is missing: run carehost audit verify`);
      for (const row of rows) {
        const recomputed = leafHash(row.entry);
        if (!hashesEqual(recomputed, row.leafHash) || !entryClaimsSeq(row.entry, row.seq)) {
          throw new IntegrityError(`audit entry #${row.seq} was altered: run carehost audit verify`);
        }
        appendLoaded(row.seq, recomputed);
      }
    }
  };

  const ensureTree = (size: number): Promise<void> => {
    if (tree.size >= size) return Promise.resolve();
    // One load at a time; a waiting caller usually finds the work done.
    treeLoading = treeLoading.catch(() => undefined).then(() => (tree.size >= size ? undefined : loadTree(size)));
    return treeLoading;
  };

  const assertWithinHead = async (treeSize: number): Promise<void> => {
    if (tree.size < treeSize && treeSize > (await readHeadSize(db))) {
      throw new ValidationError(`tree size ${treeSize} is beyond the audit log's head`);
    }
  };

  // ---- checkpoints ----
  let entriesSinceCheckpoint = 0;

  const signNewCheckpoint = async (): Promise<TCheckpoint> => {
    // Entries counted from here on may not be covered; the ones before are.
    entriesSinceCheckpoint = 0;
    automaticCheckpointQueued = false;
    const key = await signingKey();
    const size = await readHeadSize(db);
    const latest = await latestCheckpoint(db);
    if (latest && latest.treeSize >= size) return latest;
    await ensureTree(size);
    // Never sign a history that does not extend the one already signed (by us or a replica).
    if (latest && tree.rootAt(latest.treeSize).toString("hex") !== latest.rootHash) {
      throw new IntegrityError(
        `audit log no longer extends the checkpoint at tree size ${latest.treeSize}; refusing to sign`,
      );
    }
    return insertCheckpoint(db, signCheckpoint(key, size, tree.rootAt(size), now()));
  };

  // Checkpoints are signed one after another; each reads the head when its turn comes.
  let checkpointChain: Promise<unknown> = Promise.resolve();
  const checkpoint = (): Promise<TCheckpoint> => {
    const next = checkpointChain.then(signNewCheckpoint);
    checkpointChain = next.catch(() => undefined);
    return next;
  };

  // At most one automatic checkpoint waits at a time, however many batches ask for one.
  let automaticCheckpointQueued = false;
  const checkpointInBackground = (): void => {
    if (automaticCheckpointQueued) return;
    automaticCheckpointQueued = true;
    checkpoint().catch(onBackgroundError);
  };

  const timer = setInterval(() => {
    if (entriesSinceCheckpoint > 0) checkpointInBackground();
  }, checkpointEvery.ms);
  timer.unref();

  // ---- appends ----
  const queue: TQueued[] = [];
  let draining: Promise<void> | undefined;

  /** Entries that committed: into the tree, and counted towards the next checkpoint. */
  const noteCommitted = (written: { firstSeq: number; leaves: readonly Buffer[] }): void => {
    noteWritten(written.firstSeq, written.leaves);
    entriesSinceCheckpoint += written.leaves.length;
    if (entriesSinceCheckpoint >= checkpointEvery.entries) checkpointInBackground();
  };

  const drain = async (): Promise<void> => {
    while (queue.length > 0) {
      const batch = queue.splice(0, maxBatch);
      try {
        const written = await writeBatch(
          db,
          batch.map((item) => item.pending),
        );
        noteCommitted(written);
        batch.forEach((item, offset) => item.resolve({ seq: written.firstSeq + offset }));
      } catch (error) {
        for (const item of batch) item.reject(error);
      }
    }
  };

  const startDrain = (): void => {
    if (draining) return;
    draining = (async () => {
      // Appends made in this turn of the event loop join the first batch.
      await new Promise<void>((resolve) => setImmediate(resolve));
      await drain();
    })().finally(() => {
      draining = undefined;
      if (queue.length > 0) startDrain();
    });
  };

  const enqueue = (pending: TPendingEntry): Promise<{ seq: number }> => {
    if (closed) return Promise.reject(new ValidationError("audit log is closed"));
    const promise = new Promise<{ seq: number }>((resolve, reject) => queue.push({ pending, resolve, reject }));
    startDrain();
    return promise;
  };

  let closed = false;
  // Changes recorded with their entries that have not committed yet: close() waits for them.
  const changesInFlight = new Set<Promise<unknown>>();

  const recordChange = async <T>(
    ctx: TRequestContext,
    change: (tx: TSqlExecutor) => Promise<{ result: T; events: readonly (TAuditEvent | TAuditEventUnder)[] }>,
  ): Promise<{ result: T; seqs: number[] }> => {
    if (closed) throw new ValidationError("audit log is closed");
    const committed = db.transaction(async (tx) => {
      const { result, events } = await change(tx);
      // Stamped and guarded inside the transaction: a payload the guard refuses rolls the change back.
      const stamped = events.map((item) => {
        const { ctx: eventCtx, event } = auditEventContext(ctx, item);
        return pendingEntryOf(eventCtx, event, now());
      });
      return { result, written: stamped.length === 0 ? undefined : await writeEntries(tx, stamped) };
    });
    changesInFlight.add(committed);
    try {
      const { result, written } = await committed;
      if (written === undefined) return { result, seqs: [] };
      noteCommitted(written);
      return { result, seqs: written.leaves.map((_, offset) => written.firstSeq + offset) };
    } finally {
      changesInFlight.delete(committed);
    }
  };

  return {
    /** Records one event; resolves with its seq once it is committed. */
    append: async (ctx: TRequestContext, event: TAuditEvent): Promise<{ seq: number }> =>
      enqueue(pendingEntryOf(ctx, event, now())),

    /** Records several events of one request, in order, in the same batch. */
    appendMany: async (ctx: TRequestContext, events: readonly TAuditEvent[]): Promise<{ seqs: number[] }> => {
      const stamped = events.map((event) => pendingEntryOf(ctx, event, now()));
      const results = await Promise.all(stamped.map(enqueue));
      return { seqs: results.map((result) => result.seq) };
    },

    /**
     * Runs a state change and writes the audit events it returns in the same transaction: the
     * change and its entries commit together or not at all, so neither a payload the secret guard
     * refuses nor a crash between the two can leave a change nobody audited. `change` must run its
     * statements on `tx` only (on PGlite a statement outside it waits for this transaction to end)
     * and must not touch anything outside the database, which a rollback cannot undo. Each event
     * is recorded under `ctx` unless it comes with a context of its own (TAuditEventUnder).
     */
    recordChange,

    checkpoint,

    list: async (query: TAuditListQuery): Promise<{ seq: number; entry: TAuditEntry }[]> =>
      (await listEntryRows(db, query)).map((row) => ({ seq: row.seq, entry: JSON.parse(row.entry) as TAuditEntry })),

    inclusionProof: async (seq: number, treeSize: number): Promise<TInclusionProof> => {
      if (!Number.isInteger(seq) || seq < 0 || seq >= treeSize) {
        throw new ValidationError(`entry #${seq} is not in a tree of ${treeSize} entries`);
      }
      await assertWithinHead(treeSize);
      await ensureTree(treeSize);
      return {
        seq,
        treeSize,
        leafHash: hex(tree.leaf(seq)),
        rootHash: hex(tree.rootAt(treeSize)),
        proof: tree.inclusionProof(seq, treeSize).map(hex),
      };
    },

    consistencyProof: async (firstSize: number, secondSize: number): Promise<TConsistencyProof> => {
      if (!Number.isInteger(firstSize) || firstSize < 0 || firstSize > secondSize) {
        throw new ValidationError(`no consistency proof from tree size ${firstSize} to ${secondSize}`);
      }
      await assertWithinHead(secondSize);
      await ensureTree(secondSize);
      return {
        firstSize,
        secondSize,
        firstRoot: hex(tree.rootAt(firstSize)),
        secondRoot: hex(tree.rootAt(secondSize)),
        proof: tree.consistencyProof(firstSize, secondSize).map(hex),
      };
    },

    verify: async (): Promise<TAuditVerifyReport> => verifyAuditLog(db, { trustedKeyIds: await trustedKeys() }),

    /** Entries whose time is within [from, to], with proofs against a checkpoint signed for it. */
    exportBundle: async ({ from, to }: { from?: Date; to?: Date } = {}): Promise<TAuditBundle> => {
      const fresh = await checkpoint();
      await ensureTree(fresh.treeSize);
      return buildBundle({ db, tree, checkpoint: fresh, from, to });
    },

    /** Writes what is queued, signs what is unsigned, stops the timer. Does not close `db`. */
    close: async (): Promise<void> => {
      closed = true;
      clearInterval(timer);
      await Promise.allSettled([...changesInFlight]);
      while (draining) await draining;
      await checkpointChain;
      if (entriesSinceCheckpoint > 0) await checkpoint();
    },
  };
};

export type TAuditLog = ReturnType<typeof auditLogFactory>;
