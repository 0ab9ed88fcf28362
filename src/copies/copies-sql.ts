// What the copy's database holds, read from its catalog: the transformation applies a rule only to
// the tables and columns that exist, because Odoo's schema differs by version and by the modules
// installed, and a statement naming a missing column would abort the whole run.
import type pg from "pg";

/** The one thing src/copies needs of a connection: a dedicated client (pg.Client or a pool's), never shared mid-run. */
export type TCopyConnection = Pick<pg.ClientBase, "query">;

/** A PostgreSQL identifier, quoted so that any name (a column called "user") is read as a name. */
export const quoteIdent = (name: string): string => `"${name.replaceAll('"', '""')}"`;

/** A SQL string literal; only for text carehost writes itself (placeholders, constants), never for input. */
export const quoteLiteral = (value: string): string => `'${value.replaceAll("'", "''")}'`;

export type TColumnInfo = { readonly table: string; readonly column: string; readonly dataType: string };

/** Every column of every ordinary table in the public schema, by table. */
export const readColumns = async (client: TCopyConnection): Promise<Map<string, Map<string, string>>> => {
  const { rows } = await client.query<{ table_name: string; column_name: string; data_type: string }>(
    `SELECT c.table_name, c.column_name, c.data_type
       FROM information_schema.columns c
       JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
      WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
      ORDER BY c.table_name, c.ordinal_position`,
  );
  const tables = new Map<string, Map<string, string>>();
  for (const row of rows) {
    const columns = tables.get(row.table_name) ?? new Map<string, string>();
    columns.set(row.column_name, row.data_type);
    tables.set(row.table_name, columns);
  }
  return tables;
};

/** Every user table of the database (all schemas but PostgreSQL's own), schema-qualified and quoted. */
export const readUserTables = async (
  client: TCopyConnection,
): Promise<{ schema: string; table: string; qualified: string }[]> => {
  const { rows } = await client.query<{ schemaname: string; relname: string }>(
    `SELECT n.nspname AS schemaname, c.relname
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
        AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
      ORDER BY 1, 2`,
  );
  return rows.map((row) => ({
    schema: row.schemaname,
    table: row.relname,
    qualified: `${quoteIdent(row.schemaname)}.${quoteIdent(row.relname)}`,
  }));
};
