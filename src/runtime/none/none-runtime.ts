// The runtime that runs nothing (CAREHOST_RUNTIME=none): carehost records, plans and checks specs,
// and makes none of them real. Reconciling does nothing, an observation reads nothing back (so no
// control passes on what runs), and what needs a data tier (backups, restores, drills, a final
// backup) is refused with the reason, never pretended.
import type { TRuntimeDriver } from "../runtime-driver.js";
import { assertDeclared, dataTierElsewhere } from "../runtime-elsewhere.js";

const WHY =
  "this carehost runs no environments (CAREHOST_RUNTIME=none), so it has nothing to back up, restore or drill";

export const noneRuntimeFactory = (): TRuntimeDriver => {
  return {
    ...dataTierElsewhere(WHY),
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
    restartStopped: async () => [],
    heartbeat: async () => undefined,
    destroyEnvironment: async (organization, environment) => {
      assertDeclared(organization, environment);
      // Nothing was ever provisioned for it: there is no data to back up, and the record says so.
      return { path: "", snapshotId: "", bytes: 0, sha256: "" };
    },
    stopOrganization: async () => undefined,
    close: async () => undefined,
    // No copy is ever made where the data tier is elsewhere: there is none to remove.
    removeCopy: async () => ({ removed: false }),
  };
};
