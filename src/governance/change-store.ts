// SQL for change requests and their approvals (migration 0013). Writes take the executor of the
// caller's transaction, so each step of a change request commits with its audit entries; a state
// change names the states it may leave, so two callers racing cannot both move it.
import type { TSqlExecutor } from "../store/store-types.js";
import type { TChangeAssessment } from "./change-classify.js";
import type {
  TChangeApproval,
  TChangeKind,
  TChangePlan,
  TChangeRequest,
  TChangeState,
  TPostChangeDrill,
  TPostChangePosture,
  TPreChangeBackup,
} from "./change-types.js";

type TChangeRow = {
  id: number;
  org_name: string;
  kind: TChangeKind;
  state: TChangeState;
  reason: string;
  ticket: string | null;
  requested_by: string;
  requester_id: string;
  requested_at: Date;
  source: string;
  file_name: string;
  spec_digest: string;
  base_revision_id: number;
  confirm_destroy: string[];
  assessment: TChangeAssessment;
  plan: TChangePlan;
  approvals_required: number;
  rollback_of: number | null;
  scheduled_for: Date | null;
  applied_revision_id: number | null;
  applied_by: string | null;
  applied_at: Date | null;
  closed_by: string | null;
  closed_at: Date | null;
  close_reason: string | null;
  failure: string | null;
  reviewed_at: Date | null;
  escalated_at: Date | null;
  pre_change_backup: TPreChangeBackup[] | null;
  post_change_posture: TPostChangePosture | null;
  post_change_drills: TPostChangeDrill[] | null;
  approvals: { approver: string; approver_id: string; role: string; approved_at: string }[];
};

const COLUMNS = `c.id, c.org_name, c.kind, c.state, c.reason, c.ticket, c.requested_by, c.requester_id, c.requested_at,
  c.source, c.file_name, c.spec_digest, c.base_revision_id, c.confirm_destroy, c.assessment, c.plan,
  c.approvals_required, c.rollback_of, c.scheduled_for, c.applied_revision_id, c.applied_by, c.applied_at,
  c.closed_by, c.closed_at, c.close_reason, c.failure, c.reviewed_at, c.escalated_at, c.pre_change_backup,
  c.post_change_posture, c.post_change_drills,
  COALESCE((SELECT json_agg(json_build_object('approver', a.approver, 'approver_id', a.approver_id, 'role', a.role,
                                              'approved_at', a.approved_at) ORDER BY a.approved_at, a.approver_id)
              FROM change_approvals a WHERE a.change_id = c.id), '[]'::json) AS approvals`;

const date = (value: Date | string | null): Date | null => (value === null ? null : new Date(value));

const requestOf = (row: TChangeRow): TChangeRequest => ({
  id: row.id,
  organization: row.org_name,
  kind: row.kind,
  state: row.state,
  reason: row.reason,
  ticket: row.ticket,
  requestedBy: row.requested_by,
  requesterId: row.requester_id,
  requestedAt: new Date(row.requested_at),
  source: row.source,
  fileName: row.file_name,
  specDigest: row.spec_digest,
  baseRevisionId: row.base_revision_id,
  confirmDestroy: row.confirm_destroy,
  assessment: row.assessment,
  plan: row.plan,
  approvalsRequired: row.approvals_required,
  approvals: row.approvals.map((approval): TChangeApproval => ({
    approver: approval.approver,
    approverId: approval.approver_id,
    role: approval.role,
    approvedAt: new Date(approval.approved_at),
  })),
  rollbackOf: row.rollback_of,
  scheduledFor: date(row.scheduled_for),
  appliedRevisionId: row.applied_revision_id,
  appliedBy: row.applied_by,
  appliedAt: date(row.applied_at),
  closedBy: row.closed_by,
  closedAt: date(row.closed_at),
  closeReason: row.close_reason,
  failure: row.failure,
  reviewedAt: date(row.reviewed_at),
  escalatedAt: date(row.escalated_at),
  preChangeBackup: row.pre_change_backup,
  postChangePosture: row.post_change_posture,
  postChangeDrills: row.post_change_drills,
});

export type TNewChangeRequest = Pick<
  TChangeRequest,
  | "organization"
  | "kind"
  | "state"
  | "reason"
  | "ticket"
  | "requestedBy"
  | "requesterId"
  | "requestedAt"
  | "source"
  | "fileName"
  | "specDigest"
  | "baseRevisionId"
  | "confirmDestroy"
  | "assessment"
  | "plan"
  | "approvalsRequired"
  | "rollbackOf"
>;

/** The columns a step may set, by their names in TChangeRequest. */
export type TChangePatch = Partial<
  Pick<
    TChangeRequest,
    | "state"
    | "scheduledFor"
    | "appliedRevisionId"
    | "appliedBy"
    | "appliedAt"
    | "closedBy"
    | "closedAt"
    | "closeReason"
    | "failure"
    | "reviewedAt"
    | "escalatedAt"
    | "preChangeBackup"
    | "postChangePosture"
    | "postChangeDrills"
  >
>;

const PATCH_COLUMNS: Record<keyof TChangePatch, string> = {
  state: "state",
  scheduledFor: "scheduled_for",
  appliedRevisionId: "applied_revision_id",
  appliedBy: "applied_by",
  appliedAt: "applied_at",
  closedBy: "closed_by",
  closedAt: "closed_at",
  closeReason: "close_reason",
  failure: "failure",
  reviewedAt: "reviewed_at",
  escalatedAt: "escalated_at",
  preChangeBackup: "pre_change_backup",
  postChangePosture: "post_change_posture",
  postChangeDrills: "post_change_drills",
};
const JSON_COLUMNS = new Set(["pre_change_backup", "post_change_posture", "post_change_drills"]);

const findIn = async (db: TSqlExecutor, id: number): Promise<TChangeRequest | undefined> => {
  const { rows } = await db.query<TChangeRow>(`SELECT ${COLUMNS} FROM change_requests c WHERE c.id = $1`, [id]);
  return rows[0] && requestOf(rows[0]);
};

export const changeStoreFactory = (db: TSqlExecutor) => ({
  /** `tx`: inside a transaction (on PGlite a read outside it would wait for it to end). */
  find: (id: number, tx: TSqlExecutor = db): Promise<TChangeRequest | undefined> => findIn(tx, id),

  /** Newest first; of one organization when given. */
  list: async (organization: string | undefined, limit: number): Promise<TChangeRequest[]> => {
    const { rows } = await db.query<TChangeRow>(
      `SELECT ${COLUMNS} FROM change_requests c WHERE $1::text IS NULL OR c.org_name = $1 ORDER BY c.id DESC LIMIT $2`,
      [organization ?? null, limit],
    );
    return rows.map(requestOf);
  },

  /** Scheduled changes whose window opens by `at`, oldest first. */
  due: async (at: Date): Promise<TChangeRequest[]> => {
    const { rows } = await db.query<TChangeRow>(
      `SELECT ${COLUMNS} FROM change_requests c WHERE c.state = 'scheduled' AND c.scheduled_for <= $1 ORDER BY c.id`,
      [at],
    );
    return rows.map(requestOf);
  },

  /** Emergency changes applied and not yet reviewed by enough approvers. */
  unreviewedEmergencies: async (): Promise<TChangeRequest[]> => {
    const { rows } = await db.query<TChangeRow>(
      `SELECT ${COLUMNS} FROM change_requests c
        WHERE c.kind = 'emergency' AND c.state IN ('applied', 'failed') AND c.reviewed_at IS NULL ORDER BY c.id`,
    );
    return rows.map(requestOf);
  },

  insert: async (tx: TSqlExecutor, input: TNewChangeRequest): Promise<TChangeRequest> => {
    const { rows } = await tx.query<{ id: number }>(
      `INSERT INTO change_requests (org_name, kind, state, reason, ticket, requested_by, requester_id, requested_at, source,
         file_name, spec_digest, base_revision_id, confirm_destroy, assessment, plan, approvals_required, rollback_of)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING id`,
      [
        input.organization,
        input.kind,
        input.state,
        input.reason,
        input.ticket,
        input.requestedBy,
        input.requesterId,
        input.requestedAt,
        input.source,
        input.fileName,
        input.specDigest,
        input.baseRevisionId,
        JSON.stringify(input.confirmDestroy),
        JSON.stringify(input.assessment),
        JSON.stringify(input.plan),
        input.approvalsRequired,
        input.rollbackOf,
      ],
    );
    return (await findIn(tx, rows[0]!.id))!;
  },

  /** Adds one approval; false when this approver already approved (the primary key). */
  addApproval: async (
    tx: TSqlExecutor,
    id: number,
    approval: Omit<TChangeApproval, "approvedAt">,
    at: Date,
  ): Promise<boolean> => {
    const { rows } = await tx.query(
      `INSERT INTO change_approvals (change_id, approver, approver_id, role, approved_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (change_id, approver_id) DO NOTHING RETURNING change_id`,
      [id, approval.approver, approval.approverId, approval.role, at],
    );
    return rows.length === 1;
  },

  /** Records what the checks around an apply found (its backups, the posture after); no state changes. */
  note: async (
    id: number,
    patch: Pick<TChangePatch, "preChangeBackup" | "postChangePosture" | "postChangeDrills">,
  ): Promise<void> => {
    for (const [key, value] of Object.entries(patch) as [keyof TChangePatch, unknown][])
      await db.query(`UPDATE change_requests SET ${PATCH_COLUMNS[key]} = $2 WHERE id = $1`, [
        id,
        JSON.stringify(value),
      ]);
  },

  /** Sets `patch` while the request is in one of `from` (and not escalated, for an escalation); undefined when it had moved on. */
  transition: async (
    tx: TSqlExecutor,
    id: number,
    from: readonly TChangeState[],
    patch: TChangePatch,
  ): Promise<TChangeRequest | undefined> => {
    const entries = Object.entries(patch) as [keyof TChangePatch, unknown][];
    const assignments = entries.map(([key], index) => `${PATCH_COLUMNS[key]} = $${index + 3}`);
    const values = entries.map(([key, value]) =>
      JSON_COLUMNS.has(PATCH_COLUMNS[key]) && value !== null ? JSON.stringify(value) : (value as never),
    );
    // An escalation happens once: a second pass (another replica's tick) that read the request
    // before the first committed finds it escalated already and moves nothing.
    const once = patch.escalatedAt === undefined ? "" : " AND escalated_at IS NULL";
    const { rows } = await tx.query<{ id: number }>(
      `UPDATE change_requests SET ${assignments.join(", ")} WHERE id = $1 AND state = ANY($2::text[])${once} RETURNING id`,
      [id, [...from], ...values],
    );
    return rows[0] === undefined ? undefined : findIn(tx, id);
  },
});

export type TChangeStore = ReturnType<typeof changeStoreFactory>;
