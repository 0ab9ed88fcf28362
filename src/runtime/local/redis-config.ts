// redis.conf and the ACL file for a carehost-managed redis-server. Pure, like postgres-config.ts:
// what is written is what the policy engine checks, and anything else on disk is drift.
import { createHash } from "node:crypto";
import type { TServerCertificate } from "./runtime-ca.js";

/** carehost's own user, for reading state and loading ACLs; Odoo never gets it. */
export const REDIS_ADMIN_USER = "carehost-admin";

export type TRedisAclUser = {
  readonly name: string;
  readonly password: string;
  /** Keys the user may touch, e.g. "odoo:staging:" — a shared Redis confines each tenant to its prefix. */
  readonly keyPrefix: string;
};

export type TRedisConfigInput = {
  readonly directory: string;
  readonly port: number;
  readonly certificate: TServerCertificate;
  readonly maxMemoryMb: number;
};

/** Settings in file order; the keys carehost reads back with CONFIG GET to detect drift. */
export function redisSettings(input: TRedisConfigInput): Record<string, string> {
  return {
    // No plaintext port at all: a client that does not speak TLS gets no answer.
    port: "0",
    "tls-port": String(input.port),
    bind: "127.0.0.1 -::1",
    "protected-mode": "yes",
    "tls-cert-file": input.certificate.certPath,
    "tls-key-file": input.certificate.keyPath,
    "tls-ca-cert-file": input.certificate.caPath,
    // Clients prove who they are with an ACL password; the server proves itself with its certificate.
    "tls-auth-clients": "no",
    "tls-protocols": '"TLSv1.2 TLSv1.3"',
    aclfile: `${input.directory}/users.acl`,
    daemonize: "yes",
    pidfile: `${input.directory}/redis.pid`,
    logfile: `${input.directory}/redis.log`,
    dir: `${input.directory}/data`,
    maxmemory: `${input.maxMemoryMb}mb`,
    // Sessions carry a TTL; evicting the oldest of them is the graceful way to run out of memory.
    "maxmemory-policy": "volatile-lru",
    appendonly: "yes",
    save: '""',
    "enable-debug-command": "no",
    "enable-module-command": "no",
    "enable-protected-configs": "no",
  };
}

export function renderRedisConf(settings: Readonly<Record<string, string>>): string {
  return [
    "# Rendered by carehost; edits are reported as drift and overwritten by `carehost apply`.",
    ...Object.entries(settings).map(([key, value]) => `${key} ${value}`),
    "",
  ].join("\n");
}

const sha256 = (value: string) => createHash("sha256").update(value).digest("hex");

/**
 * Odoo's users get what a session store needs and nothing dangerous: no FLUSHALL/FLUSHDB, CONFIG,
 * DEBUG, SHUTDOWN, MODULE or KEYS (all in @dangerous), and only their own key prefix. Key patterns
 * do not limit the commands that walk the keyspace, so SCAN, KEYS and RANDOMKEY are taken away by
 * name: with them, one tenant of a shared Redis would list another's session keys.
 */
export const ODOO_REDIS_PERMISSIONS =
  "-@all +@read +@write +@keyspace +@connection +@transaction -@dangerous -scan -keys -randomkey";

/** users.acl with passwords as SHA-256 only (Redis's "#" form), so the file holds no secret. */
export function renderRedisAcl(adminPassword: string, users: readonly TRedisAclUser[]): string {
  const lines = [
    "user default off resetkeys resetchannels -@all",
    `user ${REDIS_ADMIN_USER} on #${sha256(adminPassword)} ~* &* +@all`,
    ...[...users]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map(
        (user) =>
          `user ${user.name} on #${sha256(user.password)} resetkeys ~${user.keyPrefix}* resetchannels ${ODOO_REDIS_PERMISSIONS}`,
      ),
  ];
  return `${lines.join("\n")}\n`;
}
