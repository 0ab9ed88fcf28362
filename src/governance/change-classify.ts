// What a proposed spec changes against the applied revision, as change management judges it: which
// environments and fields, whether production restarts, which production environments the change
// touches (whose maintenance windows it waits for), whether it is standard, and how many approvals
// it needs otherwise. The rules come from the applied revision (governance-policy.ts). Pure.
import { diffFields } from "../environments/environment-plan.js";
import type { TPlan } from "../environments/environment-plan.js";
import type { TRuntimeEffect } from "../runtime/runtime-types.js";
import type { TEnvironmentSpec, TOrganizationSpec } from "../spec/spec-schema.js";
import {
  approvalsRequiredFor,
  coversNonProduction,
  isProduction,
  isStandardFor,
  standardChangesOf,
} from "./governance-policy.js";
import type { TGovernedEnvironment } from "./governance-policy.js";

export type TChangedEnvironment = {
  readonly name: string;
  readonly action: "create" | "change" | "remove";
  /** Production on either side: lowering an environment's tier is itself a change to production. */
  readonly production: boolean;
  readonly dataClass: TEnvironmentSpec["dataClass"];
  /** The fields that change, as plan names them (empty for a created or removed environment). */
  readonly fields: readonly string[];
  readonly standard: boolean;
};

export type TChangeAssessment = {
  readonly environments: readonly TChangedEnvironment[];
  /** Organization-level fields that change (identity, backupRepositories, policyExceptions…): they reach every environment. */
  readonly organizationFields: readonly string[];
  /** What applying restarts in production, as plan prints it ("restarts prod's PostgreSQL: max_connections"). */
  readonly productionRestarts: readonly string[];
  /** The production environments whose PostgreSQL or Redis applying restarts, by name (what the lines above say). */
  readonly restartedProduction: readonly string[];
  /** The production environments the change touches: it applies inside all of their maintenance windows. */
  readonly production: readonly string[];
  readonly standard: boolean;
  /** Why the change is not standard, one line each; empty when it is. */
  readonly reasons: readonly string[];
  readonly approvalsRequired: number;
};

const organizationPart = ({ environments: _environments, ...rest }: TOrganizationSpec) => rest;

/** The environment as governance sees it: production, and PHI, if either side says so. */
const governed = (before: TEnvironmentSpec | undefined, after: TEnvironmentSpec | undefined): TGovernedEnvironment => {
  const sides = [before, after].filter((side): side is TEnvironmentSpec => side !== undefined);
  return {
    name: sides[0]!.name,
    tier: sides.some(isProduction) ? "production" : sides[0]!.tier,
    dataClass: sides.some((side) => side.dataClass === "phi") ? "phi" : sides[sides.length - 1]!.dataClass,
  };
};

export const classifyChange = (input: {
  readonly applied: TOrganizationSpec;
  readonly proposed: TOrganizationSpec;
  readonly plan: TPlan;
  readonly effects: readonly TRuntimeEffect[];
}): TChangeAssessment => {
  const { applied, proposed, plan, effects } = input;
  const classes = standardChangesOf(applied);
  const before = new Map(applied.environments.map((environment) => [environment.name, environment]));
  const after = new Map(proposed.environments.map((environment) => [environment.name, environment]));
  const everyEnvironment = [...new Set([...before.keys(), ...after.keys()])].map((name) =>
    governed(before.get(name), after.get(name)),
  );
  const productionNames = everyEnvironment.filter(isProduction).map((environment) => environment.name);

  const environments: TChangedEnvironment[] = plan.changes.flatMap((change): TChangedEnvironment[] => {
    if (change.action === "unchanged") return [];
    const environment = governed(before.get(change.name), after.get(change.name));
    const fields = change.action === "change" ? change.fields.map((field) => field.path) : [];
    return [
      {
        name: change.name,
        action: change.action,
        production: isProduction(environment),
        dataClass: environment.dataClass,
        fields,
        standard: isStandardFor(classes, environment, change.action === "change" ? fields : "whole-environment"),
      },
    ];
  });
  const organizationFields = diffFields(organizationPart(applied), organizationPart(proposed)).map(
    (field) => field.path,
  );
  const productionRestarts = effects
    .filter(
      (effect) => effect.action === "restart" && effect.environments.some((name) => productionNames.includes(name)),
    )
    .map((effect) => effect.line);
  const restartedProduction = effects
    .filter((effect) => effect.action === "restart")
    .flatMap((effect) => effect.environments.filter((name) => productionNames.includes(name)));
  const production = [
    ...new Set([
      ...environments.filter((environment) => environment.production).map((environment) => environment.name),
      // An organization-level change (identity, repositories, exceptions) reaches production too.
      ...(organizationFields.length > 0 ? productionNames : []),
      ...restartedProduction,
    ]),
  ].sort();

  const reasons: string[] = [];
  for (const environment of environments.filter((item) => !item.standard)) {
    const label = environment.production ? `production ${environment.name}` : environment.name;
    reasons.push(
      environment.action === "change"
        ? `${label}: ${environment.fields.join(", ")} ${environment.fields.length === 1 ? "is" : "are"} not a standard change`
        : `${label}: ${environment.action === "create" ? "creating" : "removing"} an environment is not a standard change`,
    );
  }
  // Organization-wide settings are standard only where nothing they reach is production.
  if (organizationFields.length > 0 && (productionNames.length > 0 || !coversNonProduction(classes)))
    reasons.push(`organization settings: ${organizationFields.join(", ")} reach every environment`);
  for (const line of productionRestarts)
    reasons.push(`${line}: a change that restarts production waits for its maintenance window`);

  const changedNames = new Set(environments.map((environment) => environment.name));
  const touched = everyEnvironment.filter(
    (environment) =>
      organizationFields.length > 0 ||
      changedNames.has(environment.name) ||
      restartedProduction.includes(environment.name),
  );
  return {
    environments,
    organizationFields,
    productionRestarts,
    restartedProduction: [...new Set(restartedProduction)].sort(),
    production,
    standard: reasons.length === 0,
    reasons,
    approvalsRequired: approvalsRequiredFor(applied, touched),
  };
};
