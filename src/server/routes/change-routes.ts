import { z } from "zod";
import type { TServerServices } from "../server-services.js";
import { ApplyResultSchema, ArtifactChangesSchema, EffectsSchema, PlanSchema, VerdictSchema } from "./spec-routes.js";
import { ProblemSchema, problemResponses } from "./route-types.js";
import type { TApi } from "./route-types.js";

const KINDS = ["standard", "normal", "emergency"] as const;
const STATES = ["pending", "approved", "scheduled", "applied", "failed", "denied", "cancelled"] as const;
const reason = z.string().trim().min(1).max(500);
const ticket = z.string().trim().min(1).max(200).describe("the ticket the change belongs to, e.g. CHG-1042");

const AssessmentSchema = z
  .object({
    environments: z
      .array(
        z.object({
          name: z.string(),
          action: z.enum(["create", "change", "remove"]),
          production: z.boolean(),
          dataClass: z.string(),
          fields: z.array(z.string()).readonly(),
          standard: z.boolean(),
        }),
      )
      .readonly(),
    organizationFields: z.array(z.string()).readonly(),
    productionRestarts: z.array(z.string()).readonly(),
    restartedProduction: z.array(z.string()).readonly().optional(),
    production: z.array(z.string()).readonly().describe("production environments whose windows the change waits for"),
    standard: z.boolean(),
    reasons: z.array(z.string()).readonly().describe("why the change is not standard"),
    approvalsRequired: z.number().int(),
  })
  .describe("how change management classified the change, by the applied revision's changeManagement");

const ChangeSchema = z
  .object({
    id: z.number().int(),
    organization: z.string(),
    kind: z.enum(KINDS),
    state: z.enum(STATES),
    reason: z.string(),
    ticket: z.string().nullable(),
    requestedBy: z.string(),
    requestedAt: z.date(),
    fileName: z.string(),
    specDigest: z.string(),
    baseRevisionId: z.number().int().describe("the applied revision the change was measured from"),
    confirmDestroy: z.array(z.string()).readonly(),
    assessment: AssessmentSchema,
    plan: z.object({
      plan: PlanSchema,
      artifacts: ArtifactChangesSchema,
      effects: EffectsSchema,
      verdict: VerdictSchema,
    }),
    approvalsRequired: z.number().int(),
    approvals: z
      .array(z.object({ approver: z.string(), role: z.string(), approvedAt: z.date() }))
      .readonly()
      .describe("each by someone other than the requester and the others"),
    rollbackOf: z.number().int().nullable(),
    scheduledFor: z.date().nullable().describe("when a scheduled change applies: its maintenance window's opening"),
    appliedRevisionId: z.number().int().nullable(),
    appliedBy: z.string().nullable(),
    appliedAt: z.date().nullable(),
    closedBy: z.string().nullable(),
    closedAt: z.date().nullable(),
    closeReason: z.string().nullable(),
    failure: z.string().nullable(),
    reviewedAt: z.date().nullable().describe("an emergency change: when enough people approved it retrospectively"),
    escalatedAt: z.date().nullable(),
    preChangeBackup: z
      .array(
        z.object({
          environment: z.string(),
          status: z.enum(["succeeded", "failed", "skipped"]),
          label: z.string().nullable(),
          detail: z.string(),
        }),
      )
      .readonly()
      .nullable(),
    postChangePosture: z
      .object({
        evaluatedAt: z.string(),
        summary: z.looseObject({}),
        mandatoryViolations: z.array(z.string()).readonly(),
      })
      .nullable(),
    postChangeDrills: z
      .array(
        z.object({
          environment: z.string(),
          status: z.enum(["passed", "failed", "skipped"]),
          drill: z.number().nullable(),
          detail: z.string(),
        }),
      )
      .readonly()
      .nullable()
      .describe("restore drills run after a change to a production environment's database, backups or Redis"),
    windows: z
      .array(
        z.object({
          environment: z.string(),
          timeZone: z.string(),
          slots: z
            .array(z.object({ day: z.string(), start: z.string(), durationMinutes: z.number().int() }))
            .readonly(),
          opensAt: z.date(),
          open: z.boolean(),
        }),
      )
      .readonly(),
    reviewBy: z.date().nullable(),
    alert: z.string().nullable(),
  })
  .describe("a change request: what it changes, who asked and approved it, when it applies or applied");

const OutcomeSchema = z.object({
  request: ChangeSchema,
  applied: ApplyResultSchema.nullable().describe(
    "the apply's result when it applied now; null when recorded or scheduled",
  ),
});

const params = z.object({ id: z.coerce.number().int().positive() });
const refusals = { 404: ProblemSchema, 409: ProblemSchema, 422: ProblemSchema, ...problemResponses };

export const registerChangeRoutes = (api: TApi, services: Pick<TServerServices, "changes">): void => {
  api.post(
    "/api/changes",
    {
      schema: {
        tags: ["changes"],
        summary:
          "Record a change request for a spec; a standard or emergency change applies at once, a normal one waits for approval",
        body: z.strictObject({
          source: z
            .string()
            .min(1)
            .max(2 * 1024 * 1024),
          fileName: z.string().min(1).max(512).default("carehost.yaml"),
          reason,
          ticket: ticket.optional(),
          emergency: z.boolean().default(false),
          confirmDestroy: z.array(z.string()).default([]),
        }),
        response: { 200: OutcomeSchema, ...refusals },
      },
    },
    async (request) => services.changes.create(request.ctx, request.body),
  );

  api.get(
    "/api/changes",
    {
      schema: {
        tags: ["changes"],
        summary: "Change requests, newest first",
        querystring: z.object({
          organization: z.string().min(1).max(63).optional(),
          limit: z.coerce.number().int().min(1).max(1000).default(100),
        }),
        response: { 200: z.array(ChangeSchema), ...problemResponses },
      },
    },
    async (request) => services.changes.list(request.ctx, request.query),
  );

  api.get(
    "/api/changes/:id",
    {
      schema: {
        tags: ["changes"],
        summary: "One change request",
        params,
        response: { 200: ChangeSchema, ...refusals },
      },
    },
    async (request) => services.changes.show(request.ctx, request.params.id),
  );

  api.post(
    "/api/changes/:id/approve",
    {
      schema: {
        tags: ["changes"],
        summary:
          "Approve a change request (not its requester, not twice by one person); an emergency one retrospectively",
        params,
        response: { 200: ChangeSchema, ...refusals },
      },
    },
    async (request) => services.changes.approve(request.ctx, request.params.id),
  );

  api.post(
    "/api/changes/:id/deny",
    {
      schema: {
        tags: ["changes"],
        summary: "Deny a pending change request",
        params,
        body: z.strictObject({ reason }),
        response: { 200: ChangeSchema, ...refusals },
      },
    },
    async (request) => services.changes.deny(request.ctx, request.params.id, request.body.reason),
  );

  api.post(
    "/api/changes/:id/cancel",
    {
      schema: {
        tags: ["changes"],
        summary: "Withdraw a pending, approved or scheduled change request",
        params,
        body: z.strictObject({ reason }),
        response: { 200: ChangeSchema, ...refusals },
      },
    },
    async (request) => services.changes.cancel(request.ctx, request.params.id, request.body.reason),
  );

  api.post(
    "/api/changes/:id/apply",
    {
      schema: {
        tags: ["changes"],
        summary: "Apply an approved change request now, or schedule it for its maintenance window",
        params,
        response: { 200: OutcomeSchema, ...refusals },
      },
    },
    async (request) => services.changes.apply(request.ctx, request.params.id),
  );

  api.post(
    "/api/changes/:id/rollback",
    {
      schema: {
        tags: ["changes"],
        summary: "Record a change request that applies the revision before this one's, gated as any change",
        params,
        body: z.strictObject({ reason, ticket: ticket.optional(), emergency: z.boolean().default(false) }),
        response: { 200: OutcomeSchema, ...refusals },
      },
    },
    async (request) => services.changes.rollback(request.ctx, request.params.id, request.body),
  );
};
