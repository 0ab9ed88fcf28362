// What a runtime whose data tier is not on this host (gitops, none) answers alike: a name the
// organization does not hold is refused as every runtime refuses it, every recovery method is
// refused with the runtime's reason, and a probe finds nothing here to watch.
import { NotFoundError, ValidationError } from "../lib/errors.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import type { TRuntimeDriver } from "./runtime-driver.js";

/** Refuses a name the organization does not hold, before anything else is said about it. */
export const assertDeclared = (organization: TOrganizationSpec, environment: string): void => {
  if (!organization.environments.some((item) => item.name === environment))
    throw new NotFoundError(
      `environment ${JSON.stringify(environment)} is not part of organization ${organization.metadata.name}`,
    );
};

type TElsewhere = Pick<
  TRuntimeDriver,
  "backup" | "verify" | "expire" | "snapshotFilestore" | "restore" | "drill" | "probe"
>;

export const dataTierElsewhere = (why: string): TElsewhere => {
  const refuse = async (organization: TOrganizationSpec, environment: string): Promise<never> => {
    assertDeclared(organization, environment);
    throw new ValidationError(why);
  };
  return {
    backup: (organization, environment) => refuse(organization, environment),
    verify: (organization, environment) => refuse(organization, environment),
    expire: (organization, environment) => refuse(organization, environment),
    snapshotFilestore: (organization, environment) => refuse(organization, environment),
    restore: (organization, environment) => refuse(organization, environment),
    drill: (organization, environment) => refuse(organization, environment),
    probe: async (organization) => ({
      organization: organization.metadata.name,
      clusters: [],
      redis: [],
      certificates: [],
    }),
  };
};
