// The PHI-safe part of a restore on this host (src/copies over a scratch copy): the restored
// database is sampled and counted, then neutralized and de-identified in one transaction, its
// filestore pruned, and verified, all before anything is swapped in or announced. The scratch copy
// is the restore's own (archiving off, a port nobody was told), so nothing reads it meanwhile.
import pg from "pg";
import { copyRules } from "../../copies/copies-deidentify.js";
import { transformCopy } from "../../copies/copies-transform.js";
import type { TSampledValue } from "../../copies/copies-verify.js";
import { countRows, sampleIdentifyingValues, verifyCopy } from "../../copies/copies-verify.js";
import type { TDeidentified, TDeidentifyRequest } from "../../backup/recovery-driver.js";
import { PolicyViolation } from "../../lib/errors.js";
import { connectAdmin } from "./postgres-cluster.js";
import type { TAdminAccess } from "./postgres-database-move.js";

type TStep = <T>(name: "deidentify" | "verify", run: () => Promise<{ detail: string; value: T }>) => Promise<T>;

/**
 * A superuser session for the transformation: Odoo's tables are named unqualified, so public is on
 * the path, but after pg_catalog (a tenant's function cannot shadow a built-in), and the tenant's
 * own triggers do not fire (session_replication_role): the superuser runs no code a tenant wrote.
 */
const transformSession = async (access: Omit<TAdminAccess, "caPath">, database: string): Promise<pg.Client> => {
  const client = await connectAdmin(access.cluster, access.adminPassword, access.caPem, database);
  await client.query("SET search_path = pg_catalog, public, pg_temp");
  await client.query("SET session_replication_role = replica");
  return client;
};

/**
 * Transforms and verifies `database` of the scratch cluster in place, with its filestore at
 * `filestoreDirectory` (restored, not yet swapped in). Resolves with what it did once the
 * verification passed; rejects with a PolicyViolation naming every failed check when it did not
 * (the caller drops the scratch copy: the transformed data is never used).
 */
export async function deidentifyScratch(
  access: Omit<TAdminAccess, "caPath">,
  database: string,
  filestoreDirectory: string | undefined,
  request: TDeidentifyRequest,
  step: TStep,
): Promise<TDeidentified> {
  const session = await transformSession(access, database);
  try {
    const { transformed, sample, sourceCounts } = await step("deidentify", async () => {
      // The restored data is its own source: sampled and counted before anything in it changes.
      const rules = await copyRules(session, request.extraTables);
      const sampled: TSampledValue[] = await sampleIdentifyingValues(session, { rules });
      const counts = await countRows(session);
      const result = await transformCopy(session, {
        odooVersion: request.odooVersion,
        extraTables: request.extraTables,
        ...(filestoreDirectory === undefined ? {} : { filestoreDir: filestoreDirectory }),
      });
      const rows = result.tables.reduce((sum, table) => sum + table.rows, 0);
      return {
        detail: `neutralized as Odoo ${request.odooVersion} (${result.neutralization.applied.length} statements of ${result.neutralization.installedModules.length} installed modules); ${rows} rows of ${result.tables.length} tables de-identified, ${result.attachmentsReplaced} attachments replaced, ${result.filesRemoved} files removed`,
        value: { transformed: result, sample: sampled, sourceCounts: counts },
      };
    });
    const verification = await step("verify", async () => {
      const verified = await verifyCopy(session, {
        sample,
        sourceCounts,
        rules: transformed.rules,
        ...(filestoreDirectory === undefined ? {} : { filestoreDir: filestoreDirectory }),
      });
      if (!verified.ok) {
        const failed = verified.checks.filter((check) => !check.ok);
        throw new PolicyViolation(
          `the de-identified copy failed verification (${failed.map((check) => check.name).join(", ")}): it is not used, and the target is as it was`,
          failed.map((check) => ({ path: check.name, message: check.detail })),
        );
      }
      return {
        detail: `${verified.checks.length} checks passed: ${verified.checks.map((check) => check.name).join(", ")}; none of ${verified.sampled} sampled values in ${verified.scannedColumns} text columns`,
        value: verified,
      };
    });
    return {
      neutralized: [...new Set(transformed.neutralization.applied.map((applied) => applied.module))],
      tables: transformed.tables.map((table) => ({ table: table.table, rows: table.rows })),
      attachmentsReplaced: transformed.attachmentsReplaced,
      filesRemoved: transformed.filesRemoved,
      verification,
    };
  } finally {
    await session.end().catch(() => undefined);
  }
}

/**
 * Drops every database of a restored copy but the one it is a copy of: a copy of a shared
 * cluster would otherwise carry its neighbours' untreated data into a de-identified copy.
 */
export async function keepOnlyDatabase(access: Omit<TAdminAccess, "caPath">, database: string): Promise<string[]> {
  const admin = await connectAdmin(access.cluster, access.adminPassword, access.caPem);
  try {
    const { rows } = await admin.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1') AND datname <> $1 ORDER BY 1",
      [database],
    );
    for (const { datname } of rows) await admin.query(`DROP DATABASE ${pg.escapeIdentifier(datname)} WITH (FORCE)`);
    return rows.map((row) => row.datname);
  } finally {
    await admin.end();
  }
}
