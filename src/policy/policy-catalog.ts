// The whole compliance baseline: every control carehost evaluates, over the spec, the rendered
// artifacts, the live state and the rendered Kubernetes manifests.
import { ARTIFACT_CONTROLS } from "./policy-catalog-artifact.js";
import { COPY_CONTROLS } from "./policy-catalog-copies.js";
import { LIVE_CONTROLS } from "./policy-catalog-live.js";
import { MANIFEST_CONTROLS } from "./policy-catalog-manifest.js";
import { createSpecControls } from "./policy-catalog-spec.js";
import { DEFAULT_RECOVERY_OBJECTIVES } from "./policy-objectives.js";
import type { TObjectiveTable } from "./policy-objectives.js";
import type { TAnyControl } from "./policy-types.js";

export function createPolicyCatalog(objectives: TObjectiveTable = DEFAULT_RECOVERY_OBJECTIVES): readonly TAnyControl[] {
  return [
    ...createSpecControls(objectives),
    ...ARTIFACT_CONTROLS,
    ...LIVE_CONTROLS,
    ...COPY_CONTROLS,
    ...MANIFEST_CONTROLS,
  ];
}

export const POLICY_CATALOG: readonly TAnyControl[] = createPolicyCatalog();
