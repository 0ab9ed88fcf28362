import { z } from "zod";
import { roles } from "../../lib/request-context.js";
import type { TServerServices } from "../server-services.js";
import { ProblemSchema, problemResponses } from "./route-types.js";
import type { TApi } from "./route-types.js";

export const registerAuthRoutes = (api: TApi, services: Pick<TServerServices, "identity">): void => {
  api.post(
    "/api/auth/login",
    {
      config: { public: true },
      schema: {
        tags: ["auth"],
        security: [],
        summary: "Exchange a username and password for a session token",
        body: z.strictObject({ username: z.string().min(1).max(64), password: z.string().min(1).max(1024) }),
        response: {
          200: z.object({ token: z.string(), expiresAt: z.string(), username: z.string(), role: z.enum(roles) }),
          400: ProblemSchema,
          401: ProblemSchema,
          429: ProblemSchema,
        },
      },
    },
    async (request) => {
      const session = await services.identity.login(request.ctx, request.body);
      return {
        token: session.token,
        expiresAt: session.expiresAt.toISOString(),
        username: session.user.username,
        role: session.user.role,
      };
    },
  );

  api.post(
    "/api/auth/logout",
    {
      schema: {
        tags: ["auth"],
        summary: "Revoke the session token used for this request",
        response: { 204: z.null(), ...problemResponses },
      },
    },
    async (request, reply) => {
      await services.identity.logout(request.ctx);
      return reply.code(204).send(null);
    },
  );

  api.get(
    "/api/whoami",
    {
      schema: {
        tags: ["auth"],
        response: {
          200: z.object({ username: z.string(), role: z.enum(roles), requestId: z.string() }),
          ...problemResponses,
        },
      },
    },
    async (request) => {
      const { actor } = request.ctx;
      if (actor.kind !== "user") throw new Error("authenticated request without a user actor");
      return { username: actor.username, role: actor.role, requestId: request.ctx.requestId };
    },
  );
};
