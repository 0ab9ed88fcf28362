// Single sign-on through an organization's OIDC provider (identity-oidc.ts). Public routes: the
// person is not signed in yet. Two ways in, one exchange:
//   the web flow: GET …/:organization/start redirects to the provider, which sends the browser
//   back to GET …/callback, answered with carehost's session;
//   the CLI (RFC 8252 loopback): POST …/start with its http://127.0.0.1:<port>/… redirect, then
//   POST …/callback with the parameters the provider sent to that address.
import { z } from "zod";
import { roles } from "../../lib/request-context.js";
import type { TServerServices } from "../server-services.js";
import { ProblemSchema } from "./route-types.js";
import type { TApi } from "./route-types.js";

const SessionSchema = z.object({
  token: z.string(),
  expiresAt: z.string(),
  username: z.string(),
  role: z.enum(roles),
  organization: z.string(),
  roles: z.array(z.enum(roles)).describe("The roles the provider's groups map to over this organization."),
});

const refusals = {
  400: ProblemSchema,
  401: ProblemSchema,
  403: ProblemSchema,
  404: ProblemSchema,
  409: ProblemSchema,
  429: ProblemSchema,
  502: ProblemSchema,
};

const organizationName = z.string().min(1).max(63);

export const registerOidcRoutes = (api: TApi, services: Pick<TServerServices, "oidc">): void => {
  const session = (completed: Awaited<ReturnType<TServerServices["oidc"]["complete"]>>) => ({
    token: completed.token,
    expiresAt: completed.expiresAt.toISOString(),
    username: completed.username,
    role: completed.role,
    organization: completed.organization,
    roles: completed.roles,
  });

  api.get(
    "/api/auth/oidc/:organization/start",
    {
      config: { public: true },
      schema: {
        tags: ["auth"],
        security: [],
        summary: "Start a single sign-on through the organization's identity provider (redirects there)",
        params: z.strictObject({ organization: organizationName }),
        response: { 302: z.null(), ...refusals },
      },
    },
    async (request, reply) => {
      const started = await services.oidc.start(request.ctx, { organization: request.params.organization });
      return reply.header("cache-control", "no-store").redirect(started.authorizationUrl, 302);
    },
  );

  api.post(
    "/api/auth/oidc/start",
    {
      config: { public: true },
      schema: {
        tags: ["auth"],
        security: [],
        summary: "Start a single sign-on whose code comes back to a loopback address (the CLI, RFC 8252)",
        body: z.strictObject({ organization: organizationName, redirectUri: z.string().min(1).max(300) }),
        response: {
          200: z.object({ authorizationUrl: z.string(), expiresAt: z.string() }),
          ...refusals,
        },
      },
    },
    async (request, reply) => {
      const started = await services.oidc.start(request.ctx, request.body);
      void reply.header("cache-control", "no-store");
      return { authorizationUrl: started.authorizationUrl, expiresAt: started.expiresAt.toISOString() };
    },
  );

  api.get(
    "/api/auth/oidc/callback",
    {
      config: { public: true },
      schema: {
        tags: ["auth"],
        security: [],
        summary: "Where the provider sends the browser back: completes the sign-in and answers with a session",
        querystring: z.record(z.string(), z.string().max(4096)),
        response: { 200: SessionSchema, ...refusals },
      },
    },
    async (request, reply) => {
      const completed = await services.oidc.complete(request.ctx, new URLSearchParams(request.query));
      void reply.header("cache-control", "no-store");
      return session(completed);
    },
  );

  api.post(
    "/api/auth/oidc/callback",
    {
      config: { public: true },
      schema: {
        tags: ["auth"],
        security: [],
        summary: "Completes a sign-in with the parameters the provider sent to the CLI's loopback address",
        body: z.strictObject({
          parameters: z.string().min(1).max(8192).describe("The query string the redirect carried (code, state, iss)."),
        }),
        response: { 200: SessionSchema, ...refusals },
      },
    },
    async (request, reply) => {
      const completed = await services.oidc.complete(
        request.ctx,
        new URLSearchParams(request.body.parameters.replace(/^\?/, "")),
      );
      void reply.header("cache-control", "no-store");
      return session(completed);
    },
  );
};
