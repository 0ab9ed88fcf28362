-- Odoo 17's tables for PHI-safe copies (src/copies), as Odoo 17's ORM creates them from its models:
-- Char -> varchar, Text/Html -> text, translated Char/Text -> jsonb, Date -> date, Datetime ->
-- timestamp without time zone, Many2one/Integer -> int4, Float -> float8, Monetary -> numeric,
-- Boolean -> bool, Selection -> varchar, Binary (attachment=False) -> bytea, Json -> jsonb.
-- Only the columns the transformation and its tests touch or that carry identifying data, plus
-- the columns every Odoo table has (id, create_uid, create_date, write_uid, write_date). Odoo is
-- not installed here; this is the fixture the tests and bench/deidentify fill with fake people.

CREATE TABLE ir_module_module (
  id serial PRIMARY KEY,
  name varchar NOT NULL UNIQUE,
  state varchar,
  latest_version varchar,
  shortdesc jsonb,
  author varchar,
  create_uid int4, create_date timestamp, write_uid int4, write_date timestamp
);

CREATE TABLE ir_model_data (
  id serial PRIMARY KEY,
  name varchar NOT NULL,
  module varchar NOT NULL,
  model varchar NOT NULL,
  res_id int4,
  noupdate bool,
  create_uid int4, create_date timestamp, write_uid int4, write_date timestamp
);

CREATE TABLE ir_config_parameter (
  id serial PRIMARY KEY,
  key varchar NOT NULL UNIQUE,
  value text NOT NULL,
  create_uid int4, create_date timestamp, write_uid int4, write_date timestamp
);

CREATE TABLE res_partner (
  id serial PRIMARY KEY,
  company_id int4,
  create_date timestamp,
  name varchar,
  title int4,
  parent_id int4 REFERENCES res_partner (id) ON DELETE SET NULL,
  user_id int4,
  state_id int4,
  country_id int4,
  industry_id int4,
  color int4,
  commercial_partner_id int4,
  create_uid int4,
  write_uid int4,
  complete_name varchar,
  ref varchar,
  lang varchar,
  tz varchar,
  vat varchar,
  company_registry varchar,
  website varchar,
  function varchar,
  type varchar,
  street varchar,
  street2 varchar,
  zip varchar,
  city varchar,
  email varchar,
  phone varchar,
  mobile varchar,
  commercial_company_name varchar,
  company_name varchar,
  barcode varchar,
  comment text,
  partner_latitude numeric,
  partner_longitude numeric,
  active bool,
  employee bool,
  is_company bool,
  partner_share bool,
  write_date timestamp,
  message_bounce int4,
  email_normalized varchar,
  signup_type varchar,
  signup_expiration timestamp,
  signup_token varchar,
  phone_sanitized varchar,
  date date
);
CREATE INDEX res_partner_parent_id_index ON res_partner (parent_id);
CREATE INDEX res_partner_email_normalized_index ON res_partner (email_normalized);

CREATE TABLE res_company (
  id serial PRIMARY KEY,
  name varchar NOT NULL UNIQUE,
  partner_id int4 NOT NULL REFERENCES res_partner (id),
  email varchar,
  phone varchar,
  create_uid int4, create_date timestamp, write_uid int4, write_date timestamp
);

CREATE TABLE res_users (
  id serial PRIMARY KEY,
  company_id int4 NOT NULL,
  partner_id int4 NOT NULL REFERENCES res_partner (id),
  active bool DEFAULT true,
  create_date timestamp,
  login varchar NOT NULL UNIQUE,
  password varchar,
  action_id int4,
  create_uid int4,
  write_uid int4,
  signature text,
  share bool,
  write_date timestamp,
  totp_secret varchar,
  notification_type varchar,
  oauth_provider_id int4,
  oauth_uid varchar,
  oauth_access_token varchar
);

CREATE TABLE resource_resource (
  id serial PRIMARY KEY,
  create_uid int4, create_date timestamp, write_uid int4, write_date timestamp,
  company_id int4,
  user_id int4,
  calendar_id int4,
  name varchar NOT NULL,
  resource_type varchar NOT NULL,
  tz varchar NOT NULL,
  active bool,
  time_efficiency float8
);

CREATE TABLE hr_employee (
  id serial PRIMARY KEY,
  resource_id int4 NOT NULL REFERENCES resource_resource (id),
  company_id int4 NOT NULL,
  resource_calendar_id int4,
  message_main_attachment_id int4,
  color int4,
  department_id int4,
  job_id int4,
  address_id int4,
  work_contact_id int4,
  work_location_id int4,
  user_id int4,
  parent_id int4,
  coach_id int4,
  private_state_id int4,
  private_country_id int4,
  country_id int4,
  children int4,
  country_of_birth int4,
  bank_account_id int4,
  distance_home_work int4,
  km_home_work int4,
  create_uid int4,
  write_uid int4,
  name varchar,
  job_title varchar,
  work_phone varchar,
  mobile_phone varchar,
  work_email varchar,
  private_street varchar,
  private_street2 varchar,
  private_city varchar,
  private_zip varchar,
  private_phone varchar,
  private_email varchar,
  lang varchar,
  gender varchar,
  marital varchar,
  spouse_complete_name varchar,
  place_of_birth varchar,
  ssnid varchar,
  sinid varchar,
  identification_id varchar,
  passport_id varchar,
  permit_no varchar,
  visa_no varchar,
  certificate varchar,
  study_field varchar,
  study_school varchar,
  emergency_contact varchar,
  emergency_phone varchar,
  barcode varchar,
  pin varchar,
  spouse_birthdate date,
  birthday date,
  visa_expire date,
  permit_expire date,
  departure_date date,
  additional_note text,
  notes text,
  departure_description text,
  active bool,
  is_flexible bool,
  is_fully_flexible bool,
  work_permit_scheduled_activity bool,
  create_date timestamp,
  write_date timestamp
);

CREATE TABLE mail_message (
  id serial PRIMARY KEY,
  parent_id int4,
  res_id int4,
  record_company_id int4,
  subtype_id int4,
  mail_activity_type_id int4,
  author_id int4,
  author_guest_id int4,
  mail_server_id int4,
  create_uid int4,
  write_uid int4,
  subject varchar,
  model varchar,
  record_name varchar,
  message_type varchar NOT NULL,
  email_from varchar,
  message_id varchar,
  reply_to varchar,
  email_layout_xmlid varchar,
  body text,
  is_internal bool,
  reply_to_force_new bool,
  email_add_signature bool,
  date timestamp,
  create_date timestamp,
  write_date timestamp
);
CREATE INDEX mail_message_model_res_id_idx ON mail_message (model, res_id);

CREATE TABLE mail_tracking_value (
  id serial PRIMARY KEY,
  field_id int4,
  old_value_integer int4,
  new_value_integer int4,
  currency_id int4,
  mail_message_id int4 NOT NULL REFERENCES mail_message (id) ON DELETE CASCADE,
  create_uid int4,
  write_uid int4,
  old_value_char varchar,
  new_value_char varchar,
  field_info jsonb,
  old_value_text text,
  new_value_text text,
  old_value_datetime timestamp,
  new_value_datetime timestamp,
  old_value_float float8,
  new_value_float float8,
  create_date timestamp,
  write_date timestamp
);

CREATE TABLE ir_attachment (
  id serial PRIMARY KEY,
  res_id int4,
  company_id int4,
  file_size int4,
  create_uid int4,
  write_uid int4,
  name varchar NOT NULL,
  res_model varchar,
  res_field varchar,
  type varchar NOT NULL,
  url varchar,
  access_token varchar,
  store_fname varchar,
  checksum varchar,
  mimetype varchar,
  description text,
  index_content text,
  public bool,
  create_date timestamp,
  write_date timestamp,
  db_datas bytea,
  original_id int4
);
CREATE INDEX ir_attachment_res_idx ON ir_attachment (res_model, res_id);
CREATE INDEX ir_attachment_store_fname_index ON ir_attachment (store_fname);

CREATE TABLE message_attachment_rel (
  message_id int4 NOT NULL REFERENCES mail_message (id) ON DELETE CASCADE,
  attachment_id int4 NOT NULL REFERENCES ir_attachment (id) ON DELETE CASCADE,
  PRIMARY KEY (message_id, attachment_id)
);

CREATE TABLE ir_mail_server (
  id serial PRIMARY KEY,
  smtp_port int4,
  sequence int4,
  create_uid int4,
  write_uid int4,
  name varchar NOT NULL,
  from_filter varchar,
  smtp_host varchar,
  smtp_authentication varchar NOT NULL,
  smtp_user varchar,
  smtp_pass varchar,
  smtp_encryption varchar NOT NULL,
  smtp_ssl_certificate bytea,
  smtp_ssl_private_key bytea,
  smtp_debug bool,
  active bool,
  create_date timestamp,
  write_date timestamp
);

CREATE TABLE mail_template (
  id serial PRIMARY KEY,
  model_id int4,
  mail_server_id int4 REFERENCES ir_mail_server (id) ON DELETE SET NULL,
  name jsonb,
  subject jsonb,
  body_html jsonb,
  email_from varchar,
  active bool,
  create_uid int4, create_date timestamp, write_uid int4, write_date timestamp
);

CREATE TABLE fetchmail_server (
  id serial PRIMARY KEY,
  port int4,
  object_id int4,
  priority int4,
  create_uid int4,
  write_uid int4,
  name varchar NOT NULL,
  state varchar,
  server varchar,
  server_type varchar NOT NULL,
  "user" varchar,
  password varchar,
  script varchar,
  configuration text,
  active bool,
  is_ssl bool,
  attach bool,
  original bool,
  date timestamp,
  create_date timestamp,
  write_date timestamp
);

CREATE TABLE ir_act_server (
  id serial PRIMARY KEY,
  name jsonb NOT NULL,
  type varchar NOT NULL DEFAULT 'ir.actions.server',
  usage varchar NOT NULL,
  state varchar NOT NULL,
  model_id int4 NOT NULL,
  code text,
  create_uid int4, create_date timestamp, write_uid int4, write_date timestamp
);

CREATE TABLE ir_cron (
  id serial PRIMARY KEY,
  ir_actions_server_id int4 NOT NULL REFERENCES ir_act_server (id),
  user_id int4 NOT NULL,
  interval_number int4,
  numbercall int4,
  priority int4,
  create_uid int4,
  write_uid int4,
  cron_name varchar,
  interval_type varchar,
  active bool,
  doall bool,
  nextcall timestamp NOT NULL,
  lastcall timestamp,
  create_date timestamp,
  write_date timestamp
);

CREATE TABLE payment_provider (
  id serial PRIMARY KEY,
  sequence int4,
  company_id int4 NOT NULL,
  create_uid int4,
  write_uid int4,
  code varchar NOT NULL,
  state varchar NOT NULL,
  name jsonb NOT NULL,
  allow_tokenization bool,
  is_published bool,
  create_date timestamp,
  write_date timestamp
);

CREATE TABLE delivery_carrier (
  id serial PRIMARY KEY,
  sequence int4,
  product_id int4 NOT NULL,
  company_id int4,
  create_uid int4,
  write_uid int4,
  delivery_type varchar NOT NULL,
  integration_level varchar,
  name jsonb NOT NULL,
  active bool,
  prod_environment bool,
  debug_logging bool,
  create_date timestamp,
  write_date timestamp
);

CREATE TABLE iap_account (
  id serial PRIMARY KEY,
  create_uid int4,
  write_uid int4,
  service_name varchar,
  account_token varchar,
  create_date timestamp,
  write_date timestamp
);

CREATE TABLE auth_oauth_provider (
  id serial PRIMARY KEY,
  sequence int4,
  create_uid int4,
  write_uid int4,
  name varchar NOT NULL,
  client_id varchar,
  auth_endpoint varchar NOT NULL,
  scope varchar,
  validation_endpoint varchar NOT NULL,
  data_endpoint varchar,
  css_class varchar,
  body varchar NOT NULL,
  enabled bool,
  create_date timestamp,
  write_date timestamp
);

CREATE TABLE website (
  id serial PRIMARY KEY,
  sequence int4,
  company_id int4 NOT NULL,
  default_lang_id int4 NOT NULL,
  user_id int4 NOT NULL,
  create_uid int4,
  write_uid int4,
  name varchar NOT NULL,
  domain varchar,
  cdn_url varchar,
  robots_txt text,
  cdn_activated bool,
  create_date timestamp,
  write_date timestamp
);

CREATE TABLE ir_ui_view (
  id serial PRIMARY KEY,
  name varchar NOT NULL,
  key varchar,
  type varchar,
  active bool,
  create_uid int4, create_date timestamp, write_uid int4, write_date timestamp
);

CREATE TABLE base_automation (
  id serial PRIMARY KEY,
  model_id int4 NOT NULL,
  create_uid int4,
  write_uid int4,
  name jsonb NOT NULL,
  "trigger" varchar NOT NULL,
  url varchar,
  webhook_uuid varchar,
  log_webhook_calls bool,
  active bool,
  create_date timestamp,
  write_date timestamp
);
