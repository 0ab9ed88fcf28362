// A unified diff of two texts, as `diff -u` prints it, for the rendered files a plan would change.
// Pure, with no process to spawn: a plan runs it for every file of every cluster. The files it
// compares are configuration files of a few hundred lines, so the quadratic longest common
// subsequence is cheap and gives the minimal diff.

const splitLines = (text: string): string[] => {
  if (text === "") return [];
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
};

type TEdit = { readonly kind: " " | "-" | "+"; readonly line: string; readonly before: number; readonly after: number };

/** Every line of both texts, each kept, removed or added, in order (LCS by dynamic programming). */
function edits(before: readonly string[], after: readonly string[]): TEdit[] {
  const rows = before.length + 1;
  const columns = after.length + 1;
  const common = new Uint32Array(rows * columns);
  for (let i = before.length - 1; i >= 0; i -= 1) {
    for (let j = after.length - 1; j >= 0; j -= 1) {
      common[i * columns + j] = before[i] === after[j] ? common[(i + 1) * columns + j + 1]! + 1 : Math.max(common[(i + 1) * columns + j]!, common[i * columns + j + 1]!);
    }
  }
  const result: TEdit[] = [];
  let i = 0;
  let j = 0;
  while (i < before.length || j < after.length) {
    if (i < before.length && j < after.length && before[i] === after[j]) {
      result.push({ kind: " ", line: before[i]!, before: i, after: j });
      i += 1;
      j += 1;
    } else if (i < before.length && (j === after.length || common[(i + 1) * columns + j]! >= common[i * columns + j + 1]!)) {
      // Removals before additions, as diff prints a changed line.
      result.push({ kind: "-", line: before[i]!, before: i, after: j });
      i += 1;
    } else {
      result.push({ kind: "+", line: after[j]!, before: i, after: j });
      j += 1;
    }
  }
  return result;
}

/** diff's hunk range: "start,count", "start" for one line, and the line before for none. */
const range = (start: number, count: number) => (count === 1 ? `${start}` : count === 0 ? `${start - 1},0` : `${start},${count}`);

/**
 * `--- a/<name>` / `+++ b/<name>` and one hunk per group of changes with `context` lines around it;
 * "" when the texts are equal. A side that does not exist is /dev/null, as diff prints it.
 */
export function unifiedDiff(name: string, before: string | undefined, after: string | undefined, context = 3): string {
  if (before === after) return "";
  const all = edits(splitLines(before ?? ""), splitLines(after ?? ""));
  const changed = all.flatMap((edit, index) => (edit.kind === " " ? [] : [index]));
  if (changed.length === 0) return "";
  const hunks: { start: number; end: number }[] = [];
  for (const index of changed) {
    const last = hunks.at(-1);
    const start = Math.max(0, index - context);
    if (last !== undefined && start <= last.end + 1) last.end = Math.min(all.length - 1, index + context);
    else hunks.push({ start, end: Math.min(all.length - 1, index + context) });
  }
  const lines = [`--- ${before === undefined ? "/dev/null" : `a/${name}`}`, `+++ ${after === undefined ? "/dev/null" : `b/${name}`}`];
  for (const hunk of hunks) {
    const body = all.slice(hunk.start, hunk.end + 1);
    const first = body[0]!;
    const beforeCount = body.filter((edit) => edit.kind !== "+").length;
    const afterCount = body.filter((edit) => edit.kind !== "-").length;
    lines.push(`@@ -${range(first.before + 1, beforeCount)} +${range(first.after + 1, afterCount)} @@`);
    for (const edit of body) lines.push(`${edit.kind}${edit.line}`);
  }
  return `${lines.join("\n")}\n`;
}
