// Operations: every state-changing action carehost queues and runs, listed newest first, read by
// id, followed as NDJSON until it ends, and cancelled (at once when queued; a running one is asked
// to stop and ends cancelled when its worker does).
import { z } from "zod";
import { OPERATION_KINDS, OPERATION_STATES } from "../../operations/operation-types.js";
import type { TOperation } from "../../operations/operation-types.js";
import { problemFor } from "../server-errors.js";
import type { TServerServices } from "../server-services.js";
import { NDJSON, openNdjsonStream } from "./ndjson-stream.js";
import { ProblemSchema, problemResponses } from "./route-types.js";
import type { TApi } from "./route-types.js";

const OperationView = z.object({
  id: z.number().int(),
  organization: z.string(),
  environment: z.string().nullable(),
  target: z.string().describe("what the operation holds while it runs: cluster/<organization>/<instance>"),
  kind: z.enum(OPERATION_KINDS),
  state: z.enum(OPERATION_STATES),
  requestedBy: z.string(),
  changeRequest: z.number().nullable(),
  notBefore: z.string(),
  deadlineSeconds: z.number(),
  attempts: z.number(),
  cancelRequested: z.boolean(),
  steps: z.array(z.object({ step: z.string(), detail: z.string(), at: z.string() })),
  result: z.unknown(),
  error: z.string().nullable(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
});

const viewOf = (operation: TOperation): z.infer<typeof OperationView> => ({
  id: operation.id,
  organization: operation.organization,
  environment: operation.environment,
  target: operation.target,
  kind: operation.kind,
  state: operation.state,
  requestedBy: operation.requestedBy,
  changeRequest: operation.changeRequest,
  notBefore: operation.notBefore.toISOString(),
  deadlineSeconds: operation.deadlineSeconds,
  attempts: operation.attempts,
  cancelRequested: operation.cancelRequested,
  steps: [...operation.steps],
  result: operation.result,
  error: operation.error,
  createdAt: operation.createdAt.toISOString(),
  startedAt: operation.startedAt?.toISOString() ?? null,
  finishedAt: operation.finishedAt?.toISOString() ?? null,
});

const IdParams = z.object({ id: z.coerce.number().int().positive().max(Number.MAX_SAFE_INTEGER) });
const notFound = { ...problemResponses, 404: ProblemSchema } as const;

export const registerOperationRoutes = (api: TApi, services: Pick<TServerServices, "operations">): void => {
  api.get(
    "/api/operations",
    {
      schema: {
        tags: ["operations"],
        summary: "Operations in the organizations you can read, newest first",
        querystring: z.object({
          organization: z.string().min(1).max(63).optional(),
          environment: z.string().min(1).max(63).optional(),
          limit: z.coerce.number().int().min(1).max(500).default(50),
        }),
        response: { 200: z.array(OperationView), ...problemResponses },
      },
    },
    async (request) => (await services.operations.list(request.ctx, request.query)).map(viewOf),
  );

  api.get(
    "/api/operations/:id",
    {
      schema: {
        tags: ["operations"],
        summary: "One operation: its state, steps and result",
        params: IdParams,
        response: { 200: OperationView, ...notFound },
      },
    },
    async (request) => viewOf(await services.operations.get(request.ctx, request.params.id)),
  );

  api.get(
    "/api/operations/:id/events",
    {
      schema: {
        tags: ["operations"],
        summary:
          'Follows an operation as NDJSON: {"kind":"operation","operation":{…}} each time its state or steps change, then {"kind":"result","result":{…}} once it has ended',
        params: IdParams,
        produces: [NDJSON],
        response: { ...notFound },
      },
    },
    async (request, reply) => {
      // Refused before the stream opens: an unknown or hidden operation is an ordinary 404.
      await services.operations.get(request.ctx, request.params.id);
      const stream = openNdjsonStream(reply);
      try {
        const ended = await services.operations.follow(
          request.ctx,
          request.params.id,
          (operation) => stream.write({ kind: "operation", operation: viewOf(operation) }),
          stream.gone,
        );
        stream.write({ kind: "result", result: viewOf(ended) });
      } catch (error) {
        stream.write({ kind: "problem", problem: problemFor(error as Error, request) });
      }
      stream.end();
      return reply;
    },
  );

  api.post(
    "/api/operations/:id/cancel",
    {
      schema: {
        tags: ["operations"],
        summary:
          "Cancels an operation: a queued one at once; a running one is asked to stop and ends cancelled once its worker stops it",
        params: IdParams,
        response: { 200: OperationView, ...notFound },
      },
    },
    async (request) => viewOf(await services.operations.cancel(request.ctx, request.params.id)),
  );
};
