// A spec's identity for plans, change requests and audit events: the SHA-256 of its canonical
// JSON, so that reordering keys or reformatting the YAML does not count as a change.
import { createHash } from "node:crypto";

/** JSON with object keys sorted at every level; undefined members are dropped, as JSON.stringify does. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value))
    return `[${value.map((item) => (item === undefined ? "null" : canonicalJson(item))).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const members = Object.keys(value)
      .sort()
      .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
      .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
    return `{${members.join(",")}}`;
  }
  return JSON.stringify(value);
}

export function specDigest(spec: unknown): string {
  return createHash("sha256").update(canonicalJson(spec)).digest("hex");
}
