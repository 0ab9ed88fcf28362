// Neutralization as `odoo-bin neutralize` does it (Odoo 16.0+): each installed module that ships a
// data/neutralize.sql has its statements run, so a copy of production cannot email patients, charge
// cards, ship parcels, spend IAP credit, sign people in through production's identity provider,
// call webhooks or be indexed by search engines. The statements below are written from what those
// scripts do for the version an environment declares, not copied from them.
//
// Two departures from Odoo, both so that running it twice leaves the copy as running it once:
// the dead mail server is inserted only when the copy has none, and the flag is an upsert.
import type { TCopyConnection } from "./copies-sql.js";
import { readColumns } from "./copies-sql.js";

export type TOdooVersion = "16.0" | "17.0" | "18.0" | "19.0";

/** The mail server that takes the place of production's: it points nowhere (RFC 2606 .invalid). */
export const DEAD_MAIL_SERVER = { name: "neutralization - disable emails", host: "invalid", port: 1025 } as const;
/** The parameters neutralization sets or removes. */
export const NEUTRALIZATION_PARAMETERS = [
  "database.is_neutralized",
  "mail.web_push_vapid_private_key",
  "mail.web_push_vapid_public_key",
] as const;
export const AUTOVACUUM_XMLID = { module: "base", name: "autovacuum_job" } as const;

type TStep = {
  readonly module: string;
  readonly what: string;
  /** The table the statement writes; when the copy has no such table (or column) the step is skipped. */
  readonly table: string;
  readonly columns: readonly string[];
  readonly sql: string;
  readonly versions?: readonly TOdooVersion[];
  /** Rows the statement adds to (or removes from) its table, for the row-count check of verification. */
  readonly countsRows?: boolean;
};

const AUTOVACUUM_CRON = `SELECT res_id FROM ir_model_data WHERE model = 'ir.cron' AND module = '${AUTOVACUUM_XMLID.module}' AND name = '${AUTOVACUUM_XMLID.name}'`;

const STEPS: readonly TStep[] = [
  {
    module: "base",
    what: "outgoing mail servers deactivated",
    table: "ir_mail_server",
    columns: ["active"],
    sql: `UPDATE ir_mail_server SET active = false WHERE active IS DISTINCT FROM false AND name <> '${DEAD_MAIL_SERVER.name}'`,
  },
  {
    // Without an active server Odoo falls back to the SMTP server of its command line or odoo.conf,
    // which on a copy may well be production's relay: a server that cannot deliver is put first.
    module: "base",
    what: "a dead mail server in their place",
    table: "ir_mail_server",
    columns: ["name", "smtp_host", "smtp_port", "smtp_encryption", "smtp_authentication", "active"],
    countsRows: true,
    sql: `INSERT INTO ir_mail_server (name, smtp_host, smtp_port, smtp_encryption, smtp_authentication, active)
          SELECT '${DEAD_MAIL_SERVER.name}', '${DEAD_MAIL_SERVER.host}', ${DEAD_MAIL_SERVER.port}, 'none', 'login', true
           WHERE NOT EXISTS (SELECT 1 FROM ir_mail_server WHERE name = '${DEAD_MAIL_SERVER.name}')
          RETURNING (xmax = 0) AS inserted`,
  },
  {
    module: "base",
    what: "the dead mail server active",
    table: "ir_mail_server",
    columns: ["name", "smtp_host", "active"],
    sql: `UPDATE ir_mail_server SET active = true, smtp_host = '${DEAD_MAIL_SERVER.host}', smtp_port = ${DEAD_MAIL_SERVER.port}
           WHERE name = '${DEAD_MAIL_SERVER.name}' AND (active IS DISTINCT FROM true OR smtp_host IS DISTINCT FROM '${DEAD_MAIL_SERVER.host}')`,
  },
  {
    module: "base",
    what: "scheduled actions off except the autovacuum",
    table: "ir_cron",
    columns: ["active"],
    sql: `UPDATE ir_cron SET active = false WHERE active IS DISTINCT FROM false AND id NOT IN (${AUTOVACUUM_CRON} AND res_id IS NOT NULL)`,
  },
  {
    module: "base",
    what: "webhook server actions pointed nowhere",
    table: "ir_act_server",
    columns: ["state", "webhook_url"],
    versions: ["18.0", "19.0"],
    sql: `UPDATE ir_act_server SET webhook_url = 'https://neutralized.invalid/' WHERE state = 'webhook' AND webhook_url IS DISTINCT FROM 'https://neutralized.invalid/'`,
  },
  {
    module: "base",
    what: "database.is_neutralized set",
    table: "ir_config_parameter",
    columns: ["key", "value"],
    countsRows: true,
    sql: `INSERT INTO ir_config_parameter (key, value) VALUES ('database.is_neutralized', 'True')
          ON CONFLICT (key) DO UPDATE SET value = 'True'
          RETURNING (xmax = 0) AS inserted`,
  },
  {
    module: "mail",
    what: "mail templates no longer pinned to a mail server",
    table: "mail_template",
    columns: ["mail_server_id"],
    sql: `UPDATE mail_template SET mail_server_id = NULL WHERE mail_server_id IS NOT NULL`,
  },
  {
    module: "mail",
    what: "incoming mail servers deactivated",
    table: "fetchmail_server",
    columns: ["active"],
    versions: ["17.0", "18.0", "19.0"],
    sql: `UPDATE fetchmail_server SET active = false WHERE active IS DISTINCT FROM false`,
  },
  {
    // In 16.0 incoming mail was its own module.
    module: "fetchmail",
    what: "incoming mail servers deactivated",
    table: "fetchmail_server",
    columns: ["active"],
    versions: ["16.0"],
    sql: `UPDATE fetchmail_server SET active = false WHERE active IS DISTINCT FROM false`,
  },
  {
    module: "mail",
    what: "web push keys removed (no notification reaches production's subscribers)",
    table: "ir_config_parameter",
    columns: ["key"],
    versions: ["17.0", "18.0", "19.0"],
    countsRows: true,
    sql: `DELETE FROM ir_config_parameter WHERE key IN ('mail.web_push_vapid_private_key', 'mail.web_push_vapid_public_key')`,
  },
  {
    module: "payment",
    what: "payment providers not in test mode disabled",
    table: "payment_provider",
    columns: ["state"],
    versions: ["16.0", "17.0", "18.0"],
    sql: `UPDATE payment_provider SET state = 'disabled' WHERE state NOT IN ('test', 'disabled')`,
  },
  {
    module: "payment",
    what: "payment providers out of live mode",
    table: "payment_provider",
    columns: ["is_live"],
    versions: ["19.0"],
    sql: `UPDATE payment_provider SET is_live = false WHERE is_live IS DISTINCT FROM false`,
  },
  {
    module: "delivery",
    what: "delivery carriers out of production mode",
    table: "delivery_carrier",
    columns: ["prod_environment"],
    sql: `UPDATE delivery_carrier SET prod_environment = false WHERE prod_environment IS DISTINCT FROM false`,
  },
  {
    // Odoo appends +disabled to the token, which IAP refuses; a token already disabled stays as it is.
    module: "iap",
    what: "IAP account tokens disabled",
    table: "iap_account",
    columns: ["account_token"],
    sql: `UPDATE iap_account SET account_token = regexp_replace(account_token, '(\\+.*)?$', '+disabled')
           WHERE account_token IS NOT NULL AND account_token NOT LIKE '%+disabled'`,
  },
  {
    // Odoo 17.0+ keeps providers listed in auth_oauth.dont_neutralize_providers (a JSON array of ids).
    module: "auth_oauth",
    what: "OAuth providers disabled",
    table: "auth_oauth_provider",
    columns: ["enabled"],
    sql: `UPDATE auth_oauth_provider SET enabled = false
           WHERE enabled IS DISTINCT FROM false
             AND id NOT IN (SELECT jsonb_array_elements_text(CASE WHEN jsonb_typeof(value::jsonb) = 'array' THEN value::jsonb ELSE '[]'::jsonb END)::int
                              FROM ir_config_parameter WHERE key = 'auth_oauth.dont_neutralize_providers')`,
  },
  {
    module: "base_automation",
    what: "webhook-triggered automations deactivated",
    table: "base_automation",
    columns: ["trigger", "active"],
    versions: ["17.0", "18.0", "19.0"],
    sql: `UPDATE base_automation SET active = false WHERE "trigger" = 'on_webhook' AND active IS DISTINCT FROM false`,
  },
  {
    module: "website",
    what: "website domains cleared",
    table: "website",
    columns: ["domain"],
    sql: `UPDATE website SET domain = NULL WHERE domain IS NOT NULL`,
  },
  {
    module: "website",
    what: "website CDN off",
    table: "website",
    columns: ["cdn_activated"],
    sql: `UPDATE website SET cdn_activated = false WHERE cdn_activated IS DISTINCT FROM false`,
  },
  {
    module: "website",
    what: "robots.txt closed to every crawler",
    table: "website",
    columns: ["robots_txt"],
    sql: `UPDATE website SET robots_txt = E'User-agent: *\\nDisallow: /' WHERE robots_txt IS DISTINCT FROM E'User-agent: *\\nDisallow: /'`,
  },
  {
    module: "website",
    what: "neutralization ribbon shown",
    table: "ir_ui_view",
    columns: ["key", "active"],
    sql: `UPDATE ir_ui_view SET active = true WHERE key = 'website.neutralize_ribbon' AND active IS DISTINCT FROM true`,
  },
  {
    module: "google_calendar",
    what: "Google Calendar sync tokens cleared",
    table: "res_users_settings",
    columns: ["google_calendar_rtoken", "google_calendar_token", "google_calendar_sync_token"],
    sql: `UPDATE res_users_settings SET google_calendar_rtoken = NULL, google_calendar_token = NULL, google_calendar_sync_token = NULL
           WHERE google_calendar_rtoken IS NOT NULL OR google_calendar_token IS NOT NULL OR google_calendar_sync_token IS NOT NULL`,
  },
  {
    module: "microsoft_calendar",
    what: "Outlook Calendar sync tokens cleared",
    table: "res_users_settings",
    columns: ["microsoft_calendar_rtoken", "microsoft_calendar_token", "microsoft_calendar_sync_token"],
    sql: `UPDATE res_users_settings SET microsoft_calendar_rtoken = NULL, microsoft_calendar_token = NULL, microsoft_calendar_sync_token = NULL
           WHERE microsoft_calendar_rtoken IS NOT NULL OR microsoft_calendar_token IS NOT NULL OR microsoft_calendar_sync_token IS NOT NULL`,
  },
];

export type TNeutralizeStep = { readonly module: string; readonly what: string; readonly rows: number };
export type TNeutralizeResult = {
  readonly installedModules: readonly string[];
  readonly applied: readonly TNeutralizeStep[];
  /** Steps of installed modules whose table or column the copy lacks, with the reason. */
  readonly skipped: readonly (TNeutralizeStep & { readonly reason: string })[];
  /** Rows added (positive) or removed (negative) per table by this run. */
  readonly rowDelta: Readonly<Record<string, number>>;
};

/** The modules Odoo considers installed: what `odoo-bin neutralize` runs scripts for. */
export const readInstalledModules = async (client: TCopyConnection): Promise<string[]> => {
  const { rows } = await client.query<{ name: string }>(
    "SELECT name FROM ir_module_module WHERE state = 'installed' ORDER BY name",
  );
  return rows.map((row) => row.name);
};

/** Runs the neutralization of every installed module; the caller holds the transaction. */
export const neutralizeCopy = async (
  client: TCopyConnection,
  { odooVersion }: { readonly odooVersion: TOdooVersion },
): Promise<TNeutralizeResult> => {
  const installed = await readInstalledModules(client);
  const installedSet = new Set(installed);
  const columns = await readColumns(client);
  const applied: TNeutralizeStep[] = [];
  const skipped: (TNeutralizeStep & { reason: string })[] = [];
  const rowDelta: Record<string, number> = {};
  for (const step of STEPS) {
    if (!installedSet.has(step.module)) continue;
    if (step.versions !== undefined && !step.versions.includes(odooVersion)) continue;
    const table = columns.get(step.table);
    const missing = table === undefined ? [] : step.columns.filter((column) => !table.has(column));
    if (table === undefined || missing.length > 0) {
      skipped.push({
        module: step.module,
        what: step.what,
        rows: 0,
        reason: table === undefined ? `no table ${step.table}` : `${step.table} has no column ${missing.join(", ")}`,
      });
      continue;
    }
    const result = await client.query(step.sql);
    const rows = result.rowCount ?? 0;
    applied.push({ module: step.module, what: step.what, rows });
    if (step.countsRows === true && rows > 0) {
      // An upsert that updated an existing row added none: RETURNING (xmax = 0) tells inserted rows apart.
      const added =
        result.command === "DELETE"
          ? -rows
          : (result.rows as { inserted: boolean }[]).filter((row) => row.inserted).length;
      if (added !== 0) rowDelta[step.table] = (rowDelta[step.table] ?? 0) + added;
    }
  }
  return { installedModules: installed, applied, skipped, rowDelta };
};
