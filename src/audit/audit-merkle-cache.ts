// An in-memory, append-only Merkle tree that keeps every perfect subtree's hash, level by level,
// so any subtree hash, root, inclusion or consistency proof costs O(log² n) hash lookups and at
// most O(log n) fresh hashes, instead of rehashing n leaves. 1M leaves take 64 MB: each level is
// one growable byte array of 32-byte slots (no per-node objects for the GC to walk).
import { consistencyPath, emptyRoot, inclusionPath, nodeHash, sha256, splitPoint } from "./audit-merkle.js";

const HASH_BYTES = 32;
// 0x01 ‖ left ‖ right, reused: appending is the hot path of verify (a million node hashes).
const pairScratch = new Uint8Array(1 + 2 * HASH_BYTES);
pairScratch[0] = 0x01;

class HashLevel {
  private bytes = new Uint8Array(HASH_BYTES * 1024);
  count = 0;

  push(hash: Uint8Array): void {
    if ((this.count + 1) * HASH_BYTES > this.bytes.length) {
      const grown = new Uint8Array(this.bytes.length * 2);
      grown.set(this.bytes);
      this.bytes = grown;
    }
    this.bytes.set(hash, this.count * HASH_BYTES);
    this.count += 1;
  }

  /** Hash of the last two slots as a pair; they sit side by side, so no copying. */
  hashLastPair(): Buffer {
    const end = this.count * HASH_BYTES;
    pairScratch.set(this.bytes.subarray(end - 2 * HASH_BYTES, end), 1);
    return sha256(pairScratch);
  }

  at(index: number): Buffer {
    // A copy, so callers can keep it while the level grows.
    return Buffer.from(this.bytes.subarray(index * HASH_BYTES, (index + 1) * HASH_BYTES));
  }
}

export class MerkleCache {
  /** levels[h][i] = MTH of leaves [i·2^h, (i+1)·2^h). */
  private readonly levels: HashLevel[] = [new HashLevel()];

  get size(): number {
    return this.levels[0]!.count;
  }

  append(leaf: Uint8Array): void {
    if (leaf.length !== HASH_BYTES) throw new RangeError(`a leaf hash has ${HASH_BYTES} bytes, not ${leaf.length}`);
    this.levels[0]!.push(leaf);
    // Each completed pair finishes a perfect subtree one level up.
    let level = 0;
    while (this.levels[level]!.count % 2 === 0) {
      const parent = this.levels[level]!.hashLastPair();
      level += 1;
      (this.levels[level] ??= new HashLevel()).push(parent);
    }
  }

  leaf(index: number): Buffer {
    if (index < 0 || index >= this.size) throw new RangeError(`leaf ${index} is beyond the tree of ${this.size}`);
    return this.levels[0]!.at(index);
  }

  /** MTH(D[start:end]) for the subtrees RFC 6962's recursion visits (start aligned to its split). */
  subtreeHash = (start: number, end: number): Buffer => {
    if (end > this.size || start < 0 || start >= end) {
      throw new RangeError(`subtree [${start}, ${end}) is outside the tree of ${this.size}`);
    }
    const width = end - start;
    const level = Math.log2(width);
    if (Number.isInteger(level) && start % width === 0) return this.levels[level]!.at(start / width);
    const k = splitPoint(width);
    return nodeHash(this.subtreeHash(start, start + k), this.subtreeHash(start + k, end));
  };

  rootAt(treeSize: number = this.size): Buffer {
    return treeSize === 0 ? emptyRoot : this.subtreeHash(0, treeSize);
  }

  inclusionProof(index: number, treeSize: number = this.size): Buffer[] {
    if (treeSize > this.size) throw new RangeError(`tree size ${treeSize} is beyond the ${this.size} leaves known`);
    return inclusionPath(index, treeSize, this.subtreeHash);
  }

  consistencyProof(firstSize: number, secondSize: number = this.size): Buffer[] {
    if (secondSize > this.size) throw new RangeError(`tree size ${secondSize} is beyond the ${this.size} leaves known`);
    return consistencyPath(firstSize, secondSize, this.subtreeHash);
  }
}

export type TMerkleCache = MerkleCache;
