// What people do with carehost's alerts: list them (status:read over their organizations; the
// platform's own alerts need a binding over every organization), silence a rule for an
// environment with an owner, a reason and an expiry, end a silence, and acknowledge an alert so it
// is not escalated (alert:manage). Each change is audited in the transaction that makes it.
import type { TAuditLog } from "../audit/audit-log.js";
import { authorize, inScope, recordDenial, scopeOf } from "../identity/identity-permissions.js";
import { ConflictError, NotFoundError, ValidationError } from "../lib/errors.js";
import { actorName, type TRequestContext } from "../lib/request-context.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import type { TSqlExecutor } from "../store/store-types.js";
import { alertStore } from "./monitor-alert-store.js";
import type { TAlert, TDelivery, TSilence } from "./monitor-alert-types.js";
import { RULE_NAMES, durationSeconds } from "./monitor-rules.js";

type TAlertServiceDeps = {
  db: Pick<TSqlExecutor, "query">;
  log: Pick<TAuditLog, "recordChange" | "append">;
  latestSpecs: () => Promise<TOrganizationSpec[]>;
  now?: () => Date;
};

/** At most this long: a silence is a pause for known work, not a way to switch a rule off (the spec's enabled: false is). */
const MAX_SILENCE_SECONDS = 7 * 86400;

export type TAlertView = TAlert & { silencedBy: TSilence | null; deliveries: TDelivery[] };

export const alertServiceFactory = ({ db, log, latestSpecs, now = () => new Date() }: TAlertServiceDeps) => {
  const visible = (ctx: TRequestContext, organization: string) =>
    organization === ""
      ? scopeOf(ctx.actor, "status:read").all
      : inScope(scopeOf(ctx.actor, "status:read"), organization);

  const viewOf = async (alerts: TAlert[]): Promise<TAlertView[]> => {
    const at = now();
    const [silences, deliveries] = await Promise.all([
      alertStore.activeSilences(db, at),
      alertStore.deliveriesOf(
        db,
        alerts.map((alert) => alert.id),
      ),
    ]);
    return alerts.map((alert) => ({
      ...alert,
      silencedBy:
        silences.find(
          (silence) =>
            silence.rule === alert.rule &&
            silence.organization === alert.organization &&
            (silence.environment === null || silence.environment === alert.environment),
        ) ?? null,
      deliveries: deliveries.filter((delivery) => delivery.alertId === alert.id),
    }));
  };

  return {
    /** Firing alerts (and resolved ones when asked) of the caller's organizations, newest first, with their deliveries. */
    list: async (
      ctx: TRequestContext,
      options: { environment?: string; includeResolved?: boolean; limit?: number } = {},
    ): Promise<{ alerts: TAlertView[]; silences: TSilence[] }> => {
      await authorize(ctx, "status:read", log, "alerts", "some-organization");
      const alerts = (
        await alertStore.list(db, { includeResolved: options.includeResolved ?? false, limit: options.limit ?? 200 })
      ).filter(
        (alert) =>
          visible(ctx, alert.organization) &&
          (options.environment === undefined || alert.environment === options.environment),
      );
      const silences = (await alertStore.activeSilences(db, now())).filter((silence) =>
        visible(ctx, silence.organization),
      );
      return { alerts: await viewOf(alerts), silences };
    },

    /** Firing alerts by organization, for `status`. */
    firing: async (ctx: TRequestContext): Promise<TAlert[]> =>
      (await alertStore.list(db, { includeResolved: false, limit: 500 })).filter((alert) =>
        visible(ctx, alert.organization),
      ),

    silence: async (
      ctx: TRequestContext,
      request: { rule: string; organization?: string; environment?: string; for: string; reason: string },
    ): Promise<TSilence> => {
      if (!(RULE_NAMES as readonly string[]).includes(request.rule))
        throw new ValidationError(
          `rule: ${JSON.stringify(request.rule)} is not a rule carehost ships (one of ${RULE_NAMES.join(", ")})`,
        );
      if (!/^\d{1,4}[smhd]$/.test(request.for))
        throw new ValidationError(`for: ${JSON.stringify(request.for)} is not a duration such as 30m, 2h or 1d`);
      const seconds = durationSeconds(request.for);
      if (seconds <= 0 || seconds > MAX_SILENCE_SECONDS)
        throw new ValidationError(`for: ${JSON.stringify(request.for)} must be more than 0 and at most 7d`);
      const reason = request.reason.trim();
      if (reason === "" || reason.length > 500) throw new ValidationError("reason: say why, in at most 500 characters");
      const specs = await latestSpecs();
      // An environment names its organization when there is one to find among the caller's own
      // (another organization's environment of that name is not looked at); an explicit --org wins.
      const organization =
        request.organization ??
        (request.environment === undefined
          ? undefined
          : specs.find(
              (spec) =>
                visible(ctx, spec.metadata.name) &&
                spec.environments.some((environment) => environment.name === request.environment),
            )?.metadata.name);
      if (organization === undefined)
        throw new ValidationError("organization: name the organization (--org) or an environment of one (--env)");
      await authorize(ctx, "alert:manage", log, `alerts/${organization}`, { organization });
      const spec = specs.find((item) => item.metadata.name === organization);
      if (spec === undefined) throw new NotFoundError(`organization ${JSON.stringify(organization)} is not recorded`);
      if (
        request.environment !== undefined &&
        !spec.environments.some((environment) => environment.name === request.environment)
      )
        throw new NotFoundError(
          `environment: ${JSON.stringify(request.environment)} is not an environment of ${organization}`,
        );
      const at = now();
      const { result } = await log.recordChange(ctx, async (tx) => {
        const silence = await alertStore.insertSilence(tx, {
          rule: request.rule,
          organization,
          environment: request.environment ?? null,
          owner: actorName(ctx.actor),
          reason,
          createdAt: at,
          expiresAt: new Date(at.getTime() + seconds * 1000),
        });
        return {
          result: silence,
          events: [
            {
              type: "alert.silenced",
              outcome: "success",
              target: `alerts/${organization}`,
              payload: {
                silence: silence.id,
                rule: silence.rule,
                organization,
                environment: silence.environment,
                owner: silence.owner,
                reason,
                expiresAt: silence.expiresAt.toISOString(),
              },
            },
          ],
        };
      });
      return result;
    },

    unsilence: async (ctx: TRequestContext, id: number): Promise<TSilence> => {
      const silence = (await alertStore.activeSilences(db, now())).find((item) => item.id === id);
      // Another organization's silence answers as one that does not exist, and the refusal is audited.
      if (silence === undefined || !visible(ctx, silence.organization)) {
        if (silence !== undefined)
          await recordDenial(ctx, "status:read", log, `silence:${id}`, { organization: silence.organization });
        throw new NotFoundError(`silence ${id} is not an active silence`);
      }
      await authorize(ctx, "alert:manage", log, `alerts/${silence.organization}`, {
        organization: silence.organization,
      });
      const { result } = await log.recordChange(ctx, async (tx) => {
        const ended = await alertStore.endSilence(tx, id, actorName(ctx.actor), now());
        if (ended === undefined) throw new ConflictError(`silence ${id} has already ended`);
        return {
          result: ended,
          events: [
            {
              type: "alert.silence_ended",
              outcome: "success",
              target: `alerts/${ended.organization}`,
              payload: { silence: id, rule: ended.rule, organization: ended.organization },
            },
          ],
        };
      });
      return result;
    },

    acknowledge: async (ctx: TRequestContext, id: number): Promise<TAlert> => {
      const alert = await alertStore.get(db, id);
      // Another organization's alert answers as one that does not exist.
      if (alert === undefined || !visible(ctx, alert.organization)) {
        if (alert !== undefined)
          await recordDenial(ctx, "status:read", log, `alert:${id}`, { organization: alert.organization });
        throw new NotFoundError(`alert ${id} does not exist`);
      }
      await authorize(
        ctx,
        "alert:manage",
        log,
        `alert:${id}`,
        alert.organization === "" ? "every-organization" : { organization: alert.organization },
      );
      if (alert.state !== "firing") throw new ConflictError(`alert ${id} is ${alert.state}, not firing`);
      if (alert.acknowledgedAt !== null)
        throw new ConflictError(
          `alert ${id} was acknowledged by ${alert.acknowledgedBy} at ${alert.acknowledgedAt.toISOString()}`,
        );
      const at = now();
      await log.recordChange(ctx, async (tx) => {
        await alertStore.acknowledge(tx, id, actorName(ctx.actor), at);
        return {
          result: undefined,
          events: [
            {
              type: "alert.acknowledged",
              outcome: "success",
              target: `alert:${id}`,
              payload: { alert: id, rule: alert.rule, organization: alert.organization },
            },
          ],
        };
      });
      return { ...alert, acknowledgedBy: actorName(ctx.actor), acknowledgedAt: at };
    },
  };
};

export type TAlertService = ReturnType<typeof alertServiceFactory>;
