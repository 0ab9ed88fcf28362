import type {
  FastifyBaseLogger,
  FastifyInstance,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";

/** The Fastify instance routes are registered on: zod schemas type the handlers. */
export type TApi = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  ZodTypeProvider
>;

/** RFC 9457 problem details, as every error response is shaped (documented in the OpenAPI). */
export const ProblemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string(),
    requestId: z.string().optional().describe("On a 500: the id the server log has the details under."),
    errors: z
      .array(z.object({ path: z.string().optional(), location: z.string().optional(), message: z.string() }))
      .optional(),
  })
  .describe("RFC 9457 problem details");

export const problemResponses = {
  400: ProblemSchema,
  401: ProblemSchema,
  403: ProblemSchema,
} as const;
