import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { MerkleCache } from "./audit-merkle-cache.js";
import { emptyRoot, leafHash, nodeHash, rootOf, verifyConsistency, verifyInclusion } from "./audit-merkle.js";

// An independent reference written straight from RFC 6962 §2.1 with array slices, sharing no
// code with the implementation under test except the two hash primitives checked first.
const h = (...parts: Uint8Array[]): Buffer => createHash("sha256").update(Buffer.concat(parts)).digest();
const k = (n: number): number => 2 ** Math.ceil(Math.log2(n) - 1);
const mth = (d: Buffer[]): Buffer =>
  d.length === 0
    ? h()
    : d.length === 1
      ? d[0]!
      : h(Buffer.from([1]), mth(d.slice(0, k(d.length))), mth(d.slice(k(d.length))));
const path = (m: number, d: Buffer[]): Buffer[] => {
  if (d.length === 1) return [];
  const split = k(d.length);
  return m < split
    ? [...path(m, d.slice(0, split)), mth(d.slice(split))]
    : [...path(m - split, d.slice(split)), mth(d.slice(0, split))];
};
const subproof = (m: number, d: Buffer[], b: boolean): Buffer[] => {
  const n = d.length;
  if (m === n) return b ? [] : [mth(d)];
  const split = k(n);
  return m <= split
    ? [...subproof(m, d.slice(0, split), b), mth(d.slice(split))]
    : [...subproof(m - split, d.slice(split), false), mth(d.slice(0, split))];
};
const proof = (m: number, d: Buffer[]): Buffer[] => (m === 0 || m === d.length ? [] : subproof(m, d, true));

const leavesOf = (count: number): Buffer[] => Array.from({ length: count }, (_, index) => leafHash(`entry ${index}`));
const flipped = (hash: Buffer): Buffer => {
  const copy = Buffer.from(hash);
  copy[0] = copy[0]! ^ 1;
  return copy;
};
const MAX = 70;

void describe("audit Merkle tree (RFC 6962)", () => {
  void it("hashes leaves and nodes with domain separation", () => {
    assert.deepEqual(leafHash("abc"), h(Buffer.from([0]), Buffer.from("abc")));
    assert.deepEqual(
      nodeHash(Buffer.alloc(32, 1), Buffer.alloc(32, 2)),
      h(Buffer.from([1]), Buffer.alloc(32, 1), Buffer.alloc(32, 2)),
    );
    // Known vectors: empty tree, and the RFC 6962 leaf hash of the empty string.
    assert.equal(emptyRoot.toString("hex"), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert.equal(leafHash("").toString("hex"), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
  });

  void it("computes the same roots, inclusion and consistency proofs as the RFC definition for sizes 1..70", () => {
    const leaves = leavesOf(MAX);
    const cache = new MerkleCache();
    for (const leaf of leaves) cache.append(leaf);
    for (let n = 1; n <= MAX; n += 1) {
      const d = leaves.slice(0, n);
      const root = mth(d);
      assert.deepEqual(cache.rootAt(n), root, `root of ${n}`);
      assert.deepEqual(rootOf(leaves, n), root, `rootOf ${n}`);
      for (let m = 0; m < n; m += 1) {
        const inclusion = cache.inclusionProof(m, n);
        assert.deepEqual(inclusion, path(m, d), `inclusion ${m} in ${n}`);
        assert.ok(verifyInclusion(m, n, leaves[m]!, inclusion, root), `verify inclusion ${m} in ${n}`);
      }
      for (let m = 0; m <= n; m += 1) {
        const consistency = cache.consistencyProof(m, n);
        assert.deepEqual(consistency, proof(m, d), `consistency ${m}→${n}`);
        assert.ok(verifyConsistency(m, n, mth(leaves.slice(0, m)), root, consistency), `verify consistency ${m}→${n}`);
      }
    }
  });

  void it("rejects altered inclusion proofs, wrong leaves, indexes and roots", () => {
    const leaves = leavesOf(MAX);
    const cache = new MerkleCache();
    for (const leaf of leaves) cache.append(leaf);
    for (let n = 1; n <= MAX; n += 1) {
      const root = cache.rootAt(n);
      for (let m = 0; m < n; m += 1) {
        const inclusion = cache.inclusionProof(m, n);
        assert.equal(verifyInclusion(m, n, flipped(leaves[m]!), inclusion, root), false);
        assert.equal(verifyInclusion(m, n, leaves[m]!, inclusion, flipped(root)), false);
        if (n > 1)
          assert.equal(verifyInclusion((m + 1) % n, n, leaves[m]!, inclusion, root), false, `moved ${m} in ${n}`);
        // (A wrong tree size alone is not always caught: RFC 9162 binds size and root through
        // the signed checkpoint, which is why verifiers take both from it.)
        assert.equal(
          verifyInclusion(m, n, leaves[m]!, inclusion, cache.rootAt(n < MAX ? n + 1 : n - 1)),
          false,
          "other tree's root",
        );
        for (let i = 0; i < inclusion.length; i += 1) {
          const altered = inclusion.map((node, j) => (j === i ? flipped(node) : node));
          assert.equal(verifyInclusion(m, n, leaves[m]!, altered, root), false, `altered node ${i} of ${m} in ${n}`);
        }
        assert.equal(verifyInclusion(m, n, leaves[m]!, [...inclusion, root], root), false, "extra node");
        if (inclusion.length > 0)
          assert.equal(verifyInclusion(m, n, leaves[m]!, inclusion.slice(1), root), false, "short proof");
      }
    }
  });

  void it("rejects altered consistency proofs and forked histories", () => {
    const leaves = leavesOf(MAX);
    const cache = new MerkleCache();
    for (const leaf of leaves) cache.append(leaf);
    for (let n = 2; n <= MAX; n += 1) {
      for (let m = 1; m < n; m += 1) {
        const consistency = cache.consistencyProof(m, n);
        const firstRoot = cache.rootAt(m);
        const secondRoot = cache.rootAt(n);
        assert.equal(verifyConsistency(m, n, flipped(firstRoot), secondRoot, consistency), false);
        assert.equal(verifyConsistency(m, n, firstRoot, flipped(secondRoot), consistency), false);
        for (let i = 0; i < consistency.length; i += 1) {
          const altered = consistency.map((node, j) => (j === i ? flipped(node) : node));
          assert.equal(
            verifyConsistency(m, n, firstRoot, secondRoot, altered),
            false,
            `altered node ${i} of ${m}→${n}`,
          );
        }
        assert.equal(verifyConsistency(m, n, firstRoot, secondRoot, []), false);
        // A history that differs in one early leaf is not an extension.
        const forked = [...leaves.slice(0, n)];
        forked[0] = flipped(forked[0]!);
        assert.equal(verifyConsistency(m, n, firstRoot, mth(forked), consistency), false);
      }
    }
  });

  void it("refuses proofs outside the tree", () => {
    const cache = new MerkleCache();
    for (const leaf of leavesOf(5)) cache.append(leaf);
    assert.throws(() => cache.inclusionProof(5, 5), RangeError);
    assert.throws(() => cache.inclusionProof(0, 6), RangeError);
    assert.throws(() => cache.consistencyProof(4, 6), RangeError);
    assert.throws(() => cache.consistencyProof(5, 4), RangeError);
    assert.deepEqual(cache.rootAt(0), emptyRoot);
  });
});
