import { z } from "zod";
import { ValidationError } from "../../lib/errors.js";
import { RESTORE_STEPS } from "../../runtime/local/local-runtime.js";
import type { TServerServices } from "../server-services.js";
import { NDJSON, acceptsNdjson, streamNdjson } from "./ndjson-stream.js";
import { ProblemSchema, problemResponses } from "./route-types.js";
import type { TApi } from "./route-types.js";

const EnvironmentBody = z.strictObject({
  environment: z.string().min(1).max(63).describe("environment name"),
  organization: z.string().min(1).max(63).optional().describe("needed only when two organizations share the environment name"),
});

const RestoreStep = z.object({ step: z.enum(RESTORE_STEPS).describe("the steps every restore takes, in this order"), detail: z.string(), durationMs: z.number() });
const RestoreResult = z.looseObject({ environment: z.string(), target: z.string(), port: z.number(), directory: z.string(), durationMs: z.number(), steps: z.array(RestoreStep) });
const RestoreLine = z
  .discriminatedUnion("kind", [
    RestoreStep.extend({ kind: z.literal("step") }),
    z.object({ kind: z.literal("result"), result: RestoreResult }),
    z.object({ kind: z.literal("problem"), problem: ProblemSchema }),
  ])
  .describe("one line of the NDJSON stream");

export const registerRecoveryRoutes = (api: TApi, services: Pick<TServerServices, "recovery">): void => {
  api.post(
    "/api/backups",
    {
      schema: {
        tags: ["recovery"],
        summary: "Take a pgBackRest backup of an environment now",
        body: EnvironmentBody.extend({ kind: z.enum(["full", "diff", "incr"]).default("full") }),
        response: {
          200: z.looseObject({
            label: z.string(),
            type: z.string(),
            durationMs: z.number(),
            skippedRepositories: z
              .array(z.object({ name: z.string(), type: z.enum(["posix", "azure", "s3"]), reason: z.string() }))
              .describe("declared repositories this backup was not written to, with why (a key never stored, a limitation of this runtime)"),
          }),
          ...problemResponses,
        },
      },
    },
    async (request) => services.recovery.backup(request.ctx, request.body),
  );

  api.get(
    "/api/backups",
    {
      schema: {
        tags: ["recovery"],
        summary: "Backups carehost ran, newest first",
        querystring: z.object({ environment: z.string().optional() }),
        response: { 200: z.array(z.looseObject({ id: z.number(), environment: z.string(), kind: z.string(), status: z.string() })), ...problemResponses },
      },
    },
    async (request) => services.recovery.listBackups(request.ctx, request.query.environment),
  );

  api.post(
    "/api/backups/verify",
    {
      schema: { tags: ["recovery"], summary: "pgbackrest verify over the environment's repositories", body: EnvironmentBody, response: { 200: z.object({ environment: z.string(), ok: z.boolean(), output: z.string() }), ...problemResponses } },
    },
    async (request) => services.recovery.verify(request.ctx, request.body),
  );

  api.post(
    "/api/restores",
    {
      schema: {
        tags: ["recovery"],
        summary: "Restore an environment to latest, a point in time or an LSN: into a new copy, or in place (maintenance window or emergency)",
        description: [
          "Answers JSON when the restore ends. A client that sends `Accept: application/x-ndjson` gets the steps as they happen instead:",
          "one JSON line per step the moment it completes (`{\"kind\":\"step\",\"step\":\"secrets\",\"detail\":…,\"durationMs\":…}`,",
          "in the order secrets, postgresql, filestore, redis, application, ingress), then one final line,",
          "`{\"kind\":\"result\",\"result\":{…}}` with what the JSON answer holds, or `{\"kind\":\"problem\",\"problem\":{…}}`",
          "with the RFC 9457 problem (type, title, status, detail, instance) when the restore fails after the first step.",
          "The stream starts with the first step: a request refused before that (invalid input, unknown environment, no permission,",
          "outside the maintenance window) is answered application/problem+json with its 4xx status, as without streaming.",
        ].join(" "),
        body: EnvironmentBody.extend({
          to: z.string().min(1).max(64).default("latest").describe("latest, or an ISO 8601 instant with a zone"),
          toLsn: z.string().max(32).optional().describe("an LSN such as 0/3000028, instead of --to"),
          into: z
            .string()
            .regex(/^[a-z0-9][a-z0-9-]{0,39}$/, "a copy's or an environment's name takes lowercase letters, digits and hyphens (at most 40, starting with a letter or digit)")
            .optional()
            .describe("name of a new restored copy, or a declared environment to restore over"),
          inPlace: z.boolean().optional().describe("restore over the environment itself, after a safety backup"),
          emergency: z.string().max(500).optional().describe("why an in-place restore cannot wait for the maintenance window (audited)"),
        }),
        response: {
          200: {
            description: "the restored copy or environment, with each step and its duration; as NDJSON lines when asked for",
            content: { "application/json": { schema: RestoreResult }, [NDJSON]: { schema: RestoreLine } },
          },
          ...problemResponses,
        },
      },
    },
    async (request, reply) => {
      const { to, toLsn, emergency, ...rest } = request.body;
      const target =
        toLsn !== undefined ? ({ kind: "lsn", lsn: toLsn } as const) : to === "latest" ? ({ kind: "latest" } as const) : ({ kind: "time", time: new Date(to) } as const);
      if (target.kind === "time" && (Number.isNaN(target.time.getTime()) || !/(Z|[+-]\d{2}:?\d{2})$/.test(to))) {
        throw new ValidationError(`--to ${JSON.stringify(to)} is not latest or an ISO 8601 instant with a zone, e.g. 2026-11-22T14:03:05Z`);
      }
      const input = { ...rest, target, ...(emergency === undefined ? {} : { emergencyReason: emergency }) };
      if (acceptsNdjson(request.headers.accept)) return streamNdjson(request, reply, (progress) => services.recovery.restore(request.ctx, input, (step) => progress({ kind: "step", ...step })));
      return services.recovery.restore(request.ctx, input);
    },
  );

  api.get(
    "/api/restores",
    {
      schema: {
        tags: ["recovery"],
        summary: "Restores carehost ran, newest first, with their steps; one interrupted by a stop shows as failed",
        querystring: z.object({ environment: z.string().optional() }),
        response: { 200: z.array(z.looseObject({ id: z.number(), environment: z.string(), target: z.string(), destination: z.string(), status: z.string() })), ...problemResponses },
      },
    },
    async (request) => services.recovery.listRestores(request.ctx, request.query.environment),
  );

  api.post(
    "/api/drills",
    {
      schema: { tags: ["recovery"], summary: "Run a restore drill now: restore, check, measure RTO/RPO, tear down", body: EnvironmentBody, response: { 200: z.looseObject({ status: z.string() }), ...problemResponses } },
    },
    async (request) => services.recovery.drill(request.ctx, request.body),
  );

  api.get(
    "/api/drills",
    {
      schema: {
        tags: ["recovery"],
        summary: "Restore drills, newest first, with achieved RTO/RPO against the objectives",
        querystring: z.object({ environment: z.string().optional() }),
        response: { 200: z.array(z.looseObject({ id: z.number(), environment: z.string(), status: z.string() })), ...problemResponses },
      },
    },
    async (request) => services.recovery.listDrills(request.ctx, request.query.environment),
  );
};
