// The verdict `carehost validate` gives without a server, in a CI pipeline or a pre-commit hook:
// every spec control, and every artifact control over the files each target renders for the
// spec (the local runtime, the Compose bundle, the Kubernetes manifests), with the spec's
// exceptions applied as plan applies them. A mandatory violation here is the same line plan
// prints, and the same exit code 3.
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import { POLICY_CATALOG } from "./policy-catalog.js";
import { evaluatePolicy } from "./policy-engine.js";
import type { TPostureReport } from "./policy-engine.js";
import { ARTIFACT_TARGETS, combineReports, renderedArtifactsReport } from "./policy-rendered.js";
import { specSubjectsOf } from "./policy-service.js";
import type { TAnyControl } from "./policy-types.js";

/**
 * The local files as a host with pgaudit renders them (a host without it logs every statement
 * instead, which passes the same control). Throws ValidationError for an exception that names an
 * unknown control or environment, as plan does.
 */
export function offlineVerdict(
  organization: TOrganizationSpec,
  { controls = POLICY_CATALOG, now = new Date() }: { controls?: readonly TAnyControl[]; now?: Date } = {},
): TPostureReport {
  return combineReports([
    evaluatePolicy({
      controls,
      subjects: { spec: specSubjectsOf(organization) },
      exceptions: organization.policyExceptions,
      now,
    }),
    renderedArtifactsReport(organization, ARTIFACT_TARGETS, undefined, { controls, now }),
  ]);
}
