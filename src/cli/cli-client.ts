// A small typed HTTP client for the carehost API. Problem+json answers become CliErrors whose
// exit code follows the status: 422 (policy) → 3, everything else → 1.
import { setTimeout as sleep } from "node:timers/promises";
import type { Response } from "undici";
import { CliError, exitCodes } from "./cli-errors.js";
import { certificateAdvice, trustedFetch, type TTlsFailure } from "./cli-trust.js";

type TProblem = {
  title?: string;
  detail?: string;
  status?: number;
  instance?: string;
  errors?: { message: string; location?: string }[];
};

const NDJSON = "application/x-ndjson";

export type TApiClient = {
  readonly url: string;
  request<T>(method: string, path: string, body?: unknown): Promise<T>;
  /**
   * Asks for the answer as NDJSON and hands each progress line to `onProgress` as it arrives; resolves
   * with the final `result` line, and throws the CliError of a final `problem` line (the same message
   * and exit code as a problem+json answer). A server that answers plain JSON is read as request() would.
   */
  stream<TProgress, TResult>(
    method: string,
    path: string,
    body: unknown,
    onProgress: (line: TProgress) => void,
  ): Promise<TResult>;
  /**
   * Starts a run (a POST answered 202 with its id and `events`) and follows it to its end: each
   * step goes to `onStep` once, in order, however often the stream has to be opened again (a
   * proxy or the network cutting it, a run longer than any one request may last); resolves with
   * the run's result and throws the CliError of its problem.
   */
  run<TStep, TResult>(path: string, body: unknown, onStep: (step: TStep) => void): Promise<TResult>;
};

type TRunStarted = { id: number; kind: string; events: string };
/** Reconnections in a row that may fail before the CLI gives up following (the run goes on regardless): about half a minute. */
const FOLLOW_ATTEMPTS = 8;

/** The lines of an NDJSON body as they arrive. */
async function* ndjsonLines(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    pending += decoder.decode(chunk, { stream: true });
    const complete = pending.split("\n");
    pending = complete.pop() ?? "";
    yield* complete.filter((line) => line.trim() !== "");
  }
  if (pending.trim() !== "") yield pending;
}

const problemError = (problem: TProblem, status: number): CliError => {
  const hint = status === 401 ? " (run carehost login, or set CAREHOST_TOKEN)" : "";
  return new CliError(
    `${problem.detail ?? problem.title ?? `HTTP ${status}`}${hint}`,
    status === 422 ? exitCodes.policy : exitCodes.failure,
    (problem.errors ?? []).map((error) => error.message),
  );
};

/** Why a request did not reach the server, with what to do when it is the server's certificate. */
const unreachable = (url: string, error: Error): CliError => {
  const cause = error.cause instanceof Error ? (error.cause as Error & TTlsFailure) : undefined;
  const advice = cause === undefined ? undefined : certificateAdvice(cause, url);
  return new CliError(
    `cannot reach carehost at ${url} (${cause?.message ?? error.message}); ${advice ?? "is `carehost up` running?"}`,
  );
};

/**
 * `reloadToken` (the local CLI token, which the server renews) is asked once after a 401: a token
 * read just before the server replaced it is refused, and the file holds its successor.
 */
export const createApiClient = (
  url: string,
  initialToken: string | undefined,
  reloadToken?: () => Promise<string | undefined>,
): TApiClient => {
  const trustingFetch = trustedFetch();
  let token = initialToken;
  let reloaded = false;
  const withToken = async (attempt: () => Promise<Response>): Promise<Response> => {
    const response = await attempt();
    if (response.status !== 401 || reloadToken === undefined || reloaded) return response;
    reloaded = true;
    const fresh = await reloadToken();
    if (fresh === undefined || fresh === token) return response;
    token = fresh;
    await response.body?.cancel();
    return attempt();
  };
  const authorization = (): Record<string, string> => (token === undefined ? {} : { authorization: `Bearer ${token}` });
  const send = async (method: string, path: string, body: unknown, accept: string): Promise<Response> => {
    try {
      return await withToken(() =>
        trustingFetch(`${url}${path}`, {
          method,
          headers: {
            accept,
            ...(body === undefined ? {} : { "content-type": "application/json" }),
            ...authorization(),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
        }),
      );
    } catch (error) {
      throw unreachable(url, error as Error);
    }
  };
  const readWhole = async <T>(response: Response): Promise<T> => {
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    const payload = text === "" ? undefined : (JSON.parse(text) as unknown);
    if (!response.ok) throw problemError((payload ?? {}) as TProblem, response.status);
    return payload as T;
  };

  return {
    url,
    request: async <T>(method: string, path: string, body?: unknown): Promise<T> =>
      readWhole<T>(await send(method, path, body, "application/json")),

    stream: async <TProgress, TResult>(
      method: string,
      path: string,
      body: unknown,
      onProgress: (line: TProgress) => void,
    ): Promise<TResult> => {
      const response = await send(method, path, body, `${NDJSON}, application/json;q=0.5`);
      if (!response.ok || !(response.headers.get("content-type") ?? "").startsWith(NDJSON) || response.body === null)
        return readWhole<TResult>(response);
      for await (const text of ndjsonLines(response.body)) {
        const line = JSON.parse(text) as { kind?: string; result?: TResult; problem?: TProblem };
        if (line.kind === "result") return line.result as TResult;
        if (line.kind === "problem") throw problemError(line.problem ?? {}, line.problem?.status ?? 500);
        onProgress(line as TProgress);
      }
      throw new CliError(
        `${method} ${path}: the answer from ${url} ended before its final line (the connection was lost); the operation may have gone on, see carehost audit list`,
      );
    },

    run: async <TStep, TResult>(path: string, body: unknown, onStep: (step: TStep) => void): Promise<TResult> => {
      const started = await readWhole<TRunStarted>(await send("POST", path, body, "application/json"));
      const listing = started.kind === "verify" ? "backups" : `${started.kind}s`;
      let seen = 0;
      let failures = 0;
      let lastTrouble = "";
      for (;;) {
        let response: Response | undefined;
        try {
          response = await withToken(() =>
            trustingFetch(`${url}${started.events}?after=${seen}`, {
              headers: { accept: NDJSON, ...authorization() },
            }),
          );
        } catch (error) {
          lastTrouble =
            (error as Error).cause instanceof Error
              ? ((error as Error).cause as Error).message
              : (error as Error).message;
        }
        if (response !== undefined && !response.ok) await readWhole<never>(response);
        if (response?.body !== undefined && response.body !== null) {
          try {
            for await (const text of ndjsonLines(response.body)) {
              failures = 0;
              const line = JSON.parse(text) as { kind?: string; index?: number; result?: TResult; problem?: TProblem };
              if (line.kind === "result") return line.result as TResult;
              if (line.kind === "problem") throw problemError(line.problem ?? {}, line.problem?.status ?? 500);
              if (line.kind !== "step" || (line.index ?? 0) < seen) continue;
              seen = (line.index ?? seen) + 1;
              const { kind: _kind, index: _index, ...step } = line;
              onStep(step as TStep);
            }
            lastTrouble = "the stream ended before the run did";
          } catch (error) {
            if (error instanceof CliError) throw error;
            // undici's "terminated": the connection was cut mid-stream. The run goes on; follow it again from the steps seen.
            lastTrouble =
              (error as Error).cause instanceof Error
                ? ((error as Error).cause as Error).message
                : (error as Error).message;
          }
        }
        failures += 1;
        if (failures >= FOLLOW_ATTEMPTS) {
          throw new CliError(
            `lost contact with carehost at ${url} while following ${started.kind} run #${started.id} (${lastTrouble}); the run goes on in the server: carehost ${listing} shows how it ends`,
          );
        }
        await sleep(Math.min(500 * 2 ** (failures - 1), 8000));
      }
    },
  };
};
