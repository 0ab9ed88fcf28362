// Recovery objectives by data class and tier: the weakest RPO, RTO and restore-drill interval an
// environment may declare. One table, so that an auditor reads the whole baseline in one place.
//
// The organization spec has no section for its own objectives yet; when it gets one, pass it to
// tightenObjectives and hand the result to createSpecControls. An organization may tighten an
// objective, never loosen it.
import { ValidationError } from "../lib/errors.js";
import type { TErrorDetail } from "../lib/errors.js";
import type { TEnvironmentSpec } from "../spec/spec-schema.js";

export type TDataClass = TEnvironmentSpec["dataClass"];
export type TTier = TEnvironmentSpec["tier"];

export type TRecoveryObjective = {
  readonly rpoMinutes: number;
  readonly rtoMinutes: number;
  /** Longest gap between two restore drills; undefined when the class does not require drills at a set rate. */
  readonly restoreDrillMaxIntervalMinutes?: number;
};

/** Undefined for a tier means "no objective": backups there are a convenience, not a safeguard. */
export type TObjectiveTable = { readonly [C in TDataClass]: { readonly [T in TTier]?: TRecoveryObjective } };

const HOUR = 60;
const DAY = 24 * HOUR;

const PHI_PRODUCTION: TRecoveryObjective = {
  rpoMinutes: 15,
  rtoMinutes: 4 * HOUR,
  restoreDrillMaxIntervalMinutes: 7 * DAY,
};
// A PHI copy outside production still holds PHI: it must come back, but a day's loss is tolerable.
const PHI_NON_PRODUCTION: TRecoveryObjective = { rpoMinutes: DAY, rtoMinutes: DAY };
const CONFIDENTIAL_PRODUCTION: TRecoveryObjective = {
  rpoMinutes: HOUR,
  rtoMinutes: 8 * HOUR,
  restoreDrillMaxIntervalMinutes: 31 * DAY,
};

export const DEFAULT_RECOVERY_OBJECTIVES: TObjectiveTable = {
  // The DR tier is where production comes back: it answers to production's objectives.
  phi: {
    production: PHI_PRODUCTION,
    dr: PHI_PRODUCTION,
    staging: PHI_NON_PRODUCTION,
    development: PHI_NON_PRODUCTION,
    training: PHI_NON_PRODUCTION,
  },
  confidential: { production: CONFIDENTIAL_PRODUCTION, dr: CONFIDENTIAL_PRODUCTION },
  internal: { production: { rpoMinutes: DAY, rtoMinutes: DAY }, dr: { rpoMinutes: DAY, rtoMinutes: DAY } },
  public: { production: { rpoMinutes: DAY, rtoMinutes: 2 * DAY }, dr: { rpoMinutes: DAY, rtoMinutes: 2 * DAY } },
};

export function objectiveFor(
  table: TObjectiveTable,
  environment: Pick<TEnvironmentSpec, "dataClass" | "tier">,
): TRecoveryObjective | undefined {
  return table[environment.dataClass][environment.tier];
}

export type TObjectiveOverrides = {
  readonly [C in TDataClass]?: { readonly [T in TTier]?: Partial<TRecoveryObjective> };
};

/**
 * The table with the organization's objectives applied. Every override must be at least as strict
 * as the baseline (a smaller number); a looser one is a ValidationError naming the field, the
 * value and the baseline.
 */
export function tightenObjectives(base: TObjectiveTable, overrides: TObjectiveOverrides): TObjectiveTable {
  const details: TErrorDetail[] = [];
  const result: Record<string, Record<string, TRecoveryObjective>> = {};
  for (const dataClass of Object.keys(base) as TDataClass[]) {
    const tiers: Record<string, TRecoveryObjective> = {};
    for (const [tier, baseline] of Object.entries(base[dataClass]) as [TTier, TRecoveryObjective][])
      tiers[tier] = baseline;
    for (const [tier, override] of Object.entries(overrides[dataClass] ?? {}) as [
      TTier,
      Partial<TRecoveryObjective>,
    ][]) {
      const baseline = base[dataClass][tier];
      const merged: Record<string, number> = { ...baseline };
      for (const [key, value] of Object.entries(override) as [keyof TRecoveryObjective, number | undefined][]) {
        if (value === undefined) continue;
        const path = `objectives.${dataClass}.${tier}.${key}`;
        const baselineValue = baseline?.[key];
        if (!Number.isInteger(value) || value < 1)
          details.push({ path, message: `${value} is not a positive whole number of minutes` });
        else if (baselineValue !== undefined && value > baselineValue) {
          details.push({
            path,
            message: `${value} is looser than the baseline ${baselineValue}; an organization may tighten objectives, not loosen them`,
          });
        } else merged[key] = value;
      }
      if (merged.rpoMinutes === undefined || merged.rtoMinutes === undefined) {
        details.push({
          path: `objectives.${dataClass}.${tier}`,
          message: "has no baseline objective: set both rpoMinutes and rtoMinutes",
        });
        continue;
      }
      tiers[tier] = merged as TRecoveryObjective;
    }
    result[dataClass] = tiers;
  }
  if (details.length > 0) throw new ValidationError("recovery objectives may only be tightened", details);
  return result as TObjectiveTable;
}
