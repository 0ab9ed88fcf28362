// GitOps plan and apply render through renderChecked: the spec's controls and the artifact
// controls over the target's files, with the real catalog and the real renderers. A target whose
// files fail a mandatory control is refused with PolicyViolation (the API's 422, the CLI's exit 3)
// before anything reaches the repository.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { PolicyViolation } from "../lib/errors.js";
import { NO_APPROVALS } from "../policy/policy-exceptions.js";
import { policyCheckerFactory } from "../policy/policy-service.js";
import { RENDERERS } from "../render/render-targets.js";
import { RENDER_TARGETS } from "../render/render-types.js";
import { loadSpecText } from "../spec/spec-loader.js";
import { renderChecked } from "./gitops-service.js";

const specOf = async (edit: (source: string) => string = (source) => source) => {
  const loaded = loadSpecText(edit(await readFile("examples/northwind-health.yaml", "utf8")), "carehost.yaml");
  assert.ok(loaded.ok);
  return loaded.spec;
};

void describe("renderChecked (GitOps plan and apply)", () => {
  void it("renders every environment of the demo for each target", async () => {
    const spec = await specOf();
    for (const target of RENDER_TARGETS) {
      const files = renderChecked(target, RENDERERS[target], spec, policyCheckerFactory(), NO_APPROVALS);
      assert.deepEqual([...files.keys()].sort(), ["prod", "staging", "training"], target);
    }
  });

  void it("refuses a target whose files fail a mandatory artifact control, naming the control and the target", async () => {
    // restic's azure backend cannot address a path-style endpoint: no target can back the filestore up there.
    const spec = await specOf((source) =>
      source.replace(
        "    keySecretRef: backup-offsite-azure-key",
        "    endpoint: https://azurite.northwind-health.example:10000/northwindbackups\n    keySecretRef: backup-offsite-azure-key",
      ),
    );
    for (const target of RENDER_TARGETS) {
      assert.throws(
        () => renderChecked(target, RENDERERS[target], spec, policyCheckerFactory(), NO_APPROVALS),
        (error: unknown) =>
          error instanceof PolicyViolation &&
          error.details.some((detail) =>
            new RegExp(
              `^CH-BAK-007 .*environment "prod": ${target}: the filestore is not backed up to repository "offsite"`,
            ).test(detail.message),
          ),
        target,
      );
    }
  });
});
