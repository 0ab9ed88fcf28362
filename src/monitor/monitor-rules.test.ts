// The rendered rules file passes Debian's promtool, carries the spec's overrides, and every
// shipped rule has its runbook page.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { access, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { loadSpecText } from "../spec/spec-loader.js";
import { RULE_NAMES, SHIPPED_RULES, renderPrometheusRulesFile, runbookUrl } from "./monitor-rules.js";
import type { TPrometheusRuleGroup } from "./monitor-rules.js";

const run = promisify(execFile);

const demo = async (monitoring = "") => {
  const text = (await readFile("examples/northwind-health.yaml", "utf8")) + monitoring;
  const loaded = loadSpecText(text, "northwind-health.yaml");
  return loaded;
};

void describe("alert rules as code", () => {
  void it("renders a rules file promtool accepts, with a group per organization pinned to it and the platform's group", async () => {
    const loaded = await demo();
    assert.ok(loaded.ok);
    const text = renderPrometheusRulesFile([loaded.spec], { platform: true });
    const directory = await mkdtemp(join(tmpdir(), "carehost-rules-"));
    try {
      const path = join(directory, "rules.yml");
      await writeFile(path, text);
      const { stdout } = await run("promtool", ["check", "rules", path]);
      assert.match(stdout, new RegExp(`SUCCESS: ${SHIPPED_RULES.length} rules found`));
      const { groups } = parse(text) as { groups: TPrometheusRuleGroup[] };
      assert.deepEqual(
        groups.map((group) => group.name),
        ["carehost-northwind-health", "carehost-platform"],
      );
      for (const rule of groups[0]!.rules) assert.match(rule.expr, /organization="northwind-health"/, rule.alert);
      const archiving = groups[0]!.rules.find((rule) => rule.alert === "WalArchivingFailing")!;
      assert.equal(archiving.labels.severity, "critical");
      assert.equal(archiving.annotations.runbook_url, runbookUrl("WalArchivingFailing"));
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  void it("applies the spec's overrides: for-duration, severity, threshold, labels, and a rule left out", async () => {
    const loaded = await demo(
      [
        "monitoring:",
        "  rules:",
        "    - rule: BackupStale",
        "      for: 30m",
        "      severity: warning",
        "      threshold: 7200",
        "      labels: { team: dba }",
        "    - rule: PostgresDeadlocks",
        "      enabled: false",
        "",
      ].join("\n"),
    );
    assert.ok(loaded.ok, JSON.stringify(!loaded.ok && loaded.errors));
    const { groups } = parse(renderPrometheusRulesFile([loaded.spec], { platform: false })) as {
      groups: TPrometheusRuleGroup[];
    };
    assert.equal(groups.length, 1);
    const stale = groups[0]!.rules.find((rule) => rule.alert === "BackupStale")!;
    assert.equal(stale.for, "30m");
    assert.deepEqual(stale.labels, { team: "dba", severity: "warning", source: "carehost" });
    assert.match(stale.expr, /\+ 7200$/);
    assert.equal(
      groups[0]!.rules.find((rule) => rule.alert === "PostgresDeadlocks"),
      undefined,
    );
  });

  void it("refuses an unknown rule, a bad duration, a reserved label and a rule overridden twice, naming the field", async () => {
    const loaded = await demo(
      [
        "monitoring:",
        "  rules:",
        "    - rule: DiskOnFire",
        "    - rule: BackupStale",
        "      for: soon",
        "      labels: { severity: page }",
        "",
      ].join("\n"),
    );
    assert.ok(!loaded.ok);
    const messages = loaded.errors.map((error) => `${error.path}: ${error.message}`).join("\n");
    assert.match(messages, /monitoring\.rules\[0\]\.rule: "DiskOnFire" is not a rule carehost ships/);
    assert.match(messages, /monitoring\.rules\[1\]\.for: "soon" is not a Prometheus duration/);
    assert.match(messages, /monitoring\.rules\[1\]\.labels\.severity: /);
    const twice = await demo(
      ["monitoring:", "  rules:", "    - rule: BackupStale", "    - rule: BackupStale", ""].join("\n"),
    );
    assert.ok(!twice.ok);
    assert.match(
      twice.errors.map((error) => `${error.path}: ${error.message}`).join("\n"),
      /monitoring\.rules\[1\]\.rule: rule BackupStale is overridden twice/,
    );
  });

  void it("has a runbook page for every shipped rule: what it means, what to check, how to fix", async () => {
    for (const name of RULE_NAMES) {
      const path = join("docs", "runbooks", `${name}.md`);
      await access(path);
      const text = await readFile(path, "utf8");
      for (const heading of ["## What it means", "## What to check", "## How to fix"])
        assert.ok(text.includes(heading), `${path} has ${heading}`);
      assert.ok(runbookUrl(name).endsWith(`docs/runbooks/${name}.md`));
    }
  });
});
