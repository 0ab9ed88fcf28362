import { z } from "zod";
import { roles } from "../../lib/request-context.js";
import type { TServerServices } from "../server-services.js";
import { ProblemSchema, problemResponses } from "./route-types.js";
import type { TApi } from "./route-types.js";

const OrganizationsSchema = z
  .array(z.string().min(1).max(63))
  .min(1)
  .max(1000)
  .describe('organization names (metadata.name of their specs), or "*" for every organization');
const UserSchema = z.object({
  username: z.string(),
  role: z.enum(roles),
  organizations: z.array(z.string()).readonly().describe("the organizations the user's role is bound over"),
  disabled: z.boolean(),
  createdAt: z.date(),
});
const UsernameParams = z.object({ username: z.string().min(1).max(64) });

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
        summary:
          "Create a user with a role over the organizations named; without a password, a random one is returned once",
        body: z.strictObject({
          username: z.string().regex(/^[a-z][a-z0-9._-]{1,63}$/),
          role: z.enum(roles),
          organizations: OrganizationsSchema,
          password: z.string().min(12).max(1024).optional(),
        }),
        response: {
          201: z.object({
            username: z.string(),
            role: z.enum(roles),
            organizations: z.array(z.string()).readonly(),
            password: z.string().optional(),
          }),
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
        organizations: user.organizations,
        ...(initialPassword === undefined ? {} : { password: initialPassword }),
      });
    },
  );

  api.post(
    "/api/users/:username/grant",
    {
      schema: {
        tags: ["users"],
        summary: "Bind the user's role over more organizations (audited)",
        params: UsernameParams,
        body: z.strictObject({ organizations: OrganizationsSchema }),
        response: {
          200: UserSchema.extend({ added: z.array(z.string()).readonly() }),
          404: ProblemSchema,
          ...problemResponses,
        },
      },
    },
    async (request) => {
      const { user, added } = await services.identity.grantOrganizations(
        request.ctx,
        request.params.username,
        request.body.organizations,
      );
      return { ...user, added };
    },
  );

  api.post(
    "/api/users/:username/revoke",
    {
      schema: {
        tags: ["users"],
        summary: "End the user's role over the organizations named (audited); the last admin over every one keeps it",
        params: UsernameParams,
        body: z.strictObject({ organizations: OrganizationsSchema }),
        response: {
          200: UserSchema.extend({ removed: z.array(z.string()).readonly() }),
          404: ProblemSchema,
          409: ProblemSchema,
          ...problemResponses,
        },
      },
    },
    async (request) => {
      const { user, removed } = await services.identity.revokeOrganizations(
        request.ctx,
        request.params.username,
        request.body.organizations,
      );
      return { ...user, removed };
    },
  );
};
