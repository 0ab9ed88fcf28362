// SQL for the secrets table (migration 0004). Only sealed material passes through here; the
// metadata queries never select the encrypted columns at all.
import type { TSqlExecutor } from "../store/store-types.js";
import type { TSealed } from "./secrets-envelope.js";

/** bytea arrives as a Buffer from pg and as a Uint8Array from PGlite. */
const asBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

type TSealedRow = {
  name: string;
  version: number;
  ciphertext: Uint8Array;
  iv: Uint8Array;
  tag: Uint8Array;
  wrapped_key: Uint8Array;
  wrap_iv: Uint8Array;
  wrap_tag: Uint8Array;
  master_key_id: string;
};

export type TSecretVersionInfo = {
  readonly name: string;
  readonly version: number;
  readonly masterKeyId: string;
  readonly createdAt: Date;
  readonly retiredAt: Date | null;
};

const sealedColumns = "name, version, ciphertext, iv, tag, wrapped_key, wrap_iv, wrap_tag, master_key_id";

const sealedOf = (row: TSealedRow): TSealed => ({
  name: row.name,
  version: row.version,
  ciphertext: asBuffer(row.ciphertext),
  iv: asBuffer(row.iv),
  tag: asBuffer(row.tag),
  wrappedKey: asBuffer(row.wrapped_key),
  wrapIv: asBuffer(row.wrap_iv),
  wrapTag: asBuffer(row.wrap_tag),
  masterKeyId: row.master_key_id,
});

type TInfoRow = {
  name: string;
  version: number;
  master_key_id: string;
  created_at: Date | string;
  retired_at: Date | string | null;
};

const infoOf = (row: TInfoRow): TSecretVersionInfo => ({
  name: row.name,
  version: row.version,
  masterKeyId: row.master_key_id,
  createdAt: new Date(row.created_at),
  retiredAt: row.retired_at === null ? null : new Date(row.retired_at),
});

export const secretsStoreFactory = (db: TSqlExecutor) => ({
  /** Inserts a version unless (name, version) exists already; false when another writer got there first. */
  insertIfAbsent: async (sealed: TSealed, createdAt: Date): Promise<boolean> => {
    const { rows } = await db.query(
      `INSERT INTO secrets (name, version, ciphertext, iv, tag, wrapped_key, wrap_iv, wrap_tag, master_key_id, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
       ON CONFLICT (name, version) DO NOTHING
       RETURNING version`,
      [
        sealed.name,
        sealed.version,
        sealed.ciphertext,
        sealed.iv,
        sealed.tag,
        sealed.wrappedKey,
        sealed.wrapIv,
        sealed.wrapTag,
        sealed.masterKeyId,
        createdAt,
      ],
    );
    return rows.length === 1;
  },

  /** The highest version of a name, retired or not (0 when the name has none). */
  latestVersion: async (name: string): Promise<number> => {
    const { rows } = await db.query<{ version: number | null }>(
      "SELECT max(version) AS version FROM secrets WHERE name = $1",
      [name],
    );
    return rows[0]?.version ?? 0;
  },

  /** The live (not retired) versions of a name, newest first, sealed. */
  liveVersions: async (name: string, limit: number): Promise<TSealed[]> => {
    const { rows } = await db.query<TSealedRow>(
      `SELECT ${sealedColumns} FROM secrets WHERE name = $1 AND retired_at IS NULL ORDER BY version DESC LIMIT $2`,
      [name, limit],
    );
    return rows.map(sealedOf);
  },

  info: async (name: string, version: number): Promise<TSecretVersionInfo | null> => {
    const { rows } = await db.query<TInfoRow>(
      "SELECT name, version, master_key_id, created_at, retired_at FROM secrets WHERE name = $1 AND version = $2",
      [name, version],
    );
    return rows[0] ? infoOf(rows[0]) : null;
  },

  /**
   * Marks a version retired and erases its key material (crypto-shredding): the row stays as the
   * record of what existed and when, but the value can never be decrypted again.
   */
  retire: async (name: string, version: number, retiredAt: Date): Promise<TSecretVersionInfo | null> => {
    const { rows } = await db.query<TInfoRow>(
      `UPDATE secrets
          SET retired_at = $3, ciphertext = ''::bytea, iv = ''::bytea, tag = ''::bytea,
              wrapped_key = ''::bytea, wrap_iv = ''::bytea, wrap_tag = ''::bytea
        WHERE name = $1 AND version = $2 AND retired_at IS NULL
        RETURNING name, version, master_key_id, created_at, retired_at`,
      [name, version, retiredAt],
    );
    return rows[0] ? infoOf(rows[0]) : null;
  },

  list: async (): Promise<TSecretVersionInfo[]> => {
    const { rows } = await db.query<TInfoRow>(
      "SELECT name, version, master_key_id, created_at, retired_at FROM secrets ORDER BY name, version",
    );
    return rows.map(infoOf);
  },
});

export type TSecretsStore = ReturnType<typeof secretsStoreFactory>;
