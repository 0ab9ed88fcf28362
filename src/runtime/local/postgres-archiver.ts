// Reads a running cluster's WAL archiving facts in one query; archive lag and alerts are derived
// from them in backup/wal-archiving.ts.
import type pg from "pg";
import type { TArchiverReading } from "../../backup/wal-archiving.js";

export async function readArchiver(admin: Pick<pg.Client, "query">): Promise<TArchiverReading> {
  // pg_current_wal_lsn() raises an error during recovery (a cluster being restored in place).
  const result = await admin.query<{
    last_archived_wal: string | null; last_archived_time: Date | null; failed_count: string; last_failed_wal: string | null; last_failed_time: Date | null;
    stats_reset: Date | null; current_wal_lsn: string | null; current_wal_file: string | null;
  }>(
    `SELECT last_archived_wal, last_archived_time, failed_count, last_failed_wal, last_failed_time, stats_reset,
            CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS current_wal_lsn,
            CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END AS current_wal_file
       FROM pg_stat_archiver`,
  );
  const row = result.rows[0];
  if (row === undefined) throw new Error("pg_stat_archiver returned no row");
  return {
    lastArchivedWal: row.last_archived_wal,
    lastArchivedAt: row.last_archived_time,
    failedCount: Number(row.failed_count),
    lastFailedWal: row.last_failed_wal,
    lastFailedAt: row.last_failed_time,
    statsResetAt: row.stats_reset,
    currentWalLsn: row.current_wal_lsn,
    currentWalFile: row.current_wal_file,
  };
}
