// bench/deidentify: an Odoo 17 database of 1,000,000 partners (plus staff, chatter, tracking and
// attachments in a filestore), made PHI-safe three ways on identical copies (CREATE DATABASE …
// TEMPLATE): carehost's transformCopy (neutralize, de-identify, attachments, filestore prune, one
// transaction); the same UPDATE statements run by hand, one per table; and row by row from Node
// (SELECT, then one UPDATE per row) on a sample, extrapolated to every row. Prints times and ratios.
// Target: carehost within 1.5x of the hand-written set-based UPDATEs.
//
// Run: npx tsx bench/deidentify/deidentify-bench.ts [--partners 1000000] [--attachment-mb 1024] [--row-sample 2000]
import { cp } from "node:fs/promises";
import { parseArgs } from "node:util";
import { copyRules, ruleStatement } from "../../src/copies/copies-deidentify.js";
import { drawCopyKey, installPseudonymFunctions } from "../../src/copies/copies-pseudonym.js";
import { readColumns } from "../../src/copies/copies-sql.js";
import { transformCopy } from "../../src/copies/copies-transform.js";
import { createOdooDatabase, fillOdooFixture, FIRST_PATIENT_ID, tempDirectory } from "../../test/odoo-people.js";

const { values } = parseArgs({
  options: {
    partners: { type: "string", default: "1000000" },
    "attachment-mb": { type: "string", default: "1024" },
    "row-sample": { type: "string", default: "2000" },
  },
});
const PARTNERS = Number(values.partners);
const ATTACHMENT_BYTES = 512 * 1024;
const ATTACHMENTS = Math.floor((Number(values["attachment-mb"]) * 1024 * 1024) / ATTACHMENT_BYTES);
const ROW_SAMPLE = Number(values["row-sample"]);
const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;

const source = await createOdooDatabase();
const sourceFilestore = await tempDirectory("carehost-bench-filestore-");
try {
  const started = process.hrtime.bigint();
  const filler = await source.connect();
  await fillOdooFixture(filler, {
    patients: PARTNERS,
    attachments: ATTACHMENTS,
    attachmentBytes: ATTACHMENT_BYTES,
    filestoreDir: sourceFilestore.path,
  });
  await filler.query("VACUUM ANALYZE");
  await filler.end();
  console.log(
    `fixture: ${PARTNERS.toLocaleString()} patients, ${ATTACHMENTS} attachments of ${ATTACHMENT_BYTES / 1024} KB (${values["attachment-mb"]} MB) in ${seconds(started).toFixed(1)} s`,
  );

  const withCopy = async <T>(
    fn: (client: Awaited<ReturnType<typeof source.connect>>, filestore: string) => Promise<T>,
  ) => {
    const copy = await createOdooDatabase(source.name);
    const filestore = await tempDirectory("carehost-bench-copy-");
    try {
      await cp(sourceFilestore.path, filestore.path, { recursive: true });
      const client = await copy.connect();
      return await fn(client, filestore.path);
    } finally {
      await copy.dispose();
      await filestore.remove();
    }
  };

  // carehost
  const carehost = await withCopy(async (client, filestore) => {
    const start = process.hrtime.bigint();
    const result = await transformCopy(client, { odooVersion: "17.0", filestoreDir: filestore });
    return { seconds: seconds(start), rows: result.tables.reduce((sum, table) => sum + table.rows, 0), result };
  });
  console.log(
    `carehost transformCopy:           ${carehost.seconds.toFixed(2)} s (${carehost.rows.toLocaleString()} rows de-identified, ${carehost.result.attachmentsReplaced} attachments, ${carehost.result.filesRemoved} files removed)`,
  );

  // By hand, set-based: the same UPDATE statements, one per table, in one transaction.
  const hand = await withCopy(async (client) => {
    const rules = await copyRules(client, []);
    const columns = await readColumns(client);
    const statements = rules.flatMap((rule) => {
      const statement = ruleStatement(rule, columns.get(rule.table));
      return statement === undefined ? [] : [statement.sql];
    });
    await installPseudonymFunctions(client);
    const start = process.hrtime.bigint();
    await client.query("BEGIN");
    await drawCopyKey(client);
    for (const sql of statements) await client.query(sql);
    await client.query("COMMIT");
    return { seconds: seconds(start) };
  });
  console.log(`by hand, one UPDATE per table:    ${hand.seconds.toFixed(2)} s (the pseudonym UPDATEs only)`);

  // By hand, row by row: the partner UPDATE for one id at a time, on a sample, extrapolated.
  const rowByRow = await withCopy(async (client) => {
    const rules = await copyRules(client, []);
    const columns = await readColumns(client);
    const partnerRule = rules.find((rule) => rule.table === "res_partner")!;
    const statement = ruleStatement({ ...partnerRule, where: "id = $1" }, columns.get("res_partner"))!;
    await installPseudonymFunctions(client);
    const { rows } = await client.query<{ id: number }>(
      `SELECT id FROM res_partner WHERE id >= ${FIRST_PATIENT_ID} ORDER BY id LIMIT ${ROW_SAMPLE}`,
    );
    const start = process.hrtime.bigint();
    await client.query("BEGIN");
    await drawCopyKey(client);
    for (const row of rows) await client.query(statement.sql, [row.id]);
    await client.query("COMMIT");
    const perRow = seconds(start) / rows.length;
    return { perRow, extrapolated: perRow * carehost.rows };
  });
  console.log(
    `by hand, row by row (extrapolated): ${rowByRow.extrapolated.toFixed(2)} s (${(rowByRow.perRow * 1e6).toFixed(0)} µs per row over ${ROW_SAMPLE} rows, x ${carehost.rows.toLocaleString()} rows)`,
  );
  console.log(
    `ratios: carehost / set-based = ${(carehost.seconds / hand.seconds).toFixed(2)}x (target <= 1.5x); row-by-row / carehost = ${(rowByRow.extrapolated / carehost.seconds).toFixed(1)}x`,
  );
} finally {
  await source.dispose();
  await sourceFilestore.remove();
}
