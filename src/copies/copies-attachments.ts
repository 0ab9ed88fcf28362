// Attachments of the people whose data is de-identified: their contents (in the database's db_datas
// or in the filestore file store_fname names), names, descriptions and extracted text are replaced.
// Odoo's filestore is content-addressed (<2 hex>/<sha1>) and shares one file between attachments
// with equal contents, so every attachment pointing at a replaced file is replaced too, and the
// placeholders are files of their own: one per kind, written once, shared by every replaced row.
// Files no attachment references any more (the replaced ones, and those production had not yet
// garbage-collected) are removed from the copy's filestore after the transaction commits.
import { createHash } from "node:crypto";
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { OWN_COMPANY_PARTNERS } from "./copies-rules.js";
import type { TTableRule } from "./copies-rules.js";
import type { TCopyConnection } from "./copies-sql.js";
import { quoteLiteral, readColumns } from "./copies-sql.js";

// A 1x1 transparent PNG, a one-page empty PDF and a line of text: valid files of the three kinds an
// Odoo client previews, so the copy's views still render.
const PNG = Buffer.from(
  "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082",
  "hex",
);
const PDF = Buffer.from(
  "%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n",
);
const TEXT = Buffer.from("This attachment was replaced when this copy was de-identified by carehost.\n");

type TPlaceholder = { readonly bytes: Buffer; readonly sha1: string; readonly storeFname: string };
const placeholder = (bytes: Buffer): TPlaceholder => {
  const sha1 = createHash("sha1").update(bytes).digest("hex");
  return { bytes, sha1, storeFname: `${sha1.slice(0, 2)}/${sha1}` };
};
export const PLACEHOLDERS = { image: placeholder(PNG), pdf: placeholder(PDF), other: placeholder(TEXT) } as const;

const FAMILY =
  "CASE WHEN a.mimetype LIKE 'image/%' THEN 'image' WHEN a.mimetype = 'application/pdf' THEN 'pdf' ELSE 'other' END";
const byFamily = (pick: (value: TPlaceholder) => string): string =>
  `CASE ${FAMILY} ${Object.entries(PLACEHOLDERS)
    .map(([family, value]) => `WHEN '${family}' THEN ${pick(value)}`)
    .join(" ")} END`;

/**
 * The attachments that belong to de-identified records: those of the rules' models (an own
 * company's partner excepted, as in res_partner), those of chatter messages, and every attachment
 * sharing a filestore file with one of them.
 */
export const targetAttachmentsSql = async (
  client: TCopyConnection,
  rules: readonly TTableRule[],
): Promise<string | undefined> => {
  const columns = await readColumns(client);
  if (!columns.has("ir_attachment")) return undefined;
  const models = [...new Set(rules.flatMap((rule) => (rule.model === undefined ? [] : [rule.model])))];
  const conditions = models.map((model) =>
    model === "res.partner" && columns.has("res_company")
      ? `(res_model = 'res.partner' AND res_id NOT IN (${OWN_COMPANY_PARTNERS}))`
      : `res_model = ${quoteLiteral(model)}`,
  );
  if (columns.has("message_attachment_rel"))
    conditions.push("id IN (SELECT attachment_id FROM message_attachment_rel)");
  if (conditions.length === 0) return undefined;
  const direct = `SELECT id, store_fname FROM ir_attachment WHERE ${conditions.join(" OR ")}`;
  return `WITH direct AS (${direct})
          SELECT id FROM direct
          UNION
          SELECT id FROM ir_attachment WHERE store_fname IN (SELECT store_fname FROM direct WHERE store_fname IS NOT NULL)`;
};

export type TAttachmentResult = { readonly replaced: number };

/** Replaces the target attachments' contents and metadata; inside the caller's transaction (pseudonym functions installed). */
export const replaceAttachments = async (
  client: TCopyConnection,
  rules: readonly TTableRule[],
  filestoreDir: string | undefined,
): Promise<TAttachmentResult> => {
  const targets = await targetAttachmentsSql(client, rules);
  if (targets === undefined) return { replaced: 0 };
  await client.query(`CREATE TEMP TABLE carehost_attachment_targets ON COMMIT DROP AS ${targets}`);
  await client.query("ALTER TABLE carehost_attachment_targets ADD PRIMARY KEY (id)");
  const stored = await client.query(
    `SELECT 1 FROM ir_attachment a JOIN carehost_attachment_targets t ON t.id = a.id WHERE a.store_fname IS NOT NULL LIMIT 1`,
  );
  if (stored.rowCount !== 0) {
    if (filestoreDir === undefined)
      throw new Error(
        "attachments of de-identified records are in the filestore, and no filestore directory was given",
      );
    for (const value of Object.values(PLACEHOLDERS)) {
      await mkdir(join(filestoreDir, value.sha1.slice(0, 2)), { recursive: true });
      await writeFile(join(filestoreDir, value.storeFname), value.bytes);
    }
  }
  const result = await client.query(
    `UPDATE ir_attachment a
        SET name = 'deidentified-' || lower(pg_temp.carehost_pseudo_identifier(a.name)) || coalesce(substring(a.name FROM '\\.[A-Za-z0-9]{1,8}$'), ''),
            description = pg_temp.carehost_pseudo_text(a.description),
            index_content = NULL,
            url = CASE WHEN a.url IS NULL THEN NULL ELSE 'https://deidentified.invalid/' END,
            mimetype = CASE WHEN a.mimetype LIKE 'image/%' THEN 'image/png' ELSE a.mimetype END,
            store_fname = CASE WHEN a.store_fname IS NULL THEN NULL ELSE ${byFamily((value) => quoteLiteral(value.storeFname))} END,
            db_datas = CASE WHEN a.db_datas IS NULL THEN NULL ELSE ${byFamily((value) => `'\\x${value.bytes.toString("hex")}'::bytea`)} END,
            checksum = CASE WHEN a.store_fname IS NULL AND a.db_datas IS NULL THEN a.checksum ELSE ${byFamily((value) => quoteLiteral(value.sha1))} END,
            file_size = CASE WHEN a.store_fname IS NULL AND a.db_datas IS NULL THEN a.file_size ELSE ${byFamily((value) => String(value.bytes.length))} END
       FROM carehost_attachment_targets t
      WHERE a.id = t.id`,
  );
  return { replaced: result.rowCount ?? 0 };
};

/** Files of the filestore that no attachment references, as store_fname spells them. */
export const unreferencedFiles = async (client: TCopyConnection, filestoreDir: string): Promise<string[]> => {
  const { rows } = await client.query<{ store_fname: string }>(
    "SELECT DISTINCT store_fname FROM ir_attachment WHERE store_fname IS NOT NULL",
  );
  const referenced = new Set(rows.map((row) => row.store_fname));
  const entries = await readdir(filestoreDir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(filestoreDir, join(entry.parentPath, entry.name)).split(sep).join("/"))
    .filter((name) => !referenced.has(name))
    .sort();
};

/** Removes from the copy's filestore every file no attachment references; after the transaction committed. */
export const pruneFilestore = async (client: TCopyConnection, filestoreDir: string): Promise<{ removed: number }> => {
  const orphans = await unreferencedFiles(client, filestoreDir);
  for (const name of orphans) await rm(join(filestoreDir, name), { force: true });
  return { removed: orphans.length };
};
