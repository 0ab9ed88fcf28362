// Reads a running cluster's WAL archiving facts in one query; archive lag and alerts are derived
// from them in backup/wal-archiving.ts.
import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import type { TArchiverReading } from "../../backup/wal-archiving.js";

export async function readArchiver(admin: Pick<pg.Client, "query">): Promise<TArchiverReading> {
  // pg_current_wal_lsn() raises an error during recovery (a cluster being restored in place).
  const result = await admin.query<{
    last_archived_wal: string | null;
    last_archived_time: Date | null;
    archived_count: string;
    failed_count: string;
    last_failed_wal: string | null;
    last_failed_time: Date | null;
    stats_reset: Date | null;
    current_wal_lsn: string | null;
    current_wal_file: string | null;
  }>(
    `SELECT last_archived_wal, last_archived_time, archived_count, failed_count, last_failed_wal, last_failed_time, stats_reset,
            CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS current_wal_lsn,
            CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END AS current_wal_file
       FROM pg_stat_archiver`,
  );
  const row = result.rows[0];
  if (row === undefined) throw new Error("pg_stat_archiver returned no row");
  return {
    lastArchivedWal: row.last_archived_wal,
    lastArchivedAt: row.last_archived_time,
    archivedCount: Number(row.archived_count),
    failedCount: Number(row.failed_count),
    lastFailedWal: row.last_failed_wal,
    lastFailedAt: row.last_failed_time,
    statsResetAt: row.stats_reset,
    currentWalLsn: row.current_wal_lsn,
    currentWalFile: row.current_wal_file,
  };
}

/**
 * Closes the WAL segment being written and waits until the archiver has shipped it, and with it
 * every segment before (the archiver goes oldest first). False when it has not within `timeoutMs`.
 */
export async function archiveCurrentSegment(admin: Pick<pg.Client, "query">, timeoutMs = 60_000): Promise<boolean> {
  // pg_switch_wal() returns the end of the segment it closed, and pg_walfile_name() of a segment's
  // end names that segment (with nothing written since the last switch, the one closed before).
  const closed = (await admin.query<{ segment: string }>("SELECT pg_walfile_name(pg_switch_wal()) AS segment")).rows[0]
    ?.segment;
  const deadline = Date.now() + timeoutMs;
  do {
    const archived = await admin.query<{ done: boolean }>(
      "SELECT coalesce(last_archived_wal >= $1, false) AS done FROM pg_stat_archiver",
      [closed],
    );
    if (archived.rows[0]?.done === true) return true;
    await sleep(50);
  } while (Date.now() < deadline);
  return false;
}
