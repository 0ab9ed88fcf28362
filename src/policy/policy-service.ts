// Runs the control baseline where the issue puts it: over a submitted spec before plan and apply
// (a mandatory violation refuses them, exit code 3), and over the recorded organizations for
// `carehost posture`. Live and artifact subjects join when the runtime provides them.
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import { POLICY_CATALOG } from "./policy-catalog.js";
import { assertNoMandatoryViolations, evaluatePolicy } from "./policy-engine.js";
import type { TPostureReport } from "./policy-engine.js";
import type {
  TAnyControl,
  TArtifactSubject,
  TLiveSubject,
  TManifestSubject,
  TPlatformEnforcement,
  TSpecSubject,
} from "./policy-types.js";

/** `platform`: what carehost's own sign-in enforces; without it the identity controls judge the declaration only. */
export const specSubjectsOf = (organization: TOrganizationSpec, platform?: TPlatformEnforcement): TSpecSubject[] =>
  organization.environments.map((environment) => ({
    organization,
    environment,
    ...(platform === undefined ? {} : { platform }),
  }));

export const policyCheckerFactory = ({
  controls = POLICY_CATALOG,
  now = () => new Date(),
}: { controls?: readonly TAnyControl[]; now?: () => Date } = {}) => ({
  /** The posture of one organization's spec. */
  evaluateSpec: (organization: TOrganizationSpec): TPostureReport =>
    evaluatePolicy({
      controls,
      subjects: { spec: specSubjectsOf(organization) },
      exceptions: organization.policyExceptions,
      now: now(),
    }),

  /** The posture over the spec and what carehost enforces and, when a runtime provides them, its rendered artifacts and live state. */
  evaluate: (
    organization: TOrganizationSpec,
    runtimeSubjects?: { readonly artifact: readonly TArtifactSubject[]; readonly live: readonly TLiveSubject[] },
    platform?: TPlatformEnforcement,
  ): TPostureReport =>
    evaluatePolicy({
      controls,
      subjects: { spec: specSubjectsOf(organization, platform), ...(runtimeSubjects ?? {}) },
      exceptions: organization.policyExceptions,
      now: now(),
    }),

  /** Throws PolicyViolation listing every mandatory violation of rendered Kubernetes manifests (GitOps plan and apply). */
  assertManifestsCompliant: (
    organization: TOrganizationSpec,
    manifests: readonly TManifestSubject[],
  ): TPostureReport => {
    const report = evaluatePolicy({
      controls: controls.filter((control) => control.subject === "manifest"),
      subjects: { manifest: manifests },
      exceptions: organization.policyExceptions.filter((exception) =>
        controls.some((control) => control.id === exception.controlId && control.subject === "manifest"),
      ),
      now: now(),
    });
    assertNoMandatoryViolations(report);
    return report;
  },

  /** Throws PolicyViolation listing every mandatory violation of the spec. */
  assertSpecCompliant: (organization: TOrganizationSpec): TPostureReport => {
    const report = evaluatePolicy({
      controls,
      subjects: { spec: specSubjectsOf(organization) },
      exceptions: organization.policyExceptions,
      now: now(),
    });
    assertNoMandatoryViolations(report);
    return report;
  },
});

export type TPolicyChecker = ReturnType<typeof policyCheckerFactory>;
