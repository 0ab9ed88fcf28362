import { z } from "zod";
import { roles } from "../../lib/request-context.js";
import type { TServerServices } from "../server-services.js";
import { ProblemSchema, problemResponses } from "./route-types.js";
import type { TApi } from "./route-types.js";

const UserSchema = z.object({ username: z.string(), role: z.enum(roles), disabled: z.boolean(), createdAt: z.date() });

export const registerUserRoutes = (api: TApi, services: Pick<TServerServices, "identity">): void => {
  api.get(
    "/api/users",
    { schema: { tags: ["users"], response: { 200: z.array(UserSchema), ...problemResponses } } },
    async (request) => services.identity.listUsers(request.ctx),
  );

  api.post(
    "/api/users",
    {
      schema: {
        tags: ["users"],
        summary: "Create a user; without a password, a random one is returned once",
        body: z.strictObject({
          username: z.string().regex(/^[a-z][a-z0-9._-]{1,63}$/),
          role: z.enum(roles),
          password: z.string().min(12).max(1024).optional(),
        }),
        response: {
          201: z.object({ username: z.string(), role: z.enum(roles), password: z.string().optional() }),
          409: ProblemSchema,
          ...problemResponses,
        },
      },
    },
    async (request, reply) => {
      const { user, initialPassword } = await services.identity.createUser(request.ctx, request.body);
      return reply.code(201).send({
        username: user.username,
        role: user.role,
        ...(initialPassword === undefined ? {} : { password: initialPassword }),
      });
    },
  );
};
