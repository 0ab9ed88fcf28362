// Progress of a long request as it happens, for clients that ask with Accept: application/x-ndjson:
// one JSON object a line. The response starts with the first progress line, not before: until then
// an error is an ordinary problem+json answer with its own status (a bad request is still a 400).
// Once the 200 status line is out, a failure can only be told in the body, as the last line.
import { PassThrough } from "node:stream";
import type { FastifyReply, FastifyRequest } from "fastify";
import { problemFor } from "../server-errors.js";

export const NDJSON = "application/x-ndjson";

/** The last line of a stream: the result the JSON answer would have carried, or the RFC 9457 problem. */
export type TNdjsonFinalLine<TResult> = { kind: "result"; result: TResult } | { kind: "problem"; problem: ReturnType<typeof problemFor> };

/** True when the Accept header lists application/x-ndjson without q=0. */
export const acceptsNdjson = (accept: string | undefined): boolean =>
  (accept ?? "").split(",").some((range) => {
    const [mediaType, ...parameters] = range.split(";").map((part) => part.trim().toLowerCase());
    return mediaType === NDJSON && !parameters.some((parameter) => /^q=0(\.0{0,3})?$/.test(parameter));
  });

/**
 * Runs `operation`, streaming each progress line it reports; then a final `result` line, or a
 * `problem` line when it fails after the first line went out. A client that goes away does not stop
 * the operation (half a restore is worse than an unread result); its lines are dropped.
 */
export async function streamNdjson<TProgress extends object, TResult>(
  request: FastifyRequest,
  reply: FastifyReply,
  operation: (progress: (line: TProgress) => void) => Promise<TResult>,
): Promise<FastifyReply> {
  const body = new PassThrough();
  let started = false;
  const write = (line: TProgress | TNdjsonFinalLine<TResult>) => {
    if (!started) {
      started = true;
      void reply.code(200).type(`${NDJSON}; charset=utf-8`).header("cache-control", "no-store").send(body);
    }
    if (!body.destroyed && !body.writableEnded) body.write(`${JSON.stringify(line)}\n`);
  };
  try {
    write({ kind: "result", result: await operation(write) });
  } catch (error) {
    if (!started) throw error;
    write({ kind: "problem", problem: problemFor(error instanceof Error ? error : new Error(String(error)), request) });
  }
  body.end();
  return reply;
}
