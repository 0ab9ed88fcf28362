// Change management over a real store, for the suites that apply specs: the environment service
// with the change gate, and the change service beside it, sharing one clock a test can move.
import type { TAuditHarness } from "./audit-fixtures.js";
import { environmentServiceFactory, type TEnvironmentRuntime } from "../src/environments/environment-service.js";
import { environmentStoreFactory } from "../src/environments/environment-store.js";
import type { TRecoveryService } from "../src/backup/recovery-service.js";
import { postChangeDrillFrom, postChangePostureFrom, preChangeBackupFrom } from "../src/governance/change-checks.js";
import { changeGateFactory } from "../src/governance/change-gate.js";
import { changeServiceFactory } from "../src/governance/change-service.js";
import { changeStoreFactory } from "../src/governance/change-store.js";
import type { TRequestContext, TRole } from "../src/lib/request-context.js";
import { policyCheckerFactory } from "../src/policy/policy-service.js";
import type { TOrganizationSpec } from "../src/spec/spec-schema.js";
import { operationHoldFactory } from "../src/operations/operation-hold.js";
import { operationStoreFactory } from "../src/operations/operation-store.js";
import { noneRuntimeFactory } from "../src/runtime/none/none-runtime.js";

/** The tests that pass a recovery service run it over a local runtime: its data tier is on this host. */
const LOCAL_DATA_TIER = { onThisHost: true } as const;

/** A signed-in user holding `role` over every organization (or the ones named). */
export const userContext = (
  username: string,
  role: TRole,
  organizations: readonly string[] = ["*"],
): TRequestContext => ({
  actor: {
    kind: "user",
    userId: `u_${username}`,
    username,
    role,
    bindings: organizations.map((organization) => ({ role, organization })),
  },
  requestId: `req-${username}`,
  sourceAddress: "10.0.0.7",
});

/** A moment inside the demo's production window (Sunday 02:00-06:00 in New York): Sunday 29 November 2026, 03:00 EST. */
export const INSIDE_PROD_WINDOW = new Date("2026-11-29T08:00:00Z");
/** Monday 23 November 2026, 07:00 EST: outside every window of the demo. */
export const OUTSIDE_WINDOWS = new Date("2026-11-23T12:00:00Z");

export const createGovernedServices = (
  harness: TAuditHarness,
  options: {
    readonly now?: () => Date;
    readonly policyNow?: () => Date;
    /** The runtime that runs nothing by default. */
    readonly runtime?: TEnvironmentRuntime;
    /** Takes the pre-change backups and reads the posture after, as carehost up wires them. */
    readonly recovery?: (latestSpecs: () => Promise<TOrganizationSpec[]>) => TRecoveryService;
  } = {},
) => {
  const now = options.now ?? (() => new Date());
  const store = environmentStoreFactory(harness.db);
  const changeStore = changeStoreFactory(harness.db);
  const environments = environmentServiceFactory({
    store,
    policy: policyCheckerFactory({ now: options.policyNow ?? now }),
    audit: harness.log,
    changes: changeGateFactory({ store: changeStore, audit: harness.log, now }),
    runtime: options.runtime ?? noneRuntimeFactory(),
    operations: operationHoldFactory({ store: operationStoreFactory(harness.db) }),
  });
  const recovery = options.recovery?.(environments.latestSpecs);
  const changes = changeServiceFactory({
    store: changeStore,
    environments,
    revisions: store,
    audit: harness.log,
    now,
    ...(recovery === undefined
      ? {}
      : {
          preChangeBackup: preChangeBackupFrom(recovery, store, LOCAL_DATA_TIER),
          postChangePosture: postChangePostureFrom(environments),
          postChangeDrill: postChangeDrillFrom(recovery, LOCAL_DATA_TIER),
        }),
  });
  return { store, changeStore, environments, changes, recovery };
};

export type TGovernedServices = ReturnType<typeof createGovernedServices>;

/**
 * Carries a change to production through its change request: recorded by `requester`, approved by
 * each of `approvers`, applied by `requester` (the clock must stand inside the window). Returns the
 * apply's result.
 */
export const applyThroughChangeRequest = async (
  services: Pick<TGovernedServices, "changes">,
  requester: TRequestContext,
  approvers: readonly TRequestContext[],
  submission: { source: string; fileName: string; confirmDestroy?: readonly string[] },
  reason = "tested change",
) => {
  const { request } = await services.changes.create(requester, { ...submission, reason });
  for (const approver of approvers) await services.changes.approve(approver, request.id);
  const outcome = await services.changes.apply(requester, request.id);
  if (outcome.applied === null)
    throw new Error(
      `change request #${request.id} did not apply: ${outcome.request.state} ${String(outcome.request.scheduledFor)}`,
    );
  return outcome.applied;
};
