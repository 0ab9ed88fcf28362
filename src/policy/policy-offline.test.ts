import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { localArtifactSubjects } from "../runtime/local/local-render-offline.js";
import { loadSpecText } from "../spec/spec-loader.js";
import { POLICY_CATALOG } from "./policy-catalog.js";
import { evaluatePolicy } from "./policy-engine.js";
import { offlineVerdict } from "./policy-offline.js";
import { ARTIFACT_TARGETS } from "./policy-rendered.js";

const demo = async () => {
  const loaded = loadSpecText(await readFile("examples/northwind-health.yaml", "utf8"), "northwind-health.yaml");
  assert.ok(loaded.ok);
  return loaded.spec;
};

void describe("offline verdict", () => {
  void it("evaluates the spec controls, and the artifact controls over every target's render, each per environment", async () => {
    const spec = await demo();
    const verdict = offlineVerdict(spec, { now: new Date("2026-12-01T00:00:00Z") });
    for (const [kind, targets] of [
      ["spec", 1],
      ["artifact", ARTIFACT_TARGETS.length],
    ] as const) {
      const controls = POLICY_CATALOG.filter((control) => control.subject === kind).length;
      assert.equal(
        verdict.results.filter((result) => result.subject === kind).length,
        controls * spec.environments.length * targets,
        kind,
      );
    }
    // Each target's lines say which target they are about.
    for (const target of ARTIFACT_TARGETS)
      assert.ok(
        verdict.results.some(
          (result) => result.controlId === "CH-BAK-008" && result.messages.some((m) => m.startsWith(`${target}: `)),
        ) || target !== "kubernetes",
        target,
      );
    assert.ok(
      verdict.results.every((result) => result.subject === "spec" || result.subject === "artifact"),
      "no live or manifest control without a server",
    );
    assert.deepEqual(
      verdict.results.filter((result) => result.status === "fail"),
      [],
    );
    assert.equal(
      verdict.results.find((result) => result.controlId === "CH-DB-006" && result.environment === "prod")?.status,
      "pass",
    );
  });

  void it("passes the artifact controls with pgaudit and with log_statement = all, the two renders a host can write", async () => {
    const spec = await demo();
    for (const statementAudit of ["pgaudit", "log-statement-all"] as const) {
      const artifact = localArtifactSubjects(spec, { statementAudit });
      const report = evaluatePolicy({
        controls: POLICY_CATALOG.filter((control) => control.subject === "artifact"),
        subjects: { artifact },
        now: new Date(),
      });
      assert.deepEqual(report.mandatoryViolations, [], statementAudit);
      assert.equal(
        artifact.find((subject) => subject.environment.name === "prod")?.artifacts.postgresqlConf?.log_statement,
        statementAudit === "pgaudit" ? "'none'" : "'all'",
      );
    }
  });
});
