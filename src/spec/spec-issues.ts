// Turns zod issues into spec issues whose messages name the offending value. zod's own messages
// ("Invalid input") say what was expected but not what was found; in a 400-line spec the value is
// what lets an engineer recognise the mistake. The spec holds no secrets, so values may be shown.
import { z } from "zod";
import type { TLocateTarget, TPathSegment } from "./spec-locate.js";

/** An error found in a spec, before it is placed in the source. */
export type TSpecIssue = {
  readonly path: readonly TPathSegment[];
  readonly message: string;
  readonly target: TLocateTarget;
};

const UNKNOWN_KEY = "unknown key";

/** A short rendering of a value for messages. */
export function showValue(value: unknown): string {
  if (value === null) return "an empty value";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

const EXPECTED: Readonly<Record<string, string>> = {
  string: "a string",
  number: "a number",
  int: "an integer",
  boolean: "true or false",
  object: "a mapping",
  array: "a list",
};

const plural = (count: number | bigint, noun: string) => `${count} ${noun}${count === 1 || count === 1n ? "" : "s"}`;

const missing = (path: readonly PropertyKey[]) =>
  `missing required key ${JSON.stringify(String(path[path.length - 1] ?? ""))}`;

/**
 * Default messages for issues whose schema gives none. Pass it to safeParse; messages set on the
 * schema itself take precedence.
 */
export const specErrorMap: z.core.$ZodErrorMap = (issue) => {
  const input = issue.input;
  switch (issue.code) {
    case "invalid_type":
      if (input === undefined) return missing(issue.path ?? []);
      return `expected ${EXPECTED[issue.expected] ?? issue.expected}, got ${showValue(input)}`;
    case "invalid_value":
      if (input === undefined) return missing(issue.path ?? []);
      if (issue.values.length === 1) return `${showValue(input)} must be ${showValue(issue.values[0])}`;
      return `${showValue(input)} is not one of ${issue.values.map(showValue).join(", ")}`;
    case "invalid_union": {
      if ("discriminator" in issue && typeof issue.discriminator === "string") {
        const tag =
          typeof input === "object" && input !== null
            ? (input as Record<string, unknown>)[issue.discriminator]
            : undefined;
        if (tag === undefined) return missing(issue.path ?? []);
        const options =
          "options" in issue && Array.isArray(issue.options)
            ? ` (one of ${issue.options.map(showValue).join(", ")})`
            : "";
        return `${showValue(tag)} is not a known ${issue.discriminator}${options}`;
      }
      return `${showValue(input)} does not match any allowed form`;
    }
    case "too_small":
      if (issue.origin === "array")
        return `needs at least ${plural(issue.minimum, "item")}, has ${Array.isArray(input) ? input.length : 0}`;
      if (issue.origin === "string")
        return issue.minimum === 1
          ? "must not be empty"
          : `${showValue(input)} is shorter than ${plural(issue.minimum, "character")}`;
      return `${showValue(input)} is ${issue.inclusive === false ? "not above" : "below"} the minimum of ${issue.minimum}`;
    case "too_big":
      if (issue.origin === "array")
        return `allows at most ${plural(issue.maximum, "item")}, has ${Array.isArray(input) ? input.length : 0}`;
      if (issue.origin === "string") return `${showValue(input)} is longer than ${plural(issue.maximum, "character")}`;
      return `${showValue(input)} is ${issue.inclusive === false ? "not below" : "above"} the maximum of ${issue.maximum}`;
    case "invalid_format":
      return `${showValue(input)} is not a valid ${issue.format}`;
    case "unrecognized_keys":
      return UNKNOWN_KEY;
    default:
      return `${showValue(input)} is not valid here`;
  }
};

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

function valueAt(input: unknown, path: readonly TPathSegment[]): unknown {
  return path.reduce<unknown>(
    (value, segment) =>
      isRecord(value) || Array.isArray(value) ? (value as Record<string, unknown>)[segment] : undefined,
    input,
  );
}

/** The keys the schema allows for the mapping at `path` of `input`, or none if it cannot tell. */
export function allowedKeysAt(schema: z.ZodType, input: unknown, path: readonly TPathSegment[]): string[] {
  let current: z.ZodType = schema;
  let value = input;
  for (let depth = 0; ;) {
    if (current instanceof z.ZodOptional || current instanceof z.ZodDefault) current = current.unwrap() as z.ZodType;
    else if (current instanceof z.ZodPipe) current = current.in as z.ZodType;
    else if (current instanceof z.ZodDiscriminatedUnion) {
      // The option the parser chose is the one whose tag matches the input.
      const discriminator = current.def.discriminator;
      const tag = isRecord(value) ? value[discriminator] : undefined;
      const chosen = (current.options as z.ZodType[]).find((option) => {
        const literal = option instanceof z.ZodObject ? option.shape[discriminator] : undefined;
        return literal instanceof z.ZodLiteral && literal.values.has(tag as never);
      });
      if (!chosen) return [];
      current = chosen;
    } else if (depth === path.length) {
      return current instanceof z.ZodObject ? Object.keys(current.shape) : [];
    } else {
      const segment = path[depth];
      if (current instanceof z.ZodObject && typeof segment === "string" && segment in current.shape)
        current = current.shape[segment] as z.ZodType;
      else if (current instanceof z.ZodArray && typeof segment === "number") current = current.element as z.ZodType;
      else return [];
      value = valueAt(value, [segment]);
      depth += 1;
    }
  }
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i += 1) {
    const row = [i];
    for (let j = 1; j <= b.length; j += 1) {
      row[j] = Math.min(
        (previous[j] ?? 0) + 1,
        (row[j - 1] ?? 0) + 1,
        (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = row;
  }
  return previous[b.length] ?? 0;
}

/** The allowed key an unknown key was most likely meant to be: same letters ignoring case, or at most two edits away. */
function closestKey(key: string, allowed: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  const ranked = allowed
    .map((candidate) => ({
      candidate,
      distance: candidate.toLowerCase() === lower ? 0 : editDistance(lower, candidate.toLowerCase()),
    }))
    .filter(({ distance }) => distance <= Math.min(2, Math.floor(key.length / 3)))
    .sort((a, b) => a.distance - b.distance);
  return ranked[0]?.candidate;
}

const pathKey = (path: readonly TPathSegment[]) => JSON.stringify(path);

/**
 * One spec issue per zod issue; an unrecognized_keys issue becomes one issue per key, at the key.
 * A misspelt required key would otherwise count twice (unknown "workerz", missing "workers"); the
 * two are merged into one issue at the misspelt key.
 */
export function issuesFromZod(issues: readonly z.core.$ZodIssue[], schema: z.ZodType, input: unknown): TSpecIssue[] {
  const located = issues.map((issue) => ({
    issue,
    path: issue.path.map((segment) => (typeof segment === "number" ? segment : String(segment))),
  }));
  const missingKeys = new Set(
    located
      .filter(
        ({ issue, path }) =>
          issue.code !== "unrecognized_keys" &&
          path.length > 0 &&
          isRecord(valueAt(input, path.slice(0, -1))) &&
          valueAt(input, path) === undefined,
      )
      .map(({ path }) => pathKey(path)),
  );
  const mergedMissing = new Set<string>();
  const result = located.flatMap(({ issue, path }): TSpecIssue[] => {
    if (issue.code !== "unrecognized_keys") return [{ path, target: "value", message: issue.message }];
    const allowed = allowedKeysAt(schema, input, path);
    return issue.keys.map((key): TSpecIssue => {
      if (issue.message !== UNKNOWN_KEY)
        return {
          path: [...path, key],
          target: "key",
          message: `${JSON.stringify(key)} is not allowed: ${issue.message}`,
        };
      const suggestion = closestKey(key, allowed);
      const required = suggestion !== undefined && missingKeys.has(pathKey([...path, suggestion]));
      if (required) mergedMissing.add(pathKey([...path, suggestion]));
      const hint =
        suggestion === undefined
          ? ""
          : ` (did you mean ${JSON.stringify(suggestion)}${required ? ", which is required" : ""}?)`;
      return { path: [...path, key], target: "key", message: `unknown key ${JSON.stringify(key)}${hint}` };
    });
  });
  return result.filter((issue) => issue.target === "key" || !mergedMissing.has(pathKey(issue.path)));
}
