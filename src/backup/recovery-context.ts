// What every part of the recovery service shares: its deps, the driver it runs with (or its
// refusal when the runtime's data tier is not on this host), and the environment a request names, found for a caller
// allowed to act on it, with the audit target and the operation target (its cluster) that go with
// it.
import { authorize, inScope, recordDenial, scopeOf } from "../identity/identity-permissions.js";
import type { Permission } from "../identity/identity-permissions.js";
import type { TChangeAudit } from "../identity/identity-types.js";
import { NotFoundError, ValidationError } from "../lib/errors.js";
import type { TRequestContext } from "../lib/request-context.js";
import { instanceNameOf } from "../spec/spec-hosting.js";
import type { TEnvironmentSpec, TOrganizationSpec } from "../spec/spec-schema.js";
import type { TSqlClient } from "../store/store-types.js";
import type { TDataTier } from "../runtime/runtime-driver.js";
import { operationHoldFactory } from "../operations/operation-hold.js";
import type { TOperationHold } from "../operations/operation-hold.js";
import { operationStoreFactory } from "../operations/operation-store.js";
import type { TRecoveryDriver } from "./recovery-driver.js";
import { recoveryOperationsFactory } from "./recovery-operations.js";

export type TRecoveryServiceDeps = {
  db: Pick<TSqlClient, "query" | "exec">;
  /** The runtime: one whose data tier is not on this host has nothing carehost can back up here. */
  runtime: TRecoveryDriver & { readonly dataTier: TDataTier };
  latestSpecs: () => Promise<TOrganizationSpec[]>;
  /** Its recordChange must write to the database `db` is on: a run's row and its entry commit together there. */
  audit: TChangeAudit;
  now?: () => Date;
  /** Ends the commands runs are waiting for (runtime-command's endRunningCommands), when carehost stops. */
  endCommands?: () => number;
  /** Names this process in the leases of the operations its runs hold (the worker's id, so both read as one). */
  workerId?: string;
  /** The process's hold on the operations it runs itself (shared with the environment service); one over `db` by default. */
  hold?: TOperationHold;
};

export type TBackedUp = TEnvironmentSpec & { backup: Extract<TEnvironmentSpec["backup"], { enabled: true }> };

/** The operation target an environment's backups, restores and drills hold: its PostgreSQL cluster. */
export const clusterOf = (organization: TOrganizationSpec, environment: TEnvironmentSpec) =>
  `cluster/${organization.metadata.name}/${instanceNameOf(environment)}`;

export const recoveryContextFactory = ({
  db,
  runtime,
  latestSpecs,
  audit,
  now = () => new Date(),
  endCommands = () => 0,
  workerId,
  hold = operationHoldFactory({ store: operationStoreFactory(db), ...(workerId === undefined ? {} : { workerId }) }),
}: TRecoveryServiceDeps) => {
  const operations = recoveryOperationsFactory({ hold });
  /** Refused before a run is recorded: where the data tier is not on this host, the runtime says why. */
  const runtimeOrRefuse = () => {
    if (!runtime.dataTier.onThisHost) throw new ValidationError(runtime.dataTier.why);
    return runtime;
  };
  /** Whether the schedules' backups, verifications and drills run here at all. */
  const runsRecovery = runtime.dataTier.onThisHost;
  const targetNamed = (organization: string, environment: string) => `environment/${organization}/${environment}`;

  /**
   * The environment a request names, for a caller allowed `permission` on it (--org is needed only
   * when two organizations share a name). Naming the organization is refused (403) before anything
   * is looked up when the caller has no role there; without it, only the caller's organizations are
   * searched, so another organization's environment is "not found" like one that does not exist
   * (the refusal is audited all the same).
   */
  const locate = async (
    ctx: TRequestContext,
    permission: Permission,
    environmentName: string,
    organizationName?: string,
  ): Promise<{ organization: TOrganizationSpec; environment: TBackedUp }> => {
    await authorize(
      ctx,
      permission,
      audit,
      organizationName === undefined
        ? `environment/${environmentName}`
        : targetNamed(organizationName, environmentName),
      organizationName === undefined ? "some-organization" : { organization: organizationName },
    );
    const scope = scopeOf(ctx.actor, permission);
    const named = (await latestSpecs())
      .filter((spec) => organizationName === undefined || spec.metadata.name === organizationName)
      .flatMap((organization) =>
        organization.environments
          .filter((environment) => environment.name === environmentName)
          .map((environment) => ({ organization, environment })),
      );
    const matches = named.filter((match) => inScope(scope, match.organization.metadata.name));
    const hidden = named.find((match) => !inScope(scope, match.organization.metadata.name));
    if (matches.length === 0 && hidden !== undefined)
      await recordDenial(ctx, permission, audit, `environment/${environmentName}`, {
        organization: hidden.organization.metadata.name,
      });
    if (matches.length === 0)
      throw new NotFoundError(
        `no recorded environment is named ${JSON.stringify(environmentName)}${organizationName === undefined ? "" : ` in ${organizationName}`}`,
      );
    if (matches.length > 1)
      throw new ValidationError(
        `environment ${JSON.stringify(environmentName)} exists in ${matches.map((match) => match.organization.metadata.name).join(" and ")}; pass --org`,
      );
    const [match] = matches as [{ organization: TOrganizationSpec; environment: TEnvironmentSpec }];
    if (!match.environment.backup.enabled)
      throw new ValidationError(
        `environment ${JSON.stringify(environmentName)} has backups disabled (backup.enabled: false)`,
      );
    return match as { organization: TOrganizationSpec; environment: TBackedUp };
  };

  const target = (organization: TOrganizationSpec, environment: TEnvironmentSpec) =>
    targetNamed(organization.metadata.name, environment.name);

  return {
    db,
    operations,
    clusterOf,
    runsRecovery,
    latestSpecs,
    audit,
    now,
    endCommands,
    runtimeOrRefuse,
    targetNamed,
    locate,
    target,
  };
};

export type TRecoveryContext = ReturnType<typeof recoveryContextFactory>;
