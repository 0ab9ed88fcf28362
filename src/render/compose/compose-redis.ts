// Redis for Odoo sessions, from the data tier's model: TLS only, protected mode, no default user,
// one ACL user for Odoo confined to the environment's key prefix, whose password arrives as a
// secret file and is stored in the ACL only as its SHA-256.
import type { TEnvironmentSpec } from "../../spec/spec-schema.js";
import {
  odooRedisAclLine,
  REDIS_DEFAULT_USER_OFF,
  REDIS_TLS_PORT,
  redisKeyPrefixOf,
  redisSecuritySettings,
  renderRedisSettings,
} from "../data-tier/data-tier-redis.js";
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
  return renderRedisSettings(
    {
      ...redisSecuritySettings({ tlsPort: REDIS_TLS_PORT, maxMemoryMb: environment.redis.maxMemoryMb }),
      // The optional "-::*" keeps start-up working where the container has no IPv6.
      bind: "* -::*",
      "tls-cert-file": `/run/secrets/${SECRET_NAMES.redisServerCertificate}`,
      "tls-key-file": `/run/secrets/${SECRET_NAMES.redisServerKey}`,
      "tls-ca-cert-file": `/run/secrets/${SECRET_NAMES.postgresCa}`,
      aclfile: `${REDIS_PATHS.aclDir}/users.acl`,
      dir: REDIS_PATHS.data,
      appendfsync: "everysec",
      loglevel: "notice",
      logfile: '""',
    },
    [
      "# Rendered by carehost from the organization spec; edits are overwritten and reported as drift.",
      `# environment: ${environment.name} (${environment.tier}, ${environment.dataClass})`,
    ],
  );
}

export function renderRedisEntrypoint(environment: TEnvironmentSpec): string {
  return [
    "#!/bin/sh",
    "# Rendered by carehost; edits are overwritten and reported as drift.",
    "set -eu",
    "umask 077",
    `password_hash=$(tr -d '\\n' < /run/secrets/${SECRET_NAMES.redisOdooPassword} | sha256sum | cut -d' ' -f1)`,
    // The default user is off: every client authenticates as a named user (no anonymous access).
    "{",
    `  echo '${REDIS_DEFAULT_USER_OFF}'`,
    `  printf '${odooRedisAclLine("odoo", "%s", redisKeyPrefixOf(environment))}\\n' "$password_hash"`,
    `} > ${REDIS_PATHS.aclDir}/users.acl`,
    "unset password_hash",
    `exec redis-server ${REDIS_PATHS.conf}`,
    "",
  ].join("\n");
}
