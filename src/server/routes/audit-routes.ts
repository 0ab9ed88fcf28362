import { z } from "zod";
import type { TServerServices } from "../server-services.js";
import { problemResponses } from "./route-types.js";
import type { TApi } from "./route-types.js";

const instant = z.iso.datetime({ offset: true }).transform((value) => new Date(value));

export const registerAuditRoutes = (api: TApi, services: Pick<TServerServices, "audit">): void => {
  api.get(
    "/api/audit/entries",
    {
      schema: {
        tags: ["audit"],
        summary: "Audit entries in order",
        querystring: z.object({
          from: instant.optional(),
          to: instant.optional(),
          type: z.string().max(100).optional(),
          afterSeq: z.coerce.number().int().min(-1).optional(),
          limit: z.coerce.number().int().min(1).max(10_000).default(100),
        }),
        response: {
          200: z.array(
            z.object({
              seq: z.number().int(),
              time: z.string(),
              type: z.string(),
              outcome: z.string(),
              actor: z.string(),
              sourceAddress: z.string(),
              requestId: z.string(),
              target: z.string(),
              payload: z.record(z.string(), z.unknown()),
            }),
          ),
          ...problemResponses,
        },
      },
    },
    async (request) => services.audit.list(request.ctx, request.query),
  );

  api.post(
    "/api/audit/verify",
    {
      schema: {
        tags: ["audit"],
        summary: "Recompute the Merkle tree and check every signed checkpoint",
        response: {
          200: z.object({
            ok: z.boolean(),
            treeSize: z.number().int(),
            checkpointsVerified: z.number().int(),
            firstBadSeq: z.number().int().optional(),
            entriesChecked: z.number().int(),
            problems: z
              .array(
                z.object({
                  kind: z.string(),
                  seq: z.number().int().optional(),
                  seqRange: z.tuple([z.number().int(), z.number().int()]).readonly().optional(),
                  checkpointTreeSize: z.number().int().optional(),
                  message: z.string(),
                }),
              )
              .readonly(),
          }),
          ...problemResponses,
        },
      },
    },
    async (request) => services.audit.verify(request.ctx),
  );

  api.get(
    "/api/audit/export",
    {
      schema: {
        tags: ["audit"],
        summary: "Entries with inclusion proofs, a signed checkpoint and the public keys, for offline verification",
        querystring: z.object({ from: instant.optional(), to: instant.optional() }),
        response: {
          200: z.looseObject({
            format: z.string(),
            entries: z.array(z.unknown()).readonly(),
            checkpoint: z.looseObject({ treeSize: z.number().int() }),
          }),
          ...problemResponses,
        },
      },
    },
    async (request) => services.audit.exportBundle(request.ctx, request.query),
  );
};
