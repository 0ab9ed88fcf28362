// What every step of a change request shares: finding a request for a caller (a request of an
// organization the caller cannot read does not exist for them), refusing with an audit entry, and
// moving a request with its audit entries in one transaction.
import type { TAuditLog } from "../audit/audit-log.js";
import type { TAuditEvent } from "../audit/audit-types.js";
import type { TEnvironmentStore } from "../environments/environment-store.js";
import { authorizeOrganization, can, recordDenial } from "../identity/identity-permissions.js";
import type { Permission } from "../identity/identity-permissions.js";
import type { TAuditAppend } from "../identity/identity-types.js";
import { ConflictError, NotFoundError } from "../lib/errors.js";
import type { DomainError } from "../lib/errors.js";
import type { TRequestContext } from "../lib/request-context.js";
import type { TChangeStore } from "./change-store.js";
import type { TChangeRequest } from "./change-types.js";
import { changeViewOf } from "./change-view.js";
import type { TChangeView } from "./change-view.js";

export type TChangeAction = "approve" | "deny" | "apply" | "cancel" | "rollback";

export type TChangeStepsDeps = {
  store: Pick<TChangeStore, "find" | "transition">;
  revisions: Pick<TEnvironmentStore, "appliedRevision">;
  audit: { append: TAuditAppend; recordChange: TAuditLog["recordChange"] };
  now: () => Date;
};

export const changeStepsFactory = ({ store, revisions, audit, now }: TChangeStepsDeps) => {
  const target = (request: Pick<TChangeRequest, "organization" | "id">) =>
    `change/${request.organization}/${request.id}`;

  const viewOf = async (request: TChangeRequest): Promise<TChangeView> =>
    changeViewOf(request, (await revisions.appliedRevision(request.organization))?.spec, now());

  /**
   * The request, for a caller allowed `permission` on its organization. One who may not even read
   * that organization's changes is told it does not exist, as for a request that does not.
   */
  const findFor = async (ctx: TRequestContext, id: number, permission: Permission): Promise<TChangeRequest> => {
    const request = await store.find(id);
    if (request === undefined || !can(ctx.actor, "change:read", { organization: request.organization })) {
      if (request !== undefined)
        await recordDenial(ctx, "change:read", audit, target(request), { organization: request.organization });
      throw new NotFoundError(`no change request #${id}`);
    }
    await authorizeOrganization(ctx, permission, request.organization, audit, target(request));
    return request;
  };

  /** A refusal is an audit event too, with the reason the caller reads. */
  const refuse = async (
    ctx: TRequestContext,
    request: TChangeRequest,
    action: TChangeAction,
    error: DomainError,
  ): Promise<never> => {
    await audit.append(ctx, {
      type: "change.refused",
      outcome: "denied",
      target: target(request),
      payload: { changeRequest: request.id, action, reason: error.message.slice(0, 500) },
    });
    throw error;
  };

  /** Moves the request and commits its audit entries with the move; a request that moved meanwhile is a conflict. */
  const step = async (
    ctx: TRequestContext,
    request: TChangeRequest,
    from: readonly TChangeRequest["state"][],
    patch: Parameters<TChangeStore["transition"]>[3],
    events: (updated: TChangeRequest) => TAuditEvent[],
  ): Promise<TChangeRequest> => {
    const { result } = await audit.recordChange(ctx, async (tx) => {
      const updated = await store.transition(tx, request.id, from, patch);
      if (updated === undefined)
        throw new ConflictError(`change request #${request.id} changed meanwhile; carehost change show ${request.id}`);
      return { result: updated, events: events(updated) };
    });
    return result;
  };

  return { target, viewOf, findFor, refuse, step };
};

export type TChangeSteps = ReturnType<typeof changeStepsFactory>;
