// The operation queue's table. Time is the database's (now()), so replicas whose clocks differ
// agree on leases and on when a scheduled operation is due. Every write by a worker is fenced by
// its lease: a worker whose lease expired (and whose operation another replica marked interrupted)
// can no longer move that operation.
import type { TSqlExecutor, TSqlValue } from "../store/store-types.js";
import type {
  TOperation,
  TOperationKind,
  TOperationRequest,
  TOperationState,
  TOperationStep,
} from "./operation-types.js";

type TOperationRow = {
  id: number;
  organization: string;
  environment: string | null;
  target: string;
  kind: TOperationKind;
  params: Record<string, unknown>;
  requested_by: string;
  source: string | null;
  change_request: number | null;
  state: TOperationState;
  not_before: Date | string;
  deadline_seconds: number;
  dedupe_key: string | null;
  lease_owner: string | null;
  lease_expires_at: Date | string | null;
  attempts: number;
  cancel_requested: boolean;
  steps: TOperationStep[];
  result: unknown;
  error: string | null;
  created_at: Date | string;
  started_at: Date | string | null;
  finished_at: Date | string | null;
};

const date = (value: Date | string) => (value instanceof Date ? value : new Date(value));
const optionalDate = (value: Date | string | null) => (value === null ? null : date(value));

const operationOf = (row: TOperationRow): TOperation => ({
  id: Number(row.id),
  organization: row.organization,
  environment: row.environment,
  target: row.target,
  kind: row.kind,
  params: row.params,
  requestedBy: row.requested_by,
  source: row.source,
  changeRequest: row.change_request === null ? null : Number(row.change_request),
  state: row.state,
  notBefore: date(row.not_before),
  deadlineSeconds: row.deadline_seconds,
  dedupeKey: row.dedupe_key,
  leaseOwner: row.lease_owner,
  leaseExpiresAt: optionalDate(row.lease_expires_at),
  attempts: row.attempts,
  cancelRequested: row.cancel_requested,
  steps: row.steps,
  result: row.result,
  error: row.error,
  createdAt: date(row.created_at),
  startedAt: optionalDate(row.started_at),
  finishedAt: optionalDate(row.finished_at),
});

const UNIQUE_VIOLATION = "23505";
const isUniqueViolation = (error: unknown) =>
  typeof error === "object" && error !== null && (error as { code?: unknown }).code === UNIQUE_VIOLATION;

export type TOperationFilter = {
  /** Only these organizations; undefined for every one. */
  readonly organizations?: readonly string[];
  readonly environment?: string;
  readonly states?: readonly TOperationState[];
  readonly kinds?: readonly TOperationKind[];
  readonly limit?: number;
};

/** The columns every new operation states, in the order the INSERTs below list them. */
const requestValues = (request: TOperationRequest): TSqlValue[] => [
  request.organization,
  request.environment ?? null,
  request.target,
  request.kind,
  JSON.stringify(request.params ?? {}),
  request.requestedBy,
  request.source ?? null,
  request.changeRequest ?? null,
];

export const operationStoreFactory = (db: TSqlExecutor) => {
  const one = async (sql: string, params: readonly TSqlValue[]) => {
    const { rows } = await db.query<TOperationRow>(sql, params);
    return rows[0] === undefined ? undefined : operationOf(rows[0]);
  };

  /**
   * Records an operation, or returns the open one that holds its dedupe key (created: false).
   * Runs on `tx` when given, so an operation can commit with the record that asks for it.
   */
  const enqueue = async (
    request: TOperationRequest,
    tx: TSqlExecutor = db,
  ): Promise<{ operation: TOperation; created: boolean }> => {
    const insert = () =>
      tx.query<TOperationRow>(
        `INSERT INTO operations (organization, environment, target, kind, params, requested_by, source,
           change_request, state, not_before, deadline_seconds, dedupe_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, coalesce($10::timestamptz, now()), $11, $12)
         ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL AND state IN ('pending', 'scheduled', 'running')
         DO NOTHING
         RETURNING *`,
        [
          ...requestValues(request),
          request.notBefore === undefined ? "pending" : "scheduled",
          request.notBefore ?? null,
          request.deadlineSeconds,
          request.dedupeKey ?? null,
        ],
      );
    // The open holder of the key may finish between the insert and the look-up: then insert again.
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const { rows } = await insert();
      if (rows[0] !== undefined) return { operation: operationOf(rows[0]), created: true };
      const { rows: open } = await tx.query<TOperationRow>(
        "SELECT * FROM operations WHERE dedupe_key = $1 AND state IN ('pending', 'scheduled', 'running')",
        [request.dedupeKey ?? null],
      );
      if (open[0] !== undefined) return { operation: operationOf(open[0]), created: false };
    }
    throw new Error(
      `operation ${request.kind} on ${request.target} could not be queued: its dedupe key keeps changing hands`,
    );
  };

  /**
   * Claims the oldest due operation whose target runs nothing, for `workerId`, with a lease of
   * `leaseSeconds`. The claim query skips rows other workers are claiming; the unique index on
   * running targets settles two workers that picked different operations of one target at once.
   */
  const claim = async (
    workerId: string,
    leaseSeconds: number,
    kinds?: readonly TOperationKind[],
  ): Promise<TOperation | undefined> => {
    for (let attempt = 0; attempt < 5; attempt += 1) {
      try {
        return await one(
          `UPDATE operations SET state = 'running', lease_owner = $1,
             lease_expires_at = now() + make_interval(secs => $2), attempts = attempts + 1,
             started_at = coalesce(started_at, now())
           WHERE id = (
             SELECT candidate.id FROM operations candidate
             WHERE candidate.state IN ('pending', 'scheduled') AND candidate.not_before <= now()
               AND candidate.lease_owner IS NULL
               AND ($3::text[] IS NULL OR candidate.kind = ANY($3::text[]))
               AND NOT EXISTS (SELECT 1 FROM operations held WHERE held.target = candidate.target AND held.state = 'running')
             ORDER BY candidate.not_before, candidate.id
             LIMIT 1
             FOR UPDATE SKIP LOCKED)
           RETURNING *`,
          [workerId, leaseSeconds, kinds === undefined ? null : [...kinds]],
        );
      } catch (error) {
        if (!isUniqueViolation(error)) throw error;
        // Another worker started an operation of the same target first; look for another one.
      }
    }
    return undefined;
  };

  /**
   * Records an operation that `workerId` runs itself (a person's backup, restore or drill, run by
   * the replica that took the request): pending, but reserved for it by a lease it renews while it
   * waits for the target, so no other worker claims it and, should it die, the lease runs out and
   * the operation is interrupted like a running one (expireLeases).
   */
  const reserve = async (request: TOperationRequest, workerId: string, leaseSeconds: number): Promise<TOperation> => {
    const reserved = await one(
      `INSERT INTO operations (organization, environment, target, kind, params, requested_by, source,
         change_request, state, not_before, deadline_seconds, lease_owner, lease_expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', now(), $9, $10, now() + make_interval(secs => $11))
       RETURNING *`,
      [...requestValues(request), request.deadlineSeconds, workerId, leaseSeconds],
    );
    return reserved!;
  };

  /**
   * Starts an operation `workerId` reserved, once its target runs nothing; undefined while it does
   * (the caller tries again), or when the reservation is gone (interrupted, cancelled).
   */
  const claimReserved = async (id: number, workerId: string, leaseSeconds: number): Promise<TOperation | undefined> => {
    try {
      return await one(
        `UPDATE operations SET state = 'running', lease_expires_at = now() + make_interval(secs => $3),
           attempts = attempts + 1, started_at = now()
         WHERE id = $1 AND lease_owner = $2 AND state = 'pending'
           AND NOT EXISTS (SELECT 1 FROM operations held WHERE held.target = operations.target AND held.state = 'running')
         RETURNING *`,
        [id, workerId, leaseSeconds],
      );
    } catch (error) {
      // Another worker started an operation of the same target at the same moment: wait for it.
      if (isUniqueViolation(error)) return undefined;
      throw error;
    }
  };

  /** Extends a held lease; undefined when the lease is no longer this worker's. */
  const renewLease = async (id: number, workerId: string, leaseSeconds: number) => {
    const { rows } = await db.query<{ cancel_requested: boolean }>(
      `UPDATE operations SET lease_expires_at = now() + make_interval(secs => $3)
       WHERE id = $1 AND lease_owner = $2 AND state IN ('pending', 'running')
       RETURNING cancel_requested`,
      [id, workerId, leaseSeconds],
    );
    return rows[0] === undefined ? undefined : { cancelRequested: rows[0].cancel_requested };
  };

  /** Appends a step to a held operation; false when the lease is no longer this worker's. */
  const addStep = async (id: number, workerId: string, step: TOperationStep): Promise<boolean> => {
    const { rows } = await db.query(
      `UPDATE operations SET steps = steps || $3::jsonb
       WHERE id = $1 AND lease_owner = $2 AND state = 'running' RETURNING id`,
      [id, workerId, JSON.stringify([step])],
    );
    return rows.length > 0;
  };

  /** Ends a held operation; undefined when the lease is no longer this worker's (someone else ended it). */
  const finish = async (
    id: number,
    workerId: string,
    end: { state: "succeeded" | "failed" | "interrupted" | "cancelled"; result?: unknown; error?: string },
    tx: TSqlExecutor = db,
  ): Promise<TOperation | undefined> => {
    const { rows } = await tx.query<TOperationRow>(
      `UPDATE operations SET state = $3, result = $4::jsonb, error = $5, finished_at = now(),
         lease_owner = NULL, lease_expires_at = NULL
       WHERE id = $1 AND lease_owner = $2 AND state IN ('pending', 'running') RETURNING *`,
      [id, workerId, end.state, end.result === undefined ? null : JSON.stringify(end.result), end.error ?? null],
    );
    return rows[0] === undefined ? undefined : operationOf(rows[0]);
  };

  /**
   * Marks interrupted every running operation whose lease has expired (its worker died or hung
   * past its lease) and returns them, for the caller to audit and clean up after.
   */
  const expireLeases = async (tx: TSqlExecutor = db): Promise<TOperation[]> => {
    const { rows } = await tx.query<TOperationRow>(
      `UPDATE operations SET state = 'interrupted', finished_at = now(),
         error = 'interrupted: the worker ' || coalesce(lease_owner, '?') || ' stopped renewing its lease (it died or hung)',
         lease_owner = NULL, lease_expires_at = NULL
       WHERE id IN (SELECT id FROM operations WHERE state IN ('pending', 'running') AND lease_owner IS NOT NULL
                      AND lease_expires_at < now() FOR UPDATE SKIP LOCKED)
       RETURNING *`,
    );
    return rows.map(operationOf);
  };

  /**
   * Marks interrupted every running operation, whoever held it: only for a database no other
   * process shares (PGlite), where whatever ran was the previous, stopped process's.
   */
  const interruptRunning = async (reason: string): Promise<TOperation[]> => {
    const { rows } = await db.query<TOperationRow>(
      `UPDATE operations SET state = 'interrupted', finished_at = now(), error = $1, lease_owner = NULL, lease_expires_at = NULL
       WHERE state = 'running' OR (state = 'pending' AND lease_owner IS NOT NULL) RETURNING *`,
      [reason],
    );
    return rows.map(operationOf);
  };

  /**
   * Cancels an operation: one not started yet ends cancelled at once; a running one is asked to
   * stop (its worker sees the request at its next lease renewal). Undefined when it does not exist.
   */
  const requestCancel = async (id: number): Promise<TOperation | undefined> =>
    (await one(
      `UPDATE operations SET state = 'cancelled', finished_at = now(), error = 'cancelled before it started'
       WHERE id = $1 AND state IN ('pending', 'scheduled') RETURNING *`,
      [id],
    )) ??
    (await one("UPDATE operations SET cancel_requested = true WHERE id = $1 AND state = 'running' RETURNING *", [
      id,
    ])) ??
    (await get(id));

  const get = async (id: number, tx: TSqlExecutor = db): Promise<TOperation | undefined> => {
    const { rows } = await tx.query<TOperationRow>("SELECT * FROM operations WHERE id = $1", [id]);
    return rows[0] === undefined ? undefined : operationOf(rows[0]);
  };

  const list = async (filter: TOperationFilter = {}): Promise<TOperation[]> => {
    const { rows } = await db.query<TOperationRow>(
      `SELECT * FROM operations
       WHERE ($1::text[] IS NULL OR organization = ANY($1::text[]))
         AND ($2::text IS NULL OR environment = $2)
         AND ($3::text[] IS NULL OR state = ANY($3::text[]))
         AND ($4::text[] IS NULL OR kind = ANY($4::text[]))
       ORDER BY id DESC LIMIT $5`,
      [
        filter.organizations === undefined ? null : [...filter.organizations],
        filter.environment ?? null,
        filter.states === undefined ? null : [...filter.states],
        filter.kinds === undefined ? null : [...filter.kinds],
        filter.limit ?? 100,
      ],
    );
    return rows.map(operationOf);
  };

  return {
    enqueue,
    reserve,
    claim,
    claimReserved,
    renewLease,
    addStep,
    finish,
    expireLeases,
    interruptRunning,
    requestCancel,
    get,
    list,
  };
};

export type TOperationStore = ReturnType<typeof operationStoreFactory>;
