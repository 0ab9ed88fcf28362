// `carehost login --sso ORG`: single sign-on from a terminal by the loopback redirect of RFC 8252
// (OAuth 2.0 for Native Apps, §7.3). The CLI listens on 127.0.0.1 on a port the system picks,
// asks the server to start a sign-in whose code comes back there, and shows the provider's URL to
// open in a browser. The provider sends the browser to the CLI's address; the CLI hands what it
// received (code, state, iss, or an error) to the server, which holds the PKCE verifier and the
// nonce, makes the exchange and checks the ID token, and answers with carehost's session. The CLI
// never sees the provider's tokens, and the client secret never leaves the server.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { TApiClient } from "./cli-client.js";
import { CliError, exitCodes } from "./cli-errors.js";

export type TSsoSession = {
  token: string;
  expiresAt: string;
  username: string;
  role: string;
  organization: string;
  roles: string[];
};

const CALLBACK_PATH = "/callback";
/** As long as the server keeps a started sign-in (identity-oidc.ts: 10 minutes). */
const DEFAULT_TIMEOUT_MS = 10 * 60_000;

const page = (title: string, text: string) =>
  `<!doctype html><meta charset="utf-8"><title>${title}</title><p>${text}</p>`;

export const ssoLogin = async (options: {
  client: TApiClient;
  organization: string;
  /** Shows the person the URL to open (prints it; a test follows it as the browser would). */
  announce: (authorizationUrl: string) => void | Promise<void>;
  timeoutMs?: number;
}): Promise<TSsoSession> => {
  let received: (query: string) => void = () => undefined;
  const arrived = new Promise<string>((resolve) => (received = resolve));
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://127.0.0.1");
    if (request.method !== "GET" || url.pathname !== CALLBACK_PATH) {
      response.writeHead(404, { "content-type": "text/html; charset=utf-8" }).end(page("Not found", "Not found."));
      return;
    }
    response
      .writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" })
      .end(page("carehost", "carehost received the sign-in; you may close this window and return to the terminal."));
    received(url.search.replace(/^\?/, ""));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    const { port } = server.address() as AddressInfo;
    const started = await options.client.request<{ authorizationUrl: string; expiresAt: string }>(
      "POST",
      "/api/auth/oidc/start",
      { organization: options.organization, redirectUri: `http://127.0.0.1:${port}${CALLBACK_PATH}` },
    );
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const timedOut = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new CliError(
              `no sign-in came back from the identity provider within ${Math.round(timeoutMs / 60_000)} minutes; run carehost login --sso ${options.organization} again`,
              exitCodes.failure,
            ),
          ),
        timeoutMs,
      );
    });
    const [query] = await Promise.all([Promise.race([arrived, timedOut]), options.announce(started.authorizationUrl)]);
    // An error from the provider goes to the server too: it ends the sign-in and audits why.
    return await options.client.request<TSsoSession>("POST", "/api/auth/oidc/callback", { parameters: query });
  } finally {
    clearTimeout(timer);
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
};
