#!/bin/sh
# Rendered by carehost; edits are overwritten and reported as drift.
set -eu
umask 077
password_hash=$(tr -d '\n' < /run/secrets/redis-odoo-password | sha256sum | cut -d' ' -f1)
{
  echo 'user default off resetkeys resetchannels -@all'
  printf 'user odoo on #%s resetkeys ~odoo:prod:* resetchannels -@all +@read +@write +@keyspace +@connection +@transaction -@dangerous -scan -keys -randomkey\n' "$password_hash"
} > /run/redis/users.acl
unset password_hash
exec redis-server /usr/local/etc/redis/redis.conf
