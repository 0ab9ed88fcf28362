// What de-identification replaces, table by table: the columns in which Odoo keeps data about a
// person (a patient is a res.partner; staff are hr.employee, res.users and their partners), each
// with the kind of pseudonym that keeps its format, and the tables a custom module declares in the
// spec. A rule names columns of every supported version; columns the copy lacks are left out.
import type { TPseudonymKind } from "./copies-pseudonym.js";

export type TColumnRule = { readonly column: string; readonly kind: TPseudonymKind };
export type TTableRule = {
  readonly table: string;
  /** Which rows hold people's data; absent: every row. */
  readonly where?: string;
  readonly columns: readonly TColumnRule[];
  /** Columns computed from others of the same row (before the UPDATE), by SQL expression. */
  readonly derived?: Readonly<Record<string, string>>;
  /** Rows the verification does not sample (values Odoo ships, such as its built-in users' names), beside `where`. */
  readonly sampleWhere?: string;
  /** The Odoo model whose attachments belong to the people of this table (res.partner…). */
  readonly model?: string;
};

/** The partners that are the organization's own companies: a legal entity, not a person, kept as they are. */
export const OWN_COMPANY_PARTNERS = "SELECT partner_id FROM res_company WHERE partner_id IS NOT NULL";
/** Odoo's own users (superuser, admin, public, templates): their login is what lets anyone in. */
const BUILT_IN_USERS =
  "SELECT res_id FROM ir_model_data WHERE model = 'res.users' AND module = 'base' AND res_id IS NOT NULL";

// Odoo 16+ stores "Company, Contact" in complete_name (display_name up to 15.0): both parts get the
// pseudonym their own partner gets, and an own company's name stays, as its partner does.
const contactDisplayName = (column: string): string => {
  const prefix = `left(${column}, length(${column}) - length(name) - 2)`;
  return `CASE WHEN name IS NOT NULL AND length(${column}) > length(name) + 2 AND right(${column}, length(name) + 2) = ', ' || name
            THEN CASE WHEN ${prefix} IN (SELECT name FROM res_company) THEN ${prefix} ELSE pg_temp.carehost_pseudo_name(${prefix}) END
                 || ', ' || pg_temp.carehost_pseudo_name(name)
            ELSE pg_temp.carehost_pseudo_name(${column}) END`;
};

export const ODOO_RULES: readonly TTableRule[] = [
  {
    table: "res_partner",
    model: "res.partner",
    where: `id NOT IN (${OWN_COMPANY_PARTNERS})`,
    // "System", "Public user", "Administrator": names Odoo gives its own users' partners, found in any text.
    sampleWhere: `id NOT IN (SELECT partner_id FROM res_users WHERE id IN (${BUILT_IN_USERS}))`,
    columns: [
      { column: "name", kind: "name" },
      { column: "email", kind: "email" },
      { column: "email_normalized", kind: "email" },
      { column: "phone", kind: "phone" },
      { column: "mobile", kind: "phone" },
      { column: "phone_sanitized", kind: "phone" },
      { column: "street", kind: "street" },
      { column: "street2", kind: "street" },
      { column: "city", kind: "city" },
      { column: "zip", kind: "zip" },
      { column: "vat", kind: "identifier" },
      { column: "company_registry", kind: "identifier" },
      { column: "ref", kind: "identifier" },
      { column: "barcode", kind: "identifier" },
      { column: "comment", kind: "html" },
      { column: "commercial_company_name", kind: "name" },
      { column: "company_name", kind: "name" },
      { column: "partner_latitude", kind: "clear" },
      { column: "partner_longitude", kind: "clear" },
      { column: "signup_token", kind: "clear" },
    ],
    derived: { complete_name: contactDisplayName("complete_name"), display_name: contactDisplayName("display_name") },
  },
  {
    table: "hr_employee",
    model: "hr.employee",
    columns: [
      { column: "name", kind: "name" },
      { column: "birthday", kind: "date" },
      { column: "place_of_birth", kind: "city" },
      { column: "identification_id", kind: "identifier" },
      { column: "ssnid", kind: "identifier" },
      { column: "sinid", kind: "identifier" },
      { column: "passport_id", kind: "identifier" },
      { column: "permit_no", kind: "identifier" },
      { column: "visa_no", kind: "identifier" },
      { column: "barcode", kind: "identifier" },
      { column: "pin", kind: "clear" },
      { column: "private_street", kind: "street" },
      { column: "private_street2", kind: "street" },
      { column: "private_city", kind: "city" },
      { column: "private_zip", kind: "zip" },
      { column: "private_phone", kind: "phone" },
      { column: "private_email", kind: "email" },
      { column: "work_phone", kind: "phone" },
      { column: "mobile_phone", kind: "phone" },
      { column: "work_email", kind: "email" },
      { column: "emergency_contact", kind: "name" },
      { column: "emergency_phone", kind: "phone" },
      { column: "spouse_complete_name", kind: "name" },
      { column: "spouse_birthdate", kind: "date" },
      { column: "notes", kind: "text" },
      { column: "additional_note", kind: "text" },
      { column: "departure_description", kind: "text" },
    ],
  },
  {
    // hr.employee _inherits resource.resource: the employee's name is stored there too.
    table: "resource_resource",
    where: "resource_type = 'user'",
    columns: [{ column: "name", kind: "name" }],
  },
  {
    table: "res_users",
    model: "res.users",
    sampleWhere: `id NOT IN (${BUILT_IN_USERS})`,
    columns: [
      { column: "signature", kind: "html" },
      { column: "oauth_uid", kind: "clear" },
      { column: "oauth_access_token", kind: "clear" },
    ],
    // A login that is an email gets the same pseudonym as that email on the user's partner; the
    // built-in users keep theirs (admin stays admin, so someone can sign in to the copy).
    derived: {
      login: `CASE WHEN id IN (${BUILT_IN_USERS}) THEN login WHEN login LIKE '%@%' THEN pg_temp.carehost_pseudo_email(login) ELSE lower(pg_temp.carehost_pseudo_identifier(login)) END`,
    },
  },
  {
    table: "mail_message",
    columns: [
      { column: "subject", kind: "text" },
      { column: "body", kind: "html" },
      { column: "record_name", kind: "name" },
    ],
    derived: {
      email_from: "pg_temp.carehost_pseudo_mailbox(email_from)",
      reply_to: "pg_temp.carehost_pseudo_mailbox(reply_to)",
    },
  },
  {
    table: "mail_tracking_value",
    columns: [
      { column: "old_value_char", kind: "text" },
      { column: "new_value_char", kind: "text" },
      { column: "old_value_text", kind: "text" },
      { column: "new_value_text", kind: "text" },
      { column: "old_value_datetime", kind: "date" },
      { column: "new_value_datetime", kind: "date" },
    ],
  },
];
