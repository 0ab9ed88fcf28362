// Every copy has a lifecycle: listed with its source, instant, data class, owner and expiry;
// removed when someone asks (carehost copies remove) or when a PHI copy's expiry passes (the
// supervisor's tick calls expire); each removal audited with the copy's row ended in the same
// transaction. The data a restore put into a declared environment is listed too (where it came
// from, what class it is), but it is the environment's data: only a restored copy is torn down.
import type { TAuditEvent } from "../audit/audit-types.js";
import { authorize, authorizeListing, inScope, recordDenial } from "../identity/identity-permissions.js";
import type { TChangeAudit } from "../identity/identity-types.js";
import { NotFoundError, ValidationError } from "../lib/errors.js";
import { actorName, type TRequestContext } from "../lib/request-context.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import type { TSqlClient } from "../store/store-types.js";
import type { TRecoveryDriver } from "../backup/recovery-driver.js";
import type { TCopyRecord } from "./copies-store.js";
import { expiredCopies, liveCopies, liveCopy, markRemoved } from "./copies-store.js";

type TCopiesLifecycleDeps = {
  db: Pick<TSqlClient, "query">;
  runtime: Pick<TRecoveryDriver, "removeCopy">;
  latestSpecs: () => Promise<TOrganizationSpec[]>;
  audit: TChangeAudit;
  now?: () => Date;
};

const removedEvent = (copy: TCopyRecord, reason: "requested" | "expired"): TAuditEvent => ({
  type: "copy.removed",
  outcome: "success",
  target: `copy/${copy.organization}/${copy.name}`,
  payload: {
    name: copy.name,
    kind: copy.kind,
    source: copy.sourceEnvironment,
    dataClass: copy.dataClass,
    reason,
    createdAt: copy.createdAt.toISOString(),
    expiresAt: copy.expiresAt?.toISOString() ?? null,
  },
});

export const copiesLifecycleFactory = ({
  db,
  runtime,
  latestSpecs,
  audit,
  now = () => new Date(),
}: TCopiesLifecycleDeps) => {
  const tearDown = async (ctx: TRequestContext, copy: TCopyRecord, reason: "requested" | "expired") => {
    const organization = (await latestSpecs()).find((spec) => spec.metadata.name === copy.organization);
    // An organization no longer recorded has no runtime directory left to hold the copy.
    if (organization !== undefined) await runtime.removeCopy(organization, copy.name);
    const { result: ended } = await audit.recordChange(ctx, async (tx) => {
      const done = await markRemoved(tx, copy.id, { at: now(), by: actorName(ctx.actor), reason });
      return { result: done, events: done ? [removedEvent(copy, reason)] : [] };
    });
    return ended;
  };

  return {
    /** The caller's organizations' live copies. */
    list: async (ctx: TRequestContext, organization?: string): Promise<TCopyRecord[]> => {
      if (organization !== undefined)
        await authorize(ctx, "environment:read", audit, `organization/${organization}`, { organization });
      const scope = await authorizeListing(ctx, "environment:read", audit);
      return (await liveCopies(db, organization === undefined ? undefined : [organization])).filter((copy) =>
        inScope(scope, copy.organization),
      );
    },

    /** Tears a restored copy down now: its cluster stopped, its data and filestore removed; audited. */
    remove: async (ctx: TRequestContext, input: { name: string; organization?: string }) => {
      // Naming an organization outside the caller's bindings is refused before anything is looked up.
      if (input.organization !== undefined)
        await authorize(ctx, "restore:run", audit, `copy/${input.organization}/${input.name}`, {
          organization: input.organization,
        });
      const scope = await authorizeListing(ctx, "restore:run", audit, `copy/${input.name}`);
      const named = (await liveCopies(db, input.organization === undefined ? undefined : [input.organization])).filter(
        (copy) => copy.name === input.name,
      );
      const candidates = named.filter((copy) => inScope(scope, copy.organization));
      const hidden = named.find((copy) => !inScope(scope, copy.organization));
      // Another organization's copy is "not found" like one that does not exist, and the refusal audited.
      if (candidates.length === 0 && hidden !== undefined)
        await recordDenial(ctx, "restore:run", audit, `copy/${input.name}`, { organization: hidden.organization });
      if (candidates.length === 0)
        throw new NotFoundError(`no live copy is named ${JSON.stringify(input.name)} (carehost copies lists them)`);
      if (candidates.length > 1)
        throw new ValidationError(
          `copies named ${JSON.stringify(input.name)} exist in ${candidates.map((copy) => copy.organization).join(" and ")}; pass --org`,
        );
      const copy = candidates[0]!;
      await authorize(ctx, "restore:run", audit, `copy/${copy.organization}/${copy.name}`, {
        organization: copy.organization,
      });
      if (copy.kind === "environment")
        throw new ValidationError(
          `${JSON.stringify(copy.name)} is a declared environment holding a restore of ${JSON.stringify(copy.sourceEnvironment)}: its data is the environment's (restore over it, or remove it from the spec), not a copy to tear down`,
        );
      await tearDown(ctx, copy, "requested");
      return { ...copy, removedAt: now(), removedBy: actorName(ctx.actor), removalReason: "requested" };
    },

    /**
     * Tears down every copy whose expiry has passed (the supervisor's tick). Returns the names torn
     * down; one that fails is left for the next tick, after the others.
     */
    expire: async (
      ctx: TRequestContext,
      organization?: string,
    ): Promise<{ removed: string[]; failed: { name: string; reason: string }[] }> => {
      const removed: string[] = [];
      const failed: { name: string; reason: string }[] = [];
      for (const copy of await expiredCopies(db, now())) {
        if (copy.kind !== "copy" || (organization !== undefined && copy.organization !== organization)) continue;
        try {
          if (await tearDown(ctx, copy, "expired")) removed.push(`${copy.organization}/${copy.name}`);
        } catch (error) {
          failed.push({
            name: `${copy.organization}/${copy.name}`,
            reason: error instanceof Error ? error.message : String(error),
          });
        }
      }
      return { removed, failed };
    },

    /** A live copy by name, for the recovery service (a copy's name must be free). */
    live: (organization: string, name: string) => liveCopy(db, organization, name),
  };
};

export type TCopiesLifecycle = ReturnType<typeof copiesLifecycleFactory>;
