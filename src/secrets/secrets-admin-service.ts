// What people may do with carehost's secrets: list them (names and versions, never values),
// reveal one with a reason (audited), and rotate one. Rotating a runtime secret re-applies its
// organization at once, so PostgreSQL, Redis and the rendered files use the new value without a
// restart: sessions already connected stay connected.
import { s3CredentialsFrom } from "../backup/s3-bucket.js";
import { authorize, authorizeListing, inScope } from "../identity/identity-permissions.js";
import { SMTP_PASSWORD_SECRET } from "../lib/config.js";
import type { TAuthorizationScope } from "../identity/identity-permissions.js";
import type { TAuditEvent } from "../audit/audit-types.js";
import type { TChangeAudit } from "../identity/identity-types.js";
import { NotFoundError, ValidationError } from "../lib/errors.js";
import type { TRequestContext } from "../lib/request-context.js";
import { hashOdooAdminPassword } from "../render/odoo/odoo-admin-password.js";
import type { TRuntimeAction } from "../runtime/runtime-types.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import { generatePassword } from "./secrets-generate.js";
import type { TSecretListing, TSecretsService } from "./secrets-service.js";

type TSecretsAdminDeps = {
  secrets: Pick<TSecretsService, "list" | "reveal" | "rotate" | "ensure">;
  audit: TChangeAudit;
  latestSpecs: () => Promise<TOrganizationSpec[]>;
  /** Re-applies one organization; absent without a runtime. */
  reconcile?: (ctx: TRequestContext, organization: TOrganizationSpec) => Promise<TRuntimeAction[]>;
};

/** runtime/<organization>/… names the organization a runtime secret belongs to. */
const organizationOf = (name: string) => /^runtime\/([^/]+)\//.exec(name)?.[1];

/**
 * Whose a secret is: runtime/<organization>/…, backup/<organization>/… and identity/<organization>/…
 * belong to that organization; any other name is carehost's own and needs a role over every organization.
 */
export const secretScope = (name: string): TAuthorizationScope => {
  const organization = /^(?:runtime|backup|identity)\/([^/]+)\//.exec(name)?.[1];
  return organization === undefined ? "every-organization" : { organization };
};

const rotated = (name: string, version: number): TAuditEvent => ({
  type: "secret.rotated",
  outcome: "success",
  target: `secret:${name}`,
  payload: { secretName: name, version },
});

// A new version and its secret.rotated entry commit in one transaction (the audit log's
// recordChange): the store never holds a version the log does not name, nor the log one the store
// lacks. The reconcile that follows acts outside the database and audits itself.
export const secretsAdminServiceFactory = ({ secrets, audit, latestSpecs, reconcile }: TSecretsAdminDeps) => ({
  /** The names of the caller's organizations' secrets. */
  list: async (ctx: TRequestContext): Promise<TSecretListing[]> => {
    const held = await authorizeListing(ctx, "secret:read", audit);
    return (await secrets.list()).filter((secret) => {
      const scope = secretScope(secret.name);
      return held.all || (typeof scope === "object" && inScope(held, scope.organization));
    });
  },

  reveal: async (ctx: TRequestContext, name: string, reason: string): Promise<string> =>
    secrets.reveal(ctx, name, reason),

  /**
   * Stores a credential carehost cannot generate: the access key of a backup repository, named by
   * the spec's keySecretRef as backup/<organization>/<keySecretRef>. A new value is a new version.
   */
  set: async (
    ctx: TRequestContext,
    name: string,
    value: string,
  ): Promise<{ name: string; version: number; runtime: TRuntimeAction[] }> => {
    await authorize(ctx, "secret:rotate", audit, `secret:${name}`, secretScope(name));
    const [, kind, organizationName, reference] = /^(backup|identity)\/([^/]+)\/([^/]+)$/.exec(name) ?? [];
    const organization = (await latestSpecs()).find((spec) => spec.metadata.name === organizationName);
    const users = (organization?.backupRepositories ?? []).filter(
      (repository) => kind === "backup" && repository.type !== "posix" && repository.keySecretRef === reference,
    );
    // The OIDC client secret the provider issued for carehost (identity.oidc.clientSecretRef).
    const oidcClient = kind === "identity" && organization?.identity.oidc?.clientSecretRef === reference;
    // The password of the SMTP server alert email goes through (CAREHOST_SMTP_USER's): carehost's own, over every organization.
    const smtpPassword = name === SMTP_PASSWORD_SECRET;
    if (users.length === 0 && !oidcClient && !smtpPassword) {
      throw new ValidationError(
        `secret ${JSON.stringify(name)} is not a credential a recorded spec names: name it backup/<organization>/<keySecretRef of an azure or s3 repository>, identity/<organization>/<identity.oidc.clientSecretRef> or ${SMTP_PASSWORD_SECRET}`,
      );
    }
    if (value.trim().length === 0) throw new ValidationError(`the value for ${JSON.stringify(name)} is empty`);
    // An S3 key is two lines (access key ID, secret access key): refuse another shape now, not at the next backup.
    if (users.some((repository) => repository.type === "s3")) s3CredentialsFrom(value, name);
    const { result: version } = await audit.recordChange(ctx, async (tx) => {
      const created = await secrets.ensure(name, () => value.trim(), tx);
      const written = created.created ? created.version : (await secrets.rotate(name, () => value.trim(), tx)).version;
      return { result: written, events: [rotated(name, written)] };
    });
    const runtime = reconcile === undefined || organization === undefined ? [] : await reconcile(ctx, organization);
    return { name, version, runtime };
  },

  rotate: async (
    ctx: TRequestContext,
    name: string,
  ): Promise<{ name: string; version: number; runtime: TRuntimeAction[] }> => {
    await authorize(ctx, "secret:rotate", audit, `secret:${name}`, secretScope(name));
    if (name.startsWith("backup/")) {
      // pgBackRest cannot re-key a repository (PGBACKREST.md): a new passphrase means a new repository.
      throw new ValidationError(
        `secret ${JSON.stringify(name)} encrypts a backup repository, which cannot be re-keyed in place; add a new repository with its own passphrase and retire the old one after its retention`,
      );
    }
    if (name.startsWith("identity/"))
      throw new ValidationError(
        `secret ${JSON.stringify(name)} is issued by the identity provider, not made by carehost: store the provider's new one with carehost secrets set ${name}`,
      );
    if (name.endsWith("-hash"))
      throw new NotFoundError(
        `secret ${JSON.stringify(name)} is derived from ${JSON.stringify(name.slice(0, -"-hash".length))}; rotate that one`,
      );
    const password = generatePassword(24);
    // odoo.conf carries the hash, which must follow the password it was made from: both versions
    // commit together. The hash is slow (PBKDF2), so it is made before the transaction opens.
    const hash = name.endsWith("/odoo-master") ? hashOdooAdminPassword(password) : undefined;
    const { result: version } = await audit.recordChange(ctx, async (tx) => {
      const { version: written } = await secrets.rotate(name, () => password, tx);
      if (hash === undefined) return { result: written, events: [rotated(name, written)] };
      const derived = await secrets.rotate(`${name}-hash`, () => hash, tx);
      return { result: written, events: [rotated(name, written), rotated(`${name}-hash`, derived.version)] };
    });
    const organizationName = organizationOf(name);
    const organization = (await latestSpecs()).find((spec) => spec.metadata.name === organizationName);
    const runtime = reconcile === undefined || organization === undefined ? [] : await reconcile(ctx, organization);
    return { name, version, runtime };
  },
});

export type TSecretsAdminService = ReturnType<typeof secretsAdminServiceFactory>;
