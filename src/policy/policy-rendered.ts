// The artifact controls over what each target renders: the local runtime's files, the Compose
// bundle, the Kubernetes manifests. `validate`, `plan`, `apply` and `render` run them the same
// way, so a setting that would fail a mandatory control on any target stops it (exit 3). Each
// target is evaluated on its own and the results are joined: a line names its target.
import { RENDERERS } from "../render/render-targets.js";
import type { TRenderTarget } from "../render/render-types.js";
import { localArtifactSubjects } from "../runtime/local/local-render-offline.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import { ARTIFACT_CONTROLS } from "./policy-catalog-artifact.js";
import { evaluatePolicy, formatViolation } from "./policy-engine.js";
import type { TPostureReport } from "./policy-engine.js";
import { exceptionDigest, NO_APPROVALS } from "./policy-exceptions.js";
import type { TExceptionApprovals, TPolicyException } from "./policy-exceptions.js";
import { composeArtifactsOf, kubernetesArtifactsOf } from "./policy-rendered-files.js";
import type { TAnyControl, TArtifactSubject, TRenderedArtifacts } from "./policy-types.js";

export const ARTIFACT_TARGETS = ["local", "compose", "kubernetes"] as const;
export type TArtifactTarget = (typeof ARTIFACT_TARGETS)[number];

const artifactsFromFiles: Readonly<
  Record<
    TRenderTarget,
    (
      files: Parameters<typeof composeArtifactsOf>[0],
      environment: TArtifactSubject["environment"],
    ) => TRenderedArtifacts
  >
> = { compose: composeArtifactsOf, kubernetes: kubernetesArtifactsOf };

type TTargetSubjects = { readonly subjects: TArtifactSubject[]; readonly renderErrors: ReadonlyMap<string, string> };

/** Each environment's artifacts as the target renders them; an environment the target cannot render has none, and says why. */
function subjectsOf(target: TArtifactTarget, organization: TOrganizationSpec): TTargetSubjects {
  if (target === "local")
    return { subjects: localArtifactSubjects(organization, { statementAudit: "pgaudit" }), renderErrors: new Map() };
  const renderErrors = new Map<string, string>();
  const subjects = organization.environments.map((environment) => {
    try {
      const files = RENDERERS[target](organization, environment.name);
      return { environment, artifacts: artifactsFromFiles[target](files, environment) };
    } catch (error) {
      renderErrors.set(environment.name, error instanceof Error ? error.message : String(error));
      return { environment, artifacts: {} };
    }
  });
  return { subjects, renderErrors };
}

/** Every message and violation line names the target: "compose: postgresql.conf must …". */
function tagged(
  report: TPostureReport,
  target: TArtifactTarget,
  renderErrors: ReadonlyMap<string, string>,
  controls: readonly TAnyControl[],
): TPostureReport {
  const tag = (environment: string, message: string) => {
    const error = renderErrors.get(environment);
    return `${target}${error === undefined ? "" : ` (cannot render: ${error})`}: ${message}`;
  };
  const citations = new Map(controls.map((control) => [control.id, control.citations]));
  return {
    ...report,
    results: report.results.map((result) => ({
      ...result,
      messages: result.messages.map((message) => tag(result.environment, message)),
      failures: result.failures.map((failure) => ({ ...failure, message: tag(result.environment, failure.message) })),
    })),
    mandatoryViolations: report.mandatoryViolations.map((violation) => {
      const message = tag(violation.environment, violation.message);
      return {
        ...violation,
        message,
        line: formatViolation({ ...violation, citations: citations.get(violation.controlId) ?? [] }, message),
      };
    }),
  };
}

const uniqueExceptions = (exceptions: readonly TPolicyException[]) => [
  ...new Map(exceptions.map((exception) => [exceptionDigest(exception), exception])).values(),
];

/** Several reports over the same spec as one: counts added, exceptions once, unused only where no report used them. */
export function combineReports(reports: readonly TPostureReport[]): TPostureReport {
  const results = reports.flatMap((report) => report.results);
  const used = new Set(
    results.flatMap((result) => (result.exception === undefined ? [] : [exceptionDigest(result.exception)])),
  );
  const sum = (key: keyof TPostureReport["summary"]) =>
    reports.reduce((total, report) => total + report.summary[key], 0);
  return {
    evaluatedAt: reports[0]?.evaluatedAt ?? new Date(0).toISOString(),
    results,
    summary: {
      pass: sum("pass"),
      fail: sum("fail"),
      pending: sum("pending"),
      excepted: sum("excepted"),
      notApplicable: sum("notApplicable"),
      notEnforced: sum("notEnforced"),
    },
    mandatoryViolations: reports.flatMap((report) => report.mandatoryViolations),
    expiredExceptions: uniqueExceptions(reports.flatMap((report) => report.expiredExceptions)),
    unusedExceptions: uniqueExceptions(reports.flatMap((report) => report.unusedExceptions)).filter(
      (exception) => !used.has(exceptionDigest(exception)),
    ),
    pendingExceptions: uniqueExceptions(reports.flatMap((report) => report.pendingExceptions)),
  };
}

/**
 * The artifact controls over each target's rendered files, with the spec's exceptions for them
 * applied as far as `approvals` say. Throws ValidationError for an exception naming an unknown
 * environment, as plan does.
 */
export function renderedArtifactsReport(
  organization: TOrganizationSpec,
  targets: readonly TArtifactTarget[],
  approvals: TExceptionApprovals = NO_APPROVALS,
  { controls = ARTIFACT_CONTROLS, now = new Date() }: { controls?: readonly TAnyControl[]; now?: Date } = {},
): TPostureReport {
  const artifactControls = controls.filter((control) => control.subject === "artifact");
  const ids = new Set(artifactControls.map((control) => control.id));
  const exceptions = organization.policyExceptions.filter((exception) => ids.has(exception.controlId));
  return combineReports(
    targets.map((target) => {
      const { subjects, renderErrors } = subjectsOf(target, organization);
      const report = evaluatePolicy({
        controls: artifactControls,
        subjects: { artifact: subjects },
        exceptions,
        approvals,
        now,
      });
      return tagged(report, target, renderErrors, artifactControls);
    }),
  );
}
