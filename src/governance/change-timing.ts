// When a change may apply: never during a freeze (an emergency aside), and a normal change to
// production only while the maintenance windows of every production environment it touches are
// open. The rules are the applied revision's; a production environment the change creates is held
// to the window the change declares for it. Pure.
import { activeSlot, nextSlotStart } from "../spec/maintenance-window.js";
import type { TFreezeSpec, TMaintenanceWindowSpec, TOrganizationSpec } from "../spec/spec-schema.js";
import { activeFreeze } from "./governance-policy.js";
import type { TChangeKind } from "./change-types.js";

export type TChangeTiming =
  | { readonly decision: "now" }
  | { readonly decision: "frozen"; readonly freeze: TFreezeSpec }
  | { readonly decision: "wait"; readonly opensAt: Date; readonly environments: readonly string[] }
  | { readonly decision: "never"; readonly environments: readonly string[] };

/** How far ahead a common opening of several windows is looked for. */
const HORIZON_MS = 8 * 7 * 24 * 3_600_000;

/** The first instant at or after `at` inside every window; undefined when none within the horizon. */
export const commonOpening = (windows: readonly TMaintenanceWindowSpec[], at: Date): Date | undefined => {
  if (windows.every((window) => activeSlot(window, at) !== undefined)) return at;
  const candidates: Date[] = [];
  for (const window of windows) {
    for (let from = at; from.getTime() - at.getTime() < HORIZON_MS;) {
      const slot = nextSlotStart(window, from);
      candidates.push(slot.start);
      from = new Date(slot.start.getTime() + 60_000);
    }
  }
  return candidates
    .sort((a, b) => a.getTime() - b.getTime())
    .find((candidate) => windows.every((window) => activeSlot(window, candidate) !== undefined));
};

export const changeTiming = (input: {
  readonly kind: TChangeKind;
  /** The production environments the change touches (TChangeAssessment.production). */
  readonly production: readonly string[];
  readonly applied: TOrganizationSpec;
  readonly proposed: TOrganizationSpec;
  readonly at: Date;
}): TChangeTiming => {
  const { kind, production, applied, proposed, at } = input;
  if (kind === "emergency") return { decision: "now" };
  const freeze = activeFreeze(applied, at);
  if (freeze !== undefined) return { decision: "frozen", freeze };
  if (kind === "standard" || production.length === 0) return { decision: "now" };
  const windowOf = (name: string) =>
    (applied.environments.find((environment) => environment.name === name) ??
      proposed.environments.find((environment) => environment.name === name))!.maintenanceWindow;
  const opensAt = commonOpening(production.map(windowOf), at);
  if (opensAt === undefined) return { decision: "never", environments: production };
  return opensAt.getTime() === at.getTime()
    ? { decision: "now" }
    : { decision: "wait", opensAt, environments: production };
};
