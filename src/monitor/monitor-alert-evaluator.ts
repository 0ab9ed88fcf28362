// carehost's own alert evaluation, run on every probe round: each rule's `check` (the PromQL
// condition's twin, monitor-rules.ts) over the round's readings; an alert per rule and series
// (deduplicated by the fingerprint of its labels) that fires once its condition has held for the
// rule's for-duration and resolves once it has stayed clear for resolveAfter (hysteresis: a
// condition that comes and goes within that fires and resolves once); silences keep a firing alert
// from being sent; a critical alert nobody acknowledges is escalated. Each change and the
// deliveries it owes its routes commit with their audit entries in one transaction.
import type { TAuditLog } from "../audit/audit-log.js";
import type { TAuditEvent } from "../audit/audit-types.js";
import { systemContext } from "../lib/request-context.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import type { TSqlExecutor } from "../store/store-types.js";
import type { TProbeRound } from "./monitor-probes.js";
import { alertStore } from "./monitor-alert-store.js";
import { expandTemplate, fingerprintOf, routeAlert, destinationsOf } from "./monitor-alert-routing.js";
import { silenceCovers, type TAlert, type TDestination } from "./monitor-alert-types.js";
import { DEFAULT_RESOLVE_AFTER, durationSeconds, effectiveRules, type TEffectiveRule } from "./monitor-rules.js";

type TAlertEvaluatorDeps = {
  log: Pick<TAuditLog, "recordChange">;
  latestSpecs: () => Promise<TOrganizationSpec[]>;
  /** Where carehost's own alerts (sign-ins, privilege changes, probes) go: configured, not any tenant's spec. */
  platformDestinations: readonly TDestination[];
  /** Called once deliveries were queued, so they go out now rather than at the next tick. */
  onQueued?: () => void;
  now?: () => Date;
};

/** What one evaluation changed, for its caller and tests. */
export type TEvaluation = {
  fired: TAlert[];
  resolved: TAlert[];
  escalated: TAlert[];
  /** Alerts firing and sent, with where they went: an Alertmanager is told again while they fire. */
  active: { alert: TAlert; destinations: TDestination[] }[];
};

type TDesired = {
  readonly rule: TEffectiveRule;
  readonly spec: TOrganizationSpec | null;
  readonly organization: string;
  readonly environment: string;
  readonly instance: string;
  readonly entity: string | null;
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
  readonly value: number;
  readonly fingerprint: string;
};

const HISTORY_SECONDS = 3600;

export const alertEvaluatorFactory = ({
  log,
  latestSpecs,
  platformDestinations,
  onQueued = () => undefined,
  now = () => new Date(),
}: TAlertEvaluatorDeps) => {
  // Counter samples of the rounds seen, for increase(): kept in memory, as Prometheus keeps its own.
  const history = new Map<string, { at: number; value: number }[]>();
  const increaseAt =
    (at: Date) =>
    (series: string, current: number, windowSeconds: number): number => {
      const samples = history.get(series) ?? [];
      const since = at.getTime() - windowSeconds * 1000;
      const first = samples.find((sample) => sample.at >= since);
      samples.push({ at: at.getTime(), value: current });
      while (samples.length > 0 && samples[0]!.at < at.getTime() - HISTORY_SECONDS * 1000) samples.shift();
      history.set(series, samples);
      if (first === undefined) return 0;
      // A counter that went down was reset (a cluster restarted): what it counts now is all new.
      return current >= first.value ? current - first.value : current;
    };

  const desiredOf = (round: TProbeRound, specs: readonly TOrganizationSpec[], at: Date): TDesired[] => {
    const increase = increaseAt(at);
    const groups: { spec: TOrganizationSpec | null; rules: TEffectiveRule[] }[] = [
      ...specs.map((spec) => ({ spec, rules: effectiveRules(spec) })),
      { spec: null, rules: effectiveRules(null) },
    ];
    return groups.flatMap(({ spec, rules }) => {
      const organization = spec?.metadata.name ?? "";
      const readings =
        spec === null ? round.environments : round.environments.filter((r) => r.organization === organization);
      return rules.flatMap((rule) =>
        rule.check({ readings, round, threshold: rule.threshold, now: at, increase }).map((hit): TDesired => {
          const labels: Record<string, string> = {
            alertname: rule.name,
            ...(organization === "" ? {} : { organization }),
            ...(hit.environment === "" ? {} : { environment: hit.environment }),
            ...(hit.instance === "" ? {} : { instance: hit.instance }),
            ...(hit.labels ?? {}),
            ...rule.labels,
          };
          const entity = spec?.environments.find((environment) => environment.name === hit.environment)?.entity ?? null;
          return {
            rule,
            spec,
            organization,
            environment: hit.environment,
            instance: hit.instance,
            entity,
            labels,
            annotations: {
              summary: expandTemplate(rule.summary, labels, hit.value),
              description: expandTemplate(rule.description, labels, hit.value),
              runbook_url: rule.runbookUrl,
            },
            value: hit.value,
            fingerprint: fingerprintOf(labels),
          };
        }),
      );
    });
  };

  const evaluate = async (round: TProbeRound): Promise<TEvaluation> => {
    const specs = await latestSpecs();
    const at = now();
    const desired = new Map(desiredOf(round, specs, at).map((item) => [item.fingerprint, item]));
    const specOf = (organization: string) => specs.find((spec) => spec.metadata.name === organization) ?? null;
    const ruleOf = (alert: TAlert) =>
      effectiveRules(alert.organization === "" ? null : specOf(alert.organization)).find(
        (rule) => rule.name === alert.rule,
      );
    const destinationsFor = (alert: TAlert): TDestination[] => {
      if (alert.organization === "") return [...platformDestinations];
      const spec = specOf(alert.organization);
      return spec === null ? [] : routeAlert(spec, alert);
    };

    const { result } = await log.recordChange(systemContext("alert-evaluator"), async (tx: TSqlExecutor) => {
      await alertStore.lockEvaluation(tx);
      const events: TAuditEvent[] = [];
      const evaluation: TEvaluation = { fired: [], resolved: [], escalated: [], active: [] };
      const silences = await alertStore.activeSilences(tx, at);
      const silenceOf = (alert: TAlert) => silences.find((silence) => silenceCovers(silence, alert, at));
      const fire = async (alert: TAlert): Promise<TAlert> => {
        const silence = silenceOf(alert);
        const fired = { ...alert, state: "firing" as const, firedAt: at, clearSince: null };
        events.push({
          type: "alert.firing",
          outcome: "success",
          target: `alert:${alert.id}`,
          payload: {
            alert: alert.id,
            rule: alert.rule,
            organization: alert.organization,
            environment: alert.environment,
            instance: alert.instance,
            severity: alert.severity,
            value: Number.isFinite(alert.value) ? alert.value : null,
            ...(silence === undefined ? {} : { silencedBy: silence.id }),
          },
        });
        evaluation.fired.push(fired);
        return fired;
      };

      const open = await alertStore.openAlerts(tx);
      const seen = new Set<string>();
      for (let alert of open) {
        const wanted = desired.get(alert.fingerprint);
        seen.add(alert.fingerprint);
        const rule = wanted?.rule ?? ruleOf(alert);
        if (wanted !== undefined) {
          alert = {
            ...alert,
            value: wanted.value,
            annotations: wanted.annotations,
            labels: wanted.labels,
            severity: wanted.rule.severity,
            entity: wanted.entity,
            evaluatedAt: at,
          };
          if (
            alert.state === "pending" &&
            at.getTime() - alert.pendingSince.getTime() >= durationSeconds(wanted.rule.for) * 1000
          )
            alert = await fire(alert);
          else if (alert.state === "firing") alert = { ...alert, clearSince: null };
        } else if (alert.state === "pending") {
          await alertStore.remove(tx, alert.id);
          continue;
        } else {
          const clearSince = alert.clearSince ?? at;
          const resolveAfter = durationSeconds(rule?.resolveAfter ?? DEFAULT_RESOLVE_AFTER) * 1000;
          alert = { ...alert, clearSince, evaluatedAt: at };
          if (at.getTime() - clearSince.getTime() >= resolveAfter) {
            alert = { ...alert, state: "resolved", resolvedAt: at };
            events.push({
              type: "alert.resolved",
              outcome: "success",
              target: `alert:${alert.id}`,
              payload: {
                alert: alert.id,
                rule: alert.rule,
                organization: alert.organization,
                environment: alert.environment,
                instance: alert.instance,
                firedAt: (alert.firedAt ?? alert.pendingSince).toISOString(),
              },
            });
            evaluation.resolved.push(alert);
            // Only what was sent is resolved at the receivers.
            if (alert.notifiedAt !== null)
              await alertStore.enqueue(tx, alert.id, "resolved", destinationsFor(alert), at);
          }
        }
        alert = await notifyAndEscalate(tx, alert);
        await alertStore.update(tx, alert);
        if (alert.state === "firing" && alert.notifiedAt !== null && silenceOf(alert) === undefined)
          evaluation.active.push({ alert, destinations: destinationsFor(alert) });
      }
      for (const wanted of desired.values()) {
        if (seen.has(wanted.fingerprint)) continue;
        let alert = await alertStore.insert(tx, {
          fingerprint: wanted.fingerprint,
          rule: wanted.rule.name,
          organization: wanted.organization,
          environment: wanted.environment,
          instance: wanted.instance,
          entity: wanted.entity,
          severity: wanted.rule.severity,
          labels: wanted.labels,
          annotations: wanted.annotations,
          state: "pending",
          value: wanted.value,
          pendingSince: at,
          firedAt: null,
          evaluatedAt: at,
        });
        if (durationSeconds(wanted.rule.for) === 0) {
          alert = await fire(alert);
          alert = await notifyAndEscalate(tx, alert);
          await alertStore.update(tx, alert);
        }
      }
      return { result: evaluation, events };

      /** A firing alert not yet sent (new, or its silence ended) is sent; one left unacknowledged too long is escalated. */
      async function notifyAndEscalate(executor: TSqlExecutor, alert: TAlert): Promise<TAlert> {
        if (alert.state !== "firing" || silenceOf(alert) !== undefined) return alert;
        let next = alert;
        if (next.notifiedAt === null) {
          await alertStore.enqueue(executor, next.id, "firing", destinationsFor(next), at);
          next = { ...next, notifiedAt: at };
        }
        const escalation = next.organization === "" ? undefined : specOf(next.organization)?.monitoring?.escalation;
        if (
          escalation !== undefined &&
          next.severity === "critical" &&
          next.acknowledgedAt === null &&
          next.escalatedAt === null &&
          next.clearSince === null &&
          at.getTime() - (next.firedAt ?? at).getTime() >= durationSeconds(escalation.after) * 1000
        ) {
          await alertStore.enqueue(executor, next.id, "escalated", destinationsOf(escalation), at);
          next = { ...next, escalatedAt: at };
          events.push({
            type: "alert.escalated",
            outcome: "success",
            target: `alert:${next.id}`,
            payload: {
              alert: next.id,
              rule: next.rule,
              organization: next.organization,
              firedAt: (next.firedAt ?? at).toISOString(),
              after: escalation.after,
            },
          });
          evaluation.escalated.push(next);
        }
        return next;
      }
    });
    onQueued();
    return result;
  };

  return { evaluate };
};

export type TAlertEvaluator = ReturnType<typeof alertEvaluatorFactory>;
