// The audit log as the API exposes it: the same log, with authorization checked here (auditors
// and platform admins read, verify and export) and the reads that change evidence audited too.
import { authorize, authorizeListing, inScope } from "../identity/identity-permissions.js";
import { ValidationError } from "../lib/errors.js";
import { actorName } from "../lib/request-context.js";
import type { TRequestContext } from "../lib/request-context.js";
import type { TSqlExecutor } from "../store/store-types.js";
import type { TAuditLog } from "./audit-log.js";
import { latestCheckpoint, readHeadSize } from "./audit-store.js";
import type { AuditEventType, TAuditBundle, TAuditEntry, TAuditVerifyReport } from "./audit-types.js";
import { auditEventTypes } from "./audit-types.js";

type TAuditServiceDeps = {
  log: Pick<TAuditLog, "append" | "list" | "verify" | "exportBundle">;
  db: TSqlExecutor;
};

export type TAuditListItem = {
  seq: number;
  time: string;
  type: string;
  outcome: string;
  actor: string;
  sourceAddress: string;
  requestId: string;
  target: string;
  payload: Record<string, unknown>;
};

/**
 * The organization an entry is about: named by its target (organization/<o>, environment/<o>/<e>,
 * secret:runtime/<o>/… or secret:backup/<o>/…) or, failing that, by its payload's organization.
 * Entries about none (sign-ins, users, the server) are read with a role over every organization.
 */
export const auditOrganizationOf = (entry: Pick<TAuditEntry, "target" | "payload">): string | undefined => {
  const named = /^(?:organization\/([^/]+)$|environment\/([^/]+)\/|secret:(?:runtime|backup)\/([^/]+)\/)/.exec(
    entry.target ?? "",
  );
  const fromTarget = named?.[1] ?? named?.[2] ?? named?.[3];
  if (fromTarget !== undefined) return fromTarget;
  const organization = entry.payload.organization;
  return typeof organization === "string" && organization !== "*" ? organization : undefined;
};

export const auditServiceFactory = ({ log, db }: TAuditServiceDeps) => ({
  /** Size of the log and its newest signed checkpoint (for status). No authorization: numbers only. */
  head: async () => {
    const [treeSize, checkpoint] = await Promise.all([readHeadSize(db), latestCheckpoint(db)]);
    return {
      treeSize,
      lastCheckpoint: checkpoint === undefined ? null : { treeSize: checkpoint.treeSize, time: checkpoint.time },
    };
  },

  list: async (
    ctx: TRequestContext,
    query: { from?: Date; to?: Date; type?: string; afterSeq?: number; limit: number },
  ): Promise<TAuditListItem[]> => {
    const scope = await authorizeListing(ctx, "audit:read", log, "audit-log");
    if (query.type !== undefined && !auditEventTypes.includes(query.type as AuditEventType)) {
      throw new ValidationError(`unknown audit event type ${JSON.stringify(query.type)}`, [
        { path: "type", message: `one of ${auditEventTypes.join(", ")}` },
      ]);
    }
    const filter = { ...query, type: query.type as AuditEventType | undefined };
    let rows = await log.list(filter);
    if (!scope.all) {
      // Page on through the log until `limit` entries of the caller's organizations are found.
      const visible: typeof rows = [];
      for (let page = rows; page.length > 0;) {
        visible.push(
          ...page.filter(({ entry }) => {
            const organization = auditOrganizationOf(entry);
            return organization !== undefined && inScope(scope, organization);
          }),
        );
        if (visible.length >= query.limit || page.length < query.limit) break;
        page = await log.list({ ...filter, afterSeq: page[page.length - 1]!.seq });
      }
      rows = visible.slice(0, query.limit);
    }
    return rows.map(({ seq, entry }) => ({
      seq,
      time: entry.time,
      type: entry.type,
      outcome: entry.outcome,
      actor: actorName(entry.actor),
      sourceAddress: entry.sourceAddress,
      requestId: entry.requestId,
      target: entry.target ?? "",
      payload: entry.payload,
    }));
  },

  verify: async (ctx: TRequestContext): Promise<TAuditVerifyReport> => {
    await authorize(ctx, "audit:verify", log, "audit-log");
    const report = await log.verify();
    await log.append(ctx, {
      type: "audit.verified",
      outcome: report.ok ? "success" : "failure",
      target: "audit-log",
      payload: { ok: report.ok, treeSize: report.treeSize, problems: report.problems.length },
    });
    return report;
  },

  exportBundle: async (ctx: TRequestContext, range: { from?: Date; to?: Date }): Promise<TAuditBundle> => {
    await authorize(ctx, "audit:export", log, "audit-log");
    const bundle = await log.exportBundle(range);
    await log.append(ctx, {
      type: "audit.exported",
      outcome: "success",
      target: "audit-log",
      payload: {
        from: range.from?.toISOString() ?? null,
        to: range.to?.toISOString() ?? null,
        entries: bundle.entries.length,
        treeSize: bundle.checkpoint.treeSize,
      },
    });
    return bundle;
  },
});

export type TAuditService = ReturnType<typeof auditServiceFactory>;
