import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { forEachStoreKind, withTestDatabase } from "../../test/test-databases.js";
import { migrations } from "./migrations/index.js";
import { migrate } from "./store-migrate.js";

forEachStoreKind((kind, createDatabase) => {
  describe(`store on ${kind}`, () => {
    it("applies every migration once and records it", async () => {
      await withTestDatabase(createDatabase, async (client) => {
        const { rows } = await client.query<{ id: number }>("SELECT id FROM schema_migrations ORDER BY id");
        assert.deepEqual(
          rows.map((row) => row.id),
          migrations.map((migration) => migration.id),
        );
        assert.deepEqual(await migrate(client, migrations), { applied: [] });
      });
    });

    it("rolls a failed transaction back", async () => {
      await withTestDatabase(createDatabase, async (client) => {
        await client.exec("CREATE TABLE t (v int)");
        await assert.rejects(
          client.transaction(async (tx) => {
            await tx.query("INSERT INTO t VALUES ($1)", [1]);
            throw new Error("boom");
          }),
          /boom/,
        );
        assert.equal((await client.query("SELECT * FROM t")).rows.length, 0);
      });
    });

    it("refuses to start when an applied migration was edited", async () => {
      await withTestDatabase(createDatabase, async (client) => {
        const edited = migrations.map((migration, index) =>
          index === 0 ? { ...migration, sql: `${migration.sql}\n-- edited` } : migration,
        );
        await assert.rejects(migrate(client, edited), /was edited after it was applied/);
      });
    });

    it("refuses a database migrated by a newer carehost", async () => {
      await withTestDatabase(createDatabase, async (client) => {
        await assert.rejects(migrate(client, migrations.slice(0, 1)), /does not know/);
      });
    });

    if (kind === "postgres") {
      it("lets several replicas start at once: one migrates, the others wait", async () => {
        const database = await createDatabase();
        try {
          const replicas = await Promise.all([database.open(), database.open(), database.open()]);
          const { rows } = await replicas[0]!.query<{ count: number }>(
            "SELECT count(*)::int AS count FROM schema_migrations",
          );
          assert.equal(rows[0]!.count, migrations.length);
        } finally {
          await database.dispose();
        }
      });
    }

    it("returns bigint columns as numbers", async () => {
      await withTestDatabase(createDatabase, async (client) => {
        const { rows } = await client.query<{ n: number }>("SELECT 9007199254740::bigint AS n");
        assert.equal(rows[0]!.n, 9007199254740);
      });
    });
  });
});
