// Approving policy exceptions: separation of duties for the one part of a spec that turns a failing
// control into an accepted risk. Applying a spec proposes its new exceptions (environment-service);
// here someone other than the proposer approves one version, and the approval commits with its audit
// entry. Until the change-request path carries approvals, this is where they are given.
import type { TAuditLog } from "../audit/audit-log.js";
import { authorizeListing, authorizeOrganization, inScope } from "../identity/identity-permissions.js";
import type { TAuditAppend } from "../identity/identity-types.js";
import { ConflictError, ForbiddenError, NotFoundError } from "../lib/errors.js";
import type { TRequestContext } from "../lib/request-context.js";
import { approveException, exceptionActorOf } from "./policy-exception-store.js";
import type { TExceptionRecord, TExceptionStore } from "./policy-exception-store.js";
import { isExceptionActive } from "./policy-exceptions.js";

type TExceptionServiceDeps = {
  store: Pick<TExceptionStore, "list" | "find">;
  audit: { append: TAuditAppend; recordChange: TAuditLog["recordChange"] };
  now?: () => Date;
};

export type TExceptionStatus = "pending" | "approved" | "expired";

/** A recorded exception version as the API and the CLI show it; ids of who acted stay inside. */
export type TExceptionView = Omit<TExceptionRecord, "digest" | "proposerId" | "approverId"> & {
  readonly status: TExceptionStatus;
};

export const exceptionServiceFactory = ({ store, audit, now = () => new Date() }: TExceptionServiceDeps) => {
  const viewOf = ({ digest: _digest, proposerId: _proposer, approverId: _approver, ...record }: TExceptionRecord) => {
    const status: TExceptionStatus = !isExceptionActive(record, now())
      ? "expired"
      : record.approvedAt === null
        ? "pending"
        : "approved";
    return { ...record, status } satisfies TExceptionView;
  };

  /** A refused approval is an audit event too, with the reason the caller reads. */
  const refuse = async (ctx: TRequestContext, record: TExceptionRecord, error: ForbiddenError | ConflictError) => {
    await audit.append(ctx, {
      type: "policy.exception_approval_denied",
      outcome: "denied",
      target: `environment/${record.organization}/${record.environment}`,
      payload: { exceptionId: record.id, reason: error.message.slice(0, 500) },
    });
    throw error;
  };

  return {
    /** Every recorded version, newest first, of one organization or all. */
    list: async (ctx: TRequestContext, organization?: string): Promise<TExceptionView[]> => {
      // Only the organizations the caller reads specs of: another organization's exceptions are not listed.
      const scope = await authorizeListing(ctx, "spec:read", audit);
      return (await store.list(organization)).filter((record) => inScope(scope, record.organization)).map(viewOf);
    },

    approve: async (ctx: TRequestContext, organization: string, id: number): Promise<TExceptionView> => {
      await authorizeOrganization(ctx, "change:approve", organization, audit, `policy-exception/${organization}/${id}`);
      const record = await store.find(organization, id);
      if (record === undefined)
        throw new NotFoundError(`organization ${JSON.stringify(organization)} has no exception #${id}`);
      const scope = `exception #${id} (${record.controlId} for environment ${JSON.stringify(record.environment)})`;
      if (ctx.actor.kind !== "user")
        return refuse(
          ctx,
          record,
          new ForbiddenError(`${scope} is approved by a person, signed in; not by carehost itself`),
        );
      const approver = exceptionActorOf(ctx);
      if (approver.id === record.proposerId)
        return refuse(
          ctx,
          record,
          new ForbiddenError(
            `${approver.name} proposed ${scope} by applying the spec that introduced it; someone other than its proposer approves it`,
          ),
        );
      if (record.approvedAt !== null)
        return refuse(
          ctx,
          record,
          new ConflictError(
            `${scope} was already approved by ${record.approvedBy} at ${record.approvedAt.toISOString()}`,
          ),
        );
      if (!isExceptionActive(record, now()))
        return refuse(
          ctx,
          record,
          new ConflictError(`${scope} expired (${record.expires}); a renewed exception in the spec is a new proposal`),
        );
      const { result } = await audit.recordChange(ctx, async (tx) => {
        const approved = await approveException(tx, record, approver, now());
        // Another approver was faster: theirs stands, and this one changes nothing.
        if (approved === undefined) throw new ConflictError(`${scope} was approved meanwhile`);
        return {
          result: approved,
          events: [
            {
              type: "policy.exception_approved",
              outcome: "success",
              target: `environment/${organization}/${approved.environment}`,
              payload: {
                exceptionId: approved.id,
                controlId: approved.controlId,
                environment: approved.environment,
                expires: approved.expires,
                proposedBy: approved.proposedBy,
              },
            },
          ],
        };
      });
      return viewOf(result);
    },
  };
};

export type TExceptionService = ReturnType<typeof exceptionServiceFactory>;
