// Runs the control baseline where the issue puts it: over a submitted spec before plan and apply
// (a mandatory violation refuses them, exit code 3), and over the recorded organizations for
// `carehost posture`. Live and artifact subjects join when the runtime provides them. The spec's
// exceptions apply only as far as carehost's approvals (by exception digest) say; without them,
// every exception is pending and its control fails.
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import { POLICY_CATALOG } from "./policy-catalog.js";
import { assertNoMandatoryViolations, evaluatePolicy } from "./policy-engine.js";
import type { TPostureReport } from "./policy-engine.js";
import { NO_APPROVALS } from "./policy-exceptions.js";
import { combineReports, renderedArtifactsReport } from "./policy-rendered.js";
import type { TArtifactTarget } from "./policy-rendered.js";
import type { TExceptionApprovals } from "./policy-exceptions.js";
import type {
  TAnyControl,
  TArtifactSubject,
  TLiveCopy,
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

/**
 * The live subjects with the copies carehost recorded (the copies table), each environment judged
 * by the copies made from it and the data put into it (CH-DATA-001, CH-DATA-002).
 */
export const withRecordedCopies = <T extends { readonly live: readonly TLiveSubject[] }>(
  subjects: T,
  copies: readonly TLiveCopy[],
): T => ({
  ...subjects,
  live: subjects.live.map((subject) => ({
    ...subject,
    live: {
      ...subject.live,
      copies: copies.filter(
        (copy) => (copy.kind === "copy" ? copy.sourceEnvironment : copy.name) === subject.environment.name,
      ),
    },
  })),
});

export const policyCheckerFactory = ({
  controls = POLICY_CATALOG,
  now = () => new Date(),
}: { controls?: readonly TAnyControl[]; now?: () => Date } = {}) => {
  /** The spec's controls and the artifact controls over what each target renders from it. */
  const evaluateDelivery = (
    organization: TOrganizationSpec,
    targets: readonly TArtifactTarget[],
    approvals: TExceptionApprovals = NO_APPROVALS,
  ): TPostureReport => {
    const at = now();
    return combineReports([
      evaluatePolicy({
        controls,
        subjects: { spec: specSubjectsOf(organization) },
        exceptions: organization.policyExceptions,
        approvals,
        now: at,
      }),
      renderedArtifactsReport(organization, targets, approvals, { controls, now: at }),
    ]);
  };
  return {
    evaluateDelivery,

    /** Throws PolicyViolation listing every mandatory violation of the spec or of a target's rendered files (exit code 3). */
    assertDeliveryCompliant: (
      organization: TOrganizationSpec,
      targets: readonly TArtifactTarget[],
      approvals: TExceptionApprovals = NO_APPROVALS,
    ): TPostureReport => {
      const report = evaluateDelivery(organization, targets, approvals);
      assertNoMandatoryViolations(report);
      return report;
    },

    /** The posture of one organization's spec. */
    evaluateSpec: (organization: TOrganizationSpec, approvals: TExceptionApprovals = NO_APPROVALS): TPostureReport =>
      evaluatePolicy({
        controls,
        subjects: { spec: specSubjectsOf(organization) },
        exceptions: organization.policyExceptions,
        approvals,
        now: now(),
      }),

    /** The posture over the spec and what carehost enforces and, when a runtime provides them, its rendered artifacts and live state. */
    evaluate: (
      organization: TOrganizationSpec,
      runtimeSubjects?: { readonly artifact: readonly TArtifactSubject[]; readonly live: readonly TLiveSubject[] },
      platform?: TPlatformEnforcement,
      approvals: TExceptionApprovals = NO_APPROVALS,
    ): TPostureReport =>
      evaluatePolicy({
        controls,
        subjects: { spec: specSubjectsOf(organization, platform), ...(runtimeSubjects ?? {}) },
        exceptions: organization.policyExceptions,
        approvals,
        now: now(),
      }),

    /** Throws PolicyViolation listing every mandatory violation of rendered Kubernetes manifests (GitOps plan and apply). */
    assertManifestsCompliant: (
      organization: TOrganizationSpec,
      manifests: readonly TManifestSubject[],
      approvals: TExceptionApprovals = NO_APPROVALS,
    ): TPostureReport => {
      const report = evaluatePolicy({
        controls: controls.filter((control) => control.subject === "manifest"),
        subjects: { manifest: manifests },
        exceptions: organization.policyExceptions.filter((exception) =>
          controls.some((control) => control.id === exception.controlId && control.subject === "manifest"),
        ),
        approvals,
        now: now(),
      });
      assertNoMandatoryViolations(report);
      return report;
    },

    /** Throws PolicyViolation listing every mandatory violation of the spec. */
    assertSpecCompliant: (
      organization: TOrganizationSpec,
      approvals: TExceptionApprovals = NO_APPROVALS,
    ): TPostureReport => {
      const report = evaluatePolicy({
        controls,
        subjects: { spec: specSubjectsOf(organization) },
        exceptions: organization.policyExceptions,
        approvals,
        now: now(),
      });
      assertNoMandatoryViolations(report);
      return report;
    },
  };
};

export type TPolicyChecker = ReturnType<typeof policyCheckerFactory>;
