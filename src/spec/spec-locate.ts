// Maps a path in the parsed spec (["environments", 0, "backup", "rpoMinutes"]) back to the YAML
// source, so that every error points at the line an engineer has to change.
import { isAlias, isMap, isScalar, isSeq } from "yaml";
import type { Document, LineCounter, Node } from "yaml";

export type TPathSegment = string | number;

/**
 * What a located error points at:
 * - "value": the value at the path (a wrong value, a bad reference);
 * - "key": the key at the end of the path (an unknown or duplicate key).
 * When the path does not exist in the source (a missing required key), both point at the mapping
 * that should hold it: the key naming that mapping (`backup:`), or its first line when it is a list
 * item or the document itself.
 */
export type TLocateTarget = "value" | "key";

export type TSourcePosition = { line: number; col: number };

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) return String(key.value);
  return typeof key === "string" || typeof key === "number" ? String(key) : undefined;
}

function startOf(node: unknown): number | undefined {
  return node !== null && typeof node === "object" && "range" in node && Array.isArray(node.range)
    ? (node.range[0] as number)
    : undefined;
}

export function locatePath(
  doc: Document,
  lineCounter: LineCounter,
  path: readonly TPathSegment[],
  target: TLocateTarget,
): TSourcePosition {
  let node: unknown = doc.contents;
  // Offset of whatever names the current node: its key, or the node itself for list items.
  let nameOffset = startOf(node) ?? 0;
  let found = true;
  for (const segment of path) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((item) => keyText(item.key) === String(segment));
      if (!pair) {
        found = false;
        break;
      }
      nameOffset = startOf(pair.key) ?? nameOffset;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === "number" && node.items[segment] !== undefined) {
      node = node.items[segment];
      nameOffset = startOf(node) ?? nameOffset;
    } else {
      found = false;
      break;
    }
  }
  const offset = found && target === "value" ? (startOf(node) ?? nameOffset) : nameOffset;
  return lineCounter.linePos(offset);
}

/** The path of the innermost key or item whose source contains `offset` (for YAML errors). */
export function pathAtOffset(doc: Document, offset: number): TPathSegment[] {
  const path: TPathSegment[] = [];
  const contains = (candidate: unknown): boolean => {
    const range = (candidate as Node | null)?.range;
    return range !== undefined && range !== null && range[0] <= offset && offset < Math.max(range[2], range[0] + 1);
  };
  let node: unknown = doc.contents;
  for (;;) {
    if (isMap(node)) {
      const pair = node.items.find((item) => contains(item.key) || contains(item.value));
      const key = pair ? keyText(pair.key) : undefined;
      if (!pair || key === undefined) return path;
      path.push(key);
      if (contains(pair.key)) return path;
      node = pair.value;
    } else if (isSeq(node)) {
      const index = node.items.findIndex(contains);
      if (index < 0) return path;
      path.push(index);
      node = node.items[index];
    } else {
      return path;
    }
  }
}

/** environments[0].backup.rpoMinutes; keys that are not identifiers are quoted: metadata["odd key"]. */
export function formatPath(path: readonly TPathSegment[]): string {
  return path
    .map((segment, index) => {
      if (typeof segment === "number") return `[${segment}]`;
      if (!/^[A-Za-z_$][\w$-]*$/.test(segment)) return `[${JSON.stringify(segment)}]`;
      return index === 0 ? segment : `.${segment}`;
    })
    .join("");
}
