// redis.conf and the ACL file for a carehost-managed redis-server. Pure, like postgres-config.ts:
// what is written is what the policy engine checks, and anything else on disk is drift.
import { createHash } from "node:crypto";
import {
  ODOO_REDIS_PERMISSIONS,
  odooRedisAclLine,
  REDIS_DEFAULT_USER_OFF,
  redisSecuritySettings,
  renderRedisSettings,
} from "../../render/data-tier/data-tier-redis.js";
import type { TServerCertificate } from "./runtime-ca.js";

export { ODOO_REDIS_PERMISSIONS };

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
    ...redisSecuritySettings({ tlsPort: input.port, maxMemoryMb: input.maxMemoryMb }),
    bind: "127.0.0.1 -::1",
    "tls-cert-file": input.certificate.certPath,
    "tls-key-file": input.certificate.keyPath,
    "tls-ca-cert-file": input.certificate.caPath,
    aclfile: `${input.directory}/users.acl`,
    daemonize: "yes",
    pidfile: `${input.directory}/redis.pid`,
    logfile: `${input.directory}/redis.log`,
    dir: `${input.directory}/data`,
  };
}

export const renderRedisConf = (settings: Readonly<Record<string, string>>): string =>
  renderRedisSettings(settings, [
    "# Rendered by carehost; edits are reported as drift and overwritten by `carehost apply`.",
  ]);

const sha256 = (value: string) => createHash("sha256").update(value).digest("hex");

/** users.acl with passwords as SHA-256 only (Redis's "#" form), so the file holds no secret. */
export function renderRedisAcl(adminPassword: string, users: readonly TRedisAclUser[]): string {
  const lines = [
    REDIS_DEFAULT_USER_OFF,
    `user ${REDIS_ADMIN_USER} on #${sha256(adminPassword)} ~* &* +@all`,
    ...[...users]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((user) => odooRedisAclLine(user.name, sha256(user.password), user.keyPrefix)),
  ];
  return `${lines.join("\n")}\n`;
}
