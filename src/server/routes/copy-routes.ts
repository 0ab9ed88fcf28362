// Copies of environments' data (src/copies): listed with where they came from, the class of data
// they hold, who asked and when they go; a restored copy removed on request.
import { z } from "zod";
import type { TServerServices } from "../server-services.js";
import { ProblemSchema, problemResponses } from "./route-types.js";
import type { TApi } from "./route-types.js";

const CopySchema = z
  .object({
    id: z.number().int(),
    organization: z.string(),
    name: z.string().describe("the restored copy's name, or the declared environment the data went into"),
    kind: z.enum(["copy", "environment"]),
    sourceEnvironment: z.string(),
    sourceDataClass: z.string(),
    restoredTo: z.string().describe("the instant restored: an ISO time, latest, or an LSN"),
    dataClass: z
      .enum(["phi", "deidentified", "confidential", "internal", "public"])
      .describe("deidentified only once the copy's verification passed"),
    restoreRunId: z.number().int(),
    owner: z.string().describe("who asked for the restore"),
    port: z.number().int().nullable(),
    createdAt: z.date(),
    expiresAt: z.date().nullable().describe("when carehost tears a copy of PHI down"),
    removedAt: z.date().nullable(),
    removedBy: z.string().nullable(),
    removalReason: z.string().nullable(),
  })
  .describe("a copy of an environment's data");

const organization = z.string().min(1).max(63).describe("organization (metadata.name of its spec)");

export const registerCopyRoutes = (api: TApi, services: Pick<TServerServices, "copies">): void => {
  api.get(
    "/api/copies",
    {
      schema: {
        tags: ["recovery"],
        summary: "Live copies of environments' data: source, instant, data class, owner, expiry",
        querystring: z.object({ organization: organization.optional() }),
        response: { 200: z.array(CopySchema), ...problemResponses },
      },
    },
    async (request) => services.copies.list(request.ctx, request.query.organization),
  );

  api.delete(
    "/api/copies/:name",
    {
      schema: {
        tags: ["recovery"],
        summary: "Tear a restored copy down now (its cluster stopped, its data and filestore removed); audited",
        params: z.object({ name: z.string().min(1).max(63) }),
        querystring: z.object({ organization: organization.optional() }),
        response: { 200: CopySchema, 404: ProblemSchema, ...problemResponses },
      },
    },
    async (request) =>
      services.copies.remove(request.ctx, {
        name: request.params.name,
        ...(request.query.organization === undefined ? {} : { organization: request.query.organization }),
      }),
  );
};
