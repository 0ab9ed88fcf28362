// The HTTP API. Fastify with zod schemas: the same schemas validate requests and produce the
// OpenAPI 3.1 document at /api/openapi.json. Deny by default: a route is public only when it
// says so in its config, and only health and the two steps of a sign-in do.
import { randomUUID } from "node:crypto";
import fastifyHelmet from "@fastify/helmet";
import fastifySwagger from "@fastify/swagger";
import Fastify from "fastify";
import type { FastifyInstance, FastifyServerOptions } from "fastify";
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from "fastify-type-provider-zod";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { DEFAULT_KEEP_ALIVE_TIMEOUT_SECONDS, DEFAULT_REQUEST_TIMEOUT_SECONDS } from "../lib/config.js";
import { UnauthenticatedError } from "../lib/errors.js";
import type { TRequestContext } from "../lib/request-context.js";
import { errorHandler, problemTypeBase, sendProblem } from "./server-errors.js";
import type { TServerServices } from "./server-services.js";
import { transportOptions, type TTransport } from "./server-transport.js";
import { registerAuditRoutes } from "./routes/audit-routes.js";
import { registerAuthRoutes } from "./routes/auth-routes.js";
import { registerChangeRoutes } from "./routes/change-routes.js";
import { registerExceptionRoutes } from "./routes/exception-routes.js";
import { registerGitopsRoutes } from "./routes/gitops-routes.js";
import { registerHealthRoutes } from "./routes/health-routes.js";
import { registerMonitorRoutes } from "./routes/monitor-routes.js";
import { registerAlertRoutes } from "./routes/alert-routes.js";
import { registerOidcRoutes } from "./routes/oidc-routes.js";
import { registerOperationRoutes } from "./routes/operation-routes.js";
import { registerCopyRoutes } from "./routes/copy-routes.js";
import { registerRecoveryRoutes } from "./routes/recovery-routes.js";
import { registerSecretRoutes } from "./routes/secret-routes.js";
import { registerSpecRoutes } from "./routes/spec-routes.js";
import { registerStatusRoutes } from "./routes/status-routes.js";
import { registerTokenRoutes } from "./routes/token-routes.js";
import { registerUserRoutes } from "./routes/user-routes.js";

declare module "fastify" {
  interface FastifyRequest {
    /** Set by the authentication hook before any handler of a non-public route runs. */
    ctx: TRequestContext;
  }
  interface FastifyInstance {
    /** Every route the API serves (HEAD aside), as registered: tests run each one, so none is forgotten. */
    readonly apiRoutes: readonly { readonly method: string; readonly url: string; readonly public: boolean }[];
  }
  interface FastifyContextConfig {
    /** Reachable without credentials (health, login and single sign-on only). */
    public?: boolean;
  }
}

/** Fields that may hold secrets are replaced in every log line (pino redaction). */
export const redactedLogPaths = [
  "req.headers.authorization",
  "req.headers.cookie",
  'res.headers["set-cookie"]',
  "*.password",
  "*.token",
  "*.secret",
  "body.password",
];

const defaultTransport: TTransport = {
  trustedProxies: [],
  requestTimeoutMs: DEFAULT_REQUEST_TIMEOUT_SECONDS * 1000,
  keepAliveTimeoutMs: DEFAULT_KEEP_ALIVE_TIMEOUT_SECONDS * 1000,
};

export const buildServer = async (
  services: TServerServices,
  options: {
    logger: FastifyServerOptions["logger"];
    version: string;
    /** TLS, trusted proxies and timeouts (server-transport.ts); plain HTTP, no proxy and the default timeouts without it. */
    transport?: TTransport;
  },
): Promise<FastifyInstance> => {
  // Fastify types an HTTPS instance apart; everything here is the same for both.
  const app = Fastify({
    ...transportOptions(options.transport ?? defaultTransport),
    logger: options.logger,
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    bodyLimit: 4 * 1024 * 1024,
    // What the router refuses before a route runs (a malformed URL, a parameter past maxParamLength)
    // is a problem+json like every other refusal.
    frameworkErrors: (error, request, reply) => {
      void errorHandler(error, request, reply);
    },
  } as FastifyServerOptions) as unknown as FastifyInstance;
  const apiRoutes: { method: string; url: string; public: boolean }[] = [];
  app.decorate("apiRoutes", apiRoutes);
  app.addHook("onRoute", (route) => {
    for (const method of [route.method].flat())
      if (method !== "HEAD")
        apiRoutes.push({
          method,
          url: route.url,
          public: (route.config as { public?: boolean } | undefined)?.public === true,
        });
  });
  // The usual security headers (HSTS, nosniff, frame-ancestors 'none', no referrer, a strict CSP):
  // the API serves JSON and nothing that a page should embed or a browser should guess at.
  await app.register(fastifyHelmet, {
    contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    referrerPolicy: { policy: "no-referrer" },
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, {
      type: `${problemTypeBase}not-found`,
      title: "Not found",
      status: 404,
      detail: `no route ${request.method} ${request.url.split("?")[0]}`,
      instance: `urn:carehost:request:${request.id}`,
    }),
  );
  app.decorateRequest("ctx");
  app.addHook("onRequest", async (request, reply) => {
    reply.header("x-request-id", request.id);
    const meta = { requestId: request.id, sourceAddress: request.ip };
    if (request.routeOptions.config.public === true || request.routeOptions.url === undefined) {
      request.ctx = { actor: { kind: "anonymous" }, ...meta };
      return;
    }
    const header = request.headers.authorization;
    const bearer = header?.startsWith("Bearer ") ? header.slice("Bearer ".length).trim() : undefined;
    if (bearer === undefined)
      throw new UnauthenticatedError("authentication required: send Authorization: Bearer <token>");
    request.ctx = await services.identity.authenticate(bearer, meta);
  });

  await app.register(fastifySwagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "carehost API",
        version: options.version,
        description: "Control plane for compliance-first Odoo hosting.",
      },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });

  const api = app.withTypeProvider<ZodTypeProvider>();
  registerHealthRoutes(api, services);
  registerAuthRoutes(api, services);
  registerOidcRoutes(api, services);
  registerStatusRoutes(api, services);
  registerSpecRoutes(api, services);
  registerExceptionRoutes(api, services);
  registerAuditRoutes(api, services);
  registerTokenRoutes(api, services);
  registerUserRoutes(api, services);
  registerSecretRoutes(api, services);
  registerGitopsRoutes(api, services);
  registerRecoveryRoutes(api, services);
  registerCopyRoutes(api, services);
  registerOperationRoutes(api, services);
  registerChangeRoutes(api, services);
  registerMonitorRoutes(api, services);
  registerAlertRoutes(api, services);
  api.get("/api/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  await app.ready();
  return app;
};
