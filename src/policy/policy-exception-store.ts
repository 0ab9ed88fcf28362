// SQL for policy exceptions as carehost records them (migration 0009): one row per version of an
// exception, with its proposal and, once given, its approval. Writes take the executor of the
// caller's transaction, so a proposal or an approval commits with its audit entry.
import { actorName } from "../lib/request-context.js";
import type { TRequestContext } from "../lib/request-context.js";
import type { TSqlExecutor } from "../store/store-types.js";
import { exceptionDigest } from "./policy-exceptions.js";
import type { TExceptionApprovals, TPolicyException } from "./policy-exceptions.js";

/** Who acts, as carehost tells people apart: a user by id (a renamed user is still the same person). */
export type TExceptionActor = { readonly name: string; readonly id: string };

/** How carehost tells actors apart for separation of duties: a user by id, carehost's own process by name. */
export const exceptionActorOf = (ctx: TRequestContext): TExceptionActor => ({
  name: actorName(ctx.actor),
  id: ctx.actor.kind === "user" ? `user:${ctx.actor.userId}` : actorName(ctx.actor),
});

export type TExceptionRecord = TPolicyException & {
  readonly id: number;
  readonly organization: string;
  readonly digest: string;
  readonly proposedBy: string;
  readonly proposerId: string;
  readonly proposedAt: Date;
  readonly approvedBy: string | null;
  readonly approverId: string | null;
  readonly approvedAt: Date | null;
};

type TExceptionRow = {
  id: number;
  org_name: string;
  digest: string;
  control_id: string;
  environment: string;
  owner: string;
  reason: string;
  expires: string;
  proposed_by: string;
  proposer_id: string;
  proposed_at: Date;
  approved_by: string | null;
  approver_id: string | null;
  approved_at: Date | null;
};

const COLUMNS = `id, org_name, digest, control_id, environment, owner, reason, expires, proposed_by, proposer_id,
  proposed_at, approved_by, approver_id, approved_at`;

const recordOf = (row: TExceptionRow): TExceptionRecord => ({
  id: row.id,
  organization: row.org_name,
  digest: row.digest,
  controlId: row.control_id,
  environment: row.environment,
  owner: row.owner,
  reason: row.reason,
  expires: row.expires,
  proposedBy: row.proposed_by,
  proposerId: row.proposer_id,
  proposedAt: new Date(row.proposed_at),
  approvedBy: row.approved_by,
  approverId: row.approver_id,
  approvedAt: row.approved_at === null ? null : new Date(row.approved_at),
});

/** What the policy engine needs from the records: approval standing by exception digest. */
export const approvalsOf = (records: readonly TExceptionRecord[]): TExceptionApprovals =>
  new Map(
    records.map((record) => [
      record.digest,
      {
        id: record.id,
        proposedBy: record.proposedBy,
        ...(record.approvedBy === null || record.approvedAt === null
          ? {}
          : { approvedBy: record.approvedBy, approvedAt: record.approvedAt.toISOString() }),
      },
    ]),
  );

export const exceptionStoreFactory = (db: TSqlExecutor) => {
  /** Every recorded version, newest first; of one organization when given. */
  const list = async (organization?: string): Promise<TExceptionRecord[]> => {
    const { rows } = await db.query<TExceptionRow>(
      `SELECT ${COLUMNS} FROM policy_exceptions WHERE $1::text IS NULL OR org_name = $1 ORDER BY id DESC`,
      [organization ?? null],
    );
    return rows.map(recordOf);
  };
  return {
    list,

    /** Approval standing of one organization's exceptions, for the policy engine. */
    approvals: async (organization: string): Promise<TExceptionApprovals> => approvalsOf(await list(organization)),

    find: async (organization: string, id: number): Promise<TExceptionRecord | undefined> => {
      const { rows } = await db.query<TExceptionRow>(
        `SELECT ${COLUMNS} FROM policy_exceptions WHERE org_name = $1 AND id = $2`,
        [organization, id],
      );
      return rows[0] && recordOf(rows[0]);
    },
  };
};

export type TExceptionStore = ReturnType<typeof exceptionStoreFactory>;

/** Records the versions carehost has not seen as proposed by `proposer`; returns only those new rows. */
export const proposeExceptions = async (
  tx: TSqlExecutor,
  organization: string,
  exceptions: readonly TPolicyException[],
  proposer: TExceptionActor,
): Promise<TExceptionRecord[]> => {
  const proposed: TExceptionRecord[] = [];
  for (const exception of exceptions) {
    const { rows } = await tx.query<TExceptionRow>(
      `INSERT INTO policy_exceptions
         (org_name, digest, control_id, environment, owner, reason, expires, proposed_by, proposer_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
       ON CONFLICT (org_name, digest) DO NOTHING RETURNING ${COLUMNS}`,
      [
        organization,
        exceptionDigest(exception),
        exception.controlId,
        exception.environment,
        exception.owner,
        exception.reason,
        exception.expires,
        proposer.name,
        proposer.id,
      ],
    );
    if (rows[0]) proposed.push(recordOf(rows[0]));
  }
  return proposed;
};

/** Marks a version approved unless someone approved it meanwhile; undefined then. */
export const approveException = async (
  tx: TSqlExecutor,
  record: Pick<TExceptionRecord, "organization" | "id">,
  approver: TExceptionActor,
  at: Date,
): Promise<TExceptionRecord | undefined> => {
  const { rows } = await tx.query<TExceptionRow>(
    `UPDATE policy_exceptions SET approved_by = $3, approver_id = $4, approved_at = $5
     WHERE org_name = $1 AND id = $2 AND approved_at IS NULL RETURNING ${COLUMNS}`,
    [record.organization, record.id, approver.name, approver.id, at],
  );
  return rows[0] && recordOf(rows[0]);
};
