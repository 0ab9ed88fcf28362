// RFC 6962 / RFC 9162 Merkle tree hashing, proofs and proof verification. Pure: no I/O.
// Indexes and sizes are JS numbers; halving uses Math.floor, not bit operators, so trees past
// 2^31 leaves stay correct.
import { hash, timingSafeEqual } from "node:crypto";

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

export const sha256 = (data: Uint8Array): Buffer => hash("sha256", data, "buffer");

/** SHA-256(0x00 ‖ entry): the leaf hash of one canonical entry. */
export const leafHash = (entry: string | Uint8Array): Buffer => {
  const bytes = typeof entry === "string" ? Buffer.from(entry, "utf8") : entry;
  return sha256(Buffer.concat([LEAF_PREFIX, bytes]));
};

/** SHA-256(0x01 ‖ left ‖ right). */
export const nodeHash = (left: Uint8Array, right: Uint8Array): Buffer =>
  sha256(Buffer.concat([NODE_PREFIX, left, right]));

/** MTH of the empty tree (RFC 6962 §2.1). */
export const emptyRoot: Buffer = sha256(new Uint8Array(0));

export const hashesEqual = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && timingSafeEqual(a, b);

/** Largest power of two strictly less than n (n ≥ 2): the RFC's split point k. */
export const splitPoint = (n: number): number => {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
};

/** A source of subtree hashes MTH(D[start:end]); proofs are written against it. */
export type TSubtreeHasher = (start: number, end: number) => Buffer;

/** MTH(D[0:n]) straight from the definition; O(n). Use TMerkleCache for repeated queries. */
export const rootOf = (leafHashes: readonly Uint8Array[], n = leafHashes.length): Buffer => {
  if (n === 0) return emptyRoot;
  const hashRange = (start: number, end: number): Buffer => {
    if (end - start === 1) return Buffer.from(leafHashes[start]!);
    const k = splitPoint(end - start);
    return nodeHash(hashRange(start, start + k), hashRange(start + k, end));
  };
  return hashRange(0, n);
};

/** PATH(m, D[0:n]) of RFC 6962 §2.1.1, leaf-to-root order. */
export const inclusionPath = (index: number, size: number, subtree: TSubtreeHasher): Buffer[] => {
  if (!Number.isInteger(index) || !Number.isInteger(size) || index < 0 || index >= size) {
    throw new RangeError(`no inclusion proof for leaf ${index} in a tree of ${size}`);
  }
  const path: Buffer[] = [];
  const walk = (m: number, start: number, end: number): void => {
    if (end - start === 1) return;
    const k = splitPoint(end - start);
    if (m < k) {
      walk(m, start, start + k);
      path.push(subtree(start + k, end));
    } else {
      walk(m - k, start + k, end);
      path.push(subtree(start, start + k));
    }
  };
  walk(index, 0, size);
  return path;
};

/** PROOF(m, D[0:n]) of RFC 6962 §2.1.2. Empty when m = n or m = 0. */
export const consistencyPath = (m: number, n: number, subtree: TSubtreeHasher): Buffer[] => {
  if (!Number.isInteger(m) || !Number.isInteger(n) || m < 0 || m > n) {
    throw new RangeError(`no consistency proof from tree size ${m} to ${n}`);
  }
  const proof: Buffer[] = [];
  if (m === 0 || m === n) return proof;
  const subproof = (m1: number, start: number, end: number, complete: boolean): void => {
    const size = end - start;
    if (m1 === size) {
      if (!complete) proof.push(subtree(start, end));
      return;
    }
    const k = splitPoint(size);
    if (m1 <= k) {
      subproof(m1, start, start + k, complete);
      proof.push(subtree(start + k, end));
    } else {
      subproof(m1 - k, start + k, end, false);
      proof.push(subtree(start, start + k));
    }
  };
  subproof(m, 0, n, true);
  return proof;
};

const isOdd = (value: number): boolean => value % 2 === 1;
const half = (value: number): number => Math.floor(value / 2);
const isPowerOfTwo = (value: number): boolean => {
  let power = 1;
  while (power < value) power *= 2;
  return power === value;
};

/** RFC 9162 §2.1.3.2: does `proof` show the leaf at `index` is in the tree of `size` with `root`? */
export const verifyInclusion = (
  index: number,
  size: number,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean => {
  if (index < 0 || index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r: Uint8Array = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      r = nodeHash(p, r);
      if (!isOdd(fn)) {
        while (!isOdd(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && hashesEqual(r, root);
};

/** RFC 9162 §2.1.4.2: is the tree (firstSize, firstRoot) a prefix of (secondSize, secondRoot)? */
export const verifyConsistency = (
  firstSize: number,
  secondSize: number,
  firstRoot: Uint8Array,
  secondRoot: Uint8Array,
  proof: readonly Uint8Array[],
): boolean => {
  if (firstSize < 0 || firstSize > secondSize) return false;
  if (firstSize === secondSize) return proof.length === 0 && hashesEqual(firstRoot, secondRoot);
  // Every tree extends the empty tree; the RFC defines no proof for it.
  if (firstSize === 0) return proof.length === 0;
  if (proof.length === 0) return false;
  const path: Uint8Array[] = [...proof];
  // A first tree that is a perfect subtree is not repeated in the proof: its root is the start.
  if (isPowerOfTwo(firstSize)) path.unshift(firstRoot);
  let fn = firstSize - 1;
  let sn = secondSize - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr: Uint8Array = path[0]!;
  let sr: Uint8Array = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && hashesEqual(fr, firstRoot) && hashesEqual(sr, secondRoot);
};
