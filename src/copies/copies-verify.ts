// Verification of a copy before anyone may use it, from what the copy holds (never from what the
// transformation reports): nothing left that sends mail, runs jobs or takes payments; no sampled
// identifying value of production in any text column of any table; as many rows as the source.
// A failure names the table.column where a value was found and which kind of value it was, never
// the value: the result is recorded and shown, and must not become a leak of its own.
import { AUTOVACUUM_XMLID, DEAD_MAIL_SERVER, NEUTRALIZATION_PARAMETERS } from "./copies-neutralize.js";
import type { TTableRule } from "./copies-rules.js";
import { ODOO_RULES } from "./copies-rules.js";
import { PLACEHOLDERS, targetAttachmentsSql, unreferencedFiles } from "./copies-attachments.js";
import type { TCopyConnection } from "./copies-sql.js";
import { quoteIdent, readColumns, readUserTables } from "./copies-sql.js";

/** One identifying value of the source and the column it came from; held in memory only. */
export type TSampledValue = { readonly value: string; readonly origin: string };

export type TCheck = { readonly name: string; readonly ok: boolean; readonly detail: string };
export type TFinding = {
  readonly table: string;
  readonly column: string;
  readonly rows: number;
  readonly origin: string;
};
export type TVerification = {
  readonly ok: boolean;
  readonly checks: readonly TCheck[];
  /** Where sampled values were found: table.column, how many rows, and which source column the value came from. */
  readonly findings: readonly TFinding[];
  readonly sampled: number;
  readonly scannedColumns: number;
};

// Below these lengths a value ("Li", "12 3") turns up inside unrelated text by chance.
const MIN_VALUE_LENGTH = 6;
const MIN_PHONE_DIGITS = 7;
// Cities and postal codes are replaced but not sampled: the organization's own addresses share them.
const NEVER_SAMPLED = new Set(["date", "clear", "html", "text", "city", "zip"]);

/**
 * A random sample of identifying values of the source (before any transformation): for each
 * rule's column of a kind that identifies on its own (names, emails, phones, addresses,
 * identifiers), up to `perColumn` distinct values. Free text and dates are not sampled: they are
 * replaced whole, and short fragments of them match unrelated text.
 */
export const sampleIdentifyingValues = async (
  source: TCopyConnection,
  { rules = ODOO_RULES, perColumn = 25 }: { rules?: readonly TTableRule[]; perColumn?: number } = {},
): Promise<TSampledValue[]> => {
  const columns = await readColumns(source);
  const sample: TSampledValue[] = [];
  for (const rule of rules) {
    const table = columns.get(rule.table);
    if (table === undefined) continue;
    const sampled = rule.columns.filter(
      ({ column, kind }) =>
        !NEVER_SAMPLED.has(kind) && table.get(column) !== undefined && table.get(column) !== "jsonb",
    );
    const derived = Object.keys(rule.derived ?? {}).filter((column) => column === "login" && table.has(column));
    const wanted = [
      ...sampled.map(({ column, kind }) => ({ column, kind })),
      ...derived.map((column) => ({ column, kind: "identifier" })),
    ];
    for (const { column, kind } of wanted) {
      const quoted = quoteIdent(column);
      const { rows } = await source.query<{ value: string }>(
        `SELECT value FROM (
           SELECT DISTINCT btrim(${quoted}::text) AS value FROM ${quoteIdent(rule.table)}
            WHERE ${quoted} IS NOT NULL ${rule.where === undefined ? "" : `AND ${rule.where}`}
              ${rule.sampleWhere === undefined ? "" : `AND ${rule.sampleWhere}`}
              AND length(btrim(${quoted}::text)) >= ${MIN_VALUE_LENGTH}
              ${kind === "phone" ? `AND length(regexp_replace(${quoted}::text, '[^0-9]', '', 'g')) >= ${MIN_PHONE_DIGITS}` : ""}
         ) s ORDER BY random() LIMIT ${perColumn}`,
      );
      for (const row of rows) sample.push({ value: row.value, origin: `${rule.table}.${column}` });
    }
  }
  return sample;
};

// Rows neutralization itself adds or removes (the dead mail server, the flag, the web push keys)
// are left out of both sides' counts, so the counts of a copy neutralized once or twice equal the source's.
const NEUTRALIZATION_ROWS: Readonly<Record<string, string>> = {
  "public.ir_mail_server": `name <> '${DEAD_MAIL_SERVER.name}'`,
  "public.ir_config_parameter": `key NOT IN (${NEUTRALIZATION_PARAMETERS.map((key) => `'${key}'`).join(", ")})`,
};

/** Exact row counts of every user table, keyed schema.table (rows neutralization owns left out). */
export const countRows = async (client: TCopyConnection): Promise<Record<string, number>> => {
  const counts: Record<string, number> = {};
  for (const table of await readUserTables(client)) {
    const key = `${table.schema}.${table.table}`;
    const where = NEUTRALIZATION_ROWS[key];
    const { rows } = await client.query<{ count: string }>(
      `SELECT count(*) AS count FROM ${table.qualified}${where === undefined ? "" : ` WHERE ${where}`}`,
    );
    counts[key] = Number(rows[0]?.count ?? 0);
  }
  return counts;
};

const escapeRegex = (value: string): string => value.replace(/[\\^$.|?*+()[\]{}]/g, "\\$&");
/** A case-insensitive PostgreSQL ARE matching any of the values as a whole token (not inside a longer word or number). */
export const sampleRegex = (values: readonly string[]): string =>
  `(^|[^[:alnum:]])(${values.map(escapeRegex).join("|")})([^[:alnum:]]|$)`;

type TScannedColumn = { schema: string; table: string; column: string };

/** Every text-like column (text, varchar, char, citext, json, jsonb, and arrays of them) of every user table. */
const textColumns = async (client: TCopyConnection): Promise<TScannedColumn[]> => {
  const { rows } = await client.query<{ schema: string; table: string; column: string }>(
    `SELECT n.nspname AS schema, c.relname AS table, a.attname AS column
       FROM pg_attribute a
       JOIN pg_class c ON c.oid = a.attrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_type t ON t.oid = a.atttypid
       LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
      WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped
        AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
        AND (t.typcategory = 'S' OR t.typname IN ('json', 'jsonb') OR e.typcategory = 'S' OR e.typname IN ('json', 'jsonb'))
      ORDER BY 1, 2, a.attnum`,
  );
  return rows;
};

/** Scans every text column of every user table for the sampled values, one pass per table. */
export const scanForSample = async (
  client: TCopyConnection,
  sample: readonly TSampledValue[],
): Promise<{ findings: TFinding[]; scannedColumns: number }> => {
  const columns = await textColumns(client);
  if (sample.length === 0) return { findings: [], scannedColumns: columns.length };
  const regex = sampleRegex(sample.map((item) => item.value));
  const byTable = new Map<string, TScannedColumn[]>();
  for (const column of columns) {
    const key = `${column.schema}.${column.table}`;
    byTable.set(key, [...(byTable.get(key) ?? []), column]);
  }
  const findings: TFinding[] = [];
  for (const tableColumns of byTable.values()) {
    const { schema, table } = tableColumns[0]!;
    const qualified = `${quoteIdent(schema)}.${quoteIdent(table)}`;
    const counts = tableColumns
      .map(({ column }, index) => `count(*) FILTER (WHERE ${quoteIdent(column)}::text ~* $1) AS c${index}`)
      .join(", ");
    const { rows } = await client.query<Record<string, string>>(`SELECT ${counts} FROM ${qualified}`, [regex]);
    for (const [index, { column }] of tableColumns.entries()) {
      const found = Number(rows[0]?.[`c${index}`] ?? 0);
      if (found === 0) continue;
      // Which source column the value came from: found by trying the sample one value at a time, on this column only.
      let origin = "a sampled value";
      for (const item of sample) {
        const hit = await client.query(`SELECT 1 FROM ${qualified} WHERE ${quoteIdent(column)}::text ~* $1 LIMIT 1`, [
          sampleRegex([item.value]),
        ]);
        if (hit.rowCount !== 0) {
          origin = item.origin;
          break;
        }
      }
      findings.push({ table: schema === "public" ? table : `${schema}.${table}`, column, rows: found, origin });
    }
  }
  return { findings, scannedColumns: columns.length };
};

const scalar = async (client: TCopyConnection, sql: string): Promise<number> =>
  Number((await client.query<{ n: string }>(sql)).rows[0]?.n ?? 0);

export type TVerifyInput = {
  readonly sample: readonly TSampledValue[];
  readonly sourceCounts: Readonly<Record<string, number>>;
  readonly rules?: readonly TTableRule[];
  readonly filestoreDir?: string;
};

/** Checks the copy; ok only when every check passed and the scan found nothing. */
export const verifyCopy = async (copy: TCopyConnection, input: TVerifyInput): Promise<TVerification> => {
  const columns = await readColumns(copy);
  const checks: TCheck[] = [];
  const check = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });

  if (columns.has("ir_mail_server")) {
    const live = await scalar(
      copy,
      `SELECT count(*) AS n FROM ir_mail_server WHERE active AND NOT (name = '${DEAD_MAIL_SERVER.name}' AND smtp_host = '${DEAD_MAIL_SERVER.host}')`,
    );
    const dead = await scalar(
      copy,
      `SELECT count(*) AS n FROM ir_mail_server WHERE active AND name = '${DEAD_MAIL_SERVER.name}' AND smtp_host = '${DEAD_MAIL_SERVER.host}'`,
    );
    check(
      "mail servers",
      live === 0 && dead === 1,
      live === 0 && dead === 1
        ? "only the dead mail server is active"
        : `ir_mail_server: ${live} active server(s) besides the dead one, ${dead} dead one(s) active`,
    );
  }
  if (columns.has("ir_cron")) {
    const crons = await scalar(
      copy,
      `SELECT count(*) AS n FROM ir_cron WHERE active AND id NOT IN (SELECT res_id FROM ir_model_data WHERE model = 'ir.cron' AND module = '${AUTOVACUUM_XMLID.module}' AND name = '${AUTOVACUUM_XMLID.name}' AND res_id IS NOT NULL)`,
    );
    check(
      "scheduled actions",
      crons === 0,
      crons === 0 ? "no active cron but the autovacuum" : `ir_cron: ${crons} active cron(s) besides the autovacuum`,
    );
  }
  if (columns.has("fetchmail_server")) {
    const fetchmail = await scalar(copy, "SELECT count(*) AS n FROM fetchmail_server WHERE active");
    check(
      "incoming mail",
      fetchmail === 0,
      fetchmail === 0 ? "no active incoming mail server" : `fetchmail_server: ${fetchmail} active`,
    );
  }
  const provider = columns.get("payment_provider");
  if (provider !== undefined) {
    const condition = provider.has("is_live") ? "is_live" : "state = 'enabled'";
    const enabled = await scalar(copy, `SELECT count(*) AS n FROM payment_provider WHERE ${condition}`);
    check(
      "payment providers",
      enabled === 0,
      enabled === 0 ? "no payment provider enabled" : `payment_provider: ${enabled} enabled`,
    );
  }
  if (columns.has("ir_config_parameter")) {
    const flag = await scalar(
      copy,
      "SELECT count(*) AS n FROM ir_config_parameter WHERE key = 'database.is_neutralized' AND lower(value) = 'true'",
    );
    check(
      "neutralized flag",
      flag === 1,
      flag === 1 ? "database.is_neutralized is set" : "ir_config_parameter: database.is_neutralized is not set",
    );
  }

  const copyCounts = await countRows(copy);
  const mismatched = Object.entries(input.sourceCounts)
    .map(([table, expected]) => ({ table, expected, actual: copyCounts[table] }))
    .filter(({ expected, actual }) => expected !== actual);
  const extra = Object.keys(copyCounts).filter((table) => input.sourceCounts[table] === undefined);
  check(
    "row counts",
    mismatched.length === 0 && extra.length === 0,
    mismatched.length === 0 && extra.length === 0
      ? `${Object.keys(copyCounts).length} tables, every count equal to the source's`
      : [
          ...mismatched.map(
            ({ table, expected, actual }) => `${table}: ${actual ?? "missing"} rows, source had ${expected}`,
          ),
          ...extra.map((table) => `${table}: not in the source`),
        ].join("; "),
  );

  if (input.filestoreDir !== undefined && columns.has("ir_attachment")) {
    const orphans = await unreferencedFiles(copy, input.filestoreDir);
    check(
      "filestore",
      orphans.length === 0,
      orphans.length === 0
        ? "every file is referenced by an attachment"
        : `${orphans.length} file(s) no attachment references`,
    );
  }
  const targets = await targetAttachmentsSql(copy, input.rules ?? ODOO_RULES);
  if (targets !== undefined) {
    const sha1s = Object.values(PLACEHOLDERS)
      .map((value) => `'${value.sha1}'`)
      .join(", ");
    const kept = await scalar(
      copy,
      `SELECT count(*) AS n FROM ir_attachment WHERE id IN (${targets}) AND (store_fname IS NOT NULL OR db_datas IS NOT NULL) AND checksum NOT IN (${sha1s})`,
    );
    check(
      "attachments",
      kept === 0,
      kept === 0
        ? "attachments of de-identified records hold placeholders"
        : `ir_attachment: ${kept} attachment(s) of de-identified records keep their contents`,
    );
  }

  const { findings, scannedColumns } = await scanForSample(copy, input.sample);
  check(
    "identifying values",
    findings.length === 0,
    findings.length === 0
      ? `none of ${input.sample.length} sampled values in ${scannedColumns} text columns`
      : findings
          .map(
            (finding) => `${finding.table}.${finding.column}: ${finding.rows} row(s) hold a value of ${finding.origin}`,
          )
          .join("; "),
  );
  return { ok: checks.every((item) => item.ok), checks, findings, sampled: input.sample.length, scannedColumns };
};
