// De-identification of a copy: one UPDATE per table over every row that holds people's data, each
// identifying column replaced by its pseudonym (copies-pseudonym.ts), computed by the copy's server.
// The caller holds the transaction: the key lives in it and dies with it.
import { ValidationError } from "../lib/errors.js";
import type { TPseudonymKind } from "./copies-pseudonym.js";
import { drawCopyKey, installPseudonymFunctions, pseudonymExpression } from "./copies-pseudonym.js";
import type { TTableRule } from "./copies-rules.js";
import { ODOO_RULES } from "./copies-rules.js";
import type { TCopyConnection } from "./copies-sql.js";
import { quoteIdent, readColumns } from "./copies-sql.js";

/** A custom module's table declared in the spec (environments[].deidentify.tables[]). */
export type TExtraTable = {
  readonly table: string;
  readonly model?: string;
  readonly columns: readonly { readonly name: string; readonly kind: TPseudonymKind }[];
};

export type TDeidentifyTableResult = {
  readonly table: string;
  readonly columns: readonly string[];
  readonly rows: number;
};

const TEXT_TYPES = new Set(["character varying", "text", "character", "jsonb"]);
const DATE_TYPES = new Set(["date", "timestamp without time zone", "timestamp with time zone"]);

const kindFits = (kind: TPseudonymKind, dataType: string): boolean =>
  kind === "clear" || (kind === "date" ? DATE_TYPES.has(dataType) : TEXT_TYPES.has(dataType));

/** The spec's tables as rules, refused with the field path when the copy has no such table or column. */
export const extraTableRules = (
  extraTables: readonly TExtraTable[],
  columns: ReadonlyMap<string, ReadonlyMap<string, string>>,
  path = "deidentify.tables",
): TTableRule[] =>
  extraTables.map((extra, tableIndex) => {
    const table = columns.get(extra.table);
    if (table === undefined)
      throw new ValidationError(`${path}[${tableIndex}].table: the copy has no table ${JSON.stringify(extra.table)}`, [
        { path: `${path}[${tableIndex}].table`, message: `no table ${JSON.stringify(extra.table)}` },
      ]);
    return {
      table: extra.table,
      ...(extra.model === undefined ? {} : { model: extra.model }),
      columns: extra.columns.map((column, columnIndex) => {
        const columnPath = `${path}[${tableIndex}].columns[${columnIndex}]`;
        const dataType = table.get(column.name);
        if (dataType === undefined)
          throw new ValidationError(
            `${columnPath}.name: table ${extra.table} has no column ${JSON.stringify(column.name)}`,
            [{ path: `${columnPath}.name`, message: `no column ${JSON.stringify(column.name)}` }],
          );
        if (!kindFits(column.kind, dataType))
          throw new ValidationError(
            `${columnPath}.kind: ${extra.table}.${column.name} is ${dataType}, which a ${column.kind} pseudonym cannot replace`,
            [{ path: `${columnPath}.kind`, message: `${JSON.stringify(column.kind)} does not fit ${dataType}` }],
          );
        return { column: column.name, kind: column.kind };
      }),
    };
  });

/** The UPDATE a rule makes on this copy (only the columns it has), or undefined when nothing applies. */
export const ruleStatement = (
  rule: TTableRule,
  tableColumns: ReadonlyMap<string, string> | undefined,
): { sql: string; columns: string[] } | undefined => {
  if (tableColumns === undefined) return undefined;
  const assignments: [string, string][] = [];
  for (const { column, kind } of rule.columns) {
    const dataType = tableColumns.get(column);
    if (dataType !== undefined && kindFits(kind, dataType))
      assignments.push([column, pseudonymExpression(kind, quoteIdent(column), dataType)]);
  }
  for (const [column, expression] of Object.entries(rule.derived ?? {}))
    if (tableColumns.has(column)) assignments.push([column, expression]);
  if (assignments.length === 0) return undefined;
  const set = assignments.map(([column, expression]) => `${quoteIdent(column)} = ${expression}`).join(",\n       ");
  return {
    sql: `UPDATE ${quoteIdent(rule.table)}\n   SET ${set}${rule.where === undefined ? "" : `\n WHERE ${rule.where}`}`,
    columns: assignments.map(([column]) => column),
  };
};

/** Every rule that applies to this copy: Odoo's, then the spec's. */
export const copyRules = async (
  client: TCopyConnection,
  extraTables: readonly TExtraTable[],
): Promise<TTableRule[]> => {
  const columns = await readColumns(client);
  return [...ODOO_RULES, ...extraTableRules(extraTables, columns)];
};

/** Replaces people's data in every table a rule covers; inside the caller's transaction. */
export const deidentifyTables = async (
  client: TCopyConnection,
  rules: readonly TTableRule[],
): Promise<TDeidentifyTableResult[]> => {
  await installPseudonymFunctions(client);
  await drawCopyKey(client);
  const columns = await readColumns(client);
  const results: TDeidentifyTableResult[] = [];
  for (const rule of rules) {
    const statement = ruleStatement(rule, columns.get(rule.table));
    if (statement === undefined) continue;
    const result = await client.query(statement.sql);
    results.push({ table: rule.table, columns: statement.columns, rows: result.rowCount ?? 0 });
  }
  return results;
};
