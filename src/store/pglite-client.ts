import { mkdir } from "node:fs/promises";
import { PGlite } from "@electric-sql/pglite";
import type { TSqlClient, TSqlExecutor, TSqlValue } from "./store-types.js";

// PGlite is one connection in this process; its own transaction() serialises callers, which is
// what we want for an embedded single-replica control plane.
export const openPgliteClient = async (dataDir: string): Promise<TSqlClient> => {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  // int8 comes back as a JS number, as with the postgres driver (values stay far below 2^53).
  const db = await PGlite.create({ dataDir, parsers: { 20: (value: string) => Number(value) } });
  const executor = (target: Pick<PGlite, "query" | "exec">): TSqlExecutor => ({
    query: async <TRow>(sql: string, params: readonly TSqlValue[] = []) => {
      const result = await target.query<TRow>(sql, params as unknown[]);
      return { rows: result.rows };
    },
    exec: async (sql: string) => {
      await target.exec(sql);
    },
  });
  return {
    kind: "pglite",
    ...executor(db),
    transaction: (fn) => db.transaction((tx) => fn(executor(tx))),
    close: () => db.close(),
  };
};
