// Records the desired state of an organization's environments from its spec and has the runtime
// make it real. This service owns the plan, the control baseline check that gates it, the guard on
// removals (a final backup first), drift reporting and correction, and the audit trail. A revision
// and a proposal commit in one transaction with their audit entries (audit.recordChange).
import type { TAuditLog } from "../audit/audit-log.js";
import type { TAuditEvent } from "../audit/audit-types.js";
import { authorize, authorizeListing, authorizeOrganization, inScope } from "../identity/identity-permissions.js";
import type { Permission } from "../identity/identity-permissions.js";
import type { TAuditAppend } from "../identity/identity-types.js";
import { DomainError, PolicyViolation, ValidationError } from "../lib/errors.js";
import { actorName } from "../lib/request-context.js";
import type { TPostureReport } from "../policy/policy-engine.js";
import { approvalsOf, exceptionActorOf } from "../policy/policy-exception-store.js";
import { exceptionDigest, isExceptionActive } from "../policy/policy-exceptions.js";
import type { TExceptionApprovals } from "../policy/policy-exceptions.js";
import type { TPolicyChecker } from "../policy/policy-service.js";
import { withRecordedCopies } from "../policy/policy-service.js";
import type { TLiveCopy, TPlatformEnforcement } from "../policy/policy-types.js";
import type { TRequestContext } from "../lib/request-context.js";
import { canonicalJson, specDigest } from "../spec/spec-digest.js";
import { formatSpecError, loadSpecText } from "../spec/spec-loader.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import { planEnvironments, planHasChanges, removalRefusal } from "./environment-plan.js";
import type { TPlan } from "./environment-plan.js";
import type { TEnvironmentStore } from "./environment-store.js";
import type { TRuntimeDriver } from "../runtime/runtime-driver.js";
import type { TRuntimeAction, TRuntimeChange, TRuntimeDrift } from "../runtime/runtime-types.js";
import type { TChangeGate } from "../governance/change-gate.js";
import type { TOperationHold } from "../operations/operation-hold.js";
import type { TChangeVerdict } from "../governance/change-types.js";

/** What the service needs from the runtime (with CAREHOST_RUNTIME=none, the one that runs nothing). */
export type TEnvironmentRuntime = Pick<
  TRuntimeDriver,
  "kind" | "deliveryTarget" | "reconcile" | "observe" | "planChange" | "destroyEnvironment" | "assertPathsConfined"
>;

type TEnvironmentServiceDeps = {
  store: TEnvironmentStore;
  policy: TPolicyChecker;
  audit: { append: TAuditAppend; recordChange: TAuditLog["recordChange"] };
  /** Change management: what may be recorded now, and the change request it belongs to (governance/change-gate.ts). */
  changes: TChangeGate;
  runtime: TEnvironmentRuntime;
  /** Applies and reconciles run as operations on the organization (one at a time, recorded, with their steps). */
  operations: Pick<TOperationHold, "within">;
  /** Where the final backup of a removed environment is written. */
  finalBackupDirectory?: string;
  /** What carehost's own sign-in enforces (the identity service), for the identity controls of the posture. */
  platform?: () => Promise<TPlatformEnforcement>;
  /** The organization's live copies as the copies table records them (CH-DATA-001, CH-DATA-002), judged at `at`. */
  copies?: (organization: string, at: Date) => Promise<readonly TLiveCopy[]>;
};

/**
 * A plan as shown to the user, its three sides kept apart: the change (the file against the applied
 * revision: fields, the rendered files' diffs, what reconcile restarts for them) and the drift (the
 * running systems against the applied revision), which apply corrects whether or not anything changes.
 */
export type TPlanWithDrift = TPlan & {
  /** The revision the change and the drift are measured from; null before the first apply. */
  readonly appliedRevisionId: number | null;
  readonly artifacts: TRuntimeChange["artifacts"];
  readonly effects: TRuntimeChange["effects"];
  readonly drift: readonly (TRuntimeDrift & { readonly environment: string })[];
  /** The control baseline over the file: no mandatory violation (a plan with one is refused), and the counts. */
  readonly verdict: TChangeVerdict;
};

export type TSpecSubmission = { readonly source: string; readonly fileName: string };

export type TApplyResult = {
  readonly plan: TPlan;
  readonly revisionId: number | null;
  readonly runtime: readonly TRuntimeAction[];
  /** The change request the revision belongs to; null for an organization's first revision or when nothing changed. */
  readonly changeRequest: { readonly id: number; readonly kind: "standard" | "normal" | "emergency" } | null;
};

/** Parses a submitted spec; the server re-validates what the CLI already checked: the API is a trust boundary. */
export function parseSpecSubmission(submission: TSpecSubmission): { spec: TOrganizationSpec; digest: string } {
  const result = loadSpecText(submission.source, submission.fileName);
  if (!result.ok) {
    throw new ValidationError(
      `${submission.fileName}: ${result.errors.length} error(s) in the spec`,
      result.errors.map((error) => ({
        path: error.path,
        location: `${error.file}:${error.line}:${error.col}`,
        message: formatSpecError(error),
      })),
    );
  }
  return result;
}

/**
 * A submitted spec, for a caller allowed `permission` on the organization it names (its
 * metadata.name): refused before the spec is parsed when the caller holds the permission nowhere,
 * and before anything recorded is read when the organization is not theirs, so the answer is the
 * same whether that organization exists or not.
 */
export async function parseAuthorizedSpec(
  ctx: TRequestContext,
  permission: Permission,
  submission: TSpecSubmission,
  audit: { append: TAuditAppend },
): Promise<{ spec: TOrganizationSpec; digest: string }> {
  await authorize(ctx, permission, audit, permission, "some-organization");
  const parsed = parseSpecSubmission(submission);
  await authorizeOrganization(ctx, permission, parsed.spec.metadata.name, audit);
  return parsed;
}

type TSpecException = TOrganizationSpec["policyExceptions"][number];

/** An exception added, changed (recorded again) or dropped between two revisions is an audit event of its own. */
function exceptionEvents(
  organization: string,
  before: readonly TSpecException[],
  after: readonly TSpecException[],
): TAuditEvent[] {
  const key = (exception: TSpecException) => `${exception.controlId}/${exception.environment}`;
  // Canonical JSON: the recorded spec comes back from jsonb with its keys in another order.
  const previous = new Map(before.map((exception) => [key(exception), canonicalJson(exception)]));
  const current = new Set(after.map(key));
  const events: TAuditEvent[] = [];
  for (const exception of after) {
    if (previous.get(key(exception)) === canonicalJson(exception)) continue;
    events.push({
      type: "policy.exception_recorded",
      outcome: "success",
      target: `environment/${organization}/${exception.environment}`,
      payload: {
        controlId: exception.controlId,
        environment: exception.environment,
        owner: exception.owner,
        reason: exception.reason,
        expires: exception.expires,
      },
    });
  }
  for (const exception of before) {
    if (current.has(key(exception))) continue;
    events.push({
      type: "policy.exception_removed",
      outcome: "success",
      target: `environment/${organization}/${exception.environment}`,
      payload: { controlId: exception.controlId, environment: exception.environment },
    });
  }
  return events;
}

/** What a recorded revision puts in the audit log, in this order: the revision, each environment's change, each exception's. */
function revisionEvents(
  organization: string,
  digest: string,
  revisionId: number,
  plan: TPlan,
  exceptionChanges: readonly TAuditEvent[],
): TAuditEvent[] {
  const events: TAuditEvent[] = [
    {
      type: "spec.applied",
      outcome: "success",
      target: `organization/${organization}`,
      payload: { digest, revisionId },
    },
  ];
  for (const change of plan.changes) {
    const target = `environment/${organization}/${change.name}`;
    // Digests, not values: they pin exactly what changed without copying the spec into the log.
    if (change.action === "create") {
      events.push({ type: "environment.created", outcome: "success", target, payload: { digest: change.digest } });
    } else if (change.action === "change") {
      events.push({
        type: "environment.changed",
        outcome: "success",
        target,
        payload: { digest: change.digest, previousDigest: change.previousDigest },
      });
    } else if (change.action === "remove") {
      events.push({
        type: "environment.removed",
        outcome: "success",
        target,
        payload: { previousDigest: change.previousDigest },
      });
    }
  }
  events.push(...exceptionChanges);
  return events;
}

/**
 * Refuses with every mandatory violation (CLI exit 3, HTTP 422) and, for a failure that only waits
 * for its exception's approval, the command that approves it and who may not.
 */
function refuseViolations(organization: string, posture: TPostureReport, approvals: TExceptionApprovals): never {
  const violations = posture.mandatoryViolations;
  const pending = posture.pendingExceptions
    .filter((exception) => violations.some((violation) => violation.controlId === exception.controlId))
    .map((exception) => {
      const scope = `${exception.controlId} for environment ${JSON.stringify(exception.environment)}`;
      const approval = approvals.get(exceptionDigest(exception));
      return {
        message:
          approval === undefined
            ? `the exception for ${scope} is not proposed yet: carehost apply proposes it, then someone else approves it`
            : `exception #${approval.id} (${scope}) was proposed by ${approval.proposedBy} and awaits approval by someone else: carehost exception approve ${organization} ${approval.id}`,
      };
    });
  const noun = violations.length === 1 ? "violation" : "violations";
  throw new PolicyViolation(`${violations.length} mandatory control ${noun}`, [
    ...violations.map((violation) => ({ message: violation.line })),
    ...pending,
  ]);
}

export const environmentServiceFactory = ({
  store,
  policy,
  audit,
  changes,
  runtime,
  operations,
  finalBackupDirectory = "final-backups",
  platform,
  copies,
}: TEnvironmentServiceDeps) => {
  /**
   * The running systems against what the applied revision renders, never against the file: a
   * change the file proposes is not drift, and a hand edit stays drift whatever the file says.
   */
  const driftOf = async (applied: TOrganizationSpec) => {
    const observation = await runtime.observe(applied);
    return observation.environments.flatMap((environment) =>
      environment.drift.map((item) => ({ environment: environment.environment, ...item })),
    );
  };

  // What a reconcile did to the running systems is outside the database (the revision it applies
  // committed with its own entries): its entries are plain appends after the fact.
  /** Work on an organization's running systems, as an operation on it (joined when one already holds it). */
  const asOperation = <T>(
    ctx: TRequestContext,
    organization: string,
    params: object,
    work: (operation: { step(step: string, detail: string): void }) => Promise<T>,
  ) => operations.within(ctx, { organization, target: `organization/${organization}`, kind: "apply", params }, work);

  const reconcile = (ctx: TRequestContext, spec: TOrganizationSpec): Promise<TRuntimeAction[]> =>
    asOperation(ctx, spec.metadata.name, { reconcile: true }, async (operation) => {
      const actions = await reconcileNow(ctx, spec);
      operation.step("reconcile", `${actions.length} action(s)`);
      return actions;
    });
  const reconcileNow = async (ctx: TRequestContext, spec: TOrganizationSpec): Promise<TRuntimeAction[]> => {
    const organization = spec.metadata.name;
    try {
      const actions = await runtime.reconcile(spec);
      if (actions.length > 0) {
        await audit.append(ctx, {
          type: "runtime.reconciled",
          outcome: "success",
          target: `organization/${organization}`,
          payload: {
            organization,
            actionCount: actions.length,
            actions: actions.slice(0, 200).map((action) => `${action.target}: ${action.action}`.slice(0, 500)),
          },
        });
      }
      return actions;
    } catch (error) {
      await audit.append(ctx, {
        type: "runtime.reconcile_failed",
        outcome: "failure",
        target: `organization/${organization}`,
        payload: { organization, reason: (error instanceof Error ? error.message : String(error)).slice(0, 500) },
      });
      throw error;
    }
  };
  /** Recorded specs of the organizations the caller may read with `permission`. */
  const visibleSpecs = async (ctx: TRequestContext, permission: Permission) => {
    const scope = await authorizeListing(ctx, permission, audit);
    return (await store.latestSpecs()).filter((spec) => inScope(scope, spec.metadata.name));
  };

  const planFor = async (spec: TOrganizationSpec, digest: string): Promise<TPlan> => {
    const recorded = await store.listEnvironments(spec.metadata.name);
    return planEnvironments(
      spec.metadata.name,
      digest,
      new Map(recorded.map((row) => [row.name, row.spec])),
      spec.environments,
    );
  };

  /**
   * Records the spec's active exception versions carehost has not seen as proposed by whoever applies
   * it, with their audit entries. Returns the approvals with the new proposals in them.
   */
  const proposeNewExceptions = async (
    ctx: TRequestContext,
    spec: TOrganizationSpec,
    approvals: TExceptionApprovals,
    now: Date,
  ): Promise<TExceptionApprovals> => {
    const organization = spec.metadata.name;
    const unseen = spec.policyExceptions.filter(
      (exception) => !approvals.has(exceptionDigest(exception)) && isExceptionActive(exception, now),
    );
    if (unseen.length === 0) return approvals;
    const { result: proposed } = await audit.recordChange(ctx, async (tx) => {
      const records = await store.proposeExceptions(tx, organization, unseen, exceptionActorOf(ctx));
      const events: TAuditEvent[] = records.map((record) => ({
        type: "policy.exception_proposed",
        outcome: "success",
        target: `environment/${organization}/${record.environment}`,
        payload: {
          exceptionId: record.id,
          controlId: record.controlId,
          environment: record.environment,
          owner: record.owner,
          reason: record.reason,
          expires: record.expires,
        },
      }));
      return { result: records, events };
    });
    return new Map([...approvals, ...approvalsOf(proposed)]);
  };

  return {
    plan: async (ctx: TRequestContext, submission: TSpecSubmission): Promise<TPlanWithDrift> => {
      const { spec, digest } = await parseAuthorizedSpec(ctx, "spec:plan", submission, audit);
      const approvals = await store.exceptionApprovals(spec.metadata.name);
      // The spec's controls, and the artifact controls over the files this runtime writes for it.
      const posture = policy.evaluateDelivery(spec, [runtime.deliveryTarget], approvals);
      if (posture.mandatoryViolations.length > 0) refuseViolations(spec.metadata.name, posture, approvals);
      await runtime.assertPathsConfined(spec);
      const plan = await planFor(spec, digest);
      const verdict = { evaluatedAt: posture.evaluatedAt, summary: posture.summary };
      const applied = await store.appliedRevision(spec.metadata.name);
      if (applied === undefined)
        return { ...plan, appliedRevisionId: null, artifacts: [], effects: [], drift: [], verdict };
      const [change, drift] = await Promise.all([runtime.planChange(applied.spec, spec), driftOf(applied.spec)]);
      return {
        ...plan,
        appliedRevisionId: applied.id,
        artifacts: change.artifacts,
        effects: change.effects,
        drift,
        verdict,
      };
    },

    /**
     * Records the spec as the desired state and has the runtime make it real, once the change gate
     * admits it: `via.changeRequestId` names the approved change request it carries out (the change
     * service passes it); without one only an organization's first revision, a spec that changes
     * nothing declared, or a standard change gets through.
     */
    apply: async (
      ctx: TRequestContext,
      submission: TSpecSubmission & { readonly confirmDestroy?: readonly string[] },
      via: { readonly changeRequestId?: number } = {},
    ): Promise<TApplyResult> => {
      const { spec, digest } = await parseAuthorizedSpec(ctx, "spec:apply", submission, audit);
      const organization = spec.metadata.name;
      // Before anything is recorded: a path this host refuses would fail every reconcile after.
      await runtime.assertPathsConfined(spec);
      const recordedApprovals = await store.exceptionApprovals(organization);
      // Evaluated (which validates the exceptions) before anything is proposed.
      const posture = policy.evaluateDelivery(spec, [runtime.deliveryTarget], recordedApprovals);
      // Applying proposes the spec's new exceptions even when the apply is refused: someone else
      // approves them, and the next apply finds them approved.
      const approvals = await proposeNewExceptions(ctx, spec, recordedApprovals, new Date(posture.evaluatedAt));
      const failedControls = [...new Set(posture.mandatoryViolations.map((violation) => violation.controlId))];
      if (failedControls.length > 0) {
        // A refusal: nothing is written but its entry (the proposals above committed with theirs).
        await audit.append(ctx, {
          type: "spec.apply_denied",
          outcome: "denied",
          target: `organization/${organization}`,
          payload: { digest, reason: `mandatory controls failed: ${failedControls.join(", ")}`.slice(0, 500) },
        });
        refuseViolations(organization, posture, approvals);
      }
      const plan = await planFor(spec, digest);
      const removed = plan.changes.filter((change) => change.action === "remove").map((change) => change.name);
      const refusedRemoval = removalRefusal(plan, submission.confirmDestroy ?? []);
      if (refusedRemoval !== undefined) {
        // A refusal: nothing is written but its entry.
        await audit.append(ctx, {
          type: "spec.apply_denied",
          outcome: "denied",
          target: `organization/${organization}`,
          payload: { digest, reason: refusedRemoval },
        });
        throw new PolicyViolation(`refusing to apply: ${refusedRemoval}`);
      }
      const recordedSpec = (await store.latestSpecs()).find((item) => item.metadata.name === organization);
      const exceptionChanges = exceptionEvents(
        organization,
        recordedSpec?.policyExceptions ?? [],
        spec.policyExceptions,
      );
      // The organization's own settings (identity, repositories, defaults) are a change too: the
      // identity service enforces the recorded identity, so a tightened idle timeout must be recorded.
      const organizationPart = ({
        environments: _environments,
        policyExceptions: _exceptions,
        ...rest
      }: TOrganizationSpec) => canonicalJson(rest);
      const organizationChanged =
        recordedSpec !== undefined && organizationPart(recordedSpec) !== organizationPart(spec);
      const changed = planHasChanges(plan) || exceptionChanges.length > 0 || organizationChanged;
      const applied = await store.appliedRevision(organization);
      const admission = await changes
        .admit(
          ctx,
          {
            spec,
            digest,
            source: submission.source,
            fileName: submission.fileName,
            confirmDestroy: submission.confirmDestroy ?? [],
            plan,
            applied,
            changed,
            runtime:
              applied === undefined || !changed
                ? { artifacts: [], effects: [] }
                : await runtime.planChange(applied.spec, spec),
            verdict: { evaluatedAt: posture.evaluatedAt, summary: posture.summary },
          },
          via,
        )
        .catch(async (error: unknown) => {
          // A refusal of change management: nothing is written but its entry.
          if (error instanceof DomainError)
            await audit.append(ctx, {
              type: "spec.apply_denied",
              outcome: "denied",
              target: `organization/${organization}`,
              payload: { digest, reason: error.message.slice(0, 500) },
            });
          throw error;
        });
      if (!changed) {
        // Nothing declared changed, but the running systems may have drifted: apply corrects them.
        return { plan, revisionId: null, runtime: await reconcile(ctx, spec), changeRequest: null };
      }

      // What touches the running systems (removals with their final backups, the revision, the
      // reconcile) is one operation on the organization, recorded with its steps.
      return asOperation(
        ctx,
        organization,
        { digest, changeRequest: via.changeRequestId ?? null },
        async (operation) => {
          if (removed.length > 0) {
            // Data goes only after its final backup exists and reads back; a failed backup stops the apply.
            for (const name of removed) {
              if (recordedSpec === undefined) break;
              const backup = await runtime.destroyEnvironment(recordedSpec, name, finalBackupDirectory);
              // The dump and the removal happened outside the database; their entry is appended at
              // once, before the revision that drops the environment's rows commits with its own.
              await audit.append(ctx, {
                type: "environment.final_backup",
                outcome: "success",
                target: `environment/${organization}/${name}`,
                payload: {
                  path: backup.path,
                  ...(backup.snapshotId === "" ? {} : { snapshot: backup.snapshotId }),
                  bytes: backup.bytes,
                  sha256Digest: backup.sha256 || "none: no database was provisioned",
                },
              });
              operation.step(
                "final backup",
                `${name}: ${backup.sha256 === "" ? "nothing was provisioned" : `sha256 ${backup.sha256}`}`,
              );
            }
          }

          // The revision and its audit entries, in this order, commit together or not at all.
          const { result: revisionId } = await audit.recordChange(ctx, async (tx) => {
            const recorded = await store.recordRevision(
              tx,
              { spec, digest, source: submission.source, appliedBy: actorName(ctx.actor), removed },
              specDigest,
            );
            return {
              result: recorded,
              events: [
                ...revisionEvents(organization, digest, recorded, plan, exceptionChanges),
                ...(await admission.record(tx, recorded)),
              ],
            };
          });
          operation.step("revision", `#${revisionId} recorded`);
          const actions = await reconcile(ctx, spec).catch(async (error: unknown) => {
            await admission.failed(error);
            throw error;
          });
          return { plan, revisionId, runtime: actions, changeRequest: admission.changeRequest() };
        },
      );
    },

    /** The caller's organizations' environments; naming another organization is refused. */
    listEnvironments: async (ctx: TRequestContext, organization?: string) => {
      if (organization !== undefined) await authorizeOrganization(ctx, "environment:read", organization, audit);
      const scope = await authorizeListing(ctx, "environment:read", audit);
      return (await store.listEnvironments(organization)).filter((row) => inScope(scope, row.organization));
    },

    /** The control baseline over every recorded organization: its spec, and what the runtime renders and runs. */
    posture: async (
      ctx: TRequestContext,
    ): Promise<
      { organization: string; report: TPostureReport; copies: { live: number; phi: number; pastExpiry: number } }[]
    > => {
      const specs = await visibleSpecs(ctx, "environment:read");
      const enforced = await platform?.();
      return Promise.all(
        specs.map(async (spec) => {
          const observation = await runtime.observe(spec);
          const approvals = await store.exceptionApprovals(spec.metadata.name);
          const recorded = copies === undefined ? undefined : await copies(spec.metadata.name, new Date());
          const subjects =
            recorded === undefined ? observation.subjects : withRecordedCopies(observation.subjects, recorded);
          return {
            organization: spec.metadata.name,
            report: policy.evaluate(spec, subjects, enforced, approvals),
            copies: {
              live: recorded?.length ?? 0,
              phi: recorded?.filter((copy) => copy.dataClass === "phi").length ?? 0,
              pastExpiry: recorded?.filter((copy) => copy.pastExpiry).length ?? 0,
            },
          };
        }),
      );
    },

    /** Re-applies every recorded organization to the runtime (carehost up, after a reboot). */
    reconcileRecorded: async (ctx: TRequestContext): Promise<TRuntimeAction[]> => {
      const specs = await store.latestSpecs();
      const actions: TRuntimeAction[] = [];
      for (const spec of specs) actions.push(...(await reconcile(ctx, spec)));
      return actions;
    },

    /** Re-applies one organization (after a secret rotation). */
    reconcileOrganization: (ctx: TRequestContext, spec: TOrganizationSpec): Promise<TRuntimeAction[]> =>
      reconcile(ctx, spec),

    latestSpecs: () => store.latestSpecs(),

    /** What the runtime reports per environment of each recorded organization (status). */
    runtimeStatus: async (ctx: TRequestContext) => {
      const specs = await visibleSpecs(ctx, "environment:read");
      return Promise.all(
        specs.map(async (spec) => ({
          organization: spec.metadata.name,
          environments: (await runtime.observe(spec)).environments,
        })),
      );
    },

    latestRevisions: async (ctx: TRequestContext) => {
      const scope = await authorizeListing(ctx, "spec:read", audit);
      return (await store.latestRevisions()).filter((revision) => inScope(scope, revision.organization));
    },
  };
};

export type TEnvironmentService = ReturnType<typeof environmentServiceFactory>;
