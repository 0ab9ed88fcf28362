#!/bin/sh
# Rendered by carehost; edits are overwritten and reported as drift.
set -eu
type="$1"
case "$type" in full|diff|incr) ;; *) echo "usage: backup.sh full|diff|incr" >&2; exit 2 ;; esac
umask 077
export PGPASSWORD="$(cat /run/secrets/postgres-superuser-password)"
export PGBACKREST_REPO1_CIPHER_PASS="$(cat /run/secrets/backup-passphrase-local-prod)"
export PGBACKREST_REPO2_AZURE_KEY="$(cat /run/secrets/backup-offsite-azure-key)"
export PGBACKREST_REPO2_CIPHER_PASS="$(cat /run/secrets/backup-passphrase-offsite-prod)"
mkdir -p /tmp/pgbackrest/spool /tmp/pgbackrest/lock /tmp/pgbackrest/log
# stanza-create is idempotent: the first run creates the stanza in every repository.
pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --stanza=prod stanza-create
pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --stanza=prod --repo=1 --type="$type" backup  # local
pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --stanza=prod --repo=2 --type="$type" backup  # offsite
# filestore -> local
(
  export RESTIC_PASSWORD="$(cat /run/secrets/backup-passphrase-local-prod)"
  restic -r '/var/lib/pgbackrest/local/filestore/prod' cat config >/dev/null 2>&1 || restic -r '/var/lib/pgbackrest/local/filestore/prod' init
  restic -r '/var/lib/pgbackrest/local/filestore/prod' backup --tag env:prod /var/lib/odoo/filestore
  restic -r '/var/lib/pgbackrest/local/filestore/prod' forget --prune --tag env:prod --group-by '' --keep-last 1 --keep-within 14d --keep-weekly 8 --keep-monthly 12
)
# filestore -> offsite
(
  export RESTIC_PASSWORD="$(cat /run/secrets/backup-passphrase-offsite-prod)"
  export AZURE_ACCOUNT_NAME='northwindbackups'
  export AZURE_ACCOUNT_KEY="$(sed -n 1p /run/secrets/backup-offsite-azure-key)"
  restic -r 'azure:carehost-pgbackrest:/northwind-health/prod/filestore/prod' cat config >/dev/null 2>&1 || restic -r 'azure:carehost-pgbackrest:/northwind-health/prod/filestore/prod' init
  restic -r 'azure:carehost-pgbackrest:/northwind-health/prod/filestore/prod' backup --tag env:prod /var/lib/odoo/filestore
  restic -r 'azure:carehost-pgbackrest:/northwind-health/prod/filestore/prod' forget --prune --tag env:prod --group-by '' --keep-last 1 --keep-within 14d --keep-weekly 8 --keep-monthly 12
)
