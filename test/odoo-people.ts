// Fake people for the PHI-safe copy tests and bench/deidentify: an Odoo 17 database (the schema of
// test/odoo17-schema.sql) filled with generated patients, staff, chatter and attachments, set-based
// (INSERT … SELECT FROM generate_series) so that a million partners take seconds. Every value is
// made up and deterministic: row g always gets the same name, email, phone and file.
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";

export const adminPostgresUrl = process.env.CAREHOST_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
export const ODOO17_SCHEMA = readFileSync(new URL("./odoo17-schema.sql", import.meta.url), "utf8");

const FIRST = [
  "Amelia",
  "Bruno",
  "Chiara",
  "Dmitri",
  "Elena",
  "Farid",
  "Greta",
  "Hugo",
  "Ines",
  "Jonas",
  "Keiko",
  "Liam",
  "Marta",
  "Nils",
  "Olga",
  "Pavel",
  "Quinn",
  "Rosa",
  "Sven",
  "Tariq",
  "Ursula",
  "Viktor",
  "Wanda",
  "Xavier",
  "Yara",
  "Zeno",
  "Alma",
  "Bernd",
  "Carla",
  "Dario",
  "Edda",
  "Felix",
];
const LAST = [
  "Abernathy",
  "Bergstrom",
  "Castellano",
  "Drummond",
  "Eberhardt",
  "Fairweather",
  "Galloway",
  "Hawthorne",
  "Ingersoll",
  "Jablonski",
  "Kowalczyk",
  "Lindqvist",
  "Marchetti",
  "Nakamura",
  "Oyelaran",
  "Pennington",
  "Quintero",
  "Rasmussen",
  "Sandoval",
  "Thorvaldsen",
  "Underhill",
  "Valcourt",
  "Whitlock",
  "Yamaguchi",
  "Zamorano",
  "Ashcombe",
  "Blackwood",
  "Crestfield",
  "Dunmore",
  "Ellsworth",
  "Foxley",
  "Greystone",
];
const STREETS = ["Juniper", "Larkspur", "Marigold", "Birchwood", "Cobblestone", "Heather", "Quarry", "Willowbank"];
const sqlArray = (values: readonly string[]) => `ARRAY[${values.map((value) => `'${value}'`).join(",")}]`;

/** Row g's person, as SQL expressions of g (an integer column or generate_series alias). */
export const personSql = (g: string) => {
  const first = `(${sqlArray(FIRST)})[1 + ${g} % ${FIRST.length}]`;
  const last = `(${sqlArray(LAST)})[1 + (${g} / ${FIRST.length}) % ${LAST.length}]`;
  return {
    name: `${first} || ' ' || ${last} || ' ' || to_char(${g}, 'FM00000000')`,
    email: `lower(${first} || '.' || ${last}) || ${g} || '@mail.fixture.test'`,
    phone: `'+1 555 ' || to_char(${g} % 10000000, 'FM0000000')`,
    mobile: `'+1 556 ' || to_char(${g} % 10000000, 'FM0000000')`,
    street: `(10 + ${g} % 900) || ' ' || (${sqlArray(STREETS)})[1 + ${g} % ${STREETS.length}] || ' Avenue ' || ${g}`,
    city: `(${sqlArray(["Port Hollow", "Eastmere", "Kingsbridge", "Wellford"])})[1 + ${g} % 4]`,
    zip: `to_char(10000 + ${g} % 89999, 'FM00000')`,
    vat: `'US' || to_char(${g}, 'FM000000000')`,
    ref: `'MRN' || to_char(${g}, 'FM00000000')`,
    birthday: `date '1940-01-01' + (${g} * 37) % 25000`,
  };
};

export type TOdooFixtureOptions = {
  readonly patients: number;
  readonly employees?: number;
  /** Installed modules; default every module whose neutralization carehost knows. */
  readonly installed?: readonly string[];
  /** Patients with an attachment each (a scan in the filestore, or in db_datas for every 5th). */
  readonly attachments?: number;
  readonly attachmentBytes?: number;
  readonly filestoreDir?: string;
};

export const DEFAULT_MODULES = [
  "base",
  "mail",
  "payment",
  "delivery",
  "iap",
  "website",
  "auth_oauth",
  "base_automation",
  "hr",
];
export const FIRST_PATIENT_ID = 10;

/** Creates the schema and fills it. Partner 1 is the clinic itself (res_company 1); patients start at id 10. */
export const fillOdooFixture = async (client: pg.ClientBase, options: TOdooFixtureOptions): Promise<void> => {
  const installed = options.installed ?? DEFAULT_MODULES;
  const employees = options.employees ?? Math.max(1, Math.floor(options.patients / 50));
  const p = personSql("g");
  await client.query(ODOO17_SCHEMA);
  await client.query(
    `INSERT INTO ir_module_module (name, state, shortdesc)
     SELECT name, CASE WHEN name = ANY($1::text[]) THEN 'installed' ELSE 'uninstalled' END, jsonb_build_object('en_US', name)
       FROM unnest(ARRAY[${[...new Set([...DEFAULT_MODULES, "sale", "account", ...installed])].map((name) => `'${name}'`).join(",")}]) AS name`,
    [installed],
  );
  await client.query(`
    INSERT INTO res_partner (id, name, complete_name, is_company, email, phone, street, city, zip, active, type)
    VALUES (1, 'Northwind Clinic Group', 'Northwind Clinic Group', true, 'contact@northwind-clinic.test', '+1 555 0100000', '1 Harbour Road', 'Eastmere', '04011', true, 'contact'),
           (2, 'System', 'System', false, NULL, NULL, NULL, NULL, NULL, false, 'contact'),
           (3, 'Administrator', 'Administrator', false, 'admin@northwind-clinic.test', NULL, NULL, NULL, NULL, true, 'contact'),
           (4, 'Public user', 'Public user', false, NULL, NULL, NULL, NULL, NULL, false, 'contact');
    INSERT INTO res_company (id, name, partner_id, email) VALUES (1, 'Northwind Clinic Group', 1, 'contact@northwind-clinic.test');
    INSERT INTO res_users (id, company_id, partner_id, login, share, signature) VALUES
      (1, 1, 2, '__system__', false, NULL), (2, 1, 3, 'admin', false, '<p>Administrator</p>'), (3, 1, 4, 'public', true, NULL);
    INSERT INTO ir_model_data (name, module, model, res_id) VALUES
      ('user_root', 'base', 'res.users', 1), ('user_admin', 'base', 'res.users', 2), ('public_user', 'base', 'res.users', 3),
      ('main_company', 'base', 'res.company', 1), ('main_partner', 'base', 'res.partner', 1);
  `);
  // Patients: every 10th is a contact of the one before it that is an employer (complete_name "Employer, Contact").
  const last = FIRST_PATIENT_ID + options.patients - 1;
  await client.query(`
    INSERT INTO res_partner (id, name, complete_name, parent_id, is_company, email, email_normalized, phone, mobile, phone_sanitized,
                             street, street2, city, zip, vat, ref, comment, commercial_company_name, active, type, partner_latitude, partner_longitude, create_date, lang)
    SELECT g, ${p.name}, ${p.name}, NULL, g % 10 = 9, ${p.email}, ${p.email}, ${p.phone}, ${p.mobile}, regexp_replace(${p.phone}, '[^0-9+]', '', 'g'),
           ${p.street}, CASE WHEN g % 3 = 0 THEN 'Apt ' || (g % 97) END, ${p.city}, ${p.zip}, ${p.vat}, ${p.ref},
           '<p>Allergic to penicillin; next of kin ' || ${p.name} || '</p>', NULL, true, 'contact', 40 + (g % 1000) / 1000.0, -70 - (g % 1000) / 1000.0,
           timestamp '2024-01-01' + g * interval '1 minute', 'en_US'
      FROM generate_series(${FIRST_PATIENT_ID}, ${last}) AS g;
    UPDATE res_partner c SET parent_id = e.id, commercial_company_name = e.name, complete_name = e.name || ', ' || c.name
      FROM res_partner e WHERE e.id = c.id - 1 AND e.is_company AND c.id % 10 = 0 AND c.id > ${FIRST_PATIENT_ID};
    SELECT setval('res_partner_id_seq', ${last});
  `);
  // Staff: a resource, an employee, a user and its partner each.
  const firstStaff = last + 1;
  const s = personSql("(g + 5000000)");
  await client.query(`
    INSERT INTO res_partner (id, name, complete_name, is_company, email, phone, active, type, partner_share)
    SELECT ${firstStaff} + g, ${s.name}, ${s.name}, false, ${s.email}, ${s.phone}, true, 'contact', false FROM generate_series(0, ${employees - 1}) AS g;
    SELECT setval('res_partner_id_seq', ${firstStaff + employees});
    INSERT INTO res_users (id, company_id, partner_id, login, share, signature, oauth_uid)
    SELECT 100 + g, 1, ${firstStaff} + g, ${s.email}, false, '<p>' || ${s.name} || '<br/>Nurse</p>', 'oauth-' || g FROM generate_series(0, ${employees - 1}) AS g;
    INSERT INTO resource_resource (id, name, resource_type, tz, active, user_id, company_id)
    SELECT 1 + g, ${s.name}, 'user', 'America/New_York', true, 100 + g, 1 FROM generate_series(0, ${employees - 1}) AS g;
    INSERT INTO resource_resource (id, name, resource_type, tz, active, company_id) VALUES (${employees + 1}, 'Ultrasound room 2', 'material', 'UTC', true, 1);
    INSERT INTO hr_employee (id, resource_id, company_id, name, user_id, work_contact_id, birthday, identification_id, ssnid, sinid, passport_id,
                             private_street, private_city, private_zip, private_email, private_phone, emergency_contact, emergency_phone,
                             spouse_complete_name, notes, work_email, active, place_of_birth)
    SELECT 1 + g, 1 + g, 1, ${s.name}, 100 + g, ${firstStaff} + g, ${s.birthday}, 'EMP' || to_char(g, 'FM0000000'),
           to_char(100 + g % 899, 'FM000') || '-' || to_char(10 + g % 89, 'FM00') || '-' || to_char(g % 10000, 'FM0000'),
           'SIN' || to_char(g, 'FM000000000'), 'P' || to_char(g, 'FM00000000'),
           ${s.street}, ${s.city}, ${s.zip}, 'home.' || ${s.email}, ${s.mobile}, ${personSql("(g + 7000000)").name}, ${personSql("(g + 7000000)").phone},
           ${personSql("(g + 8000000)").name}, 'Reviewed by occupational health on ' || ${s.birthday}, ${s.email}, true, ${s.city}
      FROM generate_series(0, ${employees - 1}) AS g;
  `);
  // Chatter on every patient: a note that names them, an email from them, a tracked change of their email.
  await client.query(`
    INSERT INTO mail_message (id, model, res_id, message_type, author_id, subject, record_name, body, email_from, reply_to, date)
    SELECT g, 'res.partner', g, 'email', g, 'Lab results for ' || ${p.name}, ${p.name},
           '<p>Dear ' || ${p.name} || ', your results are attached. Call ' || ${p.phone} || '.</p>',
           '"' || ${p.name} || '" <' || ${p.email} || '>', ${p.email}, timestamp '2024-06-01' + g * interval '1 minute'
      FROM generate_series(${FIRST_PATIENT_ID}, ${last}) AS g;
    INSERT INTO mail_tracking_value (mail_message_id, field_id, old_value_char, new_value_char, old_value_datetime, new_value_datetime)
    SELECT g, 1, 'old.' || ${p.email}, ${p.email}, ${p.birthday}, ${p.birthday} + 1 FROM generate_series(${FIRST_PATIENT_ID}, ${last}) AS g;
    SELECT setval('mail_message_id_seq', ${last});
  `);
  await neutralizationFixtures(client);
  if ((options.attachments ?? 0) > 0) await fillAttachments(client, options);
};

/** What neutralization must turn off: live mail servers, crons, providers, carriers, tokens, webhooks. */
const neutralizationFixtures = async (client: pg.ClientBase): Promise<void> => {
  await client.query(`
    INSERT INTO ir_mail_server (name, smtp_host, smtp_port, smtp_authentication, smtp_encryption, smtp_user, active)
    VALUES ('Office 365 relay', 'smtp.office365.example', 587, 'login', 'starttls', 'noreply@northwind-clinic.test', true),
           ('Backup relay', 'smtp2.example', 465, 'login', 'ssl', 'noreply@northwind-clinic.test', true);
    INSERT INTO mail_template (name, mail_server_id, active) VALUES ('{"en_US": "Appointment reminder"}', 1, true);
    INSERT INTO fetchmail_server (name, server, server_type, port, active, state) VALUES ('Inbox', 'imap.example', 'imap', 993, true, 'done');
    INSERT INTO ir_act_server (id, name, usage, state, model_id, code) VALUES
      (1, '{"en_US": "Base: Auto-vacuum internal data"}', 'ir_cron', 'code', 1, 'model._run_vacuum_cleaner()'),
      (2, '{"en_US": "Mail: Email Queue Manager"}', 'ir_cron', 'code', 1, 'model.process_email_queue()'),
      (3, '{"en_US": "Fetchmail Service"}', 'ir_cron', 'code', 1, 'model._fetch_mails()'),
      (4, '{"en_US": "Appointment reminders"}', 'ir_cron', 'code', 1, 'model._send_reminders()');
    INSERT INTO ir_cron (id, ir_actions_server_id, user_id, cron_name, interval_number, interval_type, active, nextcall) VALUES
      (1, 1, 1, 'Base: Auto-vacuum internal data', 1, 'days', true, now()),
      (2, 2, 1, 'Mail: Email Queue Manager', 1, 'hours', true, now()),
      (3, 3, 1, 'Fetchmail Service', 5, 'minutes', true, now()),
      (4, 4, 1, 'Appointment reminders', 1, 'days', true, now());
    INSERT INTO ir_model_data (name, module, model, res_id) VALUES
      ('autovacuum_job', 'base', 'ir.cron', 1), ('ir_cron_mail_scheduler_action', 'mail', 'ir.cron', 2);
    INSERT INTO payment_provider (company_id, code, state, name) VALUES
      (1, 'stripe', 'enabled', '{"en_US": "Stripe"}'), (1, 'demo', 'test', '{"en_US": "Demo"}'), (1, 'paypal', 'disabled', '{"en_US": "PayPal"}');
    INSERT INTO delivery_carrier (product_id, delivery_type, name, active, prod_environment) VALUES
      (1, 'fedex', '{"en_US": "FedEx"}', true, true), (1, 'fixed', '{"en_US": "Courier"}', true, true);
    INSERT INTO iap_account (service_name, account_token) VALUES ('sms', 'a1b2c3d4e5'), ('partner_autocomplete', 'f6e5d4c3');
    INSERT INTO auth_oauth_provider (name, auth_endpoint, validation_endpoint, body, enabled) VALUES
      ('Entra ID', 'https://login.example/authorize', 'https://login.example/userinfo', 'Sign in with Entra ID', true);
    INSERT INTO website (company_id, default_lang_id, user_id, name, domain, cdn_activated, cdn_url, robots_txt) VALUES
      (1, 1, 3, 'Northwind patients', 'https://patients.northwind-clinic.test', true, 'https://cdn.example', E'User-agent: *\\nAllow: /');
    INSERT INTO ir_ui_view (name, key, type, active) VALUES ('Neutralize ribbon', 'website.neutralize_ribbon', 'qweb', false);
    INSERT INTO base_automation (model_id, name, "trigger", url, active) VALUES
      (1, '{"en_US": "Lab system webhook"}', 'on_webhook', NULL, true), (1, '{"en_US": "Tag new patients"}', 'on_create', NULL, true);
    INSERT INTO ir_config_parameter (key, value) VALUES
      ('web.base.url', 'https://erp.northwind-clinic.test'), ('mail.web_push_vapid_private_key', 'private-key'), ('mail.web_push_vapid_public_key', 'public-key');
  `);
};

/** A scan (filestore) or a photo (db_datas) per patient, naming them inside; plus an invoice PDF that is nobody's. */
const fillAttachments = async (client: pg.ClientBase, options: TOdooFixtureOptions): Promise<void> => {
  const count = options.attachments ?? 0;
  const bytes = options.attachmentBytes ?? 2048;
  if (options.filestoreDir === undefined) throw new Error("attachments need a filestoreDir");
  const { rows } = await client.query<{ id: number; name: string }>(
    `SELECT id, name FROM res_partner WHERE id >= ${FIRST_PATIENT_ID} ORDER BY id LIMIT ${count}`,
  );
  const values: string[] = [];
  for (const [index, row] of rows.entries()) {
    const content = Buffer.concat([
      Buffer.from(`%PDF-1.4\n% Lab report for ${row.name}\n`),
      Buffer.alloc(Math.max(0, bytes - 64), index % 251),
    ]);
    const sha1 = createHash("sha1").update(content).digest("hex");
    if (index % 5 === 4) {
      values.push(
        `('${row.name} photo.png', 'res.partner', ${row.id}, 'binary', 'image/png', NULL, '${sha1}', ${content.length}, '\\x${content.toString("hex")}'::bytea, 'Photo of ${row.name}', NULL)`,
      );
      continue;
    }
    await mkdir(join(options.filestoreDir, sha1.slice(0, 2)), { recursive: true });
    await writeFile(join(options.filestoreDir, sha1.slice(0, 2), sha1), content);
    values.push(
      `('Lab report ${row.name}.pdf', 'res.partner', ${row.id}, 'binary', 'application/pdf', '${sha1.slice(0, 2)}/${sha1}', '${sha1}', ${content.length}, NULL, NULL, 'Lab report for ${row.name}')`,
    );
  }
  for (let start = 0; start < values.length; start += 1000)
    await client.query(
      `INSERT INTO ir_attachment (name, res_model, res_id, type, mimetype, store_fname, checksum, file_size, db_datas, description, index_content)
       VALUES ${values.slice(start, start + 1000).join(",\n")}`,
    );
  const invoice = Buffer.from("%PDF-1.4\n% Invoice INV/2024/00042 for medical supplies\n");
  const sha1 = createHash("sha1").update(invoice).digest("hex");
  await mkdir(join(options.filestoreDir, sha1.slice(0, 2)), { recursive: true });
  await writeFile(join(options.filestoreDir, sha1.slice(0, 2), sha1), invoice);
  await client.query(
    `INSERT INTO ir_attachment (name, res_model, res_id, type, mimetype, store_fname, checksum, file_size)
     VALUES ('INV_2024_00042.pdf', 'account.move', 42, 'binary', 'application/pdf', $1, $2, $3)`,
    [`${sha1.slice(0, 2)}/${sha1}`, sha1, invoice.length],
  );
  // A file production deleted but had not garbage-collected yet: still PHI, referenced by nothing.
  const orphan = Buffer.from("Discharge summary of a deleted record\n");
  const orphanSha = createHash("sha1").update(orphan).digest("hex");
  await mkdir(join(options.filestoreDir, orphanSha.slice(0, 2)), { recursive: true });
  await writeFile(join(options.filestoreDir, orphanSha.slice(0, 2), orphanSha), orphan);
};

export type TOdooDatabase = {
  readonly name: string;
  readonly url: string;
  connect(): Promise<pg.Client>;
  dispose(): Promise<void>;
};

const databaseUrl = (name: string): string => {
  const url = new URL(adminPostgresUrl);
  url.pathname = `/${name}`;
  return url.toString();
};

/** A throwaway database on the machine's PostgreSQL; from a template when one is given (a copy of it). */
export const createOdooDatabase = async (template?: string): Promise<TOdooDatabase> => {
  const name = `carehost_copy_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminPostgresUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}${template === undefined ? "" : ` TEMPLATE ${template}`}`);
  } finally {
    await admin.end();
  }
  const clients: pg.Client[] = [];
  return {
    name,
    url: databaseUrl(name),
    connect: async () => {
      const client = new pg.Client({ connectionString: databaseUrl(name) });
      await client.connect();
      clients.push(client);
      return client;
    },
    dispose: async () => {
      await Promise.all(clients.map((client) => client.end().catch(() => undefined)));
      const cleanup = new pg.Client({ connectionString: adminPostgresUrl });
      await cleanup.connect();
      await cleanup.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await cleanup.end();
    },
  };
};

/** A temp directory removed by the returned function. */
export const tempDirectory = async (prefix: string): Promise<{ path: string; remove: () => Promise<void> }> => {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
};
