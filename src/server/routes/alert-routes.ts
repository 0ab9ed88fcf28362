// carehost's own alerts: listed, silenced, acknowledged (README: Monitoring, alerts).
import { z } from "zod";
import type { TAlertView } from "../../monitor/monitor-alert-service.js";
import type { TAlert, TSilence } from "../../monitor/monitor-alert-types.js";
import type { TServerServices } from "../server-services.js";
import { ProblemSchema, problemResponses } from "./route-types.js";
import type { TApi } from "./route-types.js";

const SilenceView = z.object({
  id: z.number(),
  rule: z.string(),
  organization: z.string(),
  environment: z.string().nullable(),
  owner: z.string(),
  reason: z.string(),
  createdAt: z.string(),
  expiresAt: z.string(),
  endedAt: z.string().nullable(),
  endedBy: z.string().nullable(),
});
const AlertView = z.object({
  id: z.number(),
  rule: z.string(),
  organization: z.string().describe('"" for carehost\'s own alerts'),
  environment: z.string(),
  instance: z.string(),
  entity: z.string().nullable(),
  severity: z.string(),
  state: z.enum(["pending", "firing", "resolved"]),
  value: z.number().nullable(),
  labels: z.record(z.string(), z.string()),
  annotations: z.record(z.string(), z.string()),
  firedAt: z.string().nullable(),
  clearSince: z.string().nullable().describe("while firing: since when the condition has been clear"),
  resolvedAt: z.string().nullable(),
  acknowledgedBy: z.string().nullable(),
  acknowledgedAt: z.string().nullable(),
  escalatedAt: z.string().nullable(),
  silencedBy: SilenceView.nullable(),
  deliveries: z.array(
    z.object({
      id: z.number(),
      event: z.string(),
      kind: z.string(),
      destination: z.string(),
      state: z.string(),
      attempts: z.number(),
      lastError: z.string().nullable(),
      deliveredAt: z.string().nullable(),
    }),
  ),
});

const iso = (date: Date | null) => date?.toISOString() ?? null;
const silenceView = (silence: TSilence): z.infer<typeof SilenceView> => ({
  ...silence,
  createdAt: silence.createdAt.toISOString(),
  expiresAt: silence.expiresAt.toISOString(),
  endedAt: iso(silence.endedAt),
});
const alertView = (
  alert: TAlert & Partial<Pick<TAlertView, "silencedBy" | "deliveries">>,
): z.infer<typeof AlertView> => ({
  id: alert.id,
  rule: alert.rule,
  organization: alert.organization,
  environment: alert.environment,
  instance: alert.instance,
  entity: alert.entity,
  severity: alert.severity,
  state: alert.state,
  value: alert.value !== null && Number.isFinite(alert.value) ? alert.value : null,
  labels: { ...alert.labels },
  annotations: { ...alert.annotations },
  firedAt: iso(alert.firedAt),
  clearSince: iso(alert.clearSince),
  resolvedAt: iso(alert.resolvedAt),
  acknowledgedBy: alert.acknowledgedBy,
  acknowledgedAt: iso(alert.acknowledgedAt),
  escalatedAt: iso(alert.escalatedAt),
  silencedBy: alert.silencedBy ? silenceView(alert.silencedBy) : null,
  deliveries: (alert.deliveries ?? []).map((delivery) => ({
    id: delivery.id,
    event: delivery.event,
    kind: delivery.kind,
    destination: delivery.destination,
    state: delivery.state,
    attempts: delivery.attempts,
    lastError: delivery.lastError,
    deliveredAt: iso(delivery.deliveredAt),
  })),
});

const IdParams = z.object({ id: z.coerce.number().int().positive().max(Number.MAX_SAFE_INTEGER) });
const withNotFound = { ...problemResponses, 404: ProblemSchema } as const;

export const registerAlertRoutes = (api: TApi, services: Pick<TServerServices, "alerts">): void => {
  api.get(
    "/api/alerts",
    {
      schema: {
        tags: ["monitoring"],
        summary:
          "carehost's firing alerts (and resolved ones with all=true) in your organizations, and the active silences",
        querystring: z.object({
          environment: z.string().min(1).max(63).optional(),
          all: z.enum(["true", "false"]).default("false"),
        }),
        response: {
          200: z.object({ alerts: z.array(AlertView), silences: z.array(SilenceView) }),
          ...problemResponses,
        },
      },
    },
    async (request) => {
      const listed = await services.alerts.list(request.ctx, {
        ...(request.query.environment === undefined ? {} : { environment: request.query.environment }),
        includeResolved: request.query.all === "true",
      });
      return { alerts: listed.alerts.map(alertView), silences: listed.silences.map(silenceView) };
    },
  );

  api.post(
    "/api/alerts/silences",
    {
      schema: {
        tags: ["monitoring"],
        summary: "Silence a rule for an environment (or a whole organization) for a time, with a reason (alert:manage)",
        body: z.object({
          rule: z.string().min(1).max(100),
          organization: z.string().min(1).max(63).optional(),
          environment: z.string().min(1).max(63).optional(),
          for: z.string().min(1).max(10),
          reason: z.string().max(500),
        }),
        response: { 200: SilenceView, ...withNotFound },
      },
    },
    async (request) => silenceView(await services.alerts.silence(request.ctx, request.body)),
  );

  api.delete(
    "/api/alerts/silences/:id",
    {
      schema: {
        tags: ["monitoring"],
        summary: "End a silence before its expiry (alert:manage)",
        params: IdParams,
        response: { 200: SilenceView, ...withNotFound },
      },
    },
    async (request) => silenceView(await services.alerts.unsilence(request.ctx, request.params.id)),
  );

  api.post(
    "/api/alerts/:id/ack",
    {
      schema: {
        tags: ["monitoring"],
        summary: "Acknowledge a firing alert: someone is on it, so it is not escalated (alert:manage)",
        params: IdParams,
        response: { 200: AlertView, ...withNotFound },
      },
    },
    async (request) => alertView(await services.alerts.acknowledge(request.ctx, request.params.id)),
  );
};
