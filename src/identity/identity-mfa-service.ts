// The second factor of a local sign-in: the challenge after a right password, the answer that
// completes it, enrolment (at the first sign-in that asks for one, or later from a session) and an
// admin's reset. No session exists until the second factor passes: the password step hands out a
// short-lived ticket instead, and its attempt stays counted as failed, so the sign-in limits go on
// slowing whoever has a password but not the authenticator.
import { createHash, randomBytes, randomUUID } from "node:crypto";
import type { TAuditEvent, TAuditPayloads } from "../audit/audit-types.js";
import { ConflictError, ForbiddenError, UnauthenticatedError, ValidationError } from "../lib/errors.js";
import { actorName, type TRequestContext } from "../lib/request-context.js";
import { open, seal } from "../secrets/secrets-envelope.js";
import type { TMasterKey } from "../secrets/secrets-master-key.js";
import type { TSqlClient } from "../store/store-types.js";
import { mfaStoreFactory, totpSealName, type TMfaStore, type TStoredTotp } from "./identity-mfa-store.js";
import { looksLikeRecoveryCode, newRecoveryCodes, recoveryCodeSha256 } from "./identity-recovery-codes.js";
import { secondFactorRequiredBy, type TIdentityRules } from "./identity-rules.js";
import { identityStoreFactory, identityStoreIn, type TIdentityStore, type TStoredUser } from "./identity-store.js";
import { newTotpSecret, totpStepOf, totpUri } from "./identity-totp.js";
import type {
  TChangeAudit,
  TIdentityAuditEventType,
  TSecondFactor,
  TSecondFactorChallenge,
  TSession,
} from "./identity-types.js";

/** How long a sign-in waits for its second factor: long enough to open an authenticator app. */
export const TICKET_LIFETIME_SECONDS = 300;
/** Wrong answers one ticket takes before it ends; a new one needs the password again (and counts as a failed sign-in). */
export const TICKET_TRIES = 3;

const ticketPattern = /^[A-Za-z0-9_-]{43}$/;
// The ticket is 256 random bits, so SHA-256 is enough to store it (identity-tokens.ts says why).
const ticketSha256 = (ticket: string): string => createHash("sha256").update(ticket).digest("hex");

// Neither message says anything about the password: only whoever typed the right one holds a ticket.
const ticketEnded = "this sign-in has expired or ended; sign in again with your password";
const codeRefused = (attemptsLeft: number) =>
  attemptsLeft > 0
    ? `the code is wrong or was already used; type the current code from your authenticator, or a recovery code (${attemptsLeft} ${attemptsLeft === 1 ? "try" : "tries"} left)`
    : `the code is wrong or was already used, and this sign-in has had its ${TICKET_TRIES} tries; sign in again with your password`;

/** What opening the session needs from the sign-in that earned it. */
export type TSessionOpening = {
  readonly attemptId: number;
  readonly secondFactor: TSecondFactor | null;
  readonly breakGlassReason: string | null;
  readonly recoveryCodes?: readonly string[];
  readonly recoveryCodesLeft?: number;
};

type TMfaServiceDeps = {
  db: Pick<TSqlClient, "query" | "transaction">;
  audit: TChangeAudit;
  masterKey: TMasterKey;
  now: () => Date;
  /** The identity service's: issues the session, settles the sign-in attempt as succeeded, audits it. */
  openSession: (ctx: TRequestContext, user: TStoredUser, opening: TSessionOpening) => Promise<TSession>;
};

type TSettled =
  | {
      readonly passed: true;
      readonly user: TStoredUser;
      readonly opening: TSessionOpening;
    }
  | { readonly passed: false; readonly message: string };

export const identityMfaFactory = ({ db, audit, masterKey, now, openSession }: TMfaServiceDeps) => {
  const mfa = mfaStoreFactory(db);

  const eventOf = <K extends TIdentityAuditEventType>(
    type: K,
    outcome: "success" | "denied" | "failure",
    username: string,
    payload: TAuditPayloads[K],
  ) => ({ type, outcome, target: `user:${username}`, payload }) as TAuditEvent;

  /** A change and its audit events in one transaction (the identity service's `change`, with this store too). */
  const change = async <T>(
    ctx: TRequestContext,
    work: (stores: { mfa: TMfaStore; identity: TIdentityStore }) => Promise<{ result: T; events: TAuditEvent[] }>,
  ): Promise<T> =>
    (await audit.recordChange(ctx, (tx) => work({ mfa: mfaStoreFactory(tx), identity: identityStoreIn(tx) }))).result;

  const sealedSecret = (userId: string, enrolmentId: string, secret: string) =>
    seal(masterKey, totpSealName(userId, enrolmentId), 1, secret);
  const secretOf = (totp: TStoredTotp): string => open(masterKey, totp.sealed);

  /** Ten new recovery codes replacing any the user had: the codes, to show once, and their entry. */
  const issueRecoveryCodes = async (stores: { mfa: TMfaStore }, user: { id: string; username: string }, at: Date) => {
    const codes = newRecoveryCodes();
    await stores.mfa.replaceRecoveryCodes(user.id, codes.map(recoveryCodeSha256), at);
    return {
      codes,
      event: eventOf("auth.mfa.enrolled", "success", user.username, {
        username: user.username,
        recoveryCodes: codes.length,
      }),
    };
  };

  /** The session the request was made with, for what only a signed-in person does (not an API token). */
  const sessionOf = async (ctx: TRequestContext, what: string) => {
    const actor = ctx.actor;
    const token =
      actor.kind === "user" && actor.tokenId ? await identityStoreFactory(db).findToken(actor.tokenId) : undefined;
    if (actor.kind !== "user" || !token || token.kind !== "session")
      throw new ValidationError(`${what} needs a session from carehost login, not an API token`);
    return { actor, token };
  };

  const checkReason = (reason: string, path: string): string => {
    const trimmed = reason.trim();
    if (trimmed.length < 3 || trimmed.length > 500)
      throw new ValidationError(`${path} must say why, in 3 to 500 characters`, [
        { path, message: `got ${trimmed.length} characters` },
      ]);
    return trimmed;
  };

  return {
    checkReason,

    /**
     * After a right password: the challenge for the second factor, or undefined when none is asked
     * (no organization the user is bound to requires one, and the user has enrolled none). A user
     * with no authenticator yet gets a new secret to enrol, begun here and confirmed by its first code.
     */
    challenge: async (
      ctx: TRequestContext,
      user: TStoredUser,
      signIn: {
        attemptId: number;
        rules: TIdentityRules;
        bindings: Parameters<typeof secondFactorRequiredBy>[1];
        rehashed?: string;
        breakGlassReason: string | null;
      },
    ): Promise<TSecondFactorChallenge | undefined> => {
      const enrolled = (await mfa.findTotp(user.id))?.confirmedAt != null;
      if (!enrolled && secondFactorRequiredBy(signIn.rules, signIn.bindings).length === 0) return undefined;
      const at = now();
      const ticket = randomBytes(32).toString("base64url");
      const ticketExpiresAt = new Date(at.getTime() + TICKET_LIFETIME_SECONDS * 1000);
      const enrolment = enrolled ? undefined : { enrolmentId: randomUUID(), secret: newTotpSecret() };
      await change(ctx, async (stores) => {
        if (signIn.rehashed !== undefined) await stores.identity.setPasswordHash(user.id, signIn.rehashed);
        if (
          enrolment &&
          !(await stores.mfa.beginTotp({
            userId: user.id,
            enrolmentId: enrolment.enrolmentId,
            sealed: sealedSecret(user.id, enrolment.enrolmentId, enrolment.secret),
            at,
          }))
        )
          throw new ConflictError("an authenticator was enrolled for this user meanwhile; sign in again");
        await stores.mfa.insertTicket({
          secretSha256: ticketSha256(ticket),
          userId: user.id,
          loginAttemptId: signIn.attemptId,
          breakGlassReason: signIn.breakGlassReason,
          createdAt: at,
          createdFrom: ctx.sourceAddress,
          expiresAt: ticketExpiresAt,
        });
        await stores.mfa.forgetOldTickets(at);
        return {
          result: undefined,
          events: [
            eventOf("auth.mfa.challenged", "success", user.username, {
              username: user.username,
              method: enrolment ? "enrol" : "totp",
              ticketExpiresAt: ticketExpiresAt.toISOString(),
            }),
          ],
        };
      });
      return {
        kind: "second-factor",
        method: enrolment ? "enrol" : "totp",
        ticket,
        ticketExpiresAt,
        ...(enrolment && {
          enrolment: { secret: enrolment.secret, otpauthUri: totpUri(enrolment.secret, user.username) },
        }),
      };
    },

    /**
     * Completes a sign-in with the code of the user's authenticator (which confirms an enrolment
     * begun at the password step, and issues its recovery codes) or one of their recovery codes.
     * A code is accepted once: its time step must be later than the last one accepted.
     */
    completeSignIn: async (ctx: TRequestContext, answer: { ticket: string; code: string }): Promise<TSession> => {
      if (!ticketPattern.test(answer.ticket)) throw new UnauthenticatedError(ticketEnded);
      const id = ticketSha256(answer.ticket);
      const at = now();
      const settled = await change<TSettled>(ctx, async (stores) => {
        const ticket = await stores.mfa.lockTicket(id);
        if (!ticket || ticket.endedAt !== null || ticket.expiresAt.getTime() <= at.getTime())
          return { result: { passed: false, message: ticketEnded }, events: [] };
        const user = await stores.identity.findUserById(ticket.userId);
        const totp = user && !user.disabled ? await stores.mfa.findTotp(user.id) : undefined;
        // Disabled, or reset by an admin since the password step: this sign-in is over.
        if (!user || !totp) {
          await stores.mfa.endTicket(id, at);
          return { result: { passed: false, message: ticketEnded }, events: [] };
        }
        const opening = { attemptId: ticket.loginAttemptId, breakGlassReason: ticket.breakGlassReason };
        if (totp.confirmedAt !== null && looksLikeRecoveryCode(answer.code)) {
          const left = await stores.mfa.useRecoveryCode(user.id, recoveryCodeSha256(answer.code), at);
          if (left !== undefined) {
            await stores.mfa.endTicket(id, at);
            return {
              result: {
                passed: true,
                user,
                opening: { ...opening, secondFactor: "recovery-code", recoveryCodesLeft: left },
              },
              events: [
                eventOf("auth.mfa.recovery_code_used", "success", user.username, {
                  username: user.username,
                  recoveryCodesLeft: left,
                }),
              ],
            };
          }
        }
        const step = looksLikeRecoveryCode(answer.code) ? undefined : totpStepOf(secretOf(totp), answer.code, at);
        if (step !== undefined && (await stores.mfa.acceptStep(user.id, totp.enrolmentId, step, at))) {
          await stores.mfa.endTicket(id, at);
          // The first code of an authenticator confirms its enrolment: its recovery codes are issued now.
          const issued = totp.confirmedAt === null ? await issueRecoveryCodes(stores, user, at) : undefined;
          return {
            result: {
              passed: true,
              user,
              opening: {
                ...opening,
                secondFactor: "totp",
                ...(issued && { recoveryCodes: issued.codes }),
              },
            },
            events: issued ? [issued.event] : [],
          };
        }
        const failures = await stores.mfa.failTicket(id, TICKET_TRIES, at);
        const attemptsLeft = Math.max(0, TICKET_TRIES - failures);
        const reason = looksLikeRecoveryCode(answer.code)
          ? totp.confirmedAt === null
            ? "recovery code given before enrolment was confirmed"
            : "recovery code unknown or already used"
          : step === undefined
            ? "wrong code"
            : "code already used";
        return {
          result: { passed: false, message: codeRefused(attemptsLeft) },
          events: [
            eventOf("auth.mfa.failed", "failure", user.username, { username: user.username, reason, attemptsLeft }),
          ],
        };
      });
      if (!settled.passed) throw new UnauthenticatedError(settled.message);
      return openSession(ctx, settled.user, settled.opening);
    },

    /** Begins enrolling an authenticator from a session; nothing asks for it until confirmEnrolment. */
    startEnrolment: async (ctx: TRequestContext): Promise<{ secret: string; otpauthUri: string }> => {
      const { actor } = await sessionOf(ctx, "enrolling an authenticator");
      if ((await mfa.findTotp(actor.userId))?.confirmedAt != null)
        throw new ConflictError(
          `${actor.username} already has an authenticator; a platform-admin resets it (carehost mfa reset ${actor.username} --reason …) before another is enrolled`,
        );
      const enrolmentId = randomUUID();
      const secret = newTotpSecret();
      await change(ctx, async (stores) => {
        if (
          !(await stores.mfa.beginTotp({
            userId: actor.userId,
            enrolmentId,
            sealed: sealedSecret(actor.userId, enrolmentId, secret),
            at: now(),
          }))
        )
          throw new ConflictError(`${actor.username} enrolled an authenticator meanwhile`);
        return {
          result: undefined,
          events: [eventOf("auth.mfa.enrolment_started", "success", actor.username, { username: actor.username })],
        };
      });
      return { secret, otpauthUri: totpUri(secret, actor.username) };
    },

    /** Confirms the enrolment begun with the authenticator's current code; the recovery codes, shown once. */
    confirmEnrolment: async (ctx: TRequestContext, code: string): Promise<{ recoveryCodes: readonly string[] }> => {
      const { actor, token } = await sessionOf(ctx, "enrolling an authenticator");
      const totp = await mfa.findTotp(actor.userId);
      if (!totp || totp.confirmedAt !== null)
        throw new ConflictError(
          `${actor.username} has no enrolment waiting for its first code${totp ? " (the authenticator is enrolled already)" : ""}; begin one with carehost mfa enroll`,
        );
      const at = now();
      const step = totpStepOf(secretOf(totp), code, at);
      if (step === undefined) {
        await audit.append(
          ctx,
          eventOf("auth.mfa.failed", "failure", actor.username, {
            username: actor.username,
            reason: "wrong code confirming an enrolment",
          }),
        );
        throw new ValidationError("the code is not the current one of the authenticator being enrolled", [
          { path: "code", message: "type the 6 digits your authenticator shows now for carehost" },
        ]);
      }
      return change(ctx, async (stores) => {
        if (!(await stores.mfa.acceptStep(actor.userId, totp.enrolmentId, step, at)))
          throw new ConflictError("this enrolment was replaced meanwhile; begin again with carehost mfa enroll");
        const issued = await issueRecoveryCodes(stores, { id: actor.userId, username: actor.username }, at);
        // The person just typed a code of their authenticator: this session has passed the second factor.
        await stores.mfa.setSecondFactor(token.id, "totp");
        return { result: { recoveryCodes: issued.codes }, events: [issued.event] };
      });
    },

    /**
     * Removes `user`'s authenticator and recovery codes, and ends their sessions: they enrol again at
     * their next sign-in. Never one's own: a stolen session must not be able to drop the factor that
     * guards its owner. The caller has authorized user:manage.
     */
    reset: async (
      ctx: TRequestContext,
      user: TStoredUser,
      reason: string,
    ): Promise<{ hadSecondFactor: boolean; revokedSessions: number }> => {
      const why = checkReason(reason, "reason");
      if (ctx.actor.kind === "user" && ctx.actor.userId === user.id) {
        await audit.append(
          ctx,
          eventOf("access.denied", "denied", user.username, { permission: "mfa:reset-own", role: ctx.actor.role }),
        );
        throw new ForbiddenError(
          "nobody resets their own second factor: another platform-admin does it (carehost mfa reset USER --reason …)",
        );
      }
      const at = now();
      const by = actorName(ctx.actor);
      return change(ctx, async (stores) => {
        const hadSecondFactor = await stores.mfa.removeSecondFactor(user.id);
        const revokedSessions = await stores.mfa.revokeSessions(user.id, at, by);
        return {
          result: { hadSecondFactor, revokedSessions },
          events: [
            eventOf("auth.mfa.reset", "success", user.username, {
              username: user.username,
              reason: why,
              hadSecondFactor,
              revokedSessionCount: revokedSessions,
            }),
          ],
        };
      });
    },

    /** Whether the session or token the request was made with passed a second factor. */
    passedSecondFactor: async (tokenId: string | undefined): Promise<boolean> =>
      tokenId !== undefined && (await mfa.secondFactorOf(tokenId)) !== null,
  };
};

export type TIdentityMfa = ReturnType<typeof identityMfaFactory>;
