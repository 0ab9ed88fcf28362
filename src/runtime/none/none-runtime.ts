// The runtime that runs nothing (CAREHOST_RUNTIME=none): carehost records, plans and checks specs,
// and makes none of them real. Reconciling does nothing, an observation reads nothing back (so no
// control passes on what runs), and what needs a data tier (backups, restores, drills, a final
// backup) is refused with the reason, never pretended.
import { NotFoundError, ValidationError } from "../../lib/errors.js";
import type { TOrganizationSpec } from "../../spec/spec-schema.js";
import type { TRuntimeDriver } from "../runtime-driver.js";

const WHY =
  "this carehost runs no environments (CAREHOST_RUNTIME=none), so it has nothing to back up, restore or drill";

/** Refuses a name the organization does not hold, as every runtime does, before the runtime's own refusal. */
const declared = (organization: TOrganizationSpec, environment: string) => {
  if (!organization.environments.some((item) => item.name === environment))
    throw new NotFoundError(
      `environment ${JSON.stringify(environment)} is not part of organization ${organization.metadata.name}`,
    );
};

export const noneRuntimeFactory = (): TRuntimeDriver => {
  const refuse = async (organization: TOrganizationSpec, environment: string): Promise<never> => {
    declared(organization, environment);
    throw new ValidationError(WHY);
  };
  return {
    kind: "none",
    dataTier: { onThisHost: false, why: WHY },
    // What would run it here, were it run: the spec is held to the files this host would write.
    deliveryTarget: "local",
    assertPathsConfined: async () => undefined,
    reconcile: async () => [],
    observe: async (organization) => ({
      organization: organization.metadata.name,
      environments: [],
      subjects: { artifact: [], live: [] },
    }),
    planChange: async () => ({ artifacts: [], effects: [] }),
    probe: async (organization) => ({
      organization: organization.metadata.name,
      clusters: [],
      redis: [],
      certificates: [],
    }),
    restartStopped: async () => [],
    heartbeat: async () => undefined,
    destroyEnvironment: async (organization, environment) => {
      declared(organization, environment);
      // Nothing was ever provisioned for it: there is no data to back up, and the record says so.
      return { path: "", snapshotId: "", bytes: 0, sha256: "" };
    },
    stopOrganization: async () => undefined,
    close: async () => undefined,
    backup: (organization, environment) => refuse(organization, environment),
    verify: (organization, environment) => refuse(organization, environment),
    expire: (organization, environment) => refuse(organization, environment),
    snapshotFilestore: (organization, environment) => refuse(organization, environment),
    restore: (organization, environment) => refuse(organization, environment),
    drill: (organization, environment) => refuse(organization, environment),
    // No copy is ever made where the data tier is elsewhere: there is none to remove.
    removeCopy: async () => ({ removed: false }),
  };
};
