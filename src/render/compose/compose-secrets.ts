// The secret files a Compose bundle expects under secrets/. The bundle is committed to Git
// (GitOps), so it names these files and never holds their content: carehost (or the operator)
// places them on the host from carehost's encrypted secret store.
import { opensslDerivation } from "../../backup/backup-passphrase.js";
import type { TBackupRepositorySpec, TEnvironmentSpec, TOrganizationSpec } from "../../spec/spec-schema.js";
import { declaredRepositoriesOf } from "../data-tier/data-tier-backup.js";

export type TComposeSecret = {
  /** Compose secret name; also the file name under secrets/ and /run/secrets/<name> in containers. */
  readonly name: string;
  readonly usedBy: readonly string[];
  /** What the file holds, for the operator who places it. */
  readonly content: string;
  /** Host ownership and mode the file needs (bind mounts keep them). */
  readonly fileMode: string;
  /** For a file derived from another secret: the shell command that prints its content. */
  readonly derivedBy?: string;
};

// Bind-mounted secrets keep the host file's mode: the secrets/ directory (0700, root) keeps other
// host users out, and 0444 lets the container's non-root user read its files.
const READABLE = "0444, in secrets/ with mode 0700 owned by root";

export const SECRET_NAMES = {
  odooAdminPasswordHash: "odoo-admin-passwd-hash",
  odooDatabasePassword: "odoo-db-password",
  postgresSuperuserPassword: "postgres-superuser-password",
  postgresServerCertificate: "postgres-server.crt",
  postgresServerKey: "postgres-server.key",
  postgresCa: "postgres-ca.crt",
  ingressCertificate: "ingress-tls.crt",
  ingressKey: "ingress-tls.key",
  redisOdooPassword: "redis-odoo-password",
  redisServerCertificate: "redis-server.crt",
  redisServerKey: "redis-server.key",
} as const;

/**
 * The file of one environment's pgBackRest passphrase in one repository. The host gets the
 * passphrase derived for its own stanza (backup-passphrase.ts), never the repository's, from which
 * every other environment's could be derived. The stanza is the environment's name.
 */
export const backupPassphraseSecretName = (repository: TBackupRepositorySpec, environment: TEnvironmentSpec): string =>
  `backup-passphrase-${repository.name}-${environment.name}`;

/** The repositories an environment's backups go to, in the order pgBackRest numbers them (repo1, repo2…). */
export const backupRepositoriesOf = declaredRepositoriesOf;

export function composeSecrets(
  organization: TOrganizationSpec,
  environment: TEnvironmentSpec,
): readonly TComposeSecret[] {
  const hostnames = environment.ingress.hostnames.join(", ");
  const secrets: TComposeSecret[] = [
    {
      name: SECRET_NAMES.odooAdminPasswordHash,
      usedBy: ["odoo-web", "odoo-cron"],
      content:
        "Odoo's master password as a pbkdf2-sha512 hash ($pbkdf2-sha512$<rounds>$<salt>$<checksum>), one line; the entrypoint refuses anything else",
      fileMode: READABLE,
    },
    {
      name: SECRET_NAMES.odooDatabasePassword,
      usedBy: ["odoo-web", "odoo-cron", "postgres (first start only, to create the odoo role)"],
      content: "password of the PostgreSQL role odoo, one line",
      fileMode: READABLE,
    },
    {
      name: SECRET_NAMES.postgresSuperuserPassword,
      usedBy: ["postgres", ...(environment.backup.enabled ? ["backup (pgBackRest connects as postgres)"] : [])],
      content:
        "password of the PostgreSQL superuser postgres, one line (used by carehost for maintenance, never by Odoo)",
      fileMode: READABLE,
    },
    {
      name: SECRET_NAMES.postgresServerCertificate,
      usedBy: ["postgres"],
      content:
        "PEM server certificate whose subjectAltName includes DNS:postgres (Odoo connects with sslmode verify-full)",
      fileMode: READABLE,
    },
    {
      name: SECRET_NAMES.postgresServerKey,
      usedBy: ["postgres"],
      content: "PEM private key of that certificate",
      // PostgreSQL refuses a key that its own user cannot read or that others can.
      fileMode: "0600, owned by uid 999 (postgres in the postgres image)",
    },
    {
      name: SECRET_NAMES.postgresCa,
      usedBy: ["odoo-web", "odoo-cron", ...(environment.redis.enabled ? ["redis"] : [])],
      content: `PEM certificate of the CA that signed postgres-server.crt${environment.redis.enabled ? " and redis-server.crt" : ""}`,
      fileMode: READABLE,
    },
    {
      name: SECRET_NAMES.ingressCertificate,
      usedBy: ["traefik"],
      content: `PEM certificate chain for ${hostnames}`,
      fileMode: READABLE,
    },
    {
      name: SECRET_NAMES.ingressKey,
      usedBy: ["traefik"],
      content: "PEM private key of that certificate",
      fileMode: READABLE,
    },
  ];
  if (environment.redis.enabled) {
    secrets.push({
      name: SECRET_NAMES.redisOdooPassword,
      usedBy: ["redis", "odoo-web"],
      content: "password of the Redis ACL user odoo, one line, URL-safe characters only (A-Z a-z 0-9 - _ . ~)",
      fileMode: READABLE,
    });
    secrets.push(
      {
        name: SECRET_NAMES.redisServerCertificate,
        usedBy: ["redis"],
        content: "PEM server certificate whose subjectAltName includes DNS:redis, signed by the CA of postgres-ca.crt",
        fileMode: READABLE,
      },
      {
        name: SECRET_NAMES.redisServerKey,
        usedBy: ["redis"],
        content: "PEM private key of that certificate",
        fileMode: "0600, owned by uid 999 (redis in the redis image)",
      },
    );
  }
  for (const repository of backupRepositoriesOf(organization, environment)) {
    if (repository.type !== "posix") {
      secrets.push({
        name: repository.keySecretRef,
        usedBy: ["postgres (pgBackRest)", "backup (pgBackRest, restic)"],
        content:
          repository.type === "azure"
            ? `shared key of the Azure storage account ${repository.account}, one line`
            : `access key ID on the first line and secret access key on the second, for bucket ${repository.bucket}`,
        fileMode: READABLE,
      });
    }
    // Every repository is encrypted client-side (pgBackRest's aes-256-cbc, restic's own), whether
    // or not the spec names its passphrase: carehost makes `<repository>-cipher` otherwise.
    const scope = { organization: organization.metadata.name, repository: repository.name, stanza: environment.name };
    secrets.push({
      name: backupPassphraseSecretName(repository, environment),
      usedBy: ["postgres (pgBackRest)", "backup (pgBackRest, restic)"],
      content: `encryption passphrase (pgBackRest aes-256-cbc, and restic's for the filestore) of stanza ${environment.name} in backup repository ${repository.name}, one line: derived from the repository's passphrase (carehost secret backup/${organization.metadata.name}/${repository.cipherSecretRef ?? `${repository.name}-cipher`}), which stays off this host`,
      fileMode: READABLE,
      derivedBy: opensslDerivation(scope),
    });
  }
  // Two repositories may share a key secret; Compose declares each secret once.
  const byName = new Map<string, TComposeSecret>();
  for (const secret of secrets) {
    const known = byName.get(secret.name);
    byName.set(
      secret.name,
      known === undefined ? secret : { ...known, content: `${known.content}; also ${secret.content}` },
    );
  }
  return [...byName.values()];
}

export function renderSecretsReadme(
  organization: TOrganizationSpec,
  environment: TEnvironmentSpec,
  secrets: readonly TComposeSecret[],
): string {
  const lines = [
    `# Secrets for ${organization.metadata.name}/${environment.name}`,
    "",
    "Rendered by carehost. This directory is part of the bundle only through this file: the secret",
    "files themselves are placed here on the host by carehost from its encrypted secret store (or by",
    "the operator), and are never committed. Compose mounts each as /run/secrets/<file>.",
    "",
    "Keep secrets/ mode 0700, owned by root. Files:",
    "",
    "| file | used by | content | mode |",
    "|---|---|---|---|",
    ...secrets.map(
      (secret) => `| ${secret.name} | ${secret.usedBy.join(", ")} | ${secret.content} | ${secret.fileMode} |`,
    ),
    "",
  ];
  const derivations = secrets.flatMap((secret) =>
    secret.derivedBy === undefined ? [] : [`${secret.name}:`, "", "```sh", secret.derivedBy, "```", ""],
  );
  if (derivations.length > 0) {
    lines.push(
      "Derived files: each is printed by the command under its name, run where the repository's",
      "passphrase is (in REPOSITORY_PASSPHRASE), with OpenSSL 3:",
      "",
      ...derivations,
    );
  }
  return lines.join("\n");
}
