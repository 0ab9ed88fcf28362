// Backups, verifications, restores and drills are runs: a POST refuses what it must at once
// (problem+json with its 4xx) or starts the run and answers 202 with where to follow it. The run goes
// on in the server whatever the client does; GET /api/runs/{kind}/{id}/events follows it as NDJSON,
// from any step on, as often as a client reconnects.
import type { FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { ValidationError } from "../../lib/errors.js";
import { RUN_KINDS } from "../../backup/recovery-runs.js";
import type { TRunEnd, TRunKind, TRunRef, TStartedRun } from "../../backup/recovery-runs.js";
import { problemFor, problemTypeBase } from "../server-errors.js";
import type { TProblem } from "../server-errors.js";
import type { TServerServices } from "../server-services.js";
import { NDJSON, openNdjsonStream } from "./ndjson-stream.js";
import { ProblemSchema, problemResponses } from "./route-types.js";
import type { TApi } from "./route-types.js";

const EnvironmentBody = z.strictObject({
  environment: z.string().min(1).max(63).describe("environment name"),
  organization: z
    .string()
    .min(1)
    .max(63)
    .optional()
    .describe("needed only when two organizations share the environment name"),
});

const RunStarted = z
  .object({
    id: z.number().int(),
    kind: z.enum(RUN_KINDS),
    target: z.string().describe("environment/<organization>/<environment>"),
    state: z.literal("running"),
    location: z.string().describe("GET it for the run's state, steps and result"),
    events: z.string().describe("GET it to follow the run as NDJSON"),
  })
  .describe("the run started; it goes on in the server whether or not anyone follows it");
const RunView = z.looseObject({
  id: z.number().int(),
  kind: z.enum(RUN_KINDS),
  target: z.string(),
  state: z
    .enum(["running", "succeeded", "failed", "interrupted"])
    .describe("interrupted: carehost stopped before the run finished; its next start repaired what the run left"),
  steps: z.array(z.object({ step: z.string(), detail: z.string(), durationMs: z.number() })),
  result: z
    .unknown()
    .describe(
      "what the run produced, once it has (a drill that missed an objective and a verify that found damage have one too)",
    ),
  error: z.string().nullable(),
});
const RunLine = z
  .discriminatedUnion("kind", [
    z.object({
      kind: z.literal("run"),
      run: z.object({ id: z.number(), kind: z.enum(RUN_KINDS), target: z.string(), state: z.string() }),
    }),
    z.object({
      kind: z.literal("step"),
      index: z.number().int(),
      step: z.string(),
      detail: z.string(),
      durationMs: z.number(),
    }),
    z.object({ kind: z.literal("waiting"), runningForMs: z.number() }),
    z.object({ kind: z.literal("result"), result: z.unknown() }),
    z.object({ kind: z.literal("problem"), problem: ProblemSchema }),
  ])
  .describe("one line of the NDJSON stream");
const RUN_EVENTS_DESCRIPTION = [
  'Follows a run as NDJSON, one JSON object a line: first `{"kind":"run","run":{id,kind,target,state}}`, then each step',
  'after the first `after` the moment it completes (`{"kind":"step","index":0,"step":"secrets","detail":…,"durationMs":…}`;',
  'a restore\'s are secrets, postgresql, filestore, redis, application, ingress), a `{"kind":"waiting"}` line every 15 s while',
  "nothing else happens (so no proxy or client takes the silence for a dead connection), and last",
  '`{"kind":"result","result":{…}}` or `{"kind":"problem","problem":{…}}` (RFC 9457; status 409 when carehost stopped',
  "before the run finished). A stream that ends without a last line was cut: connect again with `after` = the steps seen.",
].join(" ");
/** A line every so often while a step takes long: undici (Node's fetch) gives up on a body silent for 300 s. */
const WAITING_EVERY_MS = 15_000;
const RunParams = z.object({
  kind: z.enum(RUN_KINDS),
  id: z.coerce.number().int().positive().max(Number.MAX_SAFE_INTEGER),
});

/** The answer to a POST that started a run: 202, and where to follow it. */
const accepted = async (reply: FastifyReply, started: Promise<TStartedRun<unknown>>) => {
  const { ref } = await started;
  const location = `/api/runs/${ref.kind}/${ref.id}`;
  return reply
    .code(202)
    .header("location", location)
    .send({ ...ref, state: "running" as const, location, events: `${location}/events` });
};

/** A run that ended without a result: its own problem when it is one a user can act on (4xx), otherwise what the run recorded. */
const problemOfRun = (end: Extract<TRunEnd, { ok: false }>, request: FastifyRequest, kind: TRunKind): TProblem => {
  const problem = problemFor(end.error, request);
  if (problem.status < 500) return problem;
  // problemFor logged the error whole under the request id; the client learns where, not what a command printed.
  return {
    ...problem,
    type: `${problemTypeBase}run-failed`,
    title: "Run failed",
    detail: `the ${kind} failed: carehost ${kind === "verify" ? "backups" : `${kind}s`} lists the run, and the server log has what happened under request ${request.id}`,
  };
};

/** What these routes answer besides 2xx: 404 for an unknown environment or run, 409 while carehost stops. */
const runProblems = { ...problemResponses, 404: ProblemSchema, 409: ProblemSchema } as const;

export const registerRecoveryRoutes = (api: TApi, services: Pick<TServerServices, "recovery">): void => {
  api.post(
    "/api/backups",
    {
      schema: {
        tags: ["recovery"],
        summary: "Take a pgBackRest backup of an environment now",
        body: EnvironmentBody.extend({ kind: z.enum(["full", "diff", "incr"]).default("full") }),
        response: { 202: RunStarted, ...runProblems },
      },
    },
    async (request, reply) => accepted(reply, services.recovery.startBackup(request.ctx, request.body)),
  );

  api.get(
    "/api/backups",
    {
      schema: {
        tags: ["recovery"],
        summary: "Backups carehost ran, newest first",
        querystring: z.object({ environment: z.string().optional() }),
        response: {
          200: z.array(
            z.looseObject({ id: z.number(), environment: z.string(), kind: z.string(), status: z.string() }),
          ),
          ...problemResponses,
        },
      },
    },
    async (request) => services.recovery.listBackups(request.ctx, request.query.environment),
  );

  api.post(
    "/api/backups/verify",
    {
      schema: {
        tags: ["recovery"],
        summary:
          "Start pgbackrest verify over the environment's repositories; its result is { environment, ok, output }",
        body: EnvironmentBody,
        response: { 202: RunStarted, ...runProblems },
      },
    },
    async (request, reply) => accepted(reply, services.recovery.startVerify(request.ctx, request.body)),
  );

  api.post(
    "/api/restores",
    {
      schema: {
        tags: ["recovery"],
        summary:
          "Start a restore of an environment to latest, a point in time or an LSN: into a new copy, or in place (maintenance window or emergency)",
        description: [
          "A request refused before the restore starts (invalid input, unknown environment, no permission, outside the maintenance",
          "window) is answered application/problem+json with its 4xx status. Otherwise the answer is 202 with the run's id and where",
          "to follow it (Location, and `events` for its steps as NDJSON); the result the run ends with is the restored copy or",
          "environment with each step and its duration. An in-place restore or one over a declared environment first takes a safety backup.",
        ].join(" "),
        body: EnvironmentBody.extend({
          to: z.string().min(1).max(64).default("latest").describe("latest, or an ISO 8601 instant with a zone"),
          toLsn: z
            .string()
            .regex(
              /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/,
              "an LSN is two hexadecimal numbers separated by a slash, such as 0/3000028 (SELECT pg_current_wal_lsn() shows the current one)",
            )
            .optional()
            .describe("an LSN such as 0/3000028, instead of --to"),
          into: z
            .string()
            .regex(
              /^[a-z0-9][a-z0-9-]{0,39}$/,
              "a copy's or an environment's name takes lowercase letters, digits and hyphens (at most 40, starting with a letter or digit)",
            )
            .optional()
            .describe("name of a new restored copy, or a declared environment to restore over"),
          inPlace: z.boolean().optional().describe("restore over the environment itself, after a safety backup"),
          emergency: z
            .string()
            .max(500)
            .optional()
            .describe("why an in-place restore cannot wait for the maintenance window (audited)"),
          deidentify: z
            .boolean()
            .optional()
            .describe(
              "neutralize and de-identify the data in a scratch copy and verify it before it is swapped in or announced (with into)",
            ),
          expiresInHours: z
            .number()
            .int()
            .optional()
            .describe(
              "how long a new copy holding PHI lives, in hours; at most the spec's copies.maxPhiHours (default 24)",
            ),
        }),
        response: { 202: RunStarted, ...runProblems },
      },
    },
    async (request, reply) => {
      const { to, toLsn, emergency, ...rest } = request.body;
      const target =
        toLsn !== undefined
          ? ({ kind: "lsn", lsn: toLsn } as const)
          : to === "latest"
            ? ({ kind: "latest" } as const)
            : ({ kind: "time", time: new Date(to) } as const);
      if (target.kind === "time" && (Number.isNaN(target.time.getTime()) || !/(Z|[+-]\d{2}:?\d{2})$/.test(to))) {
        throw new ValidationError(
          `--to ${JSON.stringify(to)} is not latest or an ISO 8601 instant with a zone, e.g. 2026-11-22T14:03:05Z`,
        );
      }
      if (toLsn !== undefined && to !== "latest")
        throw new ValidationError(
          `give either --to ${JSON.stringify(to)} or --to-lsn ${JSON.stringify(toLsn)}, not both`,
        );
      const input = { ...rest, target, ...(emergency === undefined ? {} : { emergencyReason: emergency }) };
      return accepted(reply, services.recovery.startRestore(request.ctx, input));
    },
  );

  api.get(
    "/api/restores",
    {
      schema: {
        tags: ["recovery"],
        summary:
          "Restores carehost ran, newest first, with their steps; one a stop of carehost cut short shows as interrupted",
        querystring: z.object({ environment: z.string().optional() }),
        response: {
          200: z.array(
            z.looseObject({
              id: z.number(),
              environment: z.string(),
              target: z.string(),
              destination: z.string(),
              status: z.string(),
            }),
          ),
          ...problemResponses,
        },
      },
    },
    async (request) => services.recovery.listRestores(request.ctx, request.query.environment),
  );

  api.post(
    "/api/drills",
    {
      schema: {
        tags: ["recovery"],
        summary:
          "Start a restore drill now: restore, check, measure RTO/RPO, tear down; its result is the drill as GET /api/drills lists it",
        body: EnvironmentBody,
        response: { 202: RunStarted, ...runProblems },
      },
    },
    async (request, reply) => accepted(reply, services.recovery.startDrill(request.ctx, request.body)),
  );

  api.get(
    "/api/drills",
    {
      schema: {
        tags: ["recovery"],
        summary: "Restore drills, newest first, with achieved RTO/RPO against the objectives",
        querystring: z.object({ environment: z.string().optional() }),
        response: {
          200: z.array(z.looseObject({ id: z.number(), environment: z.string(), status: z.string() })),
          ...problemResponses,
        },
      },
    },
    async (request) => services.recovery.listDrills(request.ctx, request.query.environment),
  );

  api.get(
    "/api/runs/:kind/:id",
    {
      schema: {
        tags: ["recovery"],
        summary:
          "A backup, verify, restore or drill run: its state, the steps done so far, and its result once it has one",
        params: RunParams,
        response: { 200: RunView, ...runProblems },
      },
    },
    async (request) => services.recovery.run(request.ctx, request.params.kind, request.params.id),
  );

  api.get(
    "/api/runs/:kind/:id/events",
    {
      schema: {
        tags: ["recovery"],
        summary: "Follow a run as it happens (NDJSON), from any step on",
        description: RUN_EVENTS_DESCRIPTION,
        params: RunParams,
        querystring: z.object({
          after: z.coerce
            .number()
            .int()
            .min(0)
            .max(1000)
            .default(0)
            .describe("steps already seen: they are not sent again"),
        }),
        response: {
          200: { description: "the run's lines", content: { [NDJSON]: { schema: RunLine } } },
          ...runProblems,
        },
      },
    },
    async (request, reply) => {
      const { kind, id } = request.params;
      // Refused before the stream starts (no such run, no permission): a problem+json with its status.
      const view = await services.recovery.run(request.ctx, kind, id);
      // The stream is the body; the zod response schema documents its lines.
      const stream = openNdjsonStream(reply as FastifyReply);
      const write = stream.write;
      write({
        kind: "run",
        run: { id: view.id, kind: view.kind, target: view.target, state: view.state } satisfies TRunRef & {
          state: string;
        },
      });
      // The follower going away stops this stream, never the run.
      const waiting = setInterval(
        () => write({ kind: "waiting", runningForMs: Date.now() - view.startedAt.getTime() }),
        WAITING_EVERY_MS,
      );
      try {
        const end = await services.recovery.follow(
          request.ctx,
          kind,
          id,
          request.query.after,
          (event) => write({ kind: "step", ...event }),
          stream.gone,
        );
        // No end: the follower left, or this carehost stops while another runs the run; a stream without a last line tells to reconnect.
        if (end !== undefined)
          write(
            end.ok
              ? { kind: "result", result: end.result }
              : { kind: "problem", problem: problemOfRun(end, request, kind) },
          );
      } catch (error) {
        write({
          kind: "problem",
          problem: problemFor(error instanceof Error ? error : new Error(String(error)), request),
        });
      } finally {
        clearInterval(waiting);
        stream.end();
      }
      return reply;
    },
  );
};
