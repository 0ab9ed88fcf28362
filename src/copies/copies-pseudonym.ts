// Deterministic pseudonyms computed inside PostgreSQL, set-based: one UPDATE per table calls these
// functions for every row, so a million partners are one statement, not a million round trips.
//
// Each value becomes HMAC-SHA256(key, kind || 0x1F || normalized value), and the pseudonym is
// drawn from those bytes in the value's format (an email stays an email, a phone keeps its digit
// count, a date stays a date in the same year). Equal inputs give equal outputs, so joins,
// duplicates and "same email on two partners" still behave; without the key nothing links a
// pseudonym to its value.
//
// The key is this copy's own: 32 bytes drawn by the copy's server (gen_random_uuid's CSPRNG, hashed),
// kept only in transaction-local settings (set_config(..., true)), never sent over the wire, never
// in a statement a log or pgaudit could record, and gone when the transaction ends. HMAC is built
// from PostgreSQL's own sha256() (RFC 2104: H(K^opad || H(K^ipad || m))), so no extension is
// installed into the copy.
import type { TCopyConnection } from "./copies-sql.js";

export const PSEUDONYM_KINDS = [
  "name",
  "email",
  "phone",
  "text",
  "html",
  "date",
  "identifier",
  "street",
  "city",
  "zip",
  "clear",
] as const;
export type TPseudonymKind = (typeof PSEUDONYM_KINDS)[number];

/** Where pseudonymous emails live: a reserved name (RFC 2606) that no real address can have. */
export const PSEUDONYM_EMAIL_DOMAIN = "example.com";

const CONSONANTS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "ch", "sh"];
const VOWELS = ["a", "e", "i", "o"];
const SYLLABLES = CONSONANTS.flatMap((consonant) => VOWELS.map((vowel) => consonant + vowel));
const SYLLABLE_ARRAY = `ARRAY[${SYLLABLES.map((syllable) => `'${syllable}'`).join(",")}]`;

/** A made-up word of `count` syllables drawn from bytes offset.. of the hash h. */
const word = (offset: number, count: number): string =>
  Array.from({ length: count }, (_, index) => `(${SYLLABLE_ARRAY})[1 + get_byte(h, ${offset + index}) % 64]`).join(
    " || ",
  );

// Functions live in pg_temp: they exist for this session only and leave nothing in the copy.
const FUNCTIONS = String.raw`
CREATE OR REPLACE FUNCTION pg_temp.carehost_hmac(kind text, value text) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
  SELECT sha256(decode(current_setting('carehost.copy_opad'), 'hex')
         || sha256(decode(current_setting('carehost.copy_ipad'), 'hex') || convert_to(kind || chr(31) || value, 'UTF8')))
$fn$;

CREATE OR REPLACE FUNCTION pg_temp.carehost_digits(h bytea, n int) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
  SELECT left(translate(encode(h, 'hex') || encode(sha256(h), 'hex'), 'abcdef', '012345'), n)
$fn$;

CREATE OR REPLACE FUNCTION pg_temp.carehost_pseudo_name(value text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $fn$
DECLARE h bytea;
BEGIN
  IF value IS NULL OR btrim(value) = '' THEN RETURN value; END IF;
  h := pg_temp.carehost_hmac('name', lower(btrim(value)));
  RETURN initcap(${word(0, 2)}) || ' ' || initcap(${word(2, 3)});
END $fn$;

CREATE OR REPLACE FUNCTION pg_temp.carehost_pseudo_email(value text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $fn$
DECLARE h bytea;
BEGIN
  IF value IS NULL OR btrim(value) = '' THEN RETURN value; END IF;
  h := pg_temp.carehost_hmac('email', lower(btrim(value)));
  RETURN ${word(0, 2)} || '.' || substr(encode(h, 'hex'), 5, 12) || '@${PSEUDONYM_EMAIL_DOMAIN}';
END $fn$;

-- "Name" <address>, or a bare address, as Odoo writes email_from and reply_to: the address gets the
-- same pseudonym as in res_partner.email, the display name the same as in res_partner.name.
CREATE OR REPLACE FUNCTION pg_temp.carehost_pseudo_mailbox(value text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $fn$
DECLARE address text; display text;
BEGIN
  IF value IS NULL OR btrim(value) = '' THEN RETURN value; END IF;
  address := substring(value FROM '<([^<>]*)>\s*$');
  IF address IS NULL THEN RETURN pg_temp.carehost_pseudo_email(value); END IF;
  display := btrim(substring(value FROM '^(.*)<[^<>]*>\s*$'), ' "');
  IF display = '' THEN RETURN '<' || pg_temp.carehost_pseudo_email(address) || '>'; END IF;
  RETURN '"' || pg_temp.carehost_pseudo_name(display) || '" <' || pg_temp.carehost_pseudo_email(address) || '>';
END $fn$;

-- Digits only, as many as the value had, a leading + kept: a phone still validates as a phone.
CREATE OR REPLACE FUNCTION pg_temp.carehost_pseudo_phone(value text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $fn$
DECLARE digits text;
BEGIN
  IF value IS NULL OR btrim(value) = '' THEN RETURN value; END IF;
  digits := regexp_replace(value, '[^0-9]', '', 'g');
  RETURN CASE WHEN btrim(value) LIKE '+%' THEN '+' ELSE '' END
      || pg_temp.carehost_digits(pg_temp.carehost_hmac('phone', digits), greatest(length(digits), 4));
END $fn$;

CREATE OR REPLACE FUNCTION pg_temp.carehost_pseudo_text(value text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $fn$
DECLARE h bytea;
BEGIN
  IF value IS NULL OR btrim(value) = '' THEN RETURN value; END IF;
  h := pg_temp.carehost_hmac('text', value);
  RETURN initcap(${word(0, 3)}) || ' ' || ${word(3, 2)} || ' ' || ${word(5, 3)} || ' ' || ${word(8, 2)};
END $fn$;

CREATE OR REPLACE FUNCTION pg_temp.carehost_pseudo_html(value text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $fn$
BEGIN
  IF value IS NULL OR btrim(value) = '' THEN RETURN value; END IF;
  RETURN '<p>' || pg_temp.carehost_pseudo_text(value) || '</p>';
END $fn$;

-- Same year, another day of it (HIPAA Safe Harbor keeps no date element finer than the year).
CREATE OR REPLACE FUNCTION pg_temp.carehost_pseudo_date(value date) RETURNS date
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $fn$
DECLARE h bytea;
BEGIN
  IF value IS NULL THEN RETURN NULL; END IF;
  h := pg_temp.carehost_hmac('date', value::text);
  RETURN make_date(extract(year FROM value)::int, 1, 1) + (get_byte(h, 0) * 256 + get_byte(h, 1)) % 365;
END $fn$;

-- Upper-case letters and digits, as long as the value (4 to 64): SSNs, passports, VAT, references.
CREATE OR REPLACE FUNCTION pg_temp.carehost_pseudo_identifier(value text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $fn$
BEGIN
  IF value IS NULL OR btrim(value) = '' THEN RETURN value; END IF;
  RETURN 'X' || upper(left(encode(pg_temp.carehost_hmac('identifier', upper(btrim(value))), 'hex'),
                           least(greatest(length(btrim(value)), 4), 64) - 1));
END $fn$;

CREATE OR REPLACE FUNCTION pg_temp.carehost_pseudo_street(value text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $fn$
DECLARE h bytea;
BEGIN
  IF value IS NULL OR btrim(value) = '' THEN RETURN value; END IF;
  h := pg_temp.carehost_hmac('street', lower(btrim(value)));
  RETURN (1 + (get_byte(h, 0) * 256 + get_byte(h, 1)) % 999)::text || ' ' || initcap(${word(2, 3)}) || ' Street';
END $fn$;

CREATE OR REPLACE FUNCTION pg_temp.carehost_pseudo_city(value text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $fn$
DECLARE h bytea;
BEGIN
  IF value IS NULL OR btrim(value) = '' THEN RETURN value; END IF;
  h := pg_temp.carehost_hmac('city', lower(btrim(value)));
  RETURN initcap(${word(0, 3)});
END $fn$;

-- A postal code of digits stays digits of the same length; any other keeps its length.
CREATE OR REPLACE FUNCTION pg_temp.carehost_pseudo_zip(value text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $fn$
BEGIN
  IF value IS NULL OR btrim(value) = '' THEN RETURN value; END IF;
  IF btrim(value) ~ '^[0-9]+$' THEN
    RETURN pg_temp.carehost_digits(pg_temp.carehost_hmac('zip', btrim(value)), length(btrim(value)));
  END IF;
  RETURN pg_temp.carehost_pseudo_identifier(value);
END $fn$;
`;

/** Creates the pseudonym functions in this session's pg_temp schema (idempotent). */
export const installPseudonymFunctions = async (client: TCopyConnection): Promise<void> => {
  await client.query(FUNCTIONS);
};

/**
 * Draws this copy's key on the server and keeps it for the current transaction only; call inside
 * BEGIN … COMMIT. Two v4 UUIDs give 244 random bits from the server's CSPRNG; sha256 makes them
 * the 32-byte HMAC key, padded to SHA-256's 64-byte block and xored with ipad (0x36) and opad (0x5C).
 */
export const drawCopyKey = async (client: TCopyConnection): Promise<void> => {
  await client.query(
    `WITH key AS (
       SELECT sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8'))
              || decode(repeat('00', 32), 'hex') AS block
     ), pads AS (
       SELECT string_agg(lpad(to_hex(get_byte(block, i) # 54), 2, '0'), '' ORDER BY i) AS ipad,
              string_agg(lpad(to_hex(get_byte(block, i) # 92), 2, '0'), '' ORDER BY i) AS opad
         FROM key, generate_series(0, 63) AS i
     )
     SELECT set_config('carehost.copy_ipad', ipad, true), set_config('carehost.copy_opad', opad, true) FROM pads`,
  );
};

/** The SQL expression that pseudonymizes `column` as `kind`, or NULL for "clear". */
export const pseudonymExpression = (kind: TPseudonymKind, column: string, dataType: string): string => {
  if (kind === "clear") return "NULL";
  if (kind === "date") return `pg_temp.carehost_pseudo_date(${column}::date)`;
  const call = `pg_temp.carehost_pseudo_${kind}(${column}::text)`;
  // Translated fields (jsonb, {"en_US": …}) keep their shape: every language's text gets the pseudonym.
  if (dataType === "jsonb")
    return `(SELECT jsonb_object_agg(lang.key, pg_temp.carehost_pseudo_${kind}(lang.value)) FROM jsonb_each_text(${column}) AS lang)`;
  return call;
};
