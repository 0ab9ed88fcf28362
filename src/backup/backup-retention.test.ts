import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { combinedRetention, fullBackupsToExpire, fullBackupsToKeep } from "./backup-retention.js";
import type { TRetainedBackup } from "./backup-retention.js";

const DAY = 24 * 3600 * 1000;
const now = new Date("2026-11-22T12:00:00Z"); // a Sunday
/** One full backup a day at 06:00 UTC for `days` days back, with an incremental each noon. */
const daily = (days: number): TRetainedBackup[] =>
  Array.from({ length: days }, (_, index) => {
    const day = new Date(Date.UTC(2026, 10, 22) - (days - 1 - index) * DAY);
    return [
      {
        label: `F${day.toISOString().slice(0, 10)}`,
        type: "full" as const,
        stoppedAt: new Date(day.getTime() + 6 * 3600 * 1000),
      },
      {
        label: `I${day.toISOString().slice(0, 10)}`,
        type: "incr" as const,
        stoppedAt: new Date(day.getTime() + 11 * 3600 * 1000),
      },
    ];
  }).flat();

void describe("grandfather-father-son retention", () => {
  void it("keeps the daily window plus its base, one per week and one per month", () => {
    const keep = [...fullBackupsToKeep(daily(400), { daily: 7, weekly: 4, monthly: 12 }, now)].sort();
    // Daily: 2026-11-16..22 (stopped after 2026-11-15T12:00) plus the base 2026-11-15.
    for (const day of [15, 16, 17, 18, 19, 20, 21, 22]) assert.ok(keep.includes(`F2026-11-${day}`), `day ${day}`);
    // Weekly: the newest of each ISO week (Sundays), 4 weeks: 11-22, 11-15, 11-08, 11-01.
    for (const label of ["F2026-11-08", "F2026-11-01"]) assert.ok(keep.includes(label), label);
    // Monthly: the newest of each of 12 months: 10-31, 09-30, … 2025-12-31.
    for (const label of ["F2026-10-31", "F2026-09-30", "F2026-02-28", "F2025-12-31"])
      assert.ok(keep.includes(label), label);
    assert.ok(!keep.includes("F2025-11-30"), "13 months back is beyond the monthly tier");
    assert.equal(keep.length, 8 + 2 + 11);
  });

  void it("expires only full backups, oldest first, and never the newest", () => {
    const backups = daily(30);
    const expired = fullBackupsToExpire(backups, { daily: 3, weekly: 0, monthly: 0 }, now);
    assert.equal(expired[0], "F2026-10-24");
    assert.ok(expired.every((label) => label.startsWith("F")));
    assert.deepEqual(fullBackupsToExpire(backups.slice(0, 2), { daily: 0, weekly: 0, monthly: 0 }, now), []);
    assert.deepEqual(fullBackupsToExpire(backups, { daily: 0, weekly: 0, monthly: 0 }, now).length, 29);
  });

  void it("combines the environments of a shared cluster tier by tier", () => {
    assert.deepEqual(
      combinedRetention([
        { daily: 7, weekly: 1, monthly: 0 },
        { daily: 2, weekly: 4, monthly: 3 },
      ]),
      { daily: 7, weekly: 4, monthly: 3 },
    );
  });
});
