#!/bin/sh
# Rendered by carehost; edits are overwritten and reported as drift.
set -eu
if [ ! -f /usr/lib/postgresql/15/lib/pgaudit.so ]; then
  echo "carehost: this image has no pgaudit, which audits statements (CH-DB-006); build it from postgres/Dockerfile" >&2
  exit 1
fi
# Without pgBackRest every archive_command fails and WAL fills the disk: refuse to start instead.
if ! command -v pgbackrest >/dev/null 2>&1; then
  echo "carehost: backups are enabled but this image has no pgbackrest; use an image that includes it" >&2
  exit 1
fi
mkdir -p /tmp/pgbackrest/spool /tmp/pgbackrest/lock /tmp/pgbackrest/log
export PGBACKREST_REPO1_CIPHER_PASS="$(cat /run/secrets/backup-passphrase-local-prod)"
export PGBACKREST_REPO2_AZURE_KEY="$(cat /run/secrets/backup-offsite-azure-key)"
export PGBACKREST_REPO2_CIPHER_PASS="$(cat /run/secrets/backup-passphrase-offsite-prod)"
exec docker-entrypoint.sh postgres -c config_file=/etc/postgresql/postgresql.conf
