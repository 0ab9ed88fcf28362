// Checkpoint signing. The Ed25519 private key lives in a file under the data dir (mode 0600),
// never in the database: whoever can rewrite the database must still not be able to re-sign it.
//
// The signed bytes, which tools/verify-audit-bundle.mjs reproduces, are the UTF-8 text
//   "carehost-audit-checkpoint/v1\n" + treeSize (decimal) + "\n" + rootHash (64 lowercase hex)
//   + "\n" + time (ISO 8601 UTC with milliseconds, as Date.prototype.toISOString writes it)
// with no trailing newline.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from "node:crypto";
import { chmod, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { IntegrityError } from "../lib/errors.js";
import type { TAuditPublicKey, TCheckpoint } from "./audit-types.js";

export const CHECKPOINT_FORMAT = "carehost-audit-checkpoint/v1";

export const checkpointSignedText = (treeSize: number, rootHashHex: string, timeIso: string): string =>
  `${CHECKPOINT_FORMAT}\n${treeSize}\n${rootHashHex}\n${timeIso}`;

export type TSigningKey = { readonly keyId: string; readonly publicKeyPem: string; readonly privateKey: KeyObject };

/** sha256 of the DER SubjectPublicKeyInfo, hex: stable, and what an operator publishes out of band. */
export const keyIdOf = (publicKey: KeyObject): string =>
  createHash("sha256")
    .update(publicKey.export({ type: "spki", format: "der" }))
    .digest("hex");

const signingKeyOf = (privateKey: KeyObject): TSigningKey => {
  const publicKey = createPublicKey(privateKey);
  return {
    keyId: keyIdOf(publicKey),
    publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
    privateKey,
  };
};

/** Loads the key at `path`, creating it (0600, exclusive) on first use. */
export const loadOrCreateSigningKey = async (path: string): Promise<TSigningKey> => {
  try {
    const info = await stat(path);
    if (process.platform !== "win32" && (info.mode & 0o077) !== 0) {
      throw new IntegrityError(
        `audit signing key ${path} is readable by others (mode ${(info.mode & 0o777).toString(8)}); chmod 600 it`,
      );
    }
    const key = createPrivateKey(await readFile(path));
    if (key.asymmetricKeyType !== "ed25519")
      throw new IntegrityError(`audit signing key ${path} is not an Ed25519 key`);
    return signingKeyOf(key);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync("ed25519");
  try {
    // "wx": two processes starting at once must not each write (and sign with) a different key.
    await writeFile(path, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600, flag: "wx" });
    await chmod(path, 0o600);
    return signingKeyOf(privateKey);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return loadOrCreateSigningKey(path);
    throw error;
  }
};

export const signCheckpoint = (key: TSigningKey, treeSize: number, rootHash: Buffer, time: Date): TCheckpoint => {
  const rootHex = rootHash.toString("hex");
  const timeIso = time.toISOString();
  const signature = sign(null, Buffer.from(checkpointSignedText(treeSize, rootHex, timeIso), "utf8"), key.privateKey);
  return { treeSize, rootHash: rootHex, time: timeIso, keyId: key.keyId, signature: signature.toString("base64") };
};

export const checkpointSignatureValid = (checkpoint: TCheckpoint, publicKey: TAuditPublicKey | KeyObject): boolean => {
  const keyObject = "publicKeyPem" in publicKey ? createPublicKey(publicKey.publicKeyPem) : publicKey;
  try {
    return verify(
      null,
      Buffer.from(checkpointSignedText(checkpoint.treeSize, checkpoint.rootHash, checkpoint.time), "utf8"),
      keyObject,
      Buffer.from(checkpoint.signature, "base64"),
    );
  } catch {
    return false;
  }
};
