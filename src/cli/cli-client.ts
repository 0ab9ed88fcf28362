// A small typed HTTP client for the carehost API. Problem+json answers become CliErrors whose
// exit code follows the status: 422 (policy) → 3, everything else → 1.
import { CliError, exitCodes } from "./cli-errors.js";

type TProblem = { title?: string; detail?: string; status?: number; instance?: string; errors?: { message: string; location?: string }[] };

export type TApiClient = {
  readonly url: string;
  request<T>(method: string, path: string, body?: unknown): Promise<T>;
};

export const createApiClient = (url: string, token: string | undefined): TApiClient => ({
  url,
  request: async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    let response: Response;
    try {
      response = await fetch(`${url}${path}`, {
        method,
        headers: {
          accept: "application/json",
          ...(body === undefined ? {} : { "content-type": "application/json" }),
          ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new CliError(`cannot reach carehost at ${url} (${(error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message}); is \`carehost up\` running?`);
    }
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    const payload = text === "" ? undefined : (JSON.parse(text) as unknown);
    if (!response.ok) {
      const problem = (payload ?? {}) as TProblem;
      const hint = response.status === 401 ? " (run carehost login, or set CAREHOST_TOKEN)" : "";
      throw new CliError(
        `${problem.detail ?? problem.title ?? `HTTP ${response.status}`}${hint}`,
        response.status === 422 ? exitCodes.policy : exitCodes.failure,
        (problem.errors ?? []).map((error) => error.message),
      );
    }
    return payload as T;
  },
});
