#!/usr/bin/env node
// Verifies a carehost audit bundle offline, with nothing but Node's own crypto and fs:
//   node tools/verify-audit-bundle.mjs bundle.json
// Checks: the checkpoint signature (and the previous checkpoint's, with the consistency proof
// between them), then every entry's leaf hash and its inclusion in the signed tree (RFC 6962 /
// RFC 9162). Exit 0 when everything holds, 1 naming the first failure, 2 on usage errors.
// Compare the printed key id with the one the operator published: the bundle carries its own key.
/* global Buffer */
import { createHash, createPublicKey, verify } from "node:crypto";
import { readFileSync } from "node:fs";

const sha256 = (...parts) => createHash("sha256").update(Buffer.concat(parts)).digest();
const leafHash = (entry) => sha256(Buffer.from([0]), Buffer.from(entry, "utf8"));
const nodeHash = (left, right) => sha256(Buffer.from([1]), left, right);
const fromHex = (text) => Buffer.from(text, "hex");
const isOdd = (n) => n % 2 === 1;
const half = (n) => Math.floor(n / 2);
const isPowerOfTwo = (n) => {
  let power = 1;
  while (power < n) power *= 2;
  return power === n;
};

// RFC 9162 §2.1.3.2
const verifyInclusion = (index, size, leaf, proof, root) => {
  if (index < 0 || index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      r = nodeHash(p, r);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && r.equals(root);
};

// RFC 9162 §2.1.4.2
const verifyConsistency = (firstSize, secondSize, firstRoot, secondRoot, proof) => {
  if (firstSize > secondSize) return false;
  if (firstSize === secondSize) return proof.length === 0 && firstRoot.equals(secondRoot);
  if (firstSize === 0) return proof.length === 0;
  if (proof.length === 0) return false;
  const path = isPowerOfTwo(firstSize) ? [firstRoot, ...proof] : [...proof];
  let fn = firstSize - 1;
  let sn = secondSize - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0];
  let sr = path[0];
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
  return sn === 0 && fr.equals(firstRoot) && sr.equals(secondRoot);
};

// The exact signed bytes; src/audit/audit-signing.ts documents the same format.
const signedText = (cp) => `carehost-audit-checkpoint/v1\n${cp.treeSize}\n${cp.rootHash}\n${cp.time}`;

const fail = (message) => {
  console.error(`FAIL: ${message}`);
  process.exit(1);
};

const main = () => {
  const path = process.argv[2];
  if (!path) {
    console.error("usage: node tools/verify-audit-bundle.mjs <bundle.json>");
    process.exit(2);
  }
  let bundle;
  try {
    bundle = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    fail(`cannot read ${path} as JSON: ${error.message}`);
  }
  if (bundle.format !== "carehost-audit-bundle/v1") fail(`unknown bundle format ${JSON.stringify(bundle.format)}`);
  const keys = new Map((bundle.publicKeys ?? []).map((key) => [key.keyId, key]));

  const checkSignature = (cp, label) => {
    if (!Number.isSafeInteger(cp.treeSize) || cp.treeSize < 0 || !/^[0-9a-f]{64}$/.test(cp.rootHash))
      fail(`${label} is malformed`);
    const key = keys.get(cp.keyId);
    if (!key) fail(`${label} is signed by key ${cp.keyId}, which the bundle does not include`);
    const publicKey = createPublicKey(key.publicKeyPem);
    const keyId = createHash("sha256")
      .update(publicKey.export({ type: "spki", format: "der" }))
      .digest("hex");
    if (keyId !== cp.keyId) fail(`${label}: public key does not match its key id ${cp.keyId}`);
    if (!verify(null, Buffer.from(signedText(cp), "utf8"), publicKey, Buffer.from(cp.signature, "base64"))) {
      fail(`${label} (tree size ${cp.treeSize}, ${cp.time}) has an invalid signature`);
    }
  };

  const checkpoint = bundle.checkpoint;
  if (!checkpoint) fail("bundle has no checkpoint");
  checkSignature(checkpoint, "checkpoint");
  const root = fromHex(checkpoint.rootHash);

  if (bundle.previousCheckpoint) {
    const previous = bundle.previousCheckpoint;
    checkSignature(previous, "previous checkpoint");
    const proof = (bundle.consistencyProof ?? []).map(fromHex);
    if (!verifyConsistency(previous.treeSize, checkpoint.treeSize, fromHex(previous.rootHash), root, proof)) {
      fail(
        `previous checkpoint (tree size ${previous.treeSize}) is not a prefix of the checkpoint (tree size ${checkpoint.treeSize}): the log was rewritten between them`,
      );
    }
  }

  let previousSeq = -1;
  for (const item of bundle.entries ?? []) {
    let entry;
    try {
      entry = JSON.parse(item.entry);
    } catch {
      fail(`entry #${item.seq} is not valid JSON: it was altered`);
    }
    const name = `entry #${item.seq} (${entry.type} by ${entry.actor?.username ?? entry.actor?.name ?? entry.actor?.kind} at ${entry.time})`;
    if (entry.seq !== item.seq) fail(`${name} says it is #${entry.seq}: it was moved`);
    // Bundles are contiguous in seq, so an entry dropped from the middle shows.
    if (previousSeq >= 0 && item.seq !== previousSeq + 1)
      fail(`entry #${previousSeq + 1} is missing from the bundle (before ${name})`);
    previousSeq = item.seq;
    if (!verifyInclusion(item.seq, checkpoint.treeSize, leafHash(item.entry), item.inclusionProof.map(fromHex), root)) {
      fail(`${name} is not in the signed tree of ${checkpoint.treeSize} entries: it was altered`);
    }
  }

  const count = bundle.entries?.length ?? 0;
  const span = count > 0 ? ` (#${bundle.entries[0].seq}–#${previousSeq})` : "";
  console.log(
    `OK: ${count} entr${count === 1 ? "y" : "ies"}${span} included in the checkpoint of tree size ${checkpoint.treeSize} signed ${checkpoint.time}` +
      (bundle.previousCheckpoint
        ? `, consistent with the checkpoint of tree size ${bundle.previousCheckpoint.treeSize}`
        : "") +
      `\n    signing key id ${checkpoint.keyId}: compare it with the key id the operator published`,
  );
};

main();
