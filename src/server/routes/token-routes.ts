import { z } from "zod";
import type { TServerServices } from "../server-services.js";
import { ProblemSchema, problemResponses } from "./route-types.js";
import type { TApi } from "./route-types.js";

const TokenSummarySchema = z.object({
  id: z.string(),
  name: z.string().nullable(),
  kind: z.enum(["session", "api"]),
  username: z.string(),
  createdAt: z.date(),
  expiresAt: z.date(),
  lastUsedAt: z.date().nullable(),
});

export const registerTokenRoutes = (api: TApi, services: Pick<TServerServices, "identity">): void => {
  api.post(
    "/api/tokens",
    {
      schema: {
        tags: ["tokens"],
        summary: "Create an API token for the caller; the token is shown once",
        body: z.strictObject({
          name: z.string().min(1).max(64),
          // The maximum depends on the caller's role: the service refuses more, naming it.
          expiresInDays: z.number().int().min(1).optional(),
        }),
        response: {
          201: z.object({ id: z.string(), name: z.string(), token: z.string(), expiresAt: z.date() }),
          ...problemResponses,
        },
      },
    },
    async (request, reply) => {
      const created = await services.identity.createToken(request.ctx, request.body);
      return reply
        .code(201)
        .send({ id: created.id, name: created.name, token: created.token, expiresAt: created.expiresAt });
    },
  );

  api.get(
    "/api/tokens",
    {
      schema: {
        tags: ["tokens"],
        summary: "Active sessions and API tokens: your own, or everyone's with ?all=true (platform-admin)",
        querystring: z.object({ all: z.enum(["true", "false"]).default("false") }),
        response: { 200: z.array(TokenSummarySchema), ...problemResponses },
      },
    },
    async (request) => services.identity.listTokens(request.ctx, { allUsers: request.query.all === "true" }),
  );

  api.delete(
    "/api/tokens/:id",
    {
      schema: {
        tags: ["tokens"],
        summary: "Revoke a token (by id or by name)",
        params: z.object({ id: z.string().min(1).max(128) }),
        response: { 204: z.null(), 404: ProblemSchema, ...problemResponses },
      },
    },
    async (request, reply) => {
      await services.identity.revokeToken(request.ctx, request.params.id);
      return reply.code(204).send(null);
    },
  );
};
