import { z } from "zod";
import { roles } from "../../lib/request-context.js";
import type { TSession } from "../../identity/identity-types.js";
import type { TServerServices } from "../server-services.js";
import { ProblemSchema, problemResponses } from "./route-types.js";
import type { TApi } from "./route-types.js";

const SessionSchema = z.object({
  token: z.string(),
  expiresAt: z.string(),
  username: z.string(),
  role: z.enum(roles),
  secondFactor: z.enum(["totp", "recovery-code"]).nullable(),
  recoveryCodes: z
    .array(z.string())
    .readonly()
    .optional()
    .describe("Issued by the enrolment this sign-in confirmed: shown only now, stored hashed."),
  recoveryCodesLeft: z.number().int().optional().describe("After a recovery code was used: how many are left."),
});

const ChallengeSchema = z.object({
  secondFactor: z
    .enum(["totp", "enrol"])
    .describe("totp: send a code of your authenticator; enrol: add `otpauthUri` to one first, then send its code"),
  ticket: z.string().describe("Send it to /api/auth/second-factor with the code; no session exists until then"),
  ticketExpiresAt: z.string(),
  otpauthUri: z.string().optional(),
  secret: z.string().optional().describe("The TOTP secret in otpauthUri (base32), for an app that cannot scan it"),
});

const sessionBody = (session: TSession) => ({
  token: session.token,
  expiresAt: session.expiresAt.toISOString(),
  username: session.user.username,
  role: session.user.role,
  secondFactor: session.secondFactor,
  ...(session.recoveryCodes === undefined ? {} : { recoveryCodes: session.recoveryCodes }),
  ...(session.recoveryCodesLeft === undefined ? {} : { recoveryCodesLeft: session.recoveryCodesLeft }),
});

export const registerAuthRoutes = (api: TApi, services: Pick<TServerServices, "identity">): void => {
  api.post(
    "/api/auth/login",
    {
      config: { public: true },
      schema: {
        tags: ["auth"],
        security: [],
        summary:
          "Exchange a username and password for a session token, or (where a second factor is asked) for a ticket that /api/auth/second-factor completes",
        body: z.strictObject({
          username: z.string().min(1).max(64),
          password: z.string().min(1).max(1024),
          reason: z
            .string()
            .max(500)
            .optional()
            .describe("Why: required of a break-glass sign-in of the bootstrap admin, which raises an ALERT"),
        }),
        response: {
          200: z.union([SessionSchema, ChallengeSchema]),
          400: ProblemSchema,
          401: ProblemSchema,
          403: ProblemSchema,
          429: ProblemSchema,
        },
      },
    },
    async (request) => {
      const result = await services.identity.login(request.ctx, request.body);
      if (result.kind === "session") return sessionBody(result);
      return {
        secondFactor: result.method,
        ticket: result.ticket,
        ticketExpiresAt: result.ticketExpiresAt.toISOString(),
        ...(result.enrolment === undefined
          ? {}
          : { otpauthUri: result.enrolment.otpauthUri, secret: result.enrolment.secret }),
      };
    },
  );

  api.post(
    "/api/auth/second-factor",
    {
      config: { public: true },
      schema: {
        tags: ["auth"],
        security: [],
        summary: "Complete a sign-in: the ticket /api/auth/login gave, with a TOTP code or a recovery code",
        body: z.strictObject({ ticket: z.string().min(1).max(128), code: z.string().min(1).max(64) }),
        response: { 200: SessionSchema, 400: ProblemSchema, 401: ProblemSchema, 409: ProblemSchema },
      },
    },
    async (request) => sessionBody(await services.identity.completeSignIn(request.ctx, request.body)),
  );

  api.post(
    "/api/mfa/enrolment",
    {
      schema: {
        tags: ["auth"],
        summary: "Begin enrolling an authenticator for yourself (with a session): its secret, shown once",
        response: {
          201: z.object({ otpauthUri: z.string(), secret: z.string() }),
          409: ProblemSchema,
          ...problemResponses,
        },
      },
    },
    async (request, reply) => reply.code(201).send(await services.identity.startEnrolment(request.ctx)),
  );

  api.post(
    "/api/mfa/enrolment/confirm",
    {
      schema: {
        tags: ["auth"],
        summary: "Confirm the enrolment with the authenticator's current code: ten recovery codes, shown once",
        body: z.strictObject({ code: z.string().min(1).max(64) }),
        response: {
          200: z.object({ recoveryCodes: z.array(z.string()).readonly() }),
          409: ProblemSchema,
          ...problemResponses,
        },
      },
    },
    async (request) => services.identity.confirmEnrolment(request.ctx, request.body.code),
  );

  api.post(
    "/api/users/:username/mfa/reset",
    {
      schema: {
        tags: ["users"],
        summary:
          "Remove another user's authenticator and recovery codes, with a reason (audited); their sessions end and they enrol again",
        params: z.object({ username: z.string().min(1).max(64) }),
        body: z.strictObject({ reason: z.string().min(1).max(500) }),
        response: {
          200: z.object({ username: z.string(), hadSecondFactor: z.boolean(), revokedSessions: z.number().int() }),
          404: ProblemSchema,
          ...problemResponses,
        },
      },
    },
    async (request) => ({
      username: request.params.username,
      ...(await services.identity.resetSecondFactor(request.ctx, request.params.username, request.body.reason)),
    }),
  );

  api.post(
    "/api/auth/logout",
    {
      schema: {
        tags: ["auth"],
        summary: "Revoke the session token used for this request",
        response: { 204: z.null(), ...problemResponses },
      },
    },
    async (request, reply) => {
      await services.identity.logout(request.ctx);
      return reply.code(204).send(null);
    },
  );

  api.get(
    "/api/whoami",
    {
      schema: {
        tags: ["auth"],
        response: {
          200: z.object({ username: z.string(), role: z.enum(roles), requestId: z.string() }),
          ...problemResponses,
        },
      },
    },
    async (request) => {
      const { actor } = request.ctx;
      if (actor.kind !== "user") throw new Error("authenticated request without a user actor");
      return { username: actor.username, role: actor.role, requestId: request.ctx.requestId };
    },
  );
};
