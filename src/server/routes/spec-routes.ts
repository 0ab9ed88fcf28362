import { z } from "zod";
import type { TServerServices } from "../server-services.js";
import { ProblemSchema, problemResponses } from "./route-types.js";
import type { TApi } from "./route-types.js";

// The spec travels as its YAML source so the server reports errors with the file's own lines.
const SpecSubmissionSchema = z.strictObject({
  source: z
    .string()
    .min(1)
    .max(2 * 1024 * 1024)
    .describe("carehost.yaml, as text"),
  fileName: z.string().min(1).max(512).default("carehost.yaml").describe("name used in error locations"),
});

export const PlanSchema = z
  .object({
    organization: z.string(),
    specDigest: z.string(),
    changes: z.array(z.looseObject({ action: z.string(), name: z.string() })).readonly(),
  })
  .describe("environments to create, change or remove");
const DriftSchema = z.object({
  environment: z.string(),
  target: z.string(),
  field: z.string(),
  expected: z.string(),
  actual: z.string(),
});
const COMPONENTS = ["postgresql", "pgbackrest", "redis", "odoo"] as const;
const ArtifactChangeSchema = z.object({
  target: z.string().describe("what the file configures: postgres/<instance>, redis/<instance> or environment/<name>"),
  environments: z.array(z.string()).readonly().describe("the environments it serves"),
  file: z.string().describe("postgresql.conf, pg_hba.conf, pgbackrest.conf, redis.conf, users.acl or odoo.conf"),
  change: z.enum(["added", "changed", "removed"]),
  diff: z
    .string()
    .describe("unified diff from the applied revision's render to the file's; password hashes are never in it"),
});
const EffectSchema = z.object({
  target: z.string(),
  environments: z.array(z.string()).readonly(),
  component: z.enum(COMPONENTS),
  action: z
    .enum(["restart", "reload", "stanza-create", "acl-load", "rewrite", "alter-role"])
    .describe("what reconcile does on this host to make the change real"),
  reasons: z.array(z.string()).readonly().describe("the settings, files or attributes that cause it"),
  line: z.string().describe('the same as one line of text, e.g. "restarts prod\'s PostgreSQL: max_connections"'),
});
export const ArtifactChangesSchema = z.array(ArtifactChangeSchema).readonly();
export const EffectsSchema = z.array(EffectSchema).readonly();
const SummarySchema = z
  .object({
    pass: z.number().int(),
    fail: z.number().int(),
    pending: z.number().int(),
    excepted: z.number().int(),
    notApplicable: z.number().int(),
    notEnforced: z.number().int(),
  })
  .describe("results per verdict");
export const VerdictSchema = z
  .object({ evaluatedAt: z.string(), summary: SummarySchema })
  .describe("the control baseline over the file: no mandatory violation (one refuses the plan), and the counts");

const PlanWithDriftSchema = PlanSchema.extend({
  appliedRevisionId: z
    .number()
    .int()
    .nullable()
    .describe("the applied revision the change and the drift are measured from; null before the first apply"),
  artifacts: z
    .array(ArtifactChangeSchema)
    .readonly()
    .describe("the rendered files the change would write: the file's render against the applied revision's"),
  effects: z.array(EffectSchema).readonly().describe("what applying the change restarts, reloads or rewrites"),
  drift: z
    .array(DriftSchema)
    .readonly()
    .describe("differences between the applied revision and the running systems (hand edits), which apply corrects"),
  verdict: VerdictSchema,
});

export const ApplyResultSchema = z.object({
  plan: PlanSchema,
  revisionId: z.number().int().nullable(),
  runtime: z
    .array(z.object({ target: z.string(), action: z.string() }))
    .readonly()
    .describe("what the runtime did"),
  changeRequest: z
    .object({ id: z.number().int(), kind: z.enum(["standard", "normal", "emergency"]) })
    .nullable()
    .describe(
      "the change request the revision belongs to (a standard change is recorded as one); null for a first revision or when nothing changed",
    ),
});

export const registerSpecRoutes = (api: TApi, services: Pick<TServerServices, "environments">): void => {
  api.post(
    "/api/plan",
    {
      schema: {
        tags: ["spec"],
        summary: "Compare a spec with the recorded desired state",
        body: SpecSubmissionSchema,
        response: { 200: PlanWithDriftSchema, ...problemResponses },
      },
    },
    async (request) => services.environments.plan(request.ctx, request.body),
  );

  api.post(
    "/api/apply",
    {
      schema: {
        tags: ["spec"],
        summary: "Record a spec as the desired state",
        body: SpecSubmissionSchema.extend({
          confirmDestroy: z.array(z.string()).default([]).describe("environments whose removal is confirmed"),
        }),
        response: {
          200: ApplyResultSchema,
          422: ProblemSchema,
          ...problemResponses,
        },
      },
    },
    async (request) => services.environments.apply(request.ctx, request.body),
  );

  api.get(
    "/api/posture",
    {
      schema: {
        tags: ["policy"],
        summary:
          "The control baseline, pass/fail/pending/excepted/not-enforced/not-applicable per environment, for every recorded organization",
        response: {
          200: z.array(
            z.object({
              organization: z.string(),
              report: z.looseObject({
                summary: z
                  .object({
                    pass: z.number().int(),
                    fail: z.number().int(),
                    pending: z
                      .number()
                      .int()
                      .describe("failures whose exception awaits approval: failures still, violations when mandatory"),
                    excepted: z.number().int(),
                    notApplicable: z.number().int(),
                    notEnforced: z.number().int(),
                  })
                  .describe(
                    "results per verdict; notEnforced counts controls declared but not enforced by carehost yet, never as a pass",
                  ),
                results: z.array(z.unknown()).readonly(),
              }),
              copies: z
                .object({
                  live: z.number().int(),
                  phi: z.number().int().describe("live copies holding PHI"),
                  pastExpiry: z
                    .number()
                    .int()
                    .describe("copies of PHI still live past their expiry (CH-DATA-002 fails)"),
                })
                .describe("the organization's live copies, from carehost's record of them"),
            }),
          ),
          ...problemResponses,
        },
      },
    },
    async (request) => services.environments.posture(request.ctx),
  );

  api.get(
    "/api/environments",
    {
      schema: {
        tags: ["spec"],
        querystring: z.object({ organization: z.string().optional() }),
        response: {
          200: z.array(
            z.object({
              organization: z.string(),
              name: z.string(),
              status: z.string(),
              specDigest: z.string(),
              revisionId: z.number().int(),
              updatedAt: z.date(),
              spec: z.looseObject({}),
            }),
          ),
          ...problemResponses,
        },
      },
    },
    async (request) => services.environments.listEnvironments(request.ctx, request.query.organization),
  );
};
