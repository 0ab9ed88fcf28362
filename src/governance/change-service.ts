// Change requests: a change to an organization's spec recorded with what `plan` shows for it,
// approved by people other than its requester, applied inside its maintenance window through the
// same apply as everything else (environment-service.ts `apply`, whose gate checks the request
// again), rolled back as a change request of its own. Every step commits with its audit entry, and
// every refusal is an audit entry too.
import type { TAuditLog } from "../audit/audit-log.js";
import type { TAuditEvent } from "../audit/audit-types.js";
import { removalRefusal } from "../environments/environment-plan.js";
import type { TEnvironmentStore } from "../environments/environment-store.js";
import type { TEnvironmentService } from "../environments/environment-service.js";
import { parseAuthorizedSpec } from "../environments/environment-service.js";
import { authorizeListing, authorizeOrganization, inScope } from "../identity/identity-permissions.js";
import type { TAuditAppend } from "../identity/identity-types.js";
import { ConflictError, ForbiddenError, NotFoundError, PolicyViolation } from "../lib/errors.js";
import { actorName } from "../lib/request-context.js";
import type { TRequestContext } from "../lib/request-context.js";
import { exceptionActorOf } from "../policy/policy-exception-store.js";
import { changeApplierFactory } from "./change-apply.js";
import type { TChangeOutcome } from "./change-apply.js";
import { classifyChange } from "./change-classify.js";
import { changeSchedulerFactory } from "./change-scheduler.js";
import { changeStepsFactory } from "./change-steps.js";
import type { TChangeStore } from "./change-store.js";
import type {
  TChangeKind,
  TChangeRequest,
  TPostChangeDrill,
  TPostChangePosture,
  TPreChangeBackup,
} from "./change-types.js";
import { reviewDeadline } from "./change-view.js";
import type { TChangeView } from "./change-view.js";

export type { TChangeOutcome } from "./change-apply.js";

type TChangeServiceDeps = {
  store: TChangeStore;
  environments: Pick<TEnvironmentService, "plan" | "apply">;
  revisions: Pick<TEnvironmentStore, "appliedRevision" | "revision">;
  audit: { append: TAuditAppend; recordChange: TAuditLog["recordChange"] };
  now?: () => Date;
  /** Backs up one production environment before a change to it applies (the recovery service's backup). */
  preChangeBackup?: (request: TChangeRequest, environment: string) => Promise<TPreChangeBackup>;
  /** Reads the posture back from the live systems once a change applied. */
  postChangePosture?: (organization: string) => Promise<TPostChangePosture | undefined>;
  /** A restore drill after a change to a production environment's data tier; only with a runtime here. */
  postChangeDrill?: (request: TChangeRequest, environment: string) => Promise<TPostChangeDrill>;
};

export type TChangeSubmission = {
  readonly source: string;
  readonly fileName: string;
  readonly reason: string;
  readonly ticket?: string;
  readonly emergency?: boolean;
  readonly confirmDestroy?: readonly string[];
};

const CLOSABLE = ["pending", "approved", "scheduled"] as const;

export const changeServiceFactory = ({
  store,
  environments,
  revisions,
  audit,
  now = () => new Date(),
  preChangeBackup,
  postChangePosture,
  postChangeDrill,
}: TChangeServiceDeps) => {
  const steps = changeStepsFactory({ store, revisions, audit, now });
  const { target, viewOf, findFor, refuse, step } = steps;
  const applier = changeApplierFactory({
    steps,
    store,
    environments,
    revisions,
    audit,
    now,
    ...(preChangeBackup === undefined ? {} : { preChangeBackup }),
    ...(postChangePosture === undefined ? {} : { postChangePosture }),
    ...(postChangeDrill === undefined ? {} : { postChangeDrill }),
  });
  const { carryOut } = applier;
  const { runDue, applyQueued } = changeSchedulerFactory({ steps, applier, store, audit, now });

  const create = async (
    ctx: TRequestContext,
    submission: TChangeSubmission,
    rollbackOf: number | null = null,
  ): Promise<TChangeOutcome> => {
    const { spec, digest } = await parseAuthorizedSpec(ctx, "change:request", submission, audit);
    const organization = spec.metadata.name;
    // The same plan `carehost plan` shows: it refuses a spec that fails a mandatory control.
    const planned = await environments.plan(ctx, submission);
    const applied = await revisions.appliedRevision(organization);
    if (applied === undefined)
      throw new ConflictError(
        `organization ${organization} has no applied revision yet: its first one needs no approval, carehost apply ${submission.fileName} records it`,
      );
    const assessment = classifyChange({
      applied: applied.spec,
      proposed: spec,
      plan: planned,
      effects: planned.effects,
    });
    if (assessment.environments.length === 0 && assessment.organizationFields.length === 0)
      throw new ConflictError(
        `${submission.fileName} changes nothing against revision ${applied.id}: no change request to record`,
      );
    const refusedRemoval = removalRefusal(planned, submission.confirmDestroy ?? []);
    if (refusedRemoval !== undefined) throw new PolicyViolation(`refusing to record the change: ${refusedRemoval}`);
    const kind: TChangeKind = submission.emergency === true ? "emergency" : assessment.standard ? "standard" : "normal";
    const requester = exceptionActorOf(ctx);
    const { result: recorded } = await audit.recordChange(ctx, async (tx) => {
      const request = await store.insert(tx, {
        organization,
        kind,
        // A standard change is approved by its class; an emergency one applies now and is reviewed after.
        state: kind === "normal" ? "pending" : "approved",
        reason: submission.reason,
        ticket: submission.ticket ?? null,
        requestedBy: requester.name,
        requesterId: requester.id,
        requestedAt: now(),
        source: submission.source,
        fileName: submission.fileName,
        specDigest: digest,
        baseRevisionId: applied.id,
        confirmDestroy: submission.confirmDestroy ?? [],
        assessment,
        plan: { plan: planned, artifacts: planned.artifacts, effects: planned.effects, verdict: planned.verdict },
        approvalsRequired: assessment.approvalsRequired,
        rollbackOf,
      });
      const event: TAuditEvent = {
        type: "change.requested",
        outcome: "success",
        target: target(request),
        payload: {
          changeRequest: request.id,
          kind,
          reason: submission.reason.slice(0, 500),
          ...(submission.ticket === undefined ? {} : { ticket: submission.ticket }),
          specDigest: digest,
          baseRevisionId: applied.id,
          environments: assessment.environments.map((environment) => environment.name),
          production: [...assessment.production],
          approvalsRequired: assessment.approvalsRequired,
          ...(rollbackOf === null ? {} : { rollbackOf }),
        },
      };
      return { result: request, events: [event] };
    });
    if (kind === "normal") return { request: await viewOf(recorded), applied: null };
    return carryOut(ctx, recorded);
  };

  return {
    create: (ctx: TRequestContext, submission: TChangeSubmission) => create(ctx, submission),

    list: async (
      ctx: TRequestContext,
      query: { organization?: string; limit?: number } = {},
    ): Promise<TChangeView[]> => {
      if (query.organization !== undefined) await authorizeOrganization(ctx, "change:read", query.organization, audit);
      const scope = await authorizeListing(ctx, "change:read", audit);
      const requests = (await store.list(query.organization, query.limit ?? 100)).filter((request) =>
        inScope(scope, request.organization),
      );
      return Promise.all(requests.map(viewOf));
    },

    show: async (ctx: TRequestContext, id: number): Promise<TChangeView> =>
      viewOf(await findFor(ctx, id, "change:read")),

    /**
     * One approval, by a person holding change:approve who is neither the requester nor someone who
     * approved it already; enough of them approve a pending change, or review an emergency one.
     */
    approve: async (ctx: TRequestContext, id: number): Promise<TChangeView> => {
      const request = await findFor(ctx, id, "change:approve");
      if (ctx.actor.kind !== "user")
        return refuse(
          ctx,
          request,
          "approve",
          new ForbiddenError(`change request #${id} is approved by a person, signed in; not by carehost itself`),
        );
      const approver = exceptionActorOf(ctx);
      if (approver.id === request.requesterId)
        return refuse(
          ctx,
          request,
          "approve",
          new ForbiddenError(
            `${approver.name} requested change request #${id}; someone other than its requester approves it`,
          ),
        );
      const earlier = request.approvals.find((approval) => approval.approverId === approver.id);
      if (earlier !== undefined)
        return refuse(
          ctx,
          request,
          "approve",
          new ConflictError(
            `${approver.name} already approved change request #${id} at ${earlier.approvedAt.toISOString()}; each of its ${request.approvalsRequired} approval(s) comes from someone else`,
          ),
        );
      const retrospective = request.kind === "emergency" && (request.state === "applied" || request.state === "failed");
      if (!retrospective && request.state !== "pending")
        return refuse(
          ctx,
          request,
          "approve",
          new ConflictError(
            request.kind === "standard"
              ? `change request #${id} is a standard change: its class in changeManagement.standardChanges approved it`
              : `change request #${id} is ${request.state}; only a pending change, or an emergency change that applied, is approved`,
          ),
        );
      if (retrospective && request.reviewedAt !== null)
        return refuse(
          ctx,
          request,
          "approve",
          new ConflictError(`emergency change request #${id} was reviewed at ${request.reviewedAt.toISOString()}`),
        );
      const at = now();
      const { result } = await audit.recordChange(ctx, async (tx) => {
        const added = await store.addApproval(
          tx,
          id,
          { approver: approver.name, approverId: approver.id, role: ctx.actor.kind === "user" ? ctx.actor.role : "" },
          at,
        );
        if (!added) throw new ConflictError(`${approver.name} already approved change request #${id}`);
        const approvals = request.approvals.length + 1;
        const enough = approvals >= request.approvalsRequired;
        const events: TAuditEvent[] = [
          {
            type: "change.approved",
            outcome: "success",
            target: target(request),
            payload: {
              changeRequest: id,
              approvals,
              approvalsRequired: request.approvalsRequired,
              retrospective,
              requestedBy: request.requestedBy,
            },
          },
        ];
        if (enough && retrospective) {
          const deadline = reviewDeadline(request);
          await store.transition(tx, id, ["applied", "failed"], { reviewedAt: at });
          events.push({
            type: "change.emergency_reviewed",
            outcome: "success",
            target: target(request),
            payload: { changeRequest: id, late: deadline !== null && at >= deadline },
          });
        } else if (enough) await store.transition(tx, id, ["pending"], { state: "approved" });
        return { result: (await store.find(id, tx))!, events };
      });
      return viewOf(result);
    },

    deny: async (ctx: TRequestContext, id: number, reason: string): Promise<TChangeView> => {
      const request = await findFor(ctx, id, "change:approve");
      const actor = exceptionActorOf(ctx);
      if (actor.id === request.requesterId)
        return refuse(
          ctx,
          request,
          "deny",
          new ForbiddenError(
            `${actor.name} requested change request #${id}; a requester withdraws it with carehost change cancel ${id}`,
          ),
        );
      if (request.state !== "pending")
        return refuse(
          ctx,
          request,
          "deny",
          new ConflictError(`change request #${id} is ${request.state}; only a pending change is denied`),
        );
      const denied = await step(
        ctx,
        request,
        ["pending"],
        { state: "denied", closedBy: actor.name, closedAt: now(), closeReason: reason },
        () => [
          {
            type: "change.denied",
            outcome: "success",
            target: target(request),
            payload: { changeRequest: id, reason: reason.slice(0, 500) },
          },
        ],
      );
      return viewOf(denied);
    },

    cancel: async (ctx: TRequestContext, id: number, reason: string): Promise<TChangeView> => {
      const request = await findFor(ctx, id, "change:request");
      if (!(CLOSABLE as readonly string[]).includes(request.state))
        return refuse(
          ctx,
          request,
          "cancel",
          new ConflictError(
            `change request #${id} is ${request.state}; only a pending, approved or scheduled change is cancelled`,
          ),
        );
      const cancelled = await step(
        ctx,
        request,
        CLOSABLE,
        { state: "cancelled", closedBy: actorName(ctx.actor), closedAt: now(), closeReason: reason },
        () => [
          {
            type: "change.cancelled",
            outcome: "success",
            target: target(request),
            payload: { changeRequest: id, reason: reason.slice(0, 500) },
          },
        ],
      );
      return viewOf(cancelled);
    },

    /** Applies an approved change now, inside its window, or schedules it for the window's opening. */
    apply: async (ctx: TRequestContext, id: number): Promise<TChangeOutcome> =>
      carryOut(ctx, await findFor(ctx, id, "spec:apply")),

    /** A change request that applies the revision before `id`'s, gated as any other. */
    rollback: async (
      ctx: TRequestContext,
      id: number,
      input: { reason: string; ticket?: string; emergency?: boolean },
    ): Promise<TChangeOutcome> => {
      const request = await findFor(ctx, id, "change:request");
      if (request.appliedRevisionId === null)
        return refuse(
          ctx,
          request,
          "rollback",
          new ConflictError(
            `change request #${id} is ${request.state}: it never applied, so there is nothing to roll back`,
          ),
        );
      const applied = await revisions.appliedRevision(request.organization);
      if (applied?.id !== request.appliedRevisionId)
        return refuse(
          ctx,
          request,
          "rollback",
          new ConflictError(
            `revision ${applied?.id} was applied after change request #${id} (revision ${request.appliedRevisionId}); roll back the later change first`,
          ),
        );
      const previous = await revisions.revision(request.organization, request.baseRevisionId);
      if (previous === undefined)
        throw new NotFoundError(`revision ${request.baseRevisionId} of ${request.organization} is not recorded`);
      return create(
        ctx,
        {
          source: previous.source,
          fileName: `revision-${previous.id}.yaml`,
          reason: input.reason,
          ...(input.ticket === undefined ? {} : { ticket: input.ticket }),
          ...(input.emergency === undefined ? {} : { emergency: input.emergency }),
          // The revision before it declared every environment this change removed; none it created.
          confirmDestroy: request.assessment.environments
            .filter((environment) => environment.action === "create")
            .map((environment) => environment.name),
        },
        id,
      );
    },

    /** The scheduler's pass (change-scheduler.ts). */
    runDue,
    /** A queued apply operation of a scheduled change, as a worker runs it (change-scheduler.ts). */
    applyQueued,

    /** The emergency changes awaiting their retrospective approval, or escalated, of the organizations the caller reads. */
    alerts: async (
      ctx: TRequestContext,
    ): Promise<{ organization: string; changeRequest: number; escalated: boolean; message: string }[]> => {
      const scope = await authorizeListing(ctx, "status:read", audit);
      const views = await Promise.all(
        (await store.unreviewedEmergencies()).filter((request) => inScope(scope, request.organization)).map(viewOf),
      );
      return views.flatMap((view) =>
        view.alert === null
          ? []
          : [
              {
                organization: view.organization,
                changeRequest: view.id,
                escalated: view.escalatedAt !== null || (view.reviewBy !== null && now() >= view.reviewBy),
                message: view.alert,
              },
            ],
      );
    },
  };
};

export type TChangeService = ReturnType<typeof changeServiceFactory>;
