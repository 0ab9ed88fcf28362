// The Redis part of the data tier, derived once and rendered by every target (the local runtime's
// redis.conf, the Compose bundle's, the Kubernetes ConfigMap's): TLS only, protected mode, memory
// and its eviction policy, persistence, and what Odoo's ACL user may do. Targets add only where
// things are (bind addresses, file paths). Pure.

/** The port every container target listens on with TLS (the local runtime picks a free one). */
export const REDIS_TLS_PORT = 6379;

/**
 * Odoo's users get what a session store needs and nothing dangerous: no FLUSHALL/FLUSHDB, CONFIG,
 * DEBUG, SHUTDOWN, MODULE or KEYS (all in @dangerous), and only their own key prefix. Key patterns
 * do not limit the commands that walk the keyspace, so SCAN, KEYS and RANDOMKEY are taken away by
 * name: with them, one tenant of a shared Redis would list another's session keys.
 */
export const ODOO_REDIS_PERMISSIONS =
  "-@all +@read +@write +@keyspace +@connection +@transaction -@dangerous -scan -keys -randomkey";

/** The keys an environment's sessions live under (OCA session_redis's prefix is the environment name). */
export const redisKeyPrefixOf = (environment: { readonly name: string }) => `odoo:${environment.name}:`;

/** The ACL line of Odoo's user; `passwordHash` is the SHA-256 of its password (or a template placeholder). */
export const odooRedisAclLine = (user: string, passwordHash: string, keyPrefix: string) =>
  `user ${user} on #${passwordHash} resetkeys ~${keyPrefix}* resetchannels ${ODOO_REDIS_PERMISSIONS}`;

/** The first ACL line of every target: nobody connects without a named user. */
export const REDIS_DEFAULT_USER_OFF = "user default off resetkeys resetchannels -@all";

/** Settings in file order, as redis.conf writes them (`key value`). */
export function redisSecuritySettings({
  tlsPort,
  maxMemoryMb,
}: {
  readonly tlsPort: number;
  readonly maxMemoryMb: number;
}): Record<string, string> {
  return {
    // No plaintext port at all: a client that does not speak TLS gets no answer.
    port: "0",
    "tls-port": String(tlsPort),
    "protected-mode": "yes",
    // Clients prove who they are with an ACL password; the server proves itself with its certificate.
    "tls-auth-clients": "no",
    "tls-protocols": '"TLSv1.2 TLSv1.3"',
    maxmemory: `${maxMemoryMb}mb`,
    // Sessions carry a TTL; evicting the oldest of them is the graceful way to run out of memory.
    "maxmemory-policy": "volatile-lru",
    // Sessions survive a restart, so a maintenance window does not log every user out.
    appendonly: "yes",
    save: '""',
    "enable-debug-command": "no",
    "enable-module-command": "no",
    "enable-protected-configs": "no",
  };
}

export const renderRedisSettings = (settings: Readonly<Record<string, string>>, header: readonly string[]) =>
  [...header, ...Object.entries(settings).map(([key, value]) => `${key} ${value}`), ""].join("\n");

/** key → value of a redis.conf, comments and blank lines left out. */
export const parseRedisConf = (text: string): Record<string, string> =>
  Object.fromEntries(
    text
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line !== "" && !line.startsWith("#"))
      .map((line) => [line.split(/\s+/)[0] ?? "", line.slice(line.search(/\s/) + 1).trim()]),
  );
