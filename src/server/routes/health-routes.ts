import { z } from "zod";
import type { TServerServices } from "../server-services.js";
import type { TApi } from "./route-types.js";

// Liveness says the process answers; readiness says it can do its job (the database answers),
// so a load balancer stops sending requests to a replica whose database is gone.
export const registerHealthRoutes = (api: TApi, services: Pick<TServerServices, "db">): void => {
  api.get(
    "/healthz",
    {
      config: { public: true },
      schema: { tags: ["health"], security: [], response: { 200: z.object({ status: z.literal("ok") }) } },
    },
    async () => ({ status: "ok" as const }),
  );
  api.get(
    "/readyz",
    {
      config: { public: true },
      schema: {
        tags: ["health"],
        security: [],
        response: {
          200: z.object({ status: z.literal("ready") }),
          503: z.object({ status: z.literal("unavailable"), reason: z.string() }),
        },
      },
    },
    async (_request, reply) => {
      try {
        await services.db.query("SELECT 1");
        return { status: "ready" as const };
      } catch {
        return reply.code(503).send({ status: "unavailable" as const, reason: "control-plane database unreachable" });
      }
    },
  );
};
