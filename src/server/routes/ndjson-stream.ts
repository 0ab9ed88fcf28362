// Progress of a long run as it happens, for clients that follow it: one JSON object a line
// (application/x-ndjson). The status line goes out with the stream's first line, so a request
// refused before that is an ordinary problem+json answer with its own status (a 404 stays a 404);
// once the 200 is out, a failure can only be told in the body, as the last line.
import { PassThrough } from "node:stream";
import type { FastifyReply } from "fastify";

export const NDJSON = "application/x-ndjson";

export type TNdjsonStream = {
  /** Writes one line; dropped once the client went away. */
  write(line: object): void;
  end(): void;
  /** Aborted when the client goes away (the connection closed before or after the end). */
  readonly gone: AbortSignal;
};

/** Starts a 200 NDJSON answer on `reply`; the caller writes the lines and ends it. */
export const openNdjsonStream = (reply: FastifyReply): TNdjsonStream => {
  const body = new PassThrough();
  const gone = new AbortController();
  reply.raw.once("close", () => gone.abort());
  void reply.code(200).type(`${NDJSON}; charset=utf-8`).header("cache-control", "no-store").send(body);
  return {
    write: (line) => {
      if (!body.destroyed && !body.writableEnded) body.write(`${JSON.stringify(line)}\n`);
    },
    end: () => body.end(),
    gone: gone.signal,
  };
};
