// The change-management rules of an organization, with carehost's defaults filled in: how many
// approvals a change needs, which changes are pre-approved (standard), and which freezes hold.
// Read from the applied revision, never from the file being proposed: a change cannot relax the
// rules it is judged by (a standard class or a lower approval count takes effect once applied).
import { NON_PRODUCTION } from "../spec/spec-schema.js";
import type { TEnvironmentSpec, TFreezeSpec, TOrganizationSpec, TStandardChangeSpec } from "../spec/spec-schema.js";

/** Without a spec's list: any change to an environment outside production is standard. */
export const DEFAULT_STANDARD_CHANGES: readonly TStandardChangeSpec[] = [{ environments: NON_PRODUCTION }];

export type TGovernedEnvironment = Pick<TEnvironmentSpec, "name" | "tier" | "dataClass">;

export const isProduction = (environment: Pick<TEnvironmentSpec, "tier">): boolean => environment.tier === "production";

export const standardChangesOf = (spec: TOrganizationSpec): readonly TStandardChangeSpec[] =>
  spec.changeManagement?.standardChanges ?? DEFAULT_STANDARD_CHANGES;

/** A change to production holding PHI needs two people besides the requester unless the spec says otherwise; anything else one. */
export const approvalsRequiredFor = (
  spec: TOrganizationSpec,
  environments: readonly TGovernedEnvironment[],
): number => {
  const declared = spec.changeManagement?.approvalsRequired;
  if (declared !== undefined) return declared;
  return Math.max(
    1,
    ...environments.map((environment) => (isProduction(environment) && environment.dataClass === "phi" ? 2 : 1)),
  );
};

/** Whether `path` (a plan's field, e.g. odoo.workers) is one a standard class lists, or lies under one (odoo). */
const covers = (listed: string, path: string): boolean => path === listed || path.startsWith(`${listed}.`);

export const coversNonProduction = (classes: readonly TStandardChangeSpec[]): boolean =>
  classes.some((item) => item.environments === NON_PRODUCTION);

/** Whether changing `fields` of `environment` (all of them) is a standard change under `classes`. */
export const isStandardFor = (
  classes: readonly TStandardChangeSpec[],
  environment: TGovernedEnvironment,
  fields: readonly string[] | "whole-environment",
): boolean => {
  if (!isProduction(environment) && coversNonProduction(classes)) return true;
  if (fields === "whole-environment") return false;
  const listed = classes.flatMap((item) => (item.environment === environment.name ? (item.fields ?? []) : []));
  return fields.length > 0 && fields.every((path) => listed.some((field) => covers(field, path)));
};

/** The freeze in force at `at` (the first declared, when several overlap). */
export const activeFreeze = (spec: TOrganizationSpec, at: Date): TFreezeSpec | undefined =>
  spec.changeManagement?.freezes?.find(
    (freeze) => Date.parse(freeze.from) <= at.getTime() && at.getTime() < Date.parse(freeze.to),
  );
