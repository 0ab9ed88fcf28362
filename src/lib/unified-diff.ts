// A unified diff of two texts, as `diff -u` prints it, for the rendered files a plan would change.
// jsdiff (npm `diff`) finds the hunks; carehost prints them with diff's own headers and ranges.
import { structuredPatch } from "diff";

/** diff's hunk range: "start,count", "start" for one line, and the line before for none. */
const range = (start: number, count: number) =>
  count === 1 ? `${start}` : count === 0 ? `${start - 1},0` : `${start},${count}`;

/**
 * `--- a/<name>` / `+++ b/<name>` and one hunk per group of changes with `context` lines around it;
 * "" when the texts are equal. A side that does not exist is /dev/null, as diff prints it.
 */
export function unifiedDiff(name: string, before: string | undefined, after: string | undefined, context = 3): string {
  if (before === after) return "";
  const { hunks } = structuredPatch(`a/${name}`, `b/${name}`, before ?? "", after ?? "", undefined, undefined, {
    context,
  });
  if (hunks.length === 0) return "";
  const lines = [
    `--- ${before === undefined ? "/dev/null" : `a/${name}`}`,
    `+++ ${after === undefined ? "/dev/null" : `b/${name}`}`,
  ];
  for (const hunk of hunks) {
    lines.push(`@@ -${range(hunk.oldStart, hunk.oldLines)} +${range(hunk.newStart, hunk.newLines)} @@`);
    lines.push(...hunk.lines.filter((line) => !line.startsWith("\\")));
  }
  return `${lines.join("\n")}\n`;
}
