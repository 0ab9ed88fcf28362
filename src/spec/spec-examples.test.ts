import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { formatSpecError, loadSpecFile } from "./spec-loader.js";
import type { TSpecLoadResult } from "./spec-loader.js";

const EXAMPLE_PATH = fileURLToPath(new URL("../../examples/northwind-health.yaml", import.meta.url));
const MISTAKES_PATH = fileURLToPath(new URL("../../examples/northwind-health-mistakes.yaml", import.meta.url));

function errorsOf(result: TSpecLoadResult) {
  if (result.ok) throw new Error("expected the spec to be rejected, but it loaded");
  return result.errors;
}

void describe("examples/northwind-health.yaml", () => {
  void it("loads without errors", async () => {
    const result = await loadSpecFile(EXAMPLE_PATH);
    assert.ok(result.ok, result.ok ? "" : result.errors.map(formatSpecError).join("\n"));
    assert.equal(result.spec.metadata.name, "northwind-health");
    assert.deepEqual(
      result.spec.environments.map((environment) => [
        environment.name,
        environment.tier,
        environment.dataClass,
        environment.hosting,
      ]),
      [
        ["prod", "production", "phi", "dedicated"],
        ["staging", "staging", "confidential", "shared"],
        ["training", "training", "internal", "shared"],
      ],
    );
    // Environments without a window inherit the default one.
    assert.equal(result.spec.environments[1]?.maintenanceWindow.slots.length, 2);
    assert.equal(result.spec.environments[0]?.maintenanceWindow.slots[0]?.day, "sun");
    assert.match(result.digest, /^[0-9a-f]{64}$/);
  });

  void it("points editors at the committed JSON Schema", () => {
    assert.equal(
      readFileSync(EXAMPLE_PATH, "utf8").split("\n")[0],
      "# yaml-language-server: $schema=../schema/carehost.schema.json",
    );
  });
});

void describe("examples/northwind-health-mistakes.yaml", () => {
  // Each `# MISTAKE n:` comment sits on the line above the line its error must point at.
  const lines = readFileSync(MISTAKES_PATH, "utf8").split("\n");
  const mistakes = lines.flatMap((line, index) => {
    const match = /^\s*# MISTAKE (\d+):/.exec(line);
    return match ? [{ mistake: Number(match[1]), line: index + 2 }] : [];
  });
  const expectedPaths: Record<number, string> = {
    1: "defaults.maintenanceWindow.slots[0].start",
    2: "environments[0].odoo.cronWorker",
    3: "environments[0].backup.schedule.differential",
    4: "environments[0].maintenanceWindow.timeZone",
    5: "environments[0].ingress.allowedCidrs[1]",
    6: "environments[1].tier",
    7: "environments[1].backup.rpoMinutes",
    8: "environments[1].backup.repositories[0]",
    9: "environments[2].name",
    10: "environments[2].entity",
  };

  void it("has ten numbered mistakes", () => {
    assert.deepEqual(
      mistakes.map(({ mistake }) => mistake),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
  });

  void it("yields exactly ten errors, one on the line of each mistake", async () => {
    const errors = errorsOf(await loadSpecFile(MISTAKES_PATH));
    assert.equal(errors.length, 10, errors.map(formatSpecError).join("\n"));
    assert.deepEqual(
      errors.map((error) => ({ line: error.line, path: error.path })),
      mistakes.map(({ mistake, line }) => ({ line, path: expectedPaths[mistake] })),
    );
    assert.ok(errors.every((error) => error.file === MISTAKES_PATH));
  });
});
