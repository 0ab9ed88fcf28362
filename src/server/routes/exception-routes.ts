import { z } from "zod";
import type { TServerServices } from "../server-services.js";
import { ProblemSchema, problemResponses } from "./route-types.js";
import type { TApi } from "./route-types.js";

const ExceptionSchema = z
  .object({
    id: z.number().int(),
    organization: z.string(),
    controlId: z.string(),
    environment: z.string(),
    owner: z.string(),
    reason: z.string(),
    expires: z.string(),
    status: z
      .enum(["pending", "approved", "expired"])
      .describe("pending: the control still fails; approved: an active exception turns its failure into excepted"),
    proposedBy: z.string().describe("who applied the spec that introduced this version"),
    proposedAt: z.date(),
    approvedBy: z.string().nullable().describe("someone other than the proposer"),
    approvedAt: z.date().nullable(),
  })
  .describe("one version of a policy exception: a changed reason, expiry, owner or scope is a new one");

const organization = z.string().min(1).max(63).describe("organization (metadata.name of its spec)");

export const registerExceptionRoutes = (api: TApi, services: Pick<TServerServices, "exceptions">): void => {
  api.get(
    "/api/exceptions",
    {
      schema: {
        tags: ["policy"],
        summary: "Policy exceptions the applied specs proposed, newest first, with who proposed and who approved each",
        querystring: z.object({ organization: organization.optional() }),
        response: { 200: z.array(ExceptionSchema), ...problemResponses },
      },
    },
    async (request) => services.exceptions.list(request.ctx, request.query.organization),
  );

  api.post(
    "/api/exceptions/:organization/:id/approve",
    {
      schema: {
        tags: ["policy"],
        summary:
          "Approve one version of a policy exception; refused (403) to whoever proposed it, 409 when approved already or expired",
        params: z.object({ organization, id: z.coerce.number().int().positive() }),
        response: { 200: ExceptionSchema, 404: ProblemSchema, 409: ProblemSchema, ...problemResponses },
      },
    },
    async (request) => services.exceptions.approve(request.ctx, request.params.organization, request.params.id),
  );
};
