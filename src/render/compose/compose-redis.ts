// Redis for Odoo sessions: protected mode, no default user, one ACL user for Odoo whose password
// arrives as a secret file and is stored in the ACL only as its SHA-256.
import type { TEnvironmentSpec } from "../../spec/spec-schema.js";
import { SECRET_NAMES } from "./compose-secrets.js";

export const REDIS_PATHS = {
  conf: "/usr/local/etc/redis/redis.conf",
  entrypoint: "/etc/carehost/redis-entrypoint.sh",
  /** tmpfs: the ACL file is built at start from the secret and never persisted. */
  aclDir: "/run/redis",
  data: "/data",
} as const;

/** maxmemory plus room for the allocator, client buffers and the fork of an AOF rewrite. */
export const redisMemoryMiB = (environment: TEnvironmentSpec): number =>
  environment.redis.maxMemoryMb + Math.max(64, Math.ceil(environment.redis.maxMemoryMb / 4));

export function renderRedisConf(environment: TEnvironmentSpec): string {
  return [
    "# Rendered by carehost from the organization spec; edits are overwritten and reported as drift.",
    `# environment: ${environment.name} (${environment.tier}, ${environment.dataClass})`,
    // The optional "-::*" keeps start-up working where the container has no IPv6.
    "bind * -::*",
    "port 6379",
    "protected-mode yes",
    `aclfile ${REDIS_PATHS.aclDir}/users.acl`,
    `maxmemory ${environment.redis.maxMemoryMb}mb`,
    // Sessions carry a TTL; evicting only keys that expire anyway keeps anything else intact.
    "maxmemory-policy volatile-lru",
    // Sessions survive a restart, so a maintenance window does not log every user out.
    `dir ${REDIS_PATHS.data}`,
    "appendonly yes",
    "appendfsync everysec",
    'save ""',
    "enable-debug-command no",
    "enable-module-command no",
    "enable-protected-configs no",
    "loglevel notice",
    'logfile ""',
    "",
  ].join("\n");
}

export function renderRedisEntrypoint(): string {
  return [
    "#!/bin/sh",
    "# Rendered by carehost; edits are overwritten and reported as drift.",
    "set -eu",
    "umask 077",
    `password_hash=$(tr -d '\\n' < /run/secrets/${SECRET_NAMES.redisOdooPassword} | sha256sum | cut -d' ' -f1)`,
    // The default user is off: every client authenticates as a named user (no anonymous access).
    "{",
    "  echo 'user default off'",
    `  printf 'user odoo on #%s ~* &* +@all -@dangerous\\n' "$password_hash"`,
    `} > ${REDIS_PATHS.aclDir}/users.acl`,
    "unset password_hash",
    `exec redis-server ${REDIS_PATHS.conf}`,
    "",
  ].join("\n");
}
