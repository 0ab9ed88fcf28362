// What the HTTP layer asks of monitoring: the metrics a scrape token may read, and the rules file
// for the organizations it covers.
import { authorize, inScope, scopeOf } from "../identity/identity-permissions.js";
import type { TAuditAppend } from "../identity/identity-types.js";
import type { TRequestContext } from "../lib/request-context.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import type { TMonitorMetrics } from "./monitor-metrics.js";
import { renderPrometheusRulesFile } from "./monitor-rules.js";
import type { TMonitorProbes } from "./monitor-probes.js";

type TMonitorServiceDeps = {
  probes: Pick<TMonitorProbes, "latest">;
  metrics: Pick<TMonitorMetrics, "render" | "contentType">;
  audit: { append: TAuditAppend };
  latestSpecs: () => Promise<TOrganizationSpec[]>;
};

export const monitorServiceFactory = ({ probes, metrics, audit, latestSpecs }: TMonitorServiceDeps) => ({
  /** The last probe round in Prometheus's text format, cut to the caller's organizations. */
  metrics: async (ctx: TRequestContext): Promise<{ contentType: string; text: string }> => {
    await authorize(ctx, "metrics:read", audit, "metrics", "some-organization");
    const text = await metrics.render(await probes.latest(), scopeOf(ctx.actor, "metrics:read"));
    return { contentType: metrics.contentType, text };
  },

  /** The rules file for the caller's organizations; the platform's own group only over every organization. */
  rules: async (ctx: TRequestContext): Promise<string> => {
    await authorize(ctx, "metrics:read", audit, "monitoring/rules", "some-organization");
    const scope = scopeOf(ctx.actor, "metrics:read");
    const specs = (await latestSpecs()).filter((spec) => inScope(scope, spec.metadata.name));
    return renderPrometheusRulesFile(specs, { platform: scope.all });
  },
});

export type TMonitorService = ReturnType<typeof monitorServiceFactory>;
