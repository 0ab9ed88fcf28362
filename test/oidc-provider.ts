// A real OpenID Connect provider for tests: npm's oidc-provider (the certified implementation)
// in-process, over HTTPS on a loopback port with a certificate from loopback-tls.ts, which the
// relying party trusts through the fetch this fixture hands out (never by allowing insecure
// requests). Who signs in is chosen by the test: `signIn` plays the browser, following the
// provider's redirects with its cookies, and finishes the provider's login interaction as the
// account given, with the authentication methods (`amr`) given, then returns the URL the
// provider redirected to (carehost's callback, or the CLI's loopback address) without visiting it.
import { createHash, generateKeyPairSync } from "node:crypto";
import { readFile, rm } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import Provider from "oidc-provider";
import { Agent, fetch as undiciFetch } from "undici";
import { localhostCertificate } from "./loopback-tls.js";

export type TTestAccount = {
  readonly sub: string;
  readonly email: string;
  readonly email_verified?: boolean;
  readonly groups?: readonly string[];
  /** RFC 8176 methods the provider says it used; ["pwd"] when not given. */
  readonly amr?: readonly string[];
};

export type TTestClient = {
  readonly client_id: string;
  readonly client_secret: string;
  readonly redirect_uris: readonly string[];
};

export type TTestProvider = {
  readonly issuer: string;
  /** A fetch that trusts the provider's certificate (and nothing weaker than the usual checks). */
  readonly fetch: typeof undiciFetch;
  /** How many authorization codes the provider exchanged at its token endpoint. */
  readonly codesExchanged: () => number;
  /** Plays the browser from the authorization URL to the redirect back; returns that redirect's URL. */
  signIn(authorizationUrl: string, account: TTestAccount): Promise<URL>;
  /**
   * A real ID token the provider signs for another client (`client`), carrying `nonce`: what an
   * attacker holding a token for another application at the same provider would present.
   */
  idTokenFor(client: TTestClient, account: TTestAccount, nonce: string): Promise<string>;
  stop(): Promise<void>;
};

type TProviderInstance = {
  callback(): (req: unknown, res: unknown) => void;
  interactionDetails(req: unknown, res: unknown): Promise<{ uid: string; params: Record<string, string> }>;
  interactionFinished(req: unknown, res: unknown, result: unknown, options: unknown): Promise<void>;
  Grant: new (init: { accountId: string; clientId: string }) => {
    addOIDCScope(scope: string): void;
    save(): Promise<string>;
  };
  on(event: string, listener: (...args: unknown[]) => void): void;
};

type TProviderClass = new (issuer: string, configuration: Record<string, unknown>) => TProviderInstance;

export async function startOidcProvider(
  directory: string,
  options: { readonly clients: readonly TTestClient[]; readonly idTokenTtlSeconds?: number },
): Promise<TTestProvider> {
  const { certFile, keyFile } = await localhostCertificate(directory, "oidc-provider");
  const cert = await readFile(certFile);
  const key = await readFile(keyFile);
  const dispatcher = new Agent({ connect: { ca: cert } });
  const trustingFetch = ((input: Parameters<typeof undiciFetch>[0], init?: Parameters<typeof undiciFetch>[1]) =>
    undiciFetch(input, { ...init, dispatcher })) as typeof undiciFetch;

  const accounts = new Map<string, TTestAccount>();
  /** The account the next interaction signs in (signIn sets it before it follows the redirects). */
  let signingIn: TTestAccount | undefined;
  const signingKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" });

  let server: Server | undefined;
  await new Promise<void>((resolve) => {
    server = createServer({ cert, key });
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server!.address() as AddressInfo;
  const issuer = `https://localhost:${port}`;

  const ProviderClass = Provider as unknown as TProviderClass;
  const provider = new ProviderClass(issuer, {
    clients: options.clients.map((client) => ({
      ...client,
      redirect_uris: [...client.redirect_uris],
      // A native client may be sent back to a loopback address on any port (RFC 8252 §7.3).
      application_type: "native",
      grant_types: ["authorization_code"],
      response_types: ["code"],
    })),
    findAccount: (_ctx: unknown, sub: string) => {
      const account = accounts.get(sub);
      if (account === undefined) return undefined;
      return {
        accountId: sub,
        claims: () => ({
          sub,
          email: account.email,
          ...(account.email_verified === undefined ? {} : { email_verified: account.email_verified }),
          ...(account.groups === undefined ? {} : { groups: [...account.groups] }),
        }),
      };
    },
    // amr with the openid scope, as Entra ID and Okta send it unasked: carehost reads it for mfaRequired.
    claims: { openid: ["sub", "amr"], email: ["email", "email_verified"], profile: ["groups"] },
    // The claims the scopes grant go into the ID token, as Entra ID, Okta and Keycloak put them.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    pkce: { required: () => true },
    jwks: { keys: [{ ...signingKey, kid: "test-signing-key", use: "sig", alg: "RS256" }] },
    cookies: { keys: ["carehost-test-cookie-key"] },
    ttl: { IdToken: options.idTokenTtlSeconds ?? 3600 },
  });
  let exchanged = 0;
  provider.on("grant.success", () => (exchanged += 1));
  const handle = provider.callback();

  server!.on("request", (request: IncomingMessage, response: ServerResponse) => {
    if (!request.url?.startsWith("/interaction/")) {
      handle(request, response);
      return;
    }
    void (async () => {
      const details = await provider.interactionDetails(request, response);
      const account = signingIn;
      if (account === undefined) throw new Error("an interaction without an account to sign in");
      accounts.set(account.sub, account);
      const grant = new provider.Grant({ accountId: account.sub, clientId: details.params.client_id! });
      grant.addOIDCScope(details.params.scope ?? "openid");
      const grantId = await grant.save();
      await provider.interactionFinished(
        request,
        response,
        { login: { accountId: account.sub, amr: [...(account.amr ?? ["pwd"])] }, consent: { grantId } },
        { mergeWithLastSubmission: false },
      );
    })().catch((error: unknown) => {
      response.statusCode = 500;
      response.end(String(error));
    });
  });

  const signIn = async (authorizationUrl: string, account: TTestAccount): Promise<URL> => {
    signingIn = account;
    const cookies = new Map<string, string>();
    let url = new URL(authorizationUrl);
    for (let hop = 0; hop < 10; hop += 1) {
      const answer = await trustingFetch(url, {
        redirect: "manual",
        headers: { cookie: [...cookies].map(([name, value]) => `${name}=${value}`).join("; ") },
      });
      for (const line of answer.headers.getSetCookie()) {
        const [pair = ""] = line.split(";");
        const at = pair.indexOf("=");
        cookies.set(pair.slice(0, at), pair.slice(at + 1));
      }
      const location = answer.headers.get("location");
      await answer.body?.cancel();
      if (location === null)
        throw new Error(`the provider answered ${answer.status} at ${url.pathname} without a redirect`);
      url = new URL(location, url);
      if (url.origin !== issuer) return url;
    }
    throw new Error("the provider redirected more than 10 times");
  };

  const idTokenFor = async (client: TTestClient, account: TTestAccount, nonce: string): Promise<string> => {
    const verifier = "v".repeat(43);
    const challenge = createHash("sha256").update(verifier).digest("base64url");
    const redirectUri = client.redirect_uris[0]!;
    const authorize = new URL(`${issuer}/auth`);
    for (const [name, value] of Object.entries({
      client_id: client.client_id,
      response_type: "code",
      scope: "openid email profile",
      redirect_uri: redirectUri,
      nonce,
      state: "other-application",
      code_challenge: challenge,
      code_challenge_method: "S256",
    }))
      authorize.searchParams.set(name, value);
    const back = await signIn(authorize.href, account);
    const code = back.searchParams.get("code");
    if (code === null) throw new Error(`the provider gave the other client no code: ${back.href}`);
    const answer = await trustingFetch(`${issuer}/token`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        authorization: `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString("base64")}`,
      },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code,
        redirect_uri: redirectUri,
        code_verifier: verifier,
      }).toString(),
    });
    const body = (await answer.json()) as { id_token?: string };
    if (body.id_token === undefined)
      throw new Error(`the provider issued the other client no ID token (${answer.status})`);
    return body.id_token;
  };

  return {
    issuer,
    fetch: trustingFetch,
    codesExchanged: () => exchanged,
    signIn,
    idTokenFor,
    stop: async () => {
      server!.closeAllConnections();
      await new Promise((resolve) => server!.close(resolve));
      await dispatcher.close();
      await rm(join(directory), { recursive: true, force: true });
    },
  };
}
