import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { unifiedDiff } from "./unified-diff.js";

/** Applies a unified diff the way patch does, hunk by hunk, checking every context and removed line. */
function applyDiff(before: string, diff: string): string {
  const source = before === "" ? [] : before.replace(/\n$/, "").split("\n");
  const result: string[] = [];
  let next = 0;
  const lines = diff.replace(/\n$/, "").split("\n").slice(2);
  for (let index = 0; index < lines.length; index += 1) {
    const header = /^@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@$/.exec(lines[index]!);
    assert.ok(header, `a hunk header, not ${JSON.stringify(lines[index])}`);
    const start = Number(header[1]) - (header[2] === "0" ? 0 : 1);
    result.push(...source.slice(next, start));
    next = start;
    while (index + 1 < lines.length && !lines[index + 1]!.startsWith("@@")) {
      const line = lines[(index += 1)]!;
      if (line.startsWith("+")) result.push(line.slice(1));
      else {
        assert.equal(source[next], line.slice(1), "context and removed lines are the old file's");
        if (line.startsWith(" ")) result.push(line.slice(1));
        next += 1;
      }
    }
  }
  result.push(...source.slice(next));
  return result.length === 0 ? "" : `${result.join("\n")}\n`;
}

void describe("unified diff", () => {
  void it("prints nothing for equal texts and diff -u's hunks otherwise", () => {
    assert.equal(unifiedDiff("a.conf", "x\n", "x\n"), "");
    const before = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\n";
    assert.equal(
      unifiedDiff("a.conf", before, before.replace("b\n", "B\n").replace("l\n", "")),
      [
        "--- a/a.conf",
        "+++ b/a.conf",
        "@@ -1,5 +1,5 @@",
        " a",
        "-b",
        "+B",
        " c",
        " d",
        " e",
        "@@ -9,4 +9,3 @@",
        " i",
        " j",
        " k",
        "-l",
        "",
      ].join("\n"),
    );
    assert.equal(unifiedDiff("n.conf", undefined, "a\nb\n"), "--- /dev/null\n+++ b/n.conf\n@@ -0,0 +1,2 @@\n+a\n+b\n");
    assert.equal(unifiedDiff("n.conf", "a\n", undefined), "--- a/n.conf\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n");
  });

  void it("turns the old text into the new one, for many random edits", () => {
    let seed = 11;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (let round = 0; round < 300; round += 1) {
      const before = Array.from({ length: Math.floor(random() * 30) }, () => `line ${Math.floor(random() * 6)}`);
      const after = before.flatMap((line) => {
        const roll = random();
        return roll < 0.15
          ? []
          : roll < 0.3
            ? [line, `new ${Math.floor(random() * 4)}`]
            : roll < 0.4
              ? [`changed ${Math.floor(random() * 3)}`]
              : [line];
      });
      const text = (lines: string[]) => (lines.length === 0 ? "" : `${lines.join("\n")}\n`);
      const diff = unifiedDiff("f", text(before), text(after));
      assert.equal(diff === "" ? text(before) : applyDiff(text(before), diff), text(after), diff);
    }
  });
});
