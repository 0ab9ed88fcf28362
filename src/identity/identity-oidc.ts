// Single sign-on through an organization's OpenID Connect provider (the spec's identity.oidc):
// authorization code with PKCE, state and nonce, by openid-client. The provider is found by
// discovery from the issuer; the client secret comes from carehost's secret store
// (identity/<organization>/<clientSecretRef>). openid-client checks the ID token's issuer,
// audience, nonce, expiry and (enableNonRepudiationChecks) its signature against the issuer's JWKS;
// carehost then applies the organization's rules: a verified email address in allowedDomains, a
// second factor in `amr` where mfaRequired, and groups that map to roles. A person who passes is a
// carehost user linked to (issuer, subject), whose role bindings over the organization are set
// from the mapped groups at every sign-in, and gets carehost's ordinary session token.
//
// The sign-in's state lives in the database between start and callback (replicas share it); the
// first callback consumes it, so a replayed callback is refused before it reaches the provider.
import { createHash, randomUUID } from "node:crypto";
import * as oidc from "openid-client";
import type { TAuditEvent } from "../audit/audit-types.js";
import {
  ConflictError,
  DomainError,
  ForbiddenError,
  NotFoundError,
  RateLimitedError,
  UnauthenticatedError,
  UpstreamError,
  ValidationError,
} from "../lib/errors.js";
import type { TRequestContext, TRole } from "../lib/request-context.js";
import type { TSecretsService } from "../secrets/secrets-service.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import type { TSqlClient } from "../store/store-types.js";
import { identityStoreIn } from "./identity-store.js";
import { mintToken } from "./identity-tokens.js";
import type { TChangeAudit } from "./identity-types.js";
import { ssoUsernamePattern } from "./identity-usernames.js";
import { mostPrivilegedRole, oidcStoreFactory } from "./identity-oidc-store.js";

type TOidcSettings = NonNullable<TOrganizationSpec["identity"]["oidc"]>;

export type TOidcDeps = {
  db: Pick<TSqlClient, "query" | "transaction">;
  audit: TChangeAudit;
  /** The newest applied spec of every organization: whose provider, domains and mappings apply. */
  organizations: () => Promise<readonly TOrganizationSpec[]>;
  secrets: Pick<TSecretsService, "current">;
  /** Where the provider sends the browser back to: carehost's own GET /api/auth/oidc/callback. */
  callbackUrl: () => string;
  now?: () => Date;
  /**
   * How carehost reaches providers: Node's fetch (public roots and NODE_EXTRA_CA_CERTS) unless the
   * composition root passes another, as tests do to trust their provider's CA. Never a spec's choice.
   */
  fetch?: oidc.CustomFetch;
  /** A session's absolute lifetime, as for a password sign-in. */
  sessionHours: number;
};

/** How long a started sign-in waits for its callback. */
export const OIDC_LOGIN_TTL_MINUTES = 10;
/** Sign-ins one source address may have open at once: a start costs a row, and anyone may start one. */
export const OIDC_OPEN_LOGINS_PER_SOURCE = 20;
/** How long discovery metadata is kept before the issuer is asked again. */
const DISCOVERY_TTL_MS = 15 * 60_000;
const SCOPE = "openid email profile";

/**
 * `amr` values (RFC 8176) that show a factor beyond the password: "mfa" itself, a one-time
 * password, a hardware or software key, a smart card, proof of possession, or biometrics. SMS and
 * telephone codes are left out (NIST SP 800-63B restricts them): a provider that signs people in
 * with them alone does not meet mfaRequired here.
 */
export const SECOND_FACTOR_AMR = ["mfa", "otp", "hwk", "swk", "sc", "pop", "fpt", "face", "iris", "retina"] as const;

const sha256Hex = (value: string) => createHash("sha256").update(value).digest("hex");
const show = (value: unknown) => JSON.stringify(value) ?? String(value);

/** RFC 8252 §7.3: a native app's redirect is to a loopback IP literal on a port it chose, over plain http. */
const isLoopbackRedirect = (value: string): boolean => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  return (
    url.protocol === "http:" &&
    (url.hostname === "127.0.0.1" || url.hostname === "[::1]") &&
    url.port !== "" &&
    url.username === "" &&
    url.password === "" &&
    url.search === "" &&
    url.hash === ""
  );
};

/** A claim that lists groups: an array of strings, or one string; anything else is no groups. */
const groupsOf = (value: unknown): string[] =>
  typeof value === "string"
    ? [value]
    : Array.isArray(value)
      ? value.filter((item): item is string => typeof item === "string")
      : [];

const shortList = (values: readonly string[], most = 10): string =>
  values.length === 0
    ? "none"
    : values
        .slice(0, most)
        .map((value) => show(value.slice(0, 80)))
        .join(", ") + (values.length > most ? `, and ${values.length - most} more` : "");

/**
 * What openid-client's check said: its own message is generic ("unexpected JWT claim value
 * encountered"), the check that failed is in its cause ('unexpected JWT "aud" (audience) claim value').
 */
const checkFailed = (error: unknown): string => {
  const message = error instanceof Error ? error.message : String(error);
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : undefined;
  return cause === undefined || cause === message ? message : `${message} (${cause})`;
};

/** A refusal with the words for the person and the reason for the audit log (never a token). */
class SsoRefusal extends Error {
  constructor(
    readonly kind: "unauthenticated" | "forbidden" | "conflict",
    message: string,
    readonly claims: { subject?: string; email?: string } = {},
  ) {
    super(message);
  }
}

export const oidcServiceFactory = ({
  db,
  audit,
  organizations,
  secrets,
  callbackUrl,
  now = () => new Date(),
  fetch,
  sessionHours,
}: TOidcDeps) => {
  const store = oidcStoreFactory(db);
  const discovered = new Map<string, { metadata: oidc.ServerMetadata; at: number }>();
  const jwksCaches = new Map<string, oidc.ExportedJWKSCache>();

  const settingsOf = async (organization: string): Promise<{ spec: TOrganizationSpec; settings: TOidcSettings }> => {
    const spec = (await organizations()).find((candidate) => candidate.metadata.name === organization);
    const settings = spec?.identity.oidc;
    // The same words whether the organization is unknown or has no provider: a public route.
    if (!spec || !settings)
      throw new NotFoundError(
        `no organization named ${show(organization.slice(0, 63))} signs in through an identity provider (identity.oidc)`,
      );
    return { spec, settings };
  };

  const serverMetadata = async (issuer: string): Promise<oidc.ServerMetadata> => {
    const cached = discovered.get(issuer);
    if (cached && Date.now() - cached.at < DISCOVERY_TTL_MS) return cached.metadata;
    try {
      // discovery() checks that the document's issuer is the one asked for.
      const config = await oidc.discovery(new URL(issuer), "carehost-discovery", undefined, undefined, {
        ...(fetch === undefined ? {} : { [oidc.customFetch]: fetch }),
      });
      const metadata = config.serverMetadata();
      discovered.set(issuer, { metadata, at: Date.now() });
      return metadata;
    } catch (error) {
      throw new UpstreamError(
        `the identity provider ${issuer} could not be discovered (${issuer}/.well-known/openid-configuration): ${(error as Error).message}`,
        [],
        { cause: error },
      );
    }
  };

  /**
   * A client of the organization's provider. Built for each sign-in so that a rotated client secret
   * and carehost's clock are the current ones; the issuer's keys are kept between sign-ins.
   */
  const clientOf = async (organization: string, settings: TOidcSettings): Promise<oidc.Configuration> => {
    const metadata = await serverMetadata(settings.issuer);
    const secret =
      settings.clientSecretRef === undefined
        ? undefined
        : await secrets.current(`identity/${organization}/${settings.clientSecretRef}`).catch((error: unknown) => {
            if (error instanceof NotFoundError)
              throw new ValidationError(
                `organization ${organization}'s OIDC client secret is not stored: carehost secrets set identity/${organization}/${settings.clientSecretRef}`,
                [{ path: "identity.oidc.clientSecretRef", message: "no such secret in carehost's secret store" }],
              );
            throw error;
          });
    const methods = metadata.token_endpoint_auth_methods_supported;
    // client_secret_basic is the default a provider that lists nothing supports (OIDC Discovery §3).
    const auth =
      secret === undefined
        ? oidc.None()
        : methods === undefined || methods.includes("client_secret_basic")
          ? oidc.ClientSecretBasic(secret)
          : oidc.ClientSecretPost(secret);
    const config = new oidc.Configuration(
      metadata,
      settings.clientId,
      {
        ...(secret === undefined ? {} : { client_secret: secret }),
        // Expiry and issued-at are judged by carehost's clock (tests move it), within 30 s.
        [oidc.clockSkew]: Math.round((now().getTime() - Date.now()) / 1000),
      },
      auth,
    );
    if (fetch !== undefined) config[oidc.customFetch] = fetch;
    // The ID token's signature is checked against the issuer's JWKS, not only trusted because it
    // came over TLS: the record of who signed in rests on the provider's signature.
    oidc.enableNonRepudiationChecks(config);
    const jwks = jwksCaches.get(settings.issuer);
    if (jwks !== undefined) oidc.setJwksCache(config, jwks);
    return config;
  };

  const keepJwks = (issuer: string, config: oidc.Configuration) => {
    const jwks = oidc.getJwksCache(config);
    if (jwks !== undefined) jwksCaches.set(issuer, jwks);
  };

  const failed = (
    ctx: TRequestContext,
    organization: string,
    reason: string,
    details: { issuer?: string; subject?: string; email?: string } = {},
  ) =>
    audit.append(ctx, {
      type: "auth.sso.failed",
      outcome: "failure",
      target: `organization/${organization}`,
      payload: {
        organization,
        reason: reason.slice(0, 500),
        ...(details.issuer === undefined ? {} : { issuer: details.issuer.slice(0, 200) }),
        ...(details.subject === undefined ? {} : { subject: details.subject.slice(0, 200) }),
        ...(details.email === undefined ? {} : { email: details.email.slice(0, 200) }),
      },
    } as TAuditEvent);

  /** What the organization's rules make of the provider's claims: the username, email and roles, or a refusal. */
  const judgeClaims = (
    spec: TOrganizationSpec,
    settings: TOidcSettings,
    claims: Record<string, unknown>,
  ): { subject: string; email: string; roles: TRole[]; amr: string[] } => {
    const organization = spec.metadata.name;
    const subject = typeof claims.sub === "string" ? claims.sub : "";
    const email = typeof claims.email === "string" ? claims.email.trim().toLowerCase() : "";
    const who = { subject, ...(email === "" ? {} : { email }) };
    if (email === "")
      throw new SsoRefusal(
        "forbidden",
        `${settings.issuer} sent no email address for this account: carehost needs the email claim (scope "email") to know who signed in`,
        who,
      );
    if (claims.email_verified !== true)
      throw new SsoRefusal(
        "forbidden",
        `${settings.issuer} does not vouch for the email address ${email} (email_verified is ${show(claims.email_verified ?? null)}, not true): carehost admits only verified addresses`,
        who,
      );
    const domain = email.slice(email.lastIndexOf("@") + 1);
    const allowed = settings.allowedDomains.map((candidate) => candidate.toLowerCase());
    if (!email.includes("@") || !allowed.includes(domain))
      throw new SsoRefusal(
        "forbidden",
        `the email domain ${show(domain)} of ${email} is not one of organization ${organization}'s identity.oidc.allowedDomains (${allowed.join(", ")})`,
        who,
      );
    if (!ssoUsernamePattern.test(email))
      throw new SsoRefusal(
        "forbidden",
        `the email address ${show(email.slice(0, 80))} cannot name a carehost user`,
        who,
      );
    const amr = Array.isArray(claims.amr) ? claims.amr.filter((item): item is string => typeof item === "string") : [];
    if (spec.identity.mfaRequired && !amr.some((method) => (SECOND_FACTOR_AMR as readonly string[]).includes(method)))
      throw new SsoRefusal(
        "forbidden",
        `organization ${organization} requires a second factor (identity.mfaRequired: true), but ${settings.issuer}'s ID token ${
          claims.amr === undefined
            ? "carries no amr claim"
            : `shows amr [${amr.join(", ")}], none of which is a second factor`
        }: it needs one of ${SECOND_FACTOR_AMR.join(", ")}. Require MFA for carehost at the provider`,
        who,
      );
    const groups = groupsOf(claims[settings.groupsClaim]);
    const roles = [
      ...new Set(
        settings.roleMappings.filter((mapping) => groups.includes(mapping.group)).map((mapping) => mapping.role),
      ),
    ].sort();
    if (roles.length === 0)
      throw new SsoRefusal(
        "forbidden",
        `none of ${email}'s groups maps to a carehost role over organization ${organization}: the ${show(settings.groupsClaim)} claim holds ${shortList(groups)}, and identity.oidc.roleMappings names ${shortList([...new Set(settings.roleMappings.map((mapping) => mapping.group))])}`,
        who,
      );
    return { subject, email, roles, amr };
  };

  return {
    /**
     * Starts a sign-in: the URL to send the person to. Without `redirectUri` the provider sends
     * them back to carehost's own callback (the web flow); the CLI passes its loopback address.
     * Not audited on its own: what the sign-in comes to (success or refusal) is.
     */
    start: async (
      ctx: TRequestContext,
      input: { organization: string; redirectUri?: string },
    ): Promise<{ authorizationUrl: string; expiresAt: Date }> => {
      if (input.redirectUri !== undefined && !isLoopbackRedirect(input.redirectUri))
        throw new ValidationError(
          `redirectUri ${show(input.redirectUri.slice(0, 200))} is not a loopback address: only carehost's own callback or http://127.0.0.1:<port>/… (the CLI, RFC 8252) may receive a code`,
          [{ path: "redirectUri", message: "http://127.0.0.1:<port>/<path> or http://[::1]:<port>/<path>" }],
        );
      const { settings } = await settingsOf(input.organization);
      const at = now();
      const expiresAt = new Date(at.getTime() + OIDC_LOGIN_TTL_MINUTES * 60_000);
      const open = await store.openLoginsFrom(
        ctx.sourceAddress,
        new Date(at.getTime() - OIDC_LOGIN_TTL_MINUTES * 60_000),
      );
      if (open >= OIDC_OPEN_LOGINS_PER_SOURCE)
        throw new RateLimitedError(
          `${open} sign-ins from this address are waiting for their provider; finish one or try again in ${OIDC_LOGIN_TTL_MINUTES} minutes`,
          OIDC_LOGIN_TTL_MINUTES * 60,
        );
      const config = await clientOf(input.organization, settings);
      const state = oidc.randomState();
      const nonce = oidc.randomNonce();
      const codeVerifier = oidc.randomPKCECodeVerifier();
      const redirectUri = input.redirectUri ?? callbackUrl();
      await store.forgetOldLogins(at);
      await store.insertLogin({
        stateSha256: sha256Hex(state),
        organization: input.organization,
        issuer: settings.issuer,
        clientId: settings.clientId,
        nonce,
        codeVerifier,
        redirectUri,
        createdFrom: ctx.sourceAddress,
        createdAt: at,
        expiresAt,
      });
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope: SCOPE,
        state,
        nonce,
        code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: "S256",
      });
      return { authorizationUrl: url.href, expiresAt };
    },

    /**
     * Completes a sign-in from the parameters the provider sent to the redirect URI (code, state,
     * iss, or an error): carehost's session for the person, or a refusal that is audited.
     */
    complete: async (
      ctx: TRequestContext,
      parameters: URLSearchParams,
    ): Promise<{
      token: string;
      expiresAt: Date;
      username: string;
      role: TRole;
      organization: string;
      roles: TRole[];
    }> => {
      const state = parameters.get("state");
      if (state === null || state === "")
        throw new ValidationError("the callback carries no state: start the sign-in again", [
          { path: "state", message: "required" },
        ]);
      const at = now();
      const consumed = await db.transaction((tx) => oidcStoreFactory(tx).consumeLogin(sha256Hex(state), at));
      if (consumed.outcome !== "consumed") {
        const organization = consumed.outcome === "unknown" ? "(unknown)" : consumed.login.organization;
        const reason =
          consumed.outcome === "unknown"
            ? "the callback's state names no sign-in carehost started (or one forgotten a day after it expired)"
            : consumed.outcome === "expired"
              ? `the sign-in expired at ${consumed.login.expiresAt.toISOString()} (${OIDC_LOGIN_TTL_MINUTES} minutes after it started)`
              : `the sign-in was already completed at ${consumed.consumedAt.toISOString()}: a replayed callback`;
        await failed(
          ctx,
          organization,
          reason,
          consumed.outcome === "unknown" ? {} : { issuer: consumed.login.issuer },
        );
        throw new UnauthenticatedError(`${reason}; start the sign-in again`);
      }
      const { login } = consumed;
      const organization = login.organization;
      const refuse = async (refusal: SsoRefusal): Promise<never> => {
        await failed(ctx, organization, refusal.message, { issuer: login.issuer, ...refusal.claims });
        const Refusal =
          refusal.kind === "forbidden"
            ? ForbiddenError
            : refusal.kind === "conflict"
              ? ConflictError
              : UnauthenticatedError;
        throw new Refusal(refusal.message);
      };

      const { spec, settings } = await settingsOf(organization).catch(async (error: unknown) => {
        if (error instanceof NotFoundError)
          await refuse(
            new SsoRefusal("unauthenticated", `organization ${organization} no longer declares identity.oidc`),
          );
        throw error;
      });
      if (settings.issuer !== login.issuer || settings.clientId !== login.clientId)
        await refuse(
          new SsoRefusal(
            "unauthenticated",
            `organization ${organization}'s identity.oidc changed (issuer or clientId) while this sign-in was under way; start it again`,
          ),
        );

      const config = await clientOf(organization, settings);
      const callback = new URL(login.redirectUri);
      for (const [name, value] of parameters) callback.searchParams.append(name, value);
      let claims: Record<string, unknown>;
      try {
        const tokens = await oidc.authorizationCodeGrant(config, callback, {
          pkceCodeVerifier: login.codeVerifier,
          expectedState: state,
          expectedNonce: login.nonce,
          idTokenExpected: true,
        });
        keepJwks(settings.issuer, config);
        claims = { ...(tokens.claims() ?? {}) };
        const subject = typeof claims.sub === "string" ? claims.sub : undefined;
        // Some providers put email or groups in userinfo only; the ID token's own claims win.
        if (
          subject !== undefined &&
          (claims.email === undefined || claims[settings.groupsClaim] === undefined) &&
          config.serverMetadata().userinfo_endpoint !== undefined
        ) {
          const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, subject);
          claims = { ...userinfo, ...claims };
        }
      } catch (error) {
        if (error instanceof DomainError) throw error;
        // The provider not answering is no verdict on the person: a 502, as discovery's failure is.
        if (
          error instanceof Error &&
          ((error instanceof TypeError && error.message === "fetch failed") ||
            error.name === "TimeoutError" ||
            error.name === "AbortError")
        )
          throw new UpstreamError(
            `${settings.issuer} could not be reached to complete the sign-in (${checkFailed(error)}); try again`,
          );
        const reason =
          error instanceof oidc.AuthorizationResponseError
            ? `${settings.issuer} refused the sign-in: ${error.error}${error.error_description ? ` (${error.error_description})` : ""}`
            : error instanceof oidc.ResponseBodyError
              ? `${settings.issuer}'s token endpoint refused the code: ${error.error}${error.error_description ? ` (${error.error_description})` : ""}`
              : `the ID token or the token response from ${settings.issuer} failed a check: ${checkFailed(error)}`;
        return refuse(new SsoRefusal("unauthenticated", reason));
      }

      let judged: ReturnType<typeof judgeClaims>;
      try {
        judged = judgeClaims(spec, settings, claims);
      } catch (error) {
        if (error instanceof SsoRefusal) return refuse(error);
        throw error;
      }
      const { subject, email, roles, amr } = judged;
      const username = email;
      const minted = mintToken();
      const expiresAt = new Date(at.getTime() + sessionHours * 3_600_000);
      const by = `oidc:${settings.issuer}`.slice(0, 200);
      const target = `user:${username}`;
      const userCtxOf = (userId: string, name: string, role: TRole): TRequestContext => ({
        ...ctx,
        actor: {
          kind: "user",
          userId,
          username: name,
          role,
          bindings: roles.map((bound) => ({ role: bound, organization })),
          tokenId: minted.id,
        },
      });
      // The username is the email address at the first sign-in; it stays when the address changes later.
      type TOutcome = { refused: SsoRefusal } | { refused?: undefined; role: TRole; username: string };
      const { result } = await audit.recordChange<TOutcome>(ctx, async (tx) => {
        const inTx = oidcStoreFactory(tx);
        const events: { ctx: TRequestContext; event: TAuditEvent }[] = [];
        let linked = await inTx.lockLinkedUser(settings.issuer, subject);
        if (linked?.disabled)
          return {
            result: { refused: new SsoRefusal("forbidden", `user ${linked.username} is disabled`, { subject, email }) },
            events: [],
          };
        const userId = linked?.userId ?? randomUUID();
        const firstRole = mostPrivilegedRole(roles)!;
        if (linked === undefined) {
          // Never linked by email: another provider vouching for the same address is another account.
          if (await inTx.usernameTaken(username))
            return {
              result: {
                refused: new SsoRefusal(
                  "conflict",
                  `the username ${username} belongs to another carehost user (a different provider account or issuer); a platform-admin must disable or rename it before ${settings.issuer} can sign this person in`,
                  { subject, email },
                ),
              },
              events: [],
            };
          await inTx.insertLinkedUser({
            id: userId,
            username,
            role: firstRole,
            issuer: settings.issuer,
            subject,
            email,
            at,
            createdBy: by,
          });
          linked = { userId, username, disabled: false };
          events.push({
            ctx,
            event: {
              type: "user.created",
              outcome: "success",
              target,
              payload: { username, role: firstRole, organizations: [organization], identityProvider: settings.issuer },
            },
          });
        } else {
          await inTx.touchIdentity(settings.issuer, subject, email, at);
        }
        const changed = await inTx.setOrganizationBindings(userId, organization, roles, at, by);
        const shown = await inTx.showMostPrivilegedRole(userId, firstRole);
        for (const role of changed.added)
          events.push({
            ctx,
            event: {
              type: "user.access_granted",
              outcome: "success",
              target,
              payload: { username: linked.username, role, organizations: [organization] },
            },
          });
        for (const role of changed.removed)
          events.push({
            ctx,
            event: {
              type: "user.access_revoked",
              outcome: "success",
              target,
              payload: { username: linked.username, role, organizations: [organization] },
            },
          });
        await identityStoreIn(tx).insertToken({
          id: minted.id,
          userId,
          kind: "session",
          name: null,
          secretSha256: minted.secretSha256,
          createdAt: at,
          createdFrom: ctx.sourceAddress,
          expiresAt,
          // The provider vouched for a second factor (RFC 8176 amr): the session has passed one.
          secondFactor: amr.some((method) => (SECOND_FACTOR_AMR as readonly string[]).includes(method))
            ? "provider"
            : null,
        });
        events.push({
          ctx: userCtxOf(userId, linked.username, shown),
          event: {
            type: "auth.sso.succeeded",
            outcome: "success",
            target,
            payload: {
              username: linked.username,
              organization,
              issuer: settings.issuer,
              subject: subject.slice(0, 200),
              sessionId: minted.id,
              expiresAt: expiresAt.toISOString(),
              roles,
              amr: amr.slice(0, 20).map((method) => method.slice(0, 50)),
            },
          },
        });
        return { result: { role: shown, username: linked.username }, events };
      });
      if (result.refused !== undefined) return refuse(result.refused);
      return { token: minted.token, expiresAt, username: result.username, role: result.role, organization, roles };
    },
  };
};

export type TOidcService = ReturnType<typeof oidcServiceFactory>;
