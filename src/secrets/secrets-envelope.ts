// Envelope encryption, pure: each sealed secret has its own random 32-byte data key; the value is
// encrypted under the data key and the data key under the master key, both with AES-256-GCM.
// Both encryptions authenticate the secret's name and version (AAD), so a row moved to another
// name or version, or altered in any byte, fails to open instead of yielding someone else's value.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { IntegrityError } from "../lib/errors.js";
import type { TMasterKey } from "./secrets-master-key.js";

export type TSealed = {
  readonly name: string;
  readonly version: number;
  readonly ciphertext: Buffer;
  readonly iv: Buffer;
  readonly tag: Buffer;
  readonly wrappedKey: Buffer;
  readonly wrapIv: Buffer;
  readonly wrapTag: Buffer;
  /** Which master key wrapped the data key (TMasterKey.keyId). */
  readonly masterKeyId: string;
};

const algorithm = "aes-256-gcm";
const ivBytes = 12;
const tagBytes = 16;
const dataKeyBytes = 32;

// Distinct labels keep the two encryptions from ever authenticating each other's data. The name
// is length-prefixed so no (name, version) pair can collide with another.
const associatedData = (purpose: "value" | "data-key", name: string, version: number): Buffer => {
  const nameBytes = Buffer.from(name, "utf8");
  return Buffer.concat([
    Buffer.from(`carehost-secret/v1/${purpose}\0${nameBytes.length}\0`),
    nameBytes,
    Buffer.from(`\0${version}`),
  ]);
};

const encrypt = (key: Buffer, aad: Buffer, plaintext: Buffer): { ciphertext: Buffer; iv: Buffer; tag: Buffer } => {
  const iv = randomBytes(ivBytes);
  const cipher = createCipheriv(algorithm, key, iv, { authTagLength: tagBytes });
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { ciphertext, iv, tag: cipher.getAuthTag() };
};

/** Returns null when authentication fails; callers turn that into an error that names the secret. */
const decrypt = (key: Buffer, aad: Buffer, ciphertext: Buffer, iv: Buffer, tag: Buffer): Buffer | null => {
  if (iv.length !== ivBytes || tag.length !== tagBytes) return null;
  try {
    const decipher = createDecipheriv(algorithm, key, iv, { authTagLength: tagBytes });
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch {
    // OpenSSL's message ("Unsupported state or unable to authenticate data") says nothing useful.
    return null;
  }
};

const label = (name: string, version: number): string => `secret ${JSON.stringify(name)} version ${version}`;

export const seal = (masterKey: TMasterKey, name: string, version: number, plaintext: string): TSealed => {
  const dataKey = randomBytes(dataKeyBytes);
  const value = Buffer.from(plaintext, "utf8");
  try {
    const sealedValue = encrypt(dataKey, associatedData("value", name, version), value);
    const wrapped = encrypt(masterKey.bytes, associatedData("data-key", name, version), dataKey);
    return {
      name,
      version,
      ciphertext: sealedValue.ciphertext,
      iv: sealedValue.iv,
      tag: sealedValue.tag,
      wrappedKey: wrapped.ciphertext,
      wrapIv: wrapped.iv,
      wrapTag: wrapped.tag,
      masterKeyId: masterKey.keyId,
    };
  } finally {
    dataKey.fill(0);
    value.fill(0);
  }
};

/** Decrypts a sealed secret; any altered byte, moved row or wrong master key is an IntegrityError naming the secret. */
export const open = (masterKey: TMasterKey, sealed: TSealed): string => {
  const { name, version } = sealed;
  if (sealed.masterKeyId !== masterKey.keyId) {
    throw new IntegrityError(
      `${label(name, version)} is wrapped under master key ${sealed.masterKeyId}, but the loaded master key is ${masterKey.keyId}`,
    );
  }
  const dataKey = decrypt(
    masterKey.bytes,
    associatedData("data-key", name, version),
    sealed.wrappedKey,
    sealed.wrapIv,
    sealed.wrapTag,
  );
  if (dataKey === null || dataKey.length !== dataKeyBytes) {
    throw new IntegrityError(
      `${label(name, version)} failed its integrity check: its data key does not authenticate under master key ${masterKey.keyId}`,
    );
  }
  try {
    const value = decrypt(dataKey, associatedData("value", name, version), sealed.ciphertext, sealed.iv, sealed.tag);
    if (value === null)
      throw new IntegrityError(
        `${label(name, version)} failed its integrity check: its ciphertext does not authenticate`,
      );
    const plaintext = value.toString("utf8");
    value.fill(0);
    return plaintext;
  } finally {
    dataKey.fill(0);
  }
};
