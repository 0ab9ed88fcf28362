// Where each environment of an organization lives on this host: a dedicated environment gets its
// own PostgreSQL cluster and Redis; shared environments get a database and role in the
// organization's shared cluster and an ACL user in its shared Redis. Pure: names, paths and
// secret names only, so plan, apply and posture agree on them.
import { join } from "node:path";
import { ValidationError } from "../../lib/errors.js";
import { instanceNameOf } from "../../spec/spec-hosting.js";
import type { TEnvironmentSpec, TOrganizationSpec } from "../../spec/spec-schema.js";

export type TInstancePlacement = {
  /** "dedicated-<env>" or "shared"; also the directory name. */
  readonly name: string;
  readonly environments: readonly TEnvironmentSpec[];
};

export type TClusterPlacement = TInstancePlacement & { readonly version: number };

export type TOrganizationPlacement = {
  readonly organization: string;
  readonly clusters: readonly TClusterPlacement[];
  readonly redis: readonly TInstancePlacement[];
};

/** Odoo's role: PostgreSQL identifiers are happier with underscores than with hyphens. */
export const databaseRoleOf = (environment: Pick<TEnvironmentSpec, "name">) =>
  `odoo_${environment.name.replace(/-/g, "_")}`;
export const databaseNameOf = (environment: Pick<TEnvironmentSpec, "name">) => environment.name;
export const redisUserOf = (environment: Pick<TEnvironmentSpec, "name">) => `odoo-${environment.name}`;
export { redisKeyPrefixOf } from "../../render/data-tier/data-tier-redis.js";

export const secretNames = {
  clusterAdmin: (organization: string, instance: string) => `runtime/${organization}/postgres/${instance}/admin`,
  redisAdmin: (organization: string, instance: string) => `runtime/${organization}/redis/${instance}/admin`,
  databasePassword: (organization: string, environment: string) =>
    `runtime/${organization}/env/${environment}/database`,
  redisPassword: (organization: string, environment: string) => `runtime/${organization}/env/${environment}/redis`,
  odooMasterPassword: (organization: string, environment: string) =>
    `runtime/${organization}/env/${environment}/odoo-master`,
  odooMasterPasswordHash: (organization: string, environment: string) =>
    `runtime/${organization}/env/${environment}/odoo-master-hash`,
} as const;

export const organizationDirectory = (root: string, organization: string) => join(root, organization);
export const clusterDirectory = (root: string, organization: string, instance: string) =>
  join(root, organization, "postgres", instance);
export const redisDirectory = (root: string, organization: string, instance: string) =>
  join(root, organization, "redis", instance);
export const odooDirectory = (root: string, organization: string, environment: string) =>
  join(root, organization, "odoo", environment);

export function placeOrganization(organization: TOrganizationSpec): TOrganizationPlacement {
  const clusters = new Map<string, TEnvironmentSpec[]>();
  const redis = new Map<string, TEnvironmentSpec[]>();
  for (const environment of organization.environments) {
    const instance = instanceNameOf(environment);
    clusters.set(instance, [...(clusters.get(instance) ?? []), environment]);
    if (environment.redis.enabled) redis.set(instance, [...(redis.get(instance) ?? []), environment]);
  }
  return {
    organization: organization.metadata.name,
    clusters: [...clusters].map(([name, environments]) => {
      const versions = [...new Set(environments.map((environment) => environment.database.postgresVersion))];
      if (versions.length > 1) {
        throw new ValidationError(
          `the shared PostgreSQL cluster of ${organization.metadata.name} serves one major version, but the shared environments declare ${versions.join(" and ")}`,
          environments.map((environment) => ({
            path: `environments.${organization.environments.indexOf(environment)}.database.postgresVersion`,
            message: `${environment.name}: ${environment.database.postgresVersion}`,
          })),
        );
      }
      return { name, environments, version: versions[0] ?? 15 };
    }),
    redis: [...redis].map(([name, environments]) => ({ name, environments })),
  };
}
