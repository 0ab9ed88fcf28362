#!/bin/sh
# Rendered by carehost; edits are overwritten and reported as drift.
# Usage: odoo-entrypoint.sh <rendered odoo.conf> [odoo arguments]
set -eu
umask 077
rendered_conf="$1"
shift
runtime_dir=/run/odoo

hash=$(cat /run/secrets/odoo-admin-passwd-hash)
case "$hash" in
  '$pbkdf2-sha512$'*) ;;
  *) echo "carehost: /run/secrets/odoo-admin-passwd-hash is not a pbkdf2-sha512 hash; refusing to start" >&2; exit 1 ;;
esac
{ cat "$rendered_conf"; printf 'admin_passwd = %s\n' "$hash"; } > "$runtime_dir/odoo.conf"
unset hash

# libpq's password file format escapes ':' and '\'.
db_password=$(sed -e 's/[\\:]/\\&/g' /run/secrets/odoo-db-password)
printf '%s:%s:%s:%s:%s\n' 'postgres' 5432 'odoo' 'odoo' "$db_password" > "$runtime_dir/pgpass"
unset db_password
export PGPASSFILE="$runtime_dir/pgpass"

# Sessions in Redis (OCA session_redis reads ODOO_SESSION_REDIS_URL), so web replicas share them.
redis_password=$(cat /run/secrets/redis-odoo-password)
case "$redis_password" in
  *[!A-Za-z0-9._~-]*|'') echo "carehost: the Redis password must be URL-safe" >&2; exit 1 ;;
esac
export ODOO_SESSION_REDIS_URL="rediss://odoo:$redis_password@redis:6379/0?ssl_cert_reqs=required&ssl_ca_certs=/run/secrets/postgres-ca.crt"
unset redis_password

exec odoo --config "$runtime_dir/odoo.conf" "$@"
