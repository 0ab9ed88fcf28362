import { z } from "zod";
import type { TServerServices } from "../server-services.js";
import { problemResponses } from "./route-types.js";
import type { TApi } from "./route-types.js";

const SecretNameSchema = z
  .string()
  .min(1)
  .max(200)
  .describe("secret name, e.g. runtime/northwind-health/env/prod/database");

export const registerSecretRoutes = (api: TApi, services: Pick<TServerServices, "secrets">): void => {
  api.get(
    "/api/secrets",
    {
      schema: {
        tags: ["secrets"],
        summary: "Secret names and versions; never values",
        response: {
          200: z.array(
            z.object({
              name: z.string(),
              currentVersion: z.number().int(),
              versions: z.array(z.looseObject({ version: z.number().int() })).readonly(),
            }),
          ),
          ...problemResponses,
        },
      },
    },
    async (request) => services.secrets.list(request.ctx),
  );

  api.post(
    "/api/secrets/rotate",
    {
      schema: {
        tags: ["secrets"],
        summary: "Rotate a secret and re-apply what uses it, without downtime",
        body: z.strictObject({ name: SecretNameSchema }),
        response: {
          200: z.object({
            name: z.string(),
            version: z.number().int(),
            runtime: z.array(z.object({ target: z.string(), action: z.string() })),
          }),
          ...problemResponses,
        },
      },
    },
    async (request) => services.secrets.rotate(request.ctx, request.body.name),
  );

  api.post(
    "/api/secrets/set",
    {
      schema: {
        tags: ["secrets"],
        summary: "Store a backup repository's access key (backup/<org>/<keySecretRef>) and re-apply",
        body: z.strictObject({ name: SecretNameSchema, value: z.string().min(1).max(4096) }),
        response: {
          200: z.object({
            name: z.string(),
            version: z.number().int(),
            runtime: z.array(z.object({ target: z.string(), action: z.string() })),
          }),
          ...problemResponses,
        },
      },
    },
    async (request) => services.secrets.set(request.ctx, request.body.name, request.body.value),
  );

  api.post(
    "/api/secrets/reveal",
    {
      schema: {
        tags: ["secrets"],
        summary: "Show a secret's current value (platform-admin; the reason is audited)",
        body: z.strictObject({ name: SecretNameSchema, reason: z.string().min(1).max(500) }),
        response: { 200: z.object({ name: z.string(), value: z.string() }), ...problemResponses },
      },
    },
    async (request) => ({
      name: request.body.name,
      value: await services.secrets.reveal(request.ctx, request.body.name, request.body.reason),
    }),
  );
};
