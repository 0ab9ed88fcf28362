import { randomUUID } from "node:crypto";
import type { TAuditEvent, TAuditEventUnder, TAuditPayloads } from "../audit/audit-types.js";
import {
  ConflictError,
  ForbiddenError,
  NotFoundError,
  PolicyViolation,
  RateLimitedError,
  UnauthenticatedError,
  ValidationError,
} from "../lib/errors.js";
import {
  ALL_ORGANIZATIONS,
  actorName,
  roles,
  systemContext,
  type TRequestContext,
  type TRole,
} from "../lib/request-context.js";
import { DNS_LABEL_PATTERN } from "../spec/spec-formats.js";
import type { TSqlClient } from "../store/store-types.js";
import {
  checkPasswordPolicy,
  dummyPasswordHash,
  generatePassword,
  hashPassword,
  passwordHashIsOutdated,
  verifyPassword,
} from "./identity-passwords.js";
import { authorize } from "./identity-permissions.js";
import { localUsernamePattern, usernamePattern } from "./identity-usernames.js";
import { defaultLoginLimits } from "./identity-login-limits.js";
import {
  identityStoreFactory,
  identityStoreIn,
  type TIdentityStore,
  type TLoginFailureSummary,
  type TStoredUser,
} from "./identity-store.js";
import {
  BOOTSTRAP_ADMIN,
  breakGlassBy,
  identityRulesOf,
  platformEnforcementOf,
  secondFactorRequiredBy,
} from "./identity-rules.js";
import { identityMfaFactory, type TSessionOpening } from "./identity-mfa-service.js";
import type { TMasterKey } from "../secrets/secrets-master-key.js";
import type { TIdentityRules, TOrganizationIdentityRules } from "./identity-rules.js";
import {
  apiTokenLifetimeDays,
  lastUsedPrecisionMs,
  mintToken,
  parseToken,
  secretMatches,
  shouldRecordUse,
  tokenRejection,
} from "./identity-tokens.js";
import type {
  TChangeAudit,
  TIdentityAuditEventType,
  TLoginLimits,
  TLoginResult,
  TSession,
  TSessionLimits,
  TTokenInfo,
  TUser,
} from "./identity-types.js";

type TIdentityServiceDeps = {
  db: Pick<TSqlClient, "query" | "transaction">;
  audit: TChangeAudit;
  /** Seals each user's TOTP secret (AES-256-GCM envelope, as every secret at rest). */
  masterKey: TMasterKey;
  now?: () => Date;
  loginLimits?: Partial<TLoginLimits>;
  sessionLimits?: Partial<TSessionLimits>;
  /**
   * The identity settings of the recorded organizations, read on each sign-in and request: every
   * replica reads the same database, so a spec applied on one tightens sessions on all at once.
   */
  organizationRules?: () => Promise<readonly TOrganizationIdentityRules[]>;
};

/** Windows one login-failure sweep summarises at most, so its transaction stays short in a flood. */
export const LOGIN_SUMMARY_BATCH = 200;

export const defaultSessionLimits: TSessionLimits = { absoluteHours: 12, idleMinutes: 30 };

// The same words for every refusal, so a caller cannot tell an unknown user from a wrong
// password, a disabled account, or an expired token. The audit event records the real reason.
const loginRefused = "invalid username or password";
const tokenRefused = "invalid or expired credentials";

const tokenNamePattern = /^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/;
const tokenIdPattern = /^[0-9a-f]{24}$/;

const normalizeUsername = (username: string): string => username.trim().toLowerCase();

const checkUsername = (username: string): string => {
  const normalized = normalizeUsername(username);
  if (!usernamePattern.test(normalized)) {
    throw new ValidationError(`username ${JSON.stringify(username)} is not valid`, [
      { path: "username", message: "2-64 characters: a letter, then letters, digits, '.', '_' or '-'" },
    ]);
  }
  return normalized;
};

/** A name for a new local user: never an email address, which names people who sign in through a provider. */
const checkLocalUsername = (username: string): string => {
  const normalized = checkUsername(username);
  if (!localUsernamePattern.test(normalized))
    throw new ValidationError(
      `username ${JSON.stringify(username)} is an email address: those name people who sign in through their organization's identity provider, and are made at their first sign-in`,
      [{ path: "username", message: "2-64 characters: a letter, then letters, digits, '.', '_' or '-'" }],
    );
  return normalized;
};

const checkRole = (role: string): TRole => {
  if (!(roles as readonly string[]).includes(role)) {
    throw new ValidationError(`role ${JSON.stringify(role)} is not one of ${roles.join(", ")}`, [
      { path: "role", message: "unknown role" },
    ]);
  }
  return role as TRole;
};

/** Each organization a DNS label (an organization's metadata.name) or "*" for every one; at least one. */
const checkOrganizations = (organizations: readonly string[]): string[] => {
  const problems = organizations.flatMap((organization, index) =>
    organization === ALL_ORGANIZATIONS || DNS_LABEL_PATTERN.test(organization)
      ? []
      : [
          {
            path: `organizations.${index}`,
            message: `${JSON.stringify(organization.slice(0, 80))} is not an organization name (a DNS label) or "*"`,
          },
        ],
  );
  if (problems.length > 0) throw new ValidationError('organizations must be organization names or "*"', problems);
  if (organizations.length === 0)
    throw new ValidationError('name the organizations the role covers (--org a,b, or "*" for every one)', [
      { path: "organizations", message: "at least one" },
    ]);
  return [...new Set(organizations)].sort();
};

const publicUser = ({ passwordHash: _hash, ...user }: TStoredUser): TUser => user;

// Targets and messages name a user or token only when the input is well-formed: a malformed one may
// be a password typed into the wrong field or a whole token pasted where its id belongs, and the
// audit log keeps whatever it is given for good.
const userTarget = (username: string) => {
  const normalized = normalizeUsername(username);
  return `user:${usernamePattern.test(normalized) ? normalized : "(invalid username)"}`;
};
const shownTokenId = (id: string) => (tokenIdPattern.test(id) ? id : "(invalid id)");
const tokenTarget = (id: string) => `token:${shownTokenId(id)}`;

const checkTokenName = (name: string): void => {
  if (!tokenNamePattern.test(name)) {
    throw new ValidationError(`token name ${JSON.stringify(name)} is not valid`, [
      { path: "name", message: "1-64 characters: letters, digits, space, '.', '_' or '-'" },
    ]);
  }
};

export const identityServiceFactory = ({
  db,
  audit,
  masterKey,
  now = () => new Date(),
  loginLimits,
  sessionLimits,
  organizationRules = async () => [],
}: TIdentityServiceDeps) => {
  const store = identityStoreFactory(db);
  const limits: TLoginLimits = { ...defaultLoginLimits, ...loginLimits };
  // The fixed limits; an organization may shorten the idle timeout (identity-rules.ts), never lengthen it.
  const fixedSession: TSessionLimits = { ...defaultSessionLimits, ...sessionLimits };
  const rulesNow = async (): Promise<TIdentityRules> => identityRulesOf(fixedSession, await organizationRules());
  const refusedBy = (rules: TIdentityRules) => rules.localUsersRefusedBy.map((name) => JSON.stringify(name)).join(", ");

  const eventOf = <K extends TIdentityAuditEventType>(
    type: K,
    outcome: "success" | "denied" | "failure",
    target: string,
    payload: TAuditPayloads[K],
  ) => ({ type, outcome, target, payload }) as TAuditEvent;

  /**
   * Appends an observation that changes no row: a refusal, a rejected token. A change to users,
   * bindings, tokens or sign-in attempts goes through `change` instead.
   */
  const record = <K extends TIdentityAuditEventType>(
    ctx: TRequestContext,
    type: K,
    outcome: "success" | "denied" | "failure",
    target: string,
    payload: TAuditPayloads[K],
  ) => audit.append(ctx, eventOf(type, outcome, target, payload));

  /**
   * Runs a change on the store and writes the audit events it returns in the same transaction, so
   * an append that fails (a crash, a payload the log refuses) leaves the change undone, never
   * unaudited. Password hashing belongs before it: the transaction holds its locks meanwhile.
   */
  const change = async <T>(
    ctx: TRequestContext,
    work: (
      inTransaction: TIdentityStore,
    ) => Promise<{ result: T; events: readonly (TAuditEvent | TAuditEventUnder)[] }>,
  ): Promise<T> => (await audit.recordChange(ctx, (tx) => work(identityStoreIn(tx)))).result;

  /** The acting user, for actions that only make sense for a person (their own tokens, logout). */
  const actingUser = (ctx: TRequestContext) => {
    if (ctx.actor.kind !== "user")
      throw new ValidationError(`${actorName(ctx.actor)} is not a user and holds no tokens`);
    return ctx.actor;
  };

  const summaryEvent = (summary: TLoginFailureSummary) =>
    eventOf(
      "auth.login.failures",
      "failure",
      summary.username === null ? `source:${summary.sourceAddress}` : userTarget(summary.username),
      {
        username: summary.username,
        failed: summary.failed,
        rateLimited: summary.rateLimited,
        windowStart: summary.windowStart.toISOString(),
        windowSeconds: limits.windowSeconds,
        firstAt: summary.firstAt.toISOString(),
        lastAt: summary.lastAt.toISOString(),
      },
    );

  /**
   * One audit entry per closed window for the attempts that were not audited on their own, for at
   * most `limit` windows (the oldest first) in one transaction. The server's timer runs it, never a
   * sign-in: a sign-in costs the same however many sources have windows waiting, and a window
   * closes in the log even once guessing stops. A window's claim commits with its summary: one the
   * log refuses stays pending for the next sweep, and nothing is counted twice. Each entry is
   * recorded under the source address it summarises.
   */
  const summariseLoginFailures = async (at: Date, limit: number): Promise<number> => {
    if (!Number.isInteger(limit) || limit < 1)
      throw new ValidationError(`a login-failure sweep takes at least one window, not ${String(limit)}`);
    const monitor = systemContext("login-monitor");
    const summarised = await change(monitor, async (inTransaction) => {
      // Another replica is sweeping: its transaction holds the windows, and this tick has nothing to add.
      if (!(await inTransaction.takeLoginSweep())) return { result: 0, events: [] };
      const summaries = await inTransaction.claimClosedLoginWindows(at, limits.windowSeconds, limit);
      return {
        result: summaries.length,
        events: summaries.map((summary) => ({
          ctx: { ...monitor, sourceAddress: summary.sourceAddress },
          event: summaryEvent(summary),
        })),
      };
    });
    await store.forgetOldLoginAttempts(at, limits.windowSeconds);
    return summarised;
  };

  type TIssuedToken = { id: string; token: string; name: string; createdAt: Date; expiresAt: Date };
  type TBootstrapped =
    { created: true; username: "admin"; password: string; cliToken?: TIssuedToken } | { created: false };

  /** Days a new API token of `role` lives: the role's default, or what was asked within its maximum. */
  const tokenLifetimeDays = (role: TRole, asked: number | undefined): number => {
    const lifetime = apiTokenLifetimeDays[role];
    if (asked === undefined) return lifetime.default;
    if (!Number.isInteger(asked) || asked < 1) {
      throw new ValidationError("expiresInDays must be a whole number of days, at least 1", [
        { path: "expiresInDays", message: `got ${String(asked)}` },
      ]);
    }
    if (asked > lifetime.max) {
      throw new ValidationError(
        `expiresInDays ${asked} is more than the ${lifetime.max} days an API token of a ${role} may live`,
        [{ path: "expiresInDays", message: `at most ${lifetime.max} for the role ${role}` }],
      );
    }
    return asked;
  };

  type TTokenOwner = { userId: string; username: string; role: TRole };
  type TPreparedToken = { owner: TTokenOwner; issued: TIssuedToken; secretSha256: string };

  /** Mints an API token for `owner` without storing it: its name and lifetime are checked here. */
  const prepareApiToken = (owner: TTokenOwner, input: { name: string; expiresInDays?: number }): TPreparedToken => {
    checkTokenName(input.name);
    const days = tokenLifetimeDays(owner.role, input.expiresInDays);
    const createdAt = now();
    const expiresAt = new Date(createdAt.getTime() + days * 86_400_000);
    const minted = mintToken();
    return {
      owner,
      issued: { id: minted.id, token: minted.token, name: input.name, createdAt, expiresAt },
      secretSha256: minted.secretSha256,
    };
  };

  /** Stores a prepared token on `inTransaction` and returns its audit event. */
  const storeApiToken = async (
    inTransaction: TIdentityStore,
    ctx: TRequestContext,
    { owner, issued, secretSha256 }: TPreparedToken,
  ): Promise<TAuditEvent> => {
    const inserted = await inTransaction.insertToken({
      id: issued.id,
      userId: owner.userId,
      kind: "api",
      name: issued.name,
      secretSha256,
      createdAt: issued.createdAt,
      createdFrom: ctx.sourceAddress,
      expiresAt: issued.expiresAt,
    });
    if (inserted === "name-taken")
      throw new ConflictError(`you already have an active token named ${JSON.stringify(issued.name)}`);
    return eventOf("token.created", "success", tokenTarget(issued.id), {
      tokenId: issued.id,
      name: issued.name,
      owner: owner.username,
      expiresAt: issued.expiresAt.toISOString(),
    });
  };

  /**
   * Mints an API token for `owner` on `inTransaction` and returns it with its audit event; the
   * secret is in the result once and never again.
   */
  const issueApiToken = async (
    inTransaction: TIdentityStore,
    ctx: TRequestContext,
    owner: TTokenOwner,
    input: { name: string; expiresInDays?: number },
  ): Promise<{ issued: TIssuedToken; event: TAuditEvent }> => {
    const prepared = prepareApiToken(owner, input);
    return { issued: prepared.issued, event: await storeApiToken(inTransaction, ctx, prepared) };
  };

  /** The stored token `bearer` names when it is the named API token of an enabled user, revoked or not. */
  const findLocalCliToken = async (bearer: string, name: string) => {
    const parsed = parseToken(bearer);
    const token = parsed && (await store.findToken(parsed.id));
    if (!parsed || !token || !secretMatches(parsed.secret, token.secretSha256)) return undefined;
    if (token.kind !== "api" || token.name !== name || token.user.disabledAt) return undefined;
    return token;
  };

  /**
   * Issues the session a sign-in earned (its password, and its second factor where one was asked)
   * and settles its attempt as succeeded. The absolute lifetime is the rules' at this moment.
   */
  const openSession = async (
    ctx: TRequestContext,
    user: TStoredUser,
    opening: TSessionOpening & { rehashed?: string },
  ): Promise<TSession> => {
    const at = now();
    const rules = await rulesNow();
    const minted = mintToken();
    const expiresAt = new Date(at.getTime() + rules.session.absoluteHours * 3_600_000);
    const userCtx: TRequestContext = {
      ...ctx,
      actor: {
        kind: "user",
        userId: user.id,
        username: user.username,
        role: user.role,
        bindings: await store.activeBindings(user.id),
        tokenId: minted.id,
      },
    };
    const factor = opening.secondFactor === null ? {} : { secondFactor: opening.secondFactor };
    const signedIn =
      opening.breakGlassReason !== null
        ? eventOf("auth.login.break_glass", "success", userTarget(user.username), {
            username: user.username,
            sessionId: minted.id,
            expiresAt: expiresAt.toISOString(),
            localUsersRefusedBy: [...rules.localUsersRefusedBy],
            oidcConfiguredBy: [...rules.oidcConfiguredBy],
            severity: "alert",
            reason: opening.breakGlassReason,
            ...factor,
          })
        : eventOf("auth.login.succeeded", "success", userTarget(user.username), {
            username: user.username,
            sessionId: minted.id,
            expiresAt: expiresAt.toISOString(),
            ...factor,
          });
    // The session exists only with its entry: no working token the log does not know of.
    await change(userCtx, async (inTransaction) => {
      await inTransaction.markLoginSucceeded(opening.attemptId);
      if (opening.rehashed !== undefined) await inTransaction.setPasswordHash(user.id, opening.rehashed);
      await inTransaction.insertToken({
        id: minted.id,
        userId: user.id,
        kind: "session",
        name: null,
        secretSha256: minted.secretSha256,
        createdAt: at,
        createdFrom: ctx.sourceAddress,
        expiresAt,
        secondFactor: opening.secondFactor,
      });
      return { result: undefined, events: [signedIn] };
    });
    return {
      kind: "session",
      token: minted.token,
      expiresAt,
      user: publicUser(user),
      secondFactor: opening.secondFactor,
      ...(opening.recoveryCodes === undefined ? {} : { recoveryCodes: opening.recoveryCodes }),
      ...(opening.recoveryCodesLeft === undefined ? {} : { recoveryCodesLeft: opening.recoveryCodesLeft }),
    };
  };

  const mfa = identityMfaFactory({ db, audit, masterKey, now, openSession });

  return {
    /**
     * Creates `admin` with a random password on the first start only; the caller shows it once.
     * With `cliTokenName`, also mints an API token for admin that `carehost up` keeps (mode 0600)
     * in the data dir, so the local CLI works without a login step.
     */
    bootstrapAdmin: async (ctx: TRequestContext, options: { cliTokenName?: string } = {}): Promise<TBootstrapped> => {
      // Before admin exists: once it does, a refusal here would lose the only copy of its password.
      if (options.cliTokenName !== undefined) checkTokenName(options.cliTokenName);
      // Cheap check first so ordinary restarts do not pay for an argon2 hash.
      if (await store.bootstrapped()) return { created: false };
      const password = generatePassword();
      const passwordHash = await hashPassword(password);
      // Admin, its CLI token and their entries commit together: a failure leaves no admin whose
      // password nobody was shown, and the next start tries again.
      return change<TBootstrapped>(ctx, async (inTransaction) => {
        const admin = await inTransaction.bootstrapAdmin({
          id: randomUUID(),
          username: "admin",
          role: "platform-admin",
          organizations: [ALL_ORGANIZATIONS],
          passwordHash,
          createdAt: now(),
          createdBy: actorName(ctx.actor),
        });
        if (!admin) return { result: { created: false }, events: [] };
        const created = eventOf("user.created", "success", userTarget(admin.username), {
          username: admin.username,
          role: admin.role,
          organizations: [ALL_ORGANIZATIONS],
          bootstrap: true,
        });
        if (options.cliTokenName === undefined)
          return { result: { created: true, username: "admin", password }, events: [created] };
        const cli = await issueApiToken(
          inTransaction,
          ctx,
          { userId: admin.id, username: admin.username, role: admin.role },
          { name: options.cliTokenName },
        );
        return {
          result: { created: true, username: "admin", password, cliToken: cli.issued },
          events: [created, cli.event],
        };
      });
    },

    /**
     * Keeps the API token `carehost up` wrote for the local CLI alive: once less than a third of its
     * lifetime is left, or it has expired, a new one for the same user (the role's default lifetime)
     * replaces it and the old one is revoked. The server holds the token's file and calls this at
     * start and on a timer, so `carehost` on the host goes on working past any one token's lifetime.
     * Nothing is renewed (undefined) while the token has time left, nor for a token revoked on purpose,
     * one whose user is disabled, or one that is not the named API token.
     *
     * `keep` stores the new token before anything is committed (the server writes it beside the
     * token file): if `keep` fails, nothing changes and the old token goes on working; if the commit
     * fails or is refused, the kept copy names a token that does not exist, which
     * isCurrentLocalCliToken tells apart from one that does.
     */
    renewLocalCliToken: async (
      ctx: TRequestContext,
      bearer: string,
      name: string,
      keep: (issued: TIssuedToken) => Promise<void>,
    ): Promise<TIssuedToken | undefined> => {
      const token = await findLocalCliToken(bearer, name);
      if (!token || token.revokedAt) return undefined;
      const at = now();
      const lifetimeMs = token.expiresAt.getTime() - token.createdAt.getTime();
      if (token.expiresAt.getTime() - at.getTime() > lifetimeMs / 3) return undefined;
      const owner = { userId: token.user.id, username: token.user.username, role: token.user.role };
      const prepared = prepareApiToken(owner, { name });
      await keep(prepared.issued);
      // Revoked first: the name is free again for the new token, and the old one is dead once replaced.
      // Both, with their entries, in one transaction: a failure keeps the old token working.
      return change<TIssuedToken | undefined>(ctx, async (inTransaction) => {
        // Checked again under the user's lock: a disable or a revocation since the read above wins,
        // and no successor is issued for a token someone else meant to end.
        const user = await inTransaction.lockUserForTokens(token.user.id);
        if (!user || user.disabled) return { result: undefined, events: [] };
        if (!(await inTransaction.revokeToken(token.id, at, actorName(ctx.actor))))
          return { result: undefined, events: [] };
        const created = await storeApiToken(inTransaction, ctx, prepared);
        const revokedEvent = eventOf("token.revoked", "success", tokenTarget(token.id), {
          tokenId: token.id,
          kind: token.kind,
          name: token.name,
          owner: token.user.username,
        });
        return { result: prepared.issued, events: [revokedEvent, created] };
      });
    },

    /**
     * Whether `bearer` is the named API token and not revoked: what a renewal kept before its commit
     * is current exactly when that commit happened. Expiry does not matter: an expired current token
     * is renewed, not replaced by its revoked predecessor.
     */
    isCurrentLocalCliToken: async (bearer: string, name: string): Promise<boolean> => {
      const token = await findLocalCliToken(bearer, name);
      return token !== undefined && token.revokedAt === null;
    },

    /**
     * The password step of a sign-in: a session, or (where a second factor is asked) a challenge
     * whose ticket completeSignIn takes with the code. `reason` is asked of a break-glass sign-in.
     */
    login: async (
      ctx: TRequestContext,
      credentials: { username: string; password: string; reason?: string },
    ): Promise<TLoginResult> => {
      const at = now();
      const normalized = normalizeUsername(credentials.username);
      // People sometimes type their password into the username field: only a well-formed
      // username is written to the attempts table and the audit log.
      const username = usernamePattern.test(normalized) ? normalized : "(invalid username)";
      // A refusal filed as audited commits with its entry; one counted for its window's summary has none yet.
      const reservation = await change(ctx, async (inTransaction) => {
        const reserved = await inTransaction.reserveLoginAttempt({
          username,
          sourceAddress: ctx.sourceAddress,
          at,
          limits,
        });
        return {
          result: reserved,
          events:
            reserved.limited && reserved.audit === "record"
              ? [
                  eventOf(
                    "auth.login.rate_limited",
                    "denied",
                    reserved.scope === "source" ? `source:${ctx.sourceAddress}` : userTarget(username),
                    { username, scope: reserved.scope, retryAfterSeconds: reserved.retryAfterSeconds },
                  ),
                ]
              : [],
        };
      });
      if (reservation.limited) {
        throw new RateLimitedError(
          "too many failed sign-in attempts from this address; try again later",
          reservation.retryAfterSeconds,
        );
      }
      const user = username === normalized ? await store.findUserByUsername(username) : undefined;
      const hash = user && !user.disabled ? user.passwordHash : null;
      // Always one argon2 verification, whoever asked, so timing does not tell the cases apart.
      const verified = await verifyPassword(hash ?? (await dummyPasswordHash()), credentials.password);
      if (!user || !hash || !verified) {
        const reason = !user
          ? "unknown user"
          : user.disabled
            ? "user disabled"
            : !user.passwordHash
              ? "no password set"
              : "wrong password";
        // The attempt is filed as audited with its entry, or stays unfiled (and counted) without it.
        await change(ctx, async (inTransaction) => {
          const filed = await inTransaction.settleLoginFailure({
            attemptId: reservation.attemptId,
            username,
            sourceAddress: ctx.sourceAddress,
            at,
            windowSeconds: limits.windowSeconds,
          });
          return {
            result: filed,
            events:
              filed === "record"
                ? [eventOf("auth.login.failed", "failure", userTarget(username), { username, reason })]
                : [],
          };
        });
        throw new UnauthenticatedError(loginRefused);
      }
      const rules = await rulesNow();
      // While an organization allows no local users, a password signs in the bootstrap admin alone,
      // as break-glass (its own audit event, for review); anyone else is refused, named only to
      // whoever knew the password. While one signs people in through OIDC, the bootstrap admin's
      // password is break-glass too. Break-glass needs a reason and is an ALERT.
      if (rules.localUsersRefusedBy.length > 0 && user.username !== BOOTSTRAP_ADMIN) {
        // An observation: this refusal changes no row (the attempt stays counted as failed).
        await record(ctx, "auth.login.failed", "denied", userTarget(username), {
          username,
          reason: `local users refused by ${rules.localUsersRefusedBy.join(", ")}`,
        });
        throw new ForbiddenError(
          `local sign-in is refused: organization ${refusedBy(rules)} allows no local users (identity.localUsersAllowed: false); only the bootstrap admin signs in with a password, as break-glass`,
        );
      }
      const breakGlass = user.username === BOOTSTRAP_ADMIN && breakGlassBy(rules).length > 0;
      if (breakGlass && (credentials.reason === undefined || credentials.reason.trim() === "")) {
        await record(ctx, "auth.login.failed", "denied", userTarget(username), {
          username,
          reason: "break-glass sign-in without a reason",
        });
        throw new ValidationError(
          `the bootstrap admin signs in only as break-glass while organization ${breakGlassBy(rules)
            .map((name) => JSON.stringify(name))
            .join(
              ", ",
            )} allows no local users or signs in through OIDC: say why (carehost login --reason '…'); the sign-in raises an ALERT`,
          [{ path: "reason", message: "required for a break-glass sign-in" }],
        );
      }
      const breakGlassReason = breakGlass ? mfa.checkReason(credentials.reason ?? "", "reason") : null;
      const rehashed = passwordHashIsOutdated(hash) ? await hashPassword(credentials.password) : undefined;
      const challenge = await mfa.challenge(ctx, user, {
        attemptId: reservation.attemptId,
        rules,
        bindings: await store.activeBindings(user.id),
        breakGlassReason,
        ...(rehashed === undefined ? {} : { rehashed }),
      });
      if (challenge !== undefined) return challenge;
      return openSession(ctx, user, {
        attemptId: reservation.attemptId,
        secondFactor: null,
        breakGlassReason,
        ...(rehashed === undefined ? {} : { rehashed }),
      });
    },

    /** The second step of a sign-in: the ticket of login's challenge with a code or recovery code; the session. */
    completeSignIn: mfa.completeSignIn,

    /** Begins enrolling an authenticator for the signed-in user: the secret and its otpauth:// URI, shown once. */
    startEnrolment: mfa.startEnrolment,

    /** Confirms the enrolment begun with the authenticator's current code: ten recovery codes, shown once. */
    confirmEnrolment: mfa.confirmEnrolment,

    /** An admin removes another user's authenticator and recovery codes (with a reason); their sessions end. */
    resetSecondFactor: async (ctx: TRequestContext, username: string, reason: string) => {
      await authorize(ctx, "user:manage", audit, userTarget(username));
      const name = checkUsername(username);
      const user = await store.findUserByUsername(name);
      if (!user) throw new NotFoundError(`user ${name} does not exist`);
      return mfa.reset(ctx, user, reason);
    },

    /** Ends the session the request was made with. API tokens are revoked with revokeToken instead. */
    logout: async (ctx: TRequestContext): Promise<void> => {
      const actor = actingUser(ctx);
      const token = actor.tokenId ? await store.findToken(actor.tokenId) : undefined;
      if (!token || token.kind !== "session")
        throw new ValidationError("this request was not made with a session; nothing to log out");
      await change(ctx, async (inTransaction) => {
        await inTransaction.revokeToken(token.id, now(), actor.username);
        return {
          result: undefined,
          events: [
            eventOf("auth.logout", "success", tokenTarget(token.id), { username: actor.username, sessionId: token.id }),
          ],
        };
      });
    },

    /** Turns a bearer token into the request's context, or refuses with one neutral message. */
    authenticate: async (
      bearer: string | undefined,
      meta: { requestId: string; sourceAddress: string },
    ): Promise<TRequestContext> => {
      const parsed = parseToken(bearer);
      const token = parsed && (await store.findToken(parsed.id));
      const at = now();
      if (!parsed || !token) throw new UnauthenticatedError(tokenRefused);
      const rules = await rulesNow();
      // Read on every request: a revoked binding stops working at once, on every replica.
      const bindings = await store.activeBindings(token.user.id);
      const rejection = secretMatches(parsed.secret, token.secretSha256)
        ? (tokenRejection({ ...token, userDisabledAt: token.user.disabledAt }, at, rules.session) ??
          // A session signed in without a second factor ends once one is asked of its user (a spec
          // applied since, a binding granted since): it gets one by signing in again.
          (token.kind === "session" && token.secondFactor === null && secondFactorRequiredBy(rules, bindings).length > 0
            ? "no second factor, now required"
            : undefined))
        : "wrong secret";
      if (rejection !== undefined) {
        // A real token id presented after revocation or expiry, or with the wrong secret, is
        // what replay of a leaked credential looks like: record it (random ids are not guessed).
        // An observation, appended on its own: it changes no row.
        const anonymous: TRequestContext = { actor: { kind: "anonymous" }, ...meta };
        await record(anonymous, "auth.token_rejected", "denied", tokenTarget(token.id), {
          tokenId: token.id,
          owner: token.user.username,
          reason: rejection,
        });
        throw new UnauthenticatedError(tokenRefused);
      }
      if (shouldRecordUse(token.lastUsedAt, at)) await store.recordTokenUse(token.id, at, lastUsedPrecisionMs);
      return {
        actor: {
          kind: "user",
          userId: token.user.id,
          username: token.user.username,
          role: token.user.role,
          bindings,
          tokenId: token.id,
        },
        requestId: meta.requestId,
        sourceAddress: meta.sourceAddress,
      };
    },

    /** Without a password a random one is generated and returned once as initialPassword. */
    createUser: async (
      ctx: TRequestContext,
      input: { username: string; role: TRole; organizations: readonly string[]; password?: string },
    ): Promise<{ user: TUser; initialPassword?: string }> => {
      await authorize(ctx, "user:manage", audit, userTarget(input.username));
      const username = checkLocalUsername(input.username);
      const role = checkRole(input.role);
      const organizations = checkOrganizations(input.organizations);
      const rules = await rulesNow();
      if (rules.localUsersRefusedBy.length > 0) {
        // A refusal: nothing is written but its entry.
        await record(ctx, "user.created", "denied", userTarget(username), { username, role });
        throw new PolicyViolation(
          `local users are refused: organization ${refusedBy(rules)} allows none (identity.localUsersAllowed: false); people sign in through its identity provider, and the bootstrap admin remains for break-glass`,
        );
      }
      if (input.password !== undefined) checkPasswordPolicy(input.password, username);
      const password = input.password ?? generatePassword();
      const passwordHash = await hashPassword(password);
      const user = await change(ctx, async (inTransaction) => {
        const inserted = await inTransaction.insertUser({
          id: randomUUID(),
          username,
          role,
          organizations,
          passwordHash,
          createdAt: now(),
          createdBy: actorName(ctx.actor),
        });
        if (!inserted) throw new ConflictError(`user ${username} already exists`);
        return {
          result: inserted,
          events: [
            eventOf("user.created", "success", userTarget(username), {
              username,
              role,
              organizations,
              initialLogin: input.password === undefined ? "generated" : "chosen",
            }),
          ],
        };
      });
      return input.password === undefined
        ? { user: publicUser(user), initialPassword: password }
        : { user: publicUser(user) };
    },

    setRole: async (ctx: TRequestContext, username: string, role: TRole): Promise<TUser> => {
      await authorize(ctx, "user:manage", audit, userTarget(username));
      const name = checkUsername(username);
      const wanted = checkRole(role);
      const result = await change(ctx, async (inTransaction) => {
        const changed = await inTransaction.setRole(name, wanted);
        if (changed === "not-found") throw new NotFoundError(`user ${name} does not exist`);
        if (changed === "last-admin")
          throw new ConflictError(`${name} is the last enabled platform-admin; promote another user first`);
        return {
          result: changed,
          events: [
            eventOf("user.role_changed", "success", userTarget(name), {
              username: name,
              from: changed.before,
              to: wanted,
            }),
          ],
        };
      });
      return publicUser(result.user);
    },

    /** Binds the user's role over more organizations ("*" for every one). */
    grantOrganizations: async (ctx: TRequestContext, username: string, organizations: readonly string[]) => {
      await authorize(ctx, "user:manage", audit, userTarget(username));
      const name = checkUsername(username);
      const wanted = checkOrganizations(organizations);
      const result = await change(ctx, async (inTransaction) => {
        const granted = await inTransaction.grantOrganizations(name, wanted, now(), actorName(ctx.actor));
        if (granted === "not-found") throw new NotFoundError(`user ${name} does not exist`);
        return {
          result: granted,
          events:
            granted.added.length === 0
              ? []
              : [
                  eventOf("user.access_granted", "success", userTarget(name), {
                    username: name,
                    role: granted.user.role,
                    organizations: granted.added,
                  }),
                ],
        };
      });
      return { user: publicUser(result.user), added: result.added };
    },

    /** Ends the user's bindings over the organizations named; their tokens keep working elsewhere only. */
    revokeOrganizations: async (ctx: TRequestContext, username: string, organizations: readonly string[]) => {
      await authorize(ctx, "user:manage", audit, userTarget(username));
      const name = checkUsername(username);
      const unwanted = checkOrganizations(organizations);
      const result = await change(ctx, async (inTransaction) => {
        const revoked = await inTransaction.revokeOrganizations(name, unwanted, now(), actorName(ctx.actor));
        if (revoked === "not-found") throw new NotFoundError(`user ${name} does not exist`);
        if (revoked === "last-admin")
          throw new ConflictError(
            `${name} is the last enabled platform-admin over every organization; grant another user "*" first`,
          );
        return {
          result: revoked,
          events:
            revoked.removed.length === 0
              ? []
              : [
                  eventOf("user.access_revoked", "success", userTarget(name), {
                    username: name,
                    role: revoked.user.role,
                    organizations: revoked.removed,
                  }),
                ],
        };
      });
      return { user: publicUser(result.user), removed: result.removed };
    },

    /** The user's tokens are revoked with it, so nothing they hold keeps working. */
    disableUser: async (ctx: TRequestContext, username: string): Promise<TUser> => {
      await authorize(ctx, "user:manage", audit, userTarget(username));
      const name = checkUsername(username);
      const result = await change(ctx, async (inTransaction) => {
        const disabled = await inTransaction.disableUser(name, now(), actorName(ctx.actor));
        if (disabled === "not-found") throw new NotFoundError(`user ${name} does not exist`);
        if (disabled === "already-disabled") throw new ConflictError(`user ${name} is already disabled`);
        if (disabled === "last-admin")
          throw new ConflictError(`${name} is the last enabled platform-admin; promote another user first`);
        return {
          result: disabled,
          events: [
            eventOf("user.disabled", "success", userTarget(name), {
              username: name,
              revokedTokenCount: disabled.revokedTokens,
            }),
          ],
        };
      });
      return publicUser(result.user);
    },

    listUsers: async (ctx: TRequestContext): Promise<TUser[]> => {
      await authorize(ctx, "user:read", audit, "users");
      return (await store.listUsers()).map(publicUser);
    },

    /** An API token for the acting user. The token is in the result once and never again. */
    createToken: async (
      ctx: TRequestContext,
      input: { name: string; expiresInDays?: number },
    ): Promise<TIssuedToken> => {
      await authorize(ctx, "token:manage-own", audit, "tokens", "some-organization");
      const owner = actingUser(ctx);
      // An API token is for automation; for a person it must not be a way around the second factor:
      // where one is asked of the owner, only a session that passed it mints tokens.
      const requiredBy = secondFactorRequiredBy(await rulesNow(), owner.bindings);
      if (requiredBy.length > 0 && !(await mfa.passedSecondFactor(owner.tokenId))) {
        await record(ctx, "token.refused", "denied", `user:${owner.username}`, {
          owner: owner.username,
          reason: `no second factor behind this credential; required by ${requiredBy.join(", ")}`,
        });
        throw new ForbiddenError(
          `creating an API token needs a session that passed the second factor, which organization ${requiredBy
            .map((name) => JSON.stringify(name))
            .join(", ")} requires (identity.mfaRequired): sign in with carehost login and your authenticator code`,
        );
      }
      return change(ctx, async (inTransaction) => {
        const { issued, event } = await issueApiToken(inTransaction, ctx, owner, input);
        return { result: issued, events: [event] };
      });
    },

    /** Active sessions and API tokens: the acting user's, or everyone's with token:manage-any. */
    listTokens: async (ctx: TRequestContext, options: { allUsers?: boolean } = {}): Promise<TTokenInfo[]> => {
      const everyone = options.allUsers || ctx.actor.kind !== "user";
      await authorize(
        ctx,
        everyone ? "token:manage-any" : "token:manage-own",
        audit,
        "tokens",
        everyone ? "every-organization" : "some-organization",
      );
      const at = now();
      const listed = await store.listActiveTokens(
        ctx.actor.kind === "user" && !everyone ? ctx.actor.userId : undefined,
        at,
      );
      // The store knows nothing of the idle timeout: drop sessions that authenticate() would refuse.
      const { session } = await rulesNow();
      return listed.filter(
        (token) => tokenRejection({ ...token, revokedAt: null, userDisabledAt: null }, at, session) === undefined,
      );
    },

    /**
     * Writes the summaries of at most `limit` sign-in failure windows that have closed, in one
     * transaction; the number written. The server's timer calls it; fewer than `limit` means none wait.
     */
    summariseLoginFailures: (limit = LOGIN_SUMMARY_BATCH) => summariseLoginFailures(now(), limit),

    /** What carehost's sign-in enforces right now, for the identity controls of the posture. */
    enforcement: async () => platformEnforcementOf(await rulesNow()),

    revokeToken: async (ctx: TRequestContext, id: string): Promise<void> => {
      await authorize(ctx, "token:manage-own", audit, tokenTarget(id), "some-organization");
      const token = tokenIdPattern.test(id) ? await store.findToken(id) : undefined;
      const ownToken = ctx.actor.kind === "user" && token?.user.id === ctx.actor.userId;
      // Someone else's token needs token:manage-any, asked before "not found" so that probing for
      // other people's token ids is refused and audited like any other denied action.
      if (!ownToken) await authorize(ctx, "token:manage-any", audit, tokenTarget(id));
      if (!token) throw new NotFoundError(`token ${shownTokenId(id)} does not exist`);
      await change(ctx, async (inTransaction) => {
        if (!(await inTransaction.revokeToken(token.id, now(), actorName(ctx.actor))))
          throw new ConflictError(`token ${id} is already revoked`);
        return {
          result: undefined,
          events: [
            eventOf("token.revoked", "success", tokenTarget(token.id), {
              tokenId: token.id,
              kind: token.kind,
              name: token.name,
              owner: token.user.username,
            }),
          ],
        };
      });
    },
  };
};

export type TIdentityService = ReturnType<typeof identityServiceFactory>;
