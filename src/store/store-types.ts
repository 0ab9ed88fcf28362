// The one database interface every domain store is written against. Both drivers speak the
// PostgreSQL dialect: PGlite (embedded, in the data dir) and a PostgreSQL server.

export type TSqlValue = string | number | bigint | boolean | null | Date | Uint8Array | readonly unknown[] | object;

export type TSqlExecutor = {
  /** Runs one parameterised statement ($1, $2, …) and returns its rows. */
  query<TRow = Record<string, unknown>>(sql: string, params?: readonly TSqlValue[]): Promise<{ rows: TRow[] }>;
  /** Runs several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
};

export type TSqlClient = TSqlExecutor & {
  readonly kind: TStoreKind;
  /** Runs fn inside BEGIN/COMMIT on one connection; rolls back when fn throws. */
  transaction<T>(fn: (tx: TSqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
};

export type TStoreKind = "pglite" | "postgres";

export type TStoreConfig =
  | { readonly kind: "pglite"; readonly dataDir: string }
  | { readonly kind: "postgres"; readonly url: string; readonly poolSize?: number };
