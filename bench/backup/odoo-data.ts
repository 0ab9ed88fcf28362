// Odoo-sized data for bench/backup: a database of many tables with indexes, and a filestore laid
// out as Odoo lays it out (<data_dir>/filestore/<db>/<2 hex>/<sha1 of the content>), mostly
// already-compressed attachments (scans, PDFs, photos) with some text (exports, XML, mail).
import { createHash, randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type pg from "pg";

export const TABLES = 40;

/** Creates TABLES tables of Odoo-like rows (text, numbers, dates) with two indexes each, about `bytes` in all. */
export async function generateDatabase(client: pg.Client, bytes: number): Promise<void> {
  const rowsPerTable = Math.ceil(bytes / TABLES / 420);
  for (let table = 0; table < TABLES; table += 1) {
    await client.query(
      `CREATE TABLE model_${table} (id bigserial PRIMARY KEY, name text, ref text, amount numeric(14,2), state text, partner_id int, create_date timestamptz, note text)`,
    );
    await client.query(
      `INSERT INTO model_${table} (name, ref, amount, state, partner_id, create_date, note)
       SELECT 'Record ' || g, md5(g::text), (g % 100000) / 100.0, (ARRAY['draft','posted','cancel'])[1 + g % 3], g % 5000, now() - (g || ' minutes')::interval, repeat(md5((g * 7)::text), 9)
       FROM generate_series(1, ${rowsPerTable}) AS g`,
    );
    await client.query(`CREATE INDEX ON model_${table} (partner_id, state)`);
    await client.query(`CREATE INDEX ON model_${table} (create_date)`);
  }
}

/** A day of work: about 1% of the rows of every table changed. */
export async function changeDatabase(client: pg.Client): Promise<void> {
  for (let table = 0; table < TABLES; table += 1) {
    await client.query(
      `UPDATE model_${table} SET state = 'posted', amount = amount + 1 WHERE id % 100 = ${table % 100}`,
    );
  }
}

const TEXT_LINE =
  '<record model="account.move.line"><field name="name">Invoice line for supplies</field><field name="amount">42.00</field></record>\n';

/** One attachment: three in four incompressible (already-compressed formats), one in four text. */
function attachment(size: number, index: number): Buffer {
  if (index % 4 !== 0) return randomBytes(size);
  return Buffer.from(
    TEXT_LINE.repeat(Math.ceil(size / TEXT_LINE.length)).slice(0, size - 12) + String(index).padStart(12, "0"),
  );
}

/** Writes attachments of 16 KB to 2 MB into `directory` until about `bytes`; returns the count and bytes written. */
export async function generateFilestore(
  directory: string,
  bytes: number,
  firstIndex = 0,
): Promise<{ files: number; bytes: number }> {
  let written = 0;
  let files = 0;
  for (let index = firstIndex; written < bytes; index += 1) {
    // Sizes spread over two orders of magnitude, as scans and photos are.
    const size = Math.round(16 * 1024 * 2 ** (((index * 7919) % 8) * (7 / 8)));
    const content = attachment(size, index);
    const sha1 = createHash("sha1").update(content).digest("hex");
    await mkdir(join(directory, sha1.slice(0, 2)), { recursive: true });
    await writeFile(join(directory, sha1.slice(0, 2), sha1), content);
    written += size;
    files += 1;
  }
  return { files, bytes: written };
}
