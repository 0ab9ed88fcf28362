// Grandfather-father-son retention over pgBackRest's backups. pgBackRest itself only keeps a count
// (or an age) of full backups; carehost decides which full backups the daily, weekly and monthly
// tiers still need and expires the others one by one (`expire --set`, which also removes the
// differential and incremental backups that depend on them, and the WAL only they needed). Pure.

export type TRetention = { readonly daily: number; readonly weekly: number; readonly monthly: number };
export type TRetainedBackup = {
  readonly label: string;
  readonly type: "full" | "diff" | "incr";
  readonly stoppedAt: Date;
};

const DAY_MS = 24 * 3600 * 1000;

/** Monday 00:00 UTC of the week holding `at`: weekly tiers use ISO weeks. */
const weekStart = (at: Date): number => {
  const day = Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate());
  return day - ((at.getUTCDay() + 6) % 7) * DAY_MS;
};
const monthKey = (at: Date): number => at.getUTCFullYear() * 12 + at.getUTCMonth();

/** The strictest tiers of several environments sharing one stanza: each tier at its largest. */
export const combinedRetention = (retentions: readonly TRetention[]): TRetention => ({
  daily: Math.max(0, ...retentions.map((retention) => retention.daily)),
  weekly: Math.max(0, ...retentions.map((retention) => retention.weekly)),
  monthly: Math.max(0, ...retentions.map((retention) => retention.monthly)),
});

/**
 * Labels of the full backups to keep:
 * - every full of the last `daily` days, and the newest one before that window (the base a
 *   point-in-time restore to the window's first second replays WAL onto);
 * - the newest full of each of the last `weekly` ISO weeks and of the last `monthly` months;
 * - always the newest full, whatever the tiers say.
 */
export function fullBackupsToKeep(backups: readonly TRetainedBackup[], retention: TRetention, now: Date): Set<string> {
  const fulls = backups
    .filter((backup) => backup.type === "full")
    .toSorted((a, b) => a.stoppedAt.getTime() - b.stoppedAt.getTime());
  const keep = new Set<string>();
  const newest = fulls.at(-1);
  if (newest === undefined) return keep;
  keep.add(newest.label);
  const windowStart = now.getTime() - retention.daily * DAY_MS;
  for (const backup of fulls) if (backup.stoppedAt.getTime() > windowStart) keep.add(backup.label);
  const base = fulls.filter((backup) => backup.stoppedAt.getTime() <= windowStart).at(-1);
  if (base !== undefined && retention.daily > 0) keep.add(base.label);
  const newestPer = (key: (at: Date) => number, periods: readonly number[]) => {
    for (const period of periods) {
      const found = fulls.filter((backup) => key(backup.stoppedAt) === period).at(-1);
      if (found !== undefined) keep.add(found.label);
    }
  };
  const thisWeek = weekStart(now);
  newestPer(
    weekStart,
    Array.from({ length: retention.weekly }, (_, index) => thisWeek - index * 7 * DAY_MS),
  );
  const thisMonth = monthKey(now);
  newestPer(
    monthKey,
    Array.from({ length: retention.monthly }, (_, index) => thisMonth - index),
  );
  return keep;
}

/** Full backups no tier keeps, oldest first: what `expire --set` removes (with their dependents). */
export const fullBackupsToExpire = (
  backups: readonly TRetainedBackup[],
  retention: TRetention,
  now: Date,
): string[] => {
  const keep = fullBackupsToKeep(backups, retention, now);
  return backups.filter((backup) => backup.type === "full" && !keep.has(backup.label)).map((backup) => backup.label);
};
