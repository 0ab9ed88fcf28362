// Operations as people see them: listed and followed within the organizations their role covers,
// cancelled by whoever may start that kind of operation. The scheduler's enqueues and the
// workers' repairs go through here too, so an interruption found after a replica died is audited.
import { authorize, authorizeListing, inScope, recordDenial } from "../identity/identity-permissions.js";
import type { Permission } from "../identity/identity-permissions.js";
import type { TIdentityAudit } from "../identity/identity-types.js";
import { NotFoundError } from "../lib/errors.js";
import { systemContext } from "../lib/request-context.js";
import type { TRequestContext } from "../lib/request-context.js";
import type { TOperationStore } from "./operation-store.js";
import { isFinished } from "./operation-types.js";
import type { TOperation, TOperationKind, TOperationRequest } from "./operation-types.js";

/** Who may cancel an operation: whoever may start one of its kind. */
const permissionToRun: Record<TOperationKind, Permission> = {
  apply: "spec:apply",
  "gitops-commit": "spec:apply",
  destroy: "spec:apply",
  backup: "backup:run",
  "filestore-snapshot": "backup:run",
  verify: "backup:run",
  expire: "backup:run",
  restore: "restore:run",
  drill: "restore:run",
  "secret-rotation": "secret:rotate",
};

const FOLLOW_POLL_MS = 500;

type TOperationServiceDeps = {
  store: Pick<TOperationStore, "enqueue" | "get" | "list" | "requestCancel">;
  audit: TIdentityAudit;
  /** Called after an enqueue, so this replica's worker claims at once instead of at its next poll. */
  wake?: () => void;
};

export const operationServiceFactory = ({ store, audit, wake }: TOperationServiceDeps) => {
  /** The operation by id, for a caller who may read its organization; any other is "not found". */
  const visible = async (ctx: TRequestContext, id: number): Promise<TOperation> => {
    const scope = await authorizeListing(ctx, "environment:read", audit, `operation/${id}`);
    const operation = await store.get(id);
    if (operation !== undefined && !inScope(scope, operation.organization))
      await recordDenial(ctx, "environment:read", audit, `operation/${id}`, { organization: operation.organization });
    if (operation === undefined || !inScope(scope, operation.organization))
      throw new NotFoundError(`no operation ${id} in the organizations you can read`);
    return operation;
  };

  return {
    /** Queues an operation as carehost itself (the scheduler); one already open under its dedupe key is returned instead. */
    enqueueAsSystem: async (request: Omit<TOperationRequest, "requestedBy" | "source">, requestedBy: string) => {
      const queued = await store.enqueue({ ...request, requestedBy: `system:${requestedBy}`, source: "carehost" });
      if (queued.created) wake?.();
      return queued;
    },

    list: async (
      ctx: TRequestContext,
      filter: { organization?: string; environment?: string; limit?: number } = {},
    ): Promise<TOperation[]> => {
      const scope = await authorizeListing(ctx, "environment:read", audit, "operations");
      if (filter.organization !== undefined && !inScope(scope, filter.organization))
        await authorize(ctx, "environment:read", audit, `organization/${filter.organization}`, {
          organization: filter.organization,
        });
      const organizations =
        filter.organization !== undefined ? [filter.organization] : scope.all ? undefined : scope.organizations;
      return store.list({
        ...(organizations === undefined ? {} : { organizations }),
        ...(filter.environment === undefined ? {} : { environment: filter.environment }),
        limit: Math.min(filter.limit ?? 50, 500),
      });
    },

    get: visible,

    /** Calls `onChange` with the operation each time its state or steps change, until it has ended. */
    follow: async (
      ctx: TRequestContext,
      id: number,
      onChange: (operation: TOperation) => void,
      signal?: AbortSignal,
    ): Promise<TOperation> => {
      let operation = await visible(ctx, id);
      let seen = "";
      for (;;) {
        const shape = `${operation.state}/${operation.steps.length}/${operation.cancelRequested}`;
        if (shape !== seen) onChange(operation);
        seen = shape;
        if (isFinished(operation.state) || signal?.aborted === true) return operation;
        await new Promise((resolve) => setTimeout(resolve, FOLLOW_POLL_MS));
        operation = (await store.get(id)) ?? operation;
      }
    },

    cancel: async (ctx: TRequestContext, id: number): Promise<TOperation> => {
      const operation = await visible(ctx, id);
      await authorize(ctx, permissionToRun[operation.kind], audit, `operation/${id}`, {
        organization: operation.organization,
      });
      if (isFinished(operation.state)) return operation;
      const cancelled = (await store.requestCancel(id)) ?? operation;
      if (cancelled.state === "cancelled" || cancelled.cancelRequested)
        await audit.append(ctx, {
          type: "operation.cancelled",
          outcome: "success",
          target: `operation/${id}`,
          payload: {
            operationId: id,
            kind: operation.kind,
            target: operation.target,
            state: cancelled.state === "cancelled" ? "cancelled" : "stopping",
          },
        });
      return cancelled;
    },

    /** Audits an operation a worker found with its lease run out (the worker's onInterrupted). */
    recordInterrupted: async (operation: TOperation) => {
      await audit.append(systemContext("operations"), {
        type: "operation.interrupted",
        outcome: "failure",
        target: `operation/${operation.id}`,
        payload: {
          operationId: operation.id,
          kind: operation.kind,
          target: operation.target,
          reason: (operation.error ?? "interrupted").slice(0, 500),
        },
      });
    },
  };
};

export type TOperationService = ReturnType<typeof operationServiceFactory>;
