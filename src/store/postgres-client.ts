import pg from "pg";
import type { TSqlClient, TSqlExecutor, TSqlValue } from "./store-types.js";

// bigint columns come back as strings by default; carehost stores sequence numbers and sizes as
// bigint and reads them as JS numbers (well below 2^53), so parse int8 at the driver.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

export const openPostgresClient = async (url: string, poolSize = 10): Promise<TSqlClient> => {
  const pool = new pg.Pool({ connectionString: url, max: poolSize });
  // An idle connection the server ends (restart, failover, pg_terminate_backend) is dropped from
  // the pool and replaced on next use; without a listener its error would crash the process.
  pool.on("error", (error) => process.emitWarning(`control-plane database connection lost: ${error.message}`));
  // Fail at start-up, not at the first request, when the URL is wrong.
  const probe = await pool.connect();
  probe.release();
  const executor = (target: pg.Pool | pg.PoolClient): TSqlExecutor => ({
    query: async <TRow>(sql: string, params: readonly TSqlValue[] = []) => {
      const result = await target.query(sql, params as unknown[]);
      return { rows: result.rows as TRow[] };
    },
    exec: async (sql: string) => {
      await target.query(sql);
    },
  });
  return {
    kind: "postgres",
    ...executor(pool),
    transaction: async (fn) => {
      const client = await pool.connect();
      try {
        await client.query("BEGIN");
        const result = await fn(executor(client));
        await client.query("COMMIT");
        return result;
      } catch (error) {
        await client.query("ROLLBACK").catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
};
