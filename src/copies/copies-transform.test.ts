// PHI-safe copies on the machine's PostgreSQL: an Odoo 17 fixture (test/odoo17-schema.sql) filled
// with generated people is the source; each test transforms a copy of it (CREATE DATABASE …
// TEMPLATE) and reads the result back from the copy's tables and filestore.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { cp, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type pg from "pg";
import {
  createOdooDatabase,
  fillOdooFixture,
  FIRST_PATIENT_ID,
  tempDirectory,
  type TOdooDatabase,
} from "../../test/odoo-people.js";
import { ValidationError } from "../lib/errors.js";
import { PLACEHOLDERS } from "./copies-attachments.js";
import { neutralizeCopy } from "./copies-neutralize.js";
import { drawCopyKey, installPseudonymFunctions } from "./copies-pseudonym.js";
import { makePhiSafeCopy, transformCopy } from "./copies-transform.js";
import { countRows, sampleIdentifyingValues, verifyCopy } from "./copies-verify.js";

const PATIENTS = 400;
type TRow = Record<string, unknown>;
const rows = async (client: pg.Client, sql: string): Promise<TRow[]> => (await client.query(sql)).rows as TRow[];
const byId = (list: TRow[]) => new Map(list.map((row) => [row.id as number, row]));

type TCopy = { db: TOdooDatabase; client: pg.Client; filestore: string; dispose(): Promise<void> };

void describe("PHI-safe copies of an Odoo 17 database", () => {
  let source: TOdooDatabase;
  let sourceFilestore: { path: string; remove: () => Promise<void> };

  before(async () => {
    source = await createOdooDatabase();
    sourceFilestore = await tempDirectory("carehost-filestore-");
    const client = await source.connect();
    await fillOdooFixture(client, { patients: PATIENTS, attachments: 40, filestoreDir: sourceFilestore.path });
    // Two patients sharing an email (a parent and child), for determinism across rows.
    await client.query(
      `UPDATE res_partner SET email = (SELECT email FROM res_partner WHERE id = ${FIRST_PATIENT_ID}) WHERE id = ${FIRST_PATIENT_ID + 1}`,
    );
    await client.query(`UPDATE res_partner SET email_normalized = email WHERE id = ${FIRST_PATIENT_ID + 1}`);
    // A custom module's table carehost does not know: a note per patient quoting their email.
    await client.query(`CREATE TABLE x_patient_note (id serial PRIMARY KEY, partner_id int4, note text, x_dob date)`);
    await client.query(
      `INSERT INTO x_patient_note (partner_id, note, x_dob) SELECT id, 'Called ' || email || ' about results', date '1970-03-04' FROM res_partner WHERE id >= ${FIRST_PATIENT_ID}`,
    );
    await client.end();
  });
  after(async () => {
    await source?.dispose();
    await sourceFilestore?.remove();
  });

  const makeCopy = async (): Promise<TCopy> => {
    const db = await createOdooDatabase(source.name);
    const filestore = await tempDirectory("carehost-copy-filestore-");
    await cp(sourceFilestore.path, filestore.path, { recursive: true });
    const client = await db.connect();
    return {
      db,
      client,
      filestore: filestore.path,
      dispose: async () => {
        await db.dispose();
        await filestore.remove();
      },
    };
  };
  const withSource = async <T>(fn: (client: pg.Client) => Promise<T>): Promise<T> => {
    const client = await source.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  };

  void it("neutralizes as Odoo 17's modules do: mail, crons, fetchmail, payment, delivery, IAP, OAuth, webhooks, website, flag", async () => {
    const copy = await makeCopy();
    try {
      await transformCopy(copy.client, { odooVersion: "17.0", filestoreDir: copy.filestore });
      const c = copy.client;
      assert.deepEqual(await rows(c, "SELECT name, smtp_host FROM ir_mail_server WHERE active ORDER BY id"), [
        { name: "neutralization - disable emails", smtp_host: "invalid" },
      ]);
      assert.deepEqual(await rows(c, "SELECT cron_name FROM ir_cron WHERE active"), [
        { cron_name: "Base: Auto-vacuum internal data" },
      ]);
      assert.deepEqual(await rows(c, "SELECT active FROM fetchmail_server"), [{ active: false }]);
      assert.deepEqual(await rows(c, "SELECT code, state FROM payment_provider ORDER BY id"), [
        { code: "stripe", state: "disabled" },
        { code: "demo", state: "test" },
        { code: "paypal", state: "disabled" },
      ]);
      assert.deepEqual(await rows(c, "SELECT DISTINCT prod_environment FROM delivery_carrier"), [
        { prod_environment: false },
      ]);
      assert.deepEqual(await rows(c, "SELECT account_token FROM iap_account ORDER BY id"), [
        { account_token: "a1b2c3d4e5+disabled" },
        { account_token: "f6e5d4c3+disabled" },
      ]);
      assert.deepEqual(await rows(c, "SELECT enabled FROM auth_oauth_provider"), [{ enabled: false }]);
      assert.deepEqual(await rows(c, `SELECT "trigger", active FROM base_automation ORDER BY id`), [
        { trigger: "on_webhook", active: false },
        { trigger: "on_create", active: true },
      ]);
      assert.deepEqual(await rows(c, "SELECT domain, cdn_activated, robots_txt FROM website"), [
        { domain: null, cdn_activated: false, robots_txt: "User-agent: *\nDisallow: /" },
      ]);
      assert.deepEqual(await rows(c, "SELECT active FROM ir_ui_view WHERE key = 'website.neutralize_ribbon'"), [
        { active: true },
      ]);
      assert.deepEqual(await rows(c, "SELECT mail_server_id FROM mail_template"), [{ mail_server_id: null }]);
      assert.deepEqual(
        await rows(
          c,
          "SELECT key, value FROM ir_config_parameter WHERE key LIKE 'database.%' OR key LIKE 'mail.web_push%'",
        ),
        [{ key: "database.is_neutralized", value: "True" }],
      );
    } finally {
      await copy.dispose();
    }
  });

  void it("runs only the statements of installed modules (ir_module_module state 'installed')", async () => {
    const copy = await makeCopy();
    try {
      await copy.client.query("UPDATE ir_module_module SET state = 'uninstalled' WHERE name NOT IN ('base', 'mail')");
      await copy.client.query("BEGIN");
      const result = await neutralizeCopy(copy.client, { odooVersion: "17.0" });
      await copy.client.query("COMMIT");
      assert.deepEqual(result.installedModules, ["base", "mail"]);
      assert.deepEqual([...new Set(result.applied.map((step) => step.module))], ["base", "mail"]);
      const c = copy.client;
      assert.deepEqual(await rows(c, "SELECT count(*)::int AS n FROM ir_mail_server WHERE active"), [{ n: 1 }]);
      assert.deepEqual(await rows(c, "SELECT state FROM payment_provider WHERE code = 'stripe'"), [
        { state: "enabled" },
      ]);
      assert.deepEqual(await rows(c, "SELECT account_token FROM iap_account ORDER BY id LIMIT 1"), [
        { account_token: "a1b2c3d4e5" },
      ]);
      assert.deepEqual(await rows(c, "SELECT enabled FROM auth_oauth_provider"), [{ enabled: true }]);
      assert.deepEqual(await rows(c, "SELECT domain FROM website"), [
        { domain: "https://patients.northwind-clinic.test" },
      ]);
      assert.deepEqual(await rows(c, "SELECT active FROM base_automation WHERE \"trigger\" = 'on_webhook'"), [
        { active: true },
      ]);
    } finally {
      await copy.dispose();
    }
  });

  void it("pseudonyms are HMAC-SHA256 under a key the copy's server draws, different per copy, gone with the transaction", async () => {
    const copy = await makeCopy();
    try {
      const c = copy.client;
      await installPseudonymFunctions(c);
      const keys: Buffer[] = [];
      for (let run = 0; run < 2; run += 1) {
        await c.query("BEGIN");
        await drawCopyKey(c);
        const [pads] = await rows(
          c,
          "SELECT current_setting('carehost.copy_ipad') AS ipad, current_setting('carehost.copy_opad') AS opad",
        );
        const ipad = Buffer.from(pads!.ipad as string, "hex");
        const opad = Buffer.from(pads!.opad as string, "hex");
        const key = Buffer.from(ipad.map((byte) => byte ^ 0x36)).subarray(0, 32);
        assert.deepEqual(Buffer.from(opad.map((byte) => byte ^ 0x5c)).subarray(0, 32), key);
        assert.deepEqual(Buffer.from(ipad.map((byte) => byte ^ 0x36)).subarray(32), Buffer.alloc(32));
        const [hmac] = await rows(c, "SELECT encode(pg_temp.carehost_hmac('email', 'jane@clinic.test'), 'hex') AS h");
        assert.equal(hmac!.h, createHmac("sha256", key).update("email\x1fjane@clinic.test").digest("hex"));
        keys.push(key);
        await c.query("COMMIT");
        assert.deepEqual(await rows(c, "SELECT current_setting('carehost.copy_ipad', true) AS ipad"), [{ ipad: "" }]);
      }
      assert.notDeepEqual(keys[0], keys[1]);
    } finally {
      await copy.dispose();
    }
  });

  void it("replaces people's data with deterministic pseudonyms that keep their formats, attachments and filestore included", async () => {
    const copy = await makeCopy();
    try {
      const partnerSql = `SELECT id, name, complete_name, email, email_normalized, phone, mobile, street, city, zip, vat, ref, comment, partner_latitude FROM res_partner ORDER BY id`;
      const before = byId(await withSource((s) => rows(s, partnerSql)));
      const result = await transformCopy(copy.client, { odooVersion: "17.0", filestoreDir: copy.filestore });
      const c = copy.client;
      const afterRows = byId(await rows(c, partnerSql));
      // The clinic itself (res_company's partner) is a legal entity, kept.
      assert.deepEqual(afterRows.get(1), before.get(1));
      for (let id = FIRST_PATIENT_ID; id < FIRST_PATIENT_ID + PATIENTS; id += 1) {
        const was = before.get(id)!;
        const now = afterRows.get(id)!;
        for (const column of [
          "name",
          "email",
          "email_normalized",
          "phone",
          "mobile",
          "street",
          "city",
          "zip",
          "vat",
          "ref",
          "comment",
        ])
          assert.notEqual(now[column], was[column], `res_partner ${id}.${column} kept its value`);
        assert.match(now.email as string, /^[a-z]+\.[0-9a-f]{12}@example\.com$/);
        assert.equal((now.phone as string).replace(/\D/g, "").length, (was.phone as string).replace(/\D/g, "").length);
        assert.match(now.phone as string, /^\+\d+$/);
        assert.match(now.zip as string, /^\d{5}$/);
        assert.equal(now.partner_latitude, null);
        assert.equal(now.email, now.email_normalized, "equal inputs, equal outputs");
      }
      assert.equal(afterRows.get(FIRST_PATIENT_ID)!.email, afterRows.get(FIRST_PATIENT_ID + 1)!.email);
      // "Employer, Contact": both parts get their own partner's pseudonym.
      const contact = [...afterRows.values()].find((row) => String(row.complete_name).includes(", "))!;
      const employer = afterRows.get((contact.id as number) - 1)!;
      assert.equal(contact.complete_name, `${employer.name as string}, ${contact.name as string}`);

      const [employee] = await rows(
        c,
        "SELECT name, birthday, ssnid, private_email, emergency_contact, resource_id FROM hr_employee ORDER BY id LIMIT 1",
      );
      const [employeeBefore] = await withSource((s) =>
        rows(s, "SELECT name, birthday, ssnid, private_email, emergency_contact FROM hr_employee ORDER BY id LIMIT 1"),
      );
      for (const column of ["name", "ssnid", "private_email", "emergency_contact"])
        assert.notEqual(employee![column], employeeBefore![column]);
      assert.equal(
        (employee!.birthday as Date).getFullYear(),
        (employeeBefore!.birthday as Date).getFullYear(),
        "a date keeps its year",
      );
      assert.deepEqual(
        await rows(c, `SELECT name FROM resource_resource WHERE id = ${employee!.resource_id as number}`),
        [{ name: employee!.name }],
      );
      assert.deepEqual(await rows(c, "SELECT name FROM resource_resource WHERE resource_type = 'material'"), [
        { name: "Ultrasound room 2" },
      ]);

      const users = await rows(
        c,
        "SELECT u.id, u.login, u.signature, u.oauth_uid, p.email FROM res_users u JOIN res_partner p ON p.id = u.partner_id ORDER BY u.id",
      );
      assert.deepEqual(
        users.slice(0, 3).map((user) => user.login),
        ["__system__", "admin", "public"],
      );
      assert.equal(users[1]!.signature === "<p>Administrator</p>", false, "the admin's signature is de-identified too");
      for (const user of users.slice(3)) {
        assert.equal(user.login, user.email, "a login that was the partner's email gets the same pseudonym");
        assert.doesNotMatch(user.signature as string, /Nurse/);
        assert.equal(user.oauth_uid, null);
      }

      const [message] = await rows(
        c,
        `SELECT m.subject, m.body, m.email_from, m.reply_to, m.record_name, p.name, p.email FROM mail_message m JOIN res_partner p ON p.id = m.author_id ORDER BY m.id LIMIT 1`,
      );
      assert.equal(message!.email_from, `"${message!.name as string}" <${message!.email as string}>`);
      assert.equal(message!.reply_to, message!.email);
      assert.doesNotMatch(message!.body as string, /Dear|\+1 555/);
      const tracking = await rows(
        c,
        "SELECT old_value_char, new_value_char FROM mail_tracking_value WHERE old_value_char LIKE '%@mail.fixture.test' OR new_value_char LIKE '%@mail.fixture.test'",
      );
      assert.deepEqual(tracking, []);

      // Attachments: the patients' are placeholders (filestore and db_datas), the invoice is untouched,
      // the replaced files and the unreferenced one are gone from the filestore.
      assert.ok(result.attachmentsReplaced >= 40);
      const attachments = await rows(
        c,
        "SELECT res_model, name, store_fname, checksum, db_datas IS NOT NULL AS in_db, description, index_content FROM ir_attachment ORDER BY id",
      );
      for (const attachment of attachments.filter((row) => row.res_model === "res.partner")) {
        assert.ok(Object.values(PLACEHOLDERS).some((value) => value.sha1 === attachment.checksum));
        assert.match(attachment.name as string, /^deidentified-/);
        assert.equal(attachment.index_content, null);
      }
      const invoice = attachments.find((row) => row.res_model === "account.move")!;
      assert.equal(invoice.name, "INV_2024_00042.pdf");
      const files = (await readdir(copy.filestore, { recursive: true, withFileTypes: true })).filter((entry) =>
        entry.isFile(),
      );
      const stored = new Set(
        attachments.flatMap((row) => (row.store_fname === null ? [] : [row.store_fname as string])),
      );
      assert.deepEqual(files.map((entry) => `${entry.parentPath.slice(-2)}/${entry.name}`).sort(), [...stored].sort());
      assert.equal(stored.size, 2, "one placeholder PDF shared by every replaced scan, and the invoice");
      assert.equal(
        (await readFile(join(copy.filestore, PLACEHOLDERS.pdf.storeFname))).toString("latin1").slice(0, 8),
        "%PDF-1.4",
      );
    } finally {
      await copy.dispose();
    }
  });

  void it("verification passes on a de-identified copy, and fails naming table.column where a production value was left", async () => {
    const copy = await makeCopy();
    const sourceClient = await source.connect();
    try {
      const unlisted = await makePhiSafeCopy({
        source: sourceClient,
        copy: copy.client,
        odooVersion: "17.0",
        filestoreDir: copy.filestore,
      });
      assert.equal(unlisted.verification.ok, false);
      assert.deepEqual(
        unlisted.verification.findings.map((finding) => `${finding.table}.${finding.column}`),
        ["x_patient_note.note"],
      );
      assert.match(unlisted.verification.findings[0]!.origin, /^res_partner\.email/);
      const failed = unlisted.verification.checks.filter((check) => !check.ok);
      assert.deepEqual(
        failed.map((check) => check.name),
        ["identifying values"],
      );
      assert.match(failed[0]!.detail, /x_patient_note\.note: \d+ row\(s\) hold a value of res_partner\.email/);
      assert.doesNotMatch(
        JSON.stringify(unlisted.verification),
        /@mail\.fixture\.test/,
        "the result never carries the value",
      );

      // Declared in the spec, the custom table is de-identified too and the same copy verifies.
      const listed = await makePhiSafeCopy({
        source: sourceClient,
        copy: copy.client,
        odooVersion: "17.0",
        filestoreDir: copy.filestore,
        extraTables: [
          {
            table: "x_patient_note",
            columns: [
              { name: "note", kind: "text" },
              { name: "x_dob", kind: "date" },
            ],
          },
        ],
      });
      assert.deepEqual(
        listed.verification.checks.filter((check) => !check.ok),
        [],
      );
      assert.equal(listed.verification.ok, true);
      assert.ok(listed.verification.sampled > 100);

      // A row lost on the way is a failed row count naming the table.
      await copy.client.query(`DELETE FROM mail_tracking_value WHERE id = (SELECT min(id) FROM mail_tracking_value)`);
      const lost = await verifyCopy(copy.client, {
        sample: await sampleIdentifyingValues(sourceClient),
        sourceCounts: await countRows(sourceClient),
      });
      assert.equal(lost.ok, false);
      assert.match(
        lost.checks.find((check) => check.name === "row counts")!.detail,
        /^public\.mail_tracking_value: \d+ rows, source had \d+$/,
      );
    } finally {
      await sourceClient.end();
      await copy.dispose();
    }
  });

  void it("re-running on the same copy keeps it de-identified and verified", async () => {
    const copy = await makeCopy();
    const sourceClient = await source.connect();
    try {
      const extraTables = [{ table: "x_patient_note", columns: [{ name: "note", kind: "text" as const }] }];
      const sample = await sampleIdentifyingValues(sourceClient);
      const sourceCounts = await countRows(sourceClient);
      const first = await transformCopy(copy.client, {
        odooVersion: "17.0",
        filestoreDir: copy.filestore,
        extraTables,
      });
      const [once] = await rows(copy.client, `SELECT name, email FROM res_partner WHERE id = ${FIRST_PATIENT_ID}`);
      const second = await transformCopy(copy.client, {
        odooVersion: "17.0",
        filestoreDir: copy.filestore,
        extraTables,
      });
      const [twice] = await rows(copy.client, `SELECT name, email FROM res_partner WHERE id = ${FIRST_PATIENT_ID}`);
      assert.notEqual(twice!.name, once!.name, "a second run draws a key of its own");
      assert.deepEqual(second.neutralization.rowDelta, {}, "the second run adds no dead server and no flag");
      assert.deepEqual(first.neutralization.rowDelta, { ir_mail_server: 1, ir_config_parameter: -1 });
      const verification = await verifyCopy(copy.client, {
        sample,
        sourceCounts,
        rules: first.rules,
        filestoreDir: copy.filestore,
      });
      assert.deepEqual(
        verification.checks.filter((check) => !check.ok),
        [],
      );
      assert.deepEqual(
        await rows(
          copy.client,
          "SELECT count(*)::int AS n FROM ir_mail_server WHERE name = 'neutralization - disable emails'",
        ),
        [{ n: 1 }],
      );
    } finally {
      await sourceClient.end();
      await copy.dispose();
    }
  });

  void it("a failure midway leaves the copy as it was; a spec table the copy lacks is refused by its path", async () => {
    const copy = await makeCopy();
    try {
      const partnerSql = `SELECT id, name, email FROM res_partner ORDER BY id`;
      const before = await rows(copy.client, partnerSql);
      // The filestore holds patients' scans but none was given: the run stops after neutralizing and de-identifying tables.
      await assert.rejects(transformCopy(copy.client, { odooVersion: "17.0" }), /no filestore directory was given/);
      assert.deepEqual(await rows(copy.client, partnerSql), before);
      assert.deepEqual(await rows(copy.client, "SELECT count(*)::int AS n FROM ir_mail_server WHERE active"), [
        { n: 2 },
      ]);
      await assert.rejects(
        transformCopy(copy.client, {
          odooVersion: "17.0",
          filestoreDir: copy.filestore,
          extraTables: [{ table: "x_patient_note", columns: [{ name: "x_dob", kind: "email" }] }],
        }),
        (error: unknown) =>
          error instanceof ValidationError &&
          /^deidentify\.tables\[0\]\.columns\[0\]\.kind: x_patient_note\.x_dob is date/.test(error.message),
      );
      await assert.rejects(
        transformCopy(copy.client, {
          odooVersion: "17.0",
          extraTables: [{ table: "x_missing", columns: [{ name: "a", kind: "name" }] }],
        }),
        /deidentify\.tables\[0\]\.table: the copy has no table "x_missing"/,
      );
    } finally {
      await copy.dispose();
    }
  });
});
