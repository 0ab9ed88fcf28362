// What `carehost plan` shows: the environments a spec would create, change or remove compared
// with the desired state carehost last recorded, and, as the runtime reports them, the rendered
// files that change and the drift of the running systems. Pure: the same inputs give the same plan.
import { canonicalJson, specDigest } from "../spec/spec-digest.js";
import type { TEnvironmentSpec } from "../spec/spec-schema.js";
import type { TArtifactChange, TRuntimeDrift, TRuntimeEffect } from "../runtime/runtime-types.js";

export type TFieldChange = { readonly path: string; readonly before: unknown; readonly after: unknown };

export type TEnvironmentChange =
  | { readonly action: "create"; readonly name: string; readonly digest: string; readonly after: TEnvironmentSpec }
  | {
      readonly action: "change";
      readonly name: string;
      readonly digest: string;
      readonly previousDigest: string;
      readonly fields: readonly TFieldChange[];
    }
  | {
      readonly action: "remove";
      readonly name: string;
      readonly previousDigest: string;
      readonly before: TEnvironmentSpec;
    }
  | { readonly action: "unchanged"; readonly name: string };

export type TPlan = {
  readonly organization: string;
  readonly specDigest: string;
  readonly changes: readonly TEnvironmentChange[];
};

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === "object" && !Array.isArray(value);

/** Leaf-level differences; arrays are compared whole because their order carries meaning. */
export const diffFields = (before: unknown, after: unknown, path = ""): TFieldChange[] => {
  if (isPlainObject(before) && isPlainObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((key) => diffFields(before[key], after[key], path === "" ? key : `${path}.${key}`));
  }
  return canonicalJson(before) === canonicalJson(after) ? [] : [{ path, before, after }];
};

export const planEnvironments = (
  organization: string,
  organizationSpecDigest: string,
  recorded: ReadonlyMap<string, TEnvironmentSpec>,
  desired: readonly TEnvironmentSpec[],
): TPlan => {
  const desiredNames = new Set(desired.map((environment) => environment.name));
  const changes: TEnvironmentChange[] = desired.map((environment) => {
    const current = recorded.get(environment.name);
    if (current === undefined)
      return { action: "create", name: environment.name, digest: specDigest(environment), after: environment };
    const fields = diffFields(current, environment);
    if (fields.length === 0) return { action: "unchanged", name: environment.name };
    return {
      action: "change",
      name: environment.name,
      digest: specDigest(environment),
      previousDigest: specDigest(current),
      fields,
    };
  });
  const removed = [...recorded.entries()]
    .filter(([name]) => !desiredNames.has(name))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, before]): TEnvironmentChange => ({
      action: "remove",
      name,
      previousDigest: specDigest(before),
      before,
    }));
  return { organization, specDigest: organizationSpecDigest, changes: [...changes, ...removed] };
};

export const planHasChanges = (plan: TPlan): boolean => plan.changes.some((change) => change.action !== "unchanged");

/**
 * Why removing environments is refused, or undefined: dropping an environment from the spec must
 * never delete it by accident, so each removal is confirmed by name.
 */
export const removalRefusal = (plan: TPlan, confirmDestroy: readonly string[]): string | undefined => {
  const confirmed = new Set(confirmDestroy);
  const unconfirmed = plan.changes
    .filter((change) => change.action === "remove" && !confirmed.has(change.name))
    .map((change) => change.name);
  return unconfirmed.length === 0
    ? undefined
    : `removing ${unconfirmed.map((name) => `"${name}"`).join(", ")} needs --confirm-destroy ${unconfirmed.join(" --confirm-destroy ")}`;
};

const show = (value: unknown): string => (value === undefined ? "(unset)" : JSON.stringify(value));

/** The readable diff printed by the CLI: + create, ~ change (field by field), - remove. */
export const formatPlan = (plan: TPlan): string => {
  const lines = plan.changes.flatMap((change): string[] => {
    switch (change.action) {
      case "create":
        return [
          `+ create environment "${change.name}" (${change.after.tier}, ${change.after.dataClass}, ${change.after.hosting})`,
        ];
      case "change":
        return [
          `~ change environment "${change.name}"`,
          ...change.fields.map((field) => `    ${field.path}: ${show(field.before)} → ${show(field.after)}`),
        ];
      case "remove":
        return [`- remove environment "${change.name}" (${change.before.tier}, ${change.before.dataClass})`];
      case "unchanged":
        return [`  unchanged environment "${change.name}"`];
    }
  });
  const count = (action: TEnvironmentChange["action"]) =>
    plan.changes.filter((change) => change.action === action).length;
  lines.push(
    `Plan for organization "${plan.organization}": ${count("create")} to create, ${count("change")} to change, ${count("remove")} to remove.`,
  );
  return lines.join("\n");
};

/** The sides of a plan the runtime provides; see TPlanWithDrift in environment-service.ts. */
export type TRuntimePlanSides = {
  readonly appliedRevisionId: number | null;
  readonly artifacts: readonly TArtifactChange[];
  readonly effects: readonly TRuntimeEffect[];
  readonly drift: readonly (TRuntimeDrift & { readonly environment: string })[];
};

const ARTIFACT_MARK: Record<TArtifactChange["change"], string> = { added: "+", changed: "~", removed: "-" };

/**
 * The change and the drift, each under its own heading: the rendered files' diffs and what applying
 * restarts, then the running systems against the applied revision. Empty before the first apply.
 */
export const formatRuntimePlan = (plan: TRuntimePlanSides): string => {
  if (plan.appliedRevisionId === null) return "";
  const revision = `applied revision ${plan.appliedRevisionId}`;
  const lines: string[] = [];
  if (plan.artifacts.length > 0) {
    lines.push("", `Rendered files that change (${revision} → this file):`);
    for (const artifact of plan.artifacts)
      lines.push(
        `${ARTIFACT_MARK[artifact.change]} ${artifact.target}/${artifact.file}`,
        artifact.diff.replace(/\n$/, ""),
      );
  }
  if (plan.effects.length > 0) {
    lines.push("", "Applying it:");
    for (const effect of plan.effects) lines.push(`  ${effect.line}`);
  }
  lines.push("");
  if (plan.drift.length === 0) lines.push(`No drift: the running systems match ${revision}.`);
  else {
    lines.push(`Drift on the running systems against ${revision} (apply corrects it):`);
    for (const item of plan.drift)
      lines.push(`  ~ ${item.environment}  ${item.target}  ${item.field}: ${item.actual} (expected ${item.expected})`);
  }
  return lines.join("\n");
};
