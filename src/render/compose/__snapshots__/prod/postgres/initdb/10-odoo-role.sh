#!/bin/sh
# Rendered by carehost; sourced by the postgres image's entrypoint when the cluster is created.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<'SQL'
\set odoo_password `cat /run/secrets/odoo-db-password`
SET log_statement = 'none';
CREATE ROLE odoo LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION CONNECTION LIMIT 109 PASSWORD :'odoo_password';
CREATE DATABASE odoo OWNER odoo ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C.UTF-8' TEMPLATE template0;
REVOKE ALL ON DATABASE odoo FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE odoo TO odoo;
SQL
