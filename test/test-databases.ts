// Real databases for tests (STYLE.md item 10): every store suite runs once per kind through
// forEachStoreKind, each test getting its own throwaway database that is removed afterwards.
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { openStore } from "../src/store/store-open.js";
import type { TSqlClient, TStoreConfig, TStoreKind } from "../src/store/store-types.js";

/** The machine's PostgreSQL server (trust auth); override with CAREHOST_TEST_POSTGRES_URL. */
export const adminPostgresUrl = process.env.CAREHOST_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export type TTestDatabase = {
  readonly config: TStoreConfig;
  /** Opens (and migrates) a client; may be called several times to simulate replicas. */
  open(): Promise<TSqlClient>;
  /** Runs SQL as a superuser would, behind carehost's back (tamper tests). */
  superuserQuery(sql: string, params?: unknown[]): Promise<unknown[]>;
  dispose(): Promise<void>;
};

const createPostgresDatabase = async (): Promise<TTestDatabase> => {
  const name = `carehost_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminPostgresUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(adminPostgresUrl);
  url.pathname = `/${name}`;
  const opened: TSqlClient[] = [];
  const config: TStoreConfig = { kind: "postgres", url: url.toString(), poolSize: 4 };
  return {
    config,
    open: async () => {
      const client = await openStore(config);
      opened.push(client);
      return client;
    },
    superuserQuery: async (sql, params = []) => {
      const client = new pg.Client({ connectionString: url.toString() });
      await client.connect();
      try {
        return (await client.query(sql, params)).rows;
      } finally {
        await client.end();
      }
    },
    dispose: async () => {
      await Promise.all(opened.map((client) => client.close().catch(() => undefined)));
      const cleanup = new pg.Client({ connectionString: adminPostgresUrl });
      await cleanup.connect();
      await cleanup.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await cleanup.end();
    },
  };
};

// initdb in PGlite takes seconds; a migrated template made once per test process and copied
// per test keeps each test's database its own without paying that every time.
let pgliteTemplate: Promise<string> | undefined;
const pgliteTemplateDir = (): Promise<string> =>
  (pgliteTemplate ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), "carehost-pglite-template-"));
    const client = await openStore({ kind: "pglite", dataDir: dir });
    await client.close();
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
    return dir;
  })());

const createPgliteDatabase = async (): Promise<TTestDatabase> => {
  const dir = await mkdtemp(join(tmpdir(), "carehost-pglite-"));
  const config: TStoreConfig = { kind: "pglite", dataDir: join(dir, "db") };
  await cp(await pgliteTemplateDir(), config.dataDir, { recursive: true });
  // PGlite is single-process: every "replica" and the "superuser" share the one open client.
  // The promise is kept, not the client, so concurrent open() calls cannot start two instances
  // on the same directory.
  let client: Promise<TSqlClient> | undefined;
  const shared = (): Promise<TSqlClient> => (client ??= openStore(config));
  return {
    config,
    open: shared,
    superuserQuery: async (sql, params = []) => (await (await shared()).query(sql, params as never[])).rows,
    dispose: async () => {
      await (await client)?.close().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
};

export const testDatabaseFactories: Record<TStoreKind, () => Promise<TTestDatabase>> = {
  pglite: createPgliteDatabase,
  postgres: createPostgresDatabase,
};

/** Runs the same suite against every store kind (the conformance pattern of STYLE.md item 5). */
export const forEachStoreKind = (suite: (kind: TStoreKind, create: () => Promise<TTestDatabase>) => void): void => {
  for (const [kind, create] of Object.entries(testDatabaseFactories) as [TStoreKind, () => Promise<TTestDatabase>][]) {
    suite(kind, create);
  }
};

/** Gives fn a migrated client on a fresh database of the given kind and removes the database after. */
export const withTestDatabase = async (
  create: () => Promise<TTestDatabase>,
  fn: (db: TSqlClient, database: TTestDatabase) => Promise<void>,
): Promise<void> => {
  const database = await create();
  try {
    await fn(await database.open(), database);
  } finally {
    await database.dispose();
  }
};
