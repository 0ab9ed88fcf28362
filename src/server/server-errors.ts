// The one place domain errors become HTTP (STYLE.md item 2): RFC 9457 problem+json, with the
// request id as `instance` so a user's report can be matched to the log line.
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";
import {
  ConflictError,
  DomainError,
  ForbiddenError,
  IntegrityError,
  NotFoundError,
  PolicyViolation,
  RateLimitedError,
  UnauthenticatedError,
  ValidationError,
} from "../lib/errors.js";

const statusByError: ReadonlyArray<readonly [new (...args: never[]) => DomainError, number, string]> = [
  [ValidationError, 400, "Invalid request"],
  [UnauthenticatedError, 401, "Authentication required"],
  [ForbiddenError, 403, "Forbidden"],
  [NotFoundError, 404, "Not found"],
  [ConflictError, 409, "Conflict"],
  [PolicyViolation, 422, "Refused by policy"],
  [RateLimitedError, 429, "Too many requests"],
  [IntegrityError, 500, "Integrity check failed"],
];

export type TProblem = {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  errors?: readonly { path?: string; location?: string; message: string }[];
};

export const problemTypeBase = "https://carehost.io/problems/";

export const sendProblem = (reply: FastifyReply, problem: TProblem): FastifyReply =>
  reply.code(problem.status).type("application/problem+json").send(problem);

const slug = (title: string): string => title.toLowerCase().replace(/[^a-z0-9]+/g, "-");

/**
 * The problem an error answers with. Also used once a response has started streaming (NDJSON), where
 * the status line is already sent and the problem becomes the stream's last line.
 */
export const problemFor = (error: FastifyError | Error, request: FastifyRequest): TProblem => {
  const instance = `urn:carehost:request:${request.id}`;
  if (hasZodFastifySchemaValidationErrors(error)) {
    return {
      type: `${problemTypeBase}invalid-request`,
      title: "Invalid request",
      status: 400,
      detail: `the request ${error.validationContext ?? "input"} does not match the schema`,
      instance,
      errors: error.validation.map((issue) => ({
        path: issue.instancePath.replace(/^\//, "").replaceAll("/", "."),
        message: issue.message ?? "invalid",
      })),
    };
  }
  if (error instanceof DomainError) {
    const match = statusByError.find(([type]) => error instanceof type);
    const [, status, title] = match ?? [DomainError, 500, "Error"];
    if (status >= 500) request.log.error({ err: error }, "integrity failure");
    return {
      type: `${problemTypeBase}${slug(title)}`,
      title,
      status,
      detail: error.message,
      instance,
      ...(error.details.length > 0 ? { errors: error.details } : {}),
    };
  }
  const fastifyError = error as FastifyError;
  if (fastifyError.statusCode !== undefined && fastifyError.statusCode < 500) {
    // Malformed JSON, a too large body…: Fastify's own client errors keep their status.
    return {
      type: `${problemTypeBase}invalid-request`,
      title: "Invalid request",
      status: fastifyError.statusCode,
      detail: fastifyError.message,
      instance,
    };
  }
  // Unknown errors are logged whole and answered without internals.
  request.log.error({ err: error }, "unhandled error");
  return {
    type: `${problemTypeBase}internal`,
    title: "Internal error",
    status: 500,
    detail: "an internal error occurred; quote the instance when reporting it",
    instance,
  };
};

export const errorHandler = (
  error: FastifyError | Error,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply => {
  if (error instanceof RateLimitedError) reply.header("retry-after", String(error.retryAfterSeconds));
  return sendProblem(reply, problemFor(error, request));
};
