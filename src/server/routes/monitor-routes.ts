import { z } from "zod";
import type { TServerServices } from "../server-services.js";
import { problemResponses } from "./route-types.js";
import type { TApi } from "./route-types.js";

// Prometheus scrapes /metrics with `authorization: { credentials_file: … }`: an API token whose
// owner holds metrics:read over the organizations it monitors (README: Monitoring).
export const registerMonitorRoutes = (api: TApi, services: Pick<TServerServices, "monitor">): void => {
  api.get(
    "/metrics",
    {
      schema: {
        tags: ["monitoring"],
        summary:
          "The last probe round in Prometheus's text exposition format, for the caller's organizations (metrics:read)",
        response: {
          200: z.string().describe("text/plain; version=0.0.4: the Prometheus exposition format"),
          ...problemResponses,
        },
      },
    },
    async (request, reply) => {
      const { contentType, text } = await services.monitor.metrics(request.ctx);
      return reply.type(contentType).send(text);
    },
  );

  api.get(
    "/api/monitoring/rules",
    {
      schema: {
        tags: ["monitoring"],
        summary:
          "The alert rules for the caller's organizations as a Prometheus rules file (YAML), with each spec's overrides (metrics:read)",
        response: { 200: z.string().describe("application/yaml: a Prometheus rules file"), ...problemResponses },
      },
    },
    async (request, reply) => reply.type("application/yaml").send(await services.monitor.rules(request.ctx)),
  );
};
