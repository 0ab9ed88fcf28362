import { createHash } from "node:crypto";
import { IntegrityError } from "../lib/errors.js";
import type { TMigration } from "./migrations/index.js";
import type { TSqlClient } from "./store-types.js";

// An arbitrary constant shared by every replica: whoever holds it migrates, the others wait and
// then find nothing left to do. A transaction-scoped lock is released even if the process dies.
const MIGRATION_LOCK_KEY = 7_420_113_001;

const checksumOf = (migration: TMigration): string => createHash("sha256").update(migration.sql).digest("hex");

export type TMigrationResult = { readonly applied: readonly string[] };

export const migrate = async (client: TSqlClient, list: readonly TMigration[]): Promise<TMigrationResult> =>
  client.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK_KEY]);
    await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      id integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await tx.query<{ id: number; name: string; checksum: string }>(
      "SELECT id, name, checksum FROM schema_migrations ORDER BY id",
    );
    const appliedById = new Map(rows.map((row) => [row.id, row]));
    const known = new Set(list.map((migration) => migration.id));
    const unknown = rows.filter((row) => !known.has(row.id));
    if (unknown.length > 0) {
      // A newer carehost migrated this database; running older code against it would corrupt it.
      throw new IntegrityError(
        `database has migrations this carehost does not know: ${unknown.map((row) => `${row.id}-${row.name}`).join(", ")}`,
      );
    }
    const applied: string[] = [];
    for (const migration of list) {
      const existing = appliedById.get(migration.id);
      const checksum = checksumOf(migration);
      if (existing) {
        if (existing.checksum !== checksum) {
          throw new IntegrityError(`migration ${migration.id}-${migration.name} was edited after it was applied`);
        }
        continue;
      }
      await tx.exec(migration.sql);
      await tx.query("INSERT INTO schema_migrations (id, name, checksum) VALUES ($1, $2, $3)", [
        migration.id,
        migration.name,
        checksum,
      ]);
      applied.push(`${migration.id}-${migration.name}`);
    }
    return { applied };
  });
