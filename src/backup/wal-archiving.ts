// WAL archiving health of a running cluster, as `status` shows it: what pg_stat_archiver and the
// current WAL position say, the archive lag derived from them, and when that is an alert. Pure:
// the runtime reads the facts (postgres-archiver.ts) and passes its clock.

/** What the cluster reports, read in one query (pg_stat_archiver and pg_current_wal_lsn()). */
export type TArchiverReading = {
  readonly lastArchivedWal: string | null;
  readonly lastArchivedAt: Date | null;
  /** Segments archived since statsResetAt (monitoring's pg_stat_archiver_archived_count). */
  readonly archivedCount: number;
  readonly failedCount: number;
  readonly lastFailedWal: string | null;
  readonly lastFailedAt: Date | null;
  /** When the archiver's counters started (initdb, or pg_stat_reset_shared('archiver')). */
  readonly statsResetAt: Date | null;
  /** pg_current_wal_lsn(); null while the cluster is in recovery (it writes no WAL of its own then). */
  readonly currentWalLsn: string | null;
  /** pg_walfile_name(pg_current_wal_lsn()): the segment holding the last byte written. */
  readonly currentWalFile: string | null;
};

export type TWalArchiving = TArchiverReading & { readonly archiveLagSeconds: number };

/**
 * How long WAL has been waiting to reach the backup repository, in seconds rounded up (so only a
 * caught-up archiver shows 0):
 *
 * - 0 when the archiver has caught up: the last archived file is the segment that holds the last
 *   byte written. pg_walfile_name() names the segment of the byte *before* an LSN, so right after a
 *   segment switch (the position at the start of the next segment) this holds, and it stops holding
 *   as soon as anything is written into the new segment. The archiver works oldest first, so every
 *   earlier segment is archived too.
 * - otherwise the age of the last successful archive: everything since that segment is at risk, and
 *   it was written after that segment was handed over, so it has waited at most that long. An
 *   archiver that keeps failing leaves last_archived_time where it was, so the lag keeps growing.
 * - when nothing has been archived since the counters started, their age (stats_reset), for the
 *   same reason.
 *
 * A history, partial or backup-label file as the last archived file never counts as caught up: the
 * lag is then the (small) age of that archive until the next segment goes. On an idle cluster
 * PostgreSQL still writes bookkeeping records (running transactions, every 15 s after a write) that
 * archive_timeout does not switch for; carehost's supervisor writes a heartbeat every tick, so its
 * clusters switch every archive_timeout (a quarter of the RPO) and the lag stays under it while the
 * archiver keeps up.
 */
export function archiveLagSeconds(reading: TArchiverReading, at: Date): number {
  const caughtUp = reading.currentWalFile !== null && reading.lastArchivedWal === reading.currentWalFile;
  if (caughtUp) return 0;
  const since = reading.lastArchivedAt ?? reading.statsResetAt;
  // PostgreSQL sets stats_reset when it creates the counters; without either time there is no age to give.
  if (since === null) return 0;
  return Math.max(1, Math.ceil((at.getTime() - since.getTime()) / 1000));
}

/** True while the archiver's last attempt failed: a failure newer than the last success (or no success at all). */
export const archivingFailing = (reading: TArchiverReading): boolean =>
  reading.lastFailedAt !== null &&
  (reading.lastArchivedAt === null || reading.lastFailedAt.getTime() > reading.lastArchivedAt.getTime());

/**
 * The alert `status` raises for an environment's archiving, or null: when the last archive attempt
 * failed after the last success (the repository is unreachable, full, or refuses the passphrase),
 * and when the lag exceeds the recovery point objective (a restore now would lose more than allowed).
 */
export function archivingAlert(archiving: TWalArchiving, rpoMinutes: number): string | null {
  const alerts: string[] = [];
  if (archivingFailing(archiving)) {
    alerts.push(
      `WAL archiving is failing: archiving ${archiving.lastFailedWal ?? "a segment"} failed at ${archiving.lastFailedAt!.toISOString()}, ` +
        `after the last success (${archiving.lastArchivedWal === null ? "none yet" : `${archiving.lastArchivedWal} at ${archiving.lastArchivedAt!.toISOString()}`}); ` +
        `${archiving.failedCount} failed attempt(s) since ${archiving.statsResetAt?.toISOString() ?? "the counters started"}; pgBackRest says why in the cluster's pgbackrest/log/*archive-push*.log`,
    );
  }
  if (archiving.archiveLagSeconds > rpoMinutes * 60) {
    alerts.push(
      `WAL archive lag ${archiving.archiveLagSeconds} s exceeds the RPO of ${rpoMinutes} min: a restore now would lose more than the objective allows`,
    );
  }
  return alerts.length === 0 ? null : alerts.join("; ");
}
