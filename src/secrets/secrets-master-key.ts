// The master key wraps every secret's data key. It never enters the database: it comes from the
// CAREHOST_MASTER_KEY environment variable (base64 of 32 bytes) or from a key file of exactly 32
// raw bytes that only its owner may read (mode 0600), created on first use.
import { createHash, randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { mkdir, open, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { inspect } from "node:util";
import { ValidationError } from "../lib/errors.js";

export const masterKeyEnvVariable = "CAREHOST_MASTER_KEY";
export const masterKeyBytes = 32;

export type TMasterKey = {
  /** First 16 hex digits of SHA-256 of the key: recorded with each secret so a master-key change is traceable. */
  readonly keyId: string;
  readonly source: "env" | "file";
  /** The raw key. Not enumerable, and hidden from inspect and JSON, so logging the object never prints it. */
  readonly bytes: Buffer;
};

export const masterKeyIdOf = (bytes: Uint8Array): string =>
  createHash("sha256").update(bytes).digest("hex").slice(0, 16);

/** Wraps raw key bytes; refuses anything that is not exactly 32 bytes. */
export const masterKeyFrom = (bytes: Uint8Array, source: TMasterKey["source"]): TMasterKey => {
  if (bytes.length !== masterKeyBytes) {
    throw new ValidationError(`a master key must be exactly ${masterKeyBytes} bytes, not ${bytes.length}`);
  }
  const keyId = masterKeyIdOf(bytes);
  const key = { keyId, source };
  Object.defineProperty(key, "bytes", { value: Buffer.from(bytes), enumerable: false });
  Object.defineProperty(key, "toJSON", { value: () => ({ keyId, source }), enumerable: false });
  Object.defineProperty(key, inspect.custom, {
    value: () => `TMasterKey { keyId: '${keyId}', source: '${source}' }`,
    enumerable: false,
  });
  return Object.freeze(key) as TMasterKey;
};

// Strict, padded standard base64 (what `openssl rand -base64 32` prints); Buffer.from would
// silently skip stray characters and hand back a shorter key.
const base64Pattern = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Reads the key from the environment variable's value. The message names the variable, never the value. */
export const masterKeyFromEnv = (value: string): TMasterKey => {
  const trimmed = value.trim();
  const expected = `${masterKeyEnvVariable} must be the base64 encoding of exactly ${masterKeyBytes} random bytes (e.g. \`openssl rand -base64 32\`)`;
  if (!base64Pattern.test(trimmed)) throw new ValidationError(`${expected}; it is not valid base64`);
  const bytes = Buffer.from(trimmed, "base64");
  if (bytes.length !== masterKeyBytes) throw new ValidationError(`${expected}; it decodes to ${bytes.length} bytes`);
  return masterKeyFrom(bytes, "env");
};

const modeText = (mode: number): string => `0${(mode & 0o777).toString(8).padStart(3, "0")}`;

const createKeyFile = async (path: string): Promise<boolean> => {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  let handle;
  try {
    // O_EXCL: when two processes start at once, exactly one creates the key and the other reads it.
    handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  }
  try {
    // The umask can only remove bits from 0600, but say it explicitly rather than rely on that.
    await handle.chmod(0o600);
    await handle.writeFile(randomBytes(masterKeyBytes));
    await handle.sync();
  } finally {
    await handle.close();
  }
  return true;
};

/**
 * Loads the key file at `path`, creating it (32 random bytes, mode 0600) when it does not exist.
 * Refuses a file that group or others may read or write, naming the path and its mode.
 */
export const masterKeyFromFile = async (
  path: string,
): Promise<{ readonly masterKey: TMasterKey; readonly created: boolean }> => {
  const created = await createKeyFile(path);
  const info = await stat(path);
  if (!info.isFile()) throw new ValidationError(`master key file ${path} is not a regular file`);
  if ((info.mode & 0o077) !== 0) {
    throw new ValidationError(
      `master key file ${path} has mode ${modeText(info.mode)}; it must be readable by its owner only (chmod 600 ${path})`,
    );
  }
  const handle = await open(path, constants.O_RDONLY);
  let bytes: Buffer;
  try {
    bytes = await handle.readFile();
  } finally {
    await handle.close();
  }
  if (bytes.length !== masterKeyBytes) {
    throw new ValidationError(`master key file ${path} must hold exactly ${masterKeyBytes} bytes, not ${bytes.length}`);
  }
  const masterKey = masterKeyFrom(bytes, "file");
  bytes.fill(0);
  return { masterKey, created };
};

export type TMasterKeySource = { readonly env?: NodeJS.ProcessEnv; readonly filePath: string };

/** The environment variable wins when set; otherwise the key file (created on first use). */
export const loadMasterKey = async ({ env = process.env, filePath }: TMasterKeySource): Promise<TMasterKey> => {
  const fromEnv = env[masterKeyEnvVariable];
  if (fromEnv !== undefined && fromEnv !== "") return masterKeyFromEnv(fromEnv);
  return (await masterKeyFromFile(filePath)).masterKey;
};
