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
  UpstreamError,
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
  [UpstreamError, 502, "Bad gateway"],
];

export type TProblem = {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  /** On a 500: the id the server log has the details under (also in `instance`). */
  requestId?: string;
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
    const [, status, title] = match ?? [DomainError, 500, "Internal error"];
    // A failure of carehost or of a command it ran (RuntimeCommandError: the command line, its
    // stderr) is the server's to read, not the client's: logged whole under the request id.
    if (status >= 500) return internalProblem(error, request, title, status);
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
  return internalProblem(error, request, "Internal error", 500);
};

/** Logged whole (message, stack, a command's line and output) under the request id; answered with that id alone. */
const internalProblem = (error: Error, request: FastifyRequest, title: string, status: number): TProblem => {
  request.log.error({ err: error }, title.toLowerCase());
  return {
    type: `${problemTypeBase}${slug(title)}`,
    title,
    status,
    detail: `${title.toLowerCase()}: the server log has what happened under request ${request.id}; quote it when reporting this`,
    instance: `urn:carehost:request:${request.id}`,
    requestId: request.id,
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
