import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { archiveLagSeconds, archivingAlert } from "./wal-archiving.js";
import type { TArchiverReading } from "./wal-archiving.js";

const AT = new Date("2026-11-29T12:00:00Z");
const secondsBefore = (seconds: number) => new Date(AT.getTime() - seconds * 1000);
const SEGMENT_5 = "000000010000000000000005";
const SEGMENT_6 = "000000010000000000000006";

/** Segment 5 archived 300 s ago; the write position just past it (nothing written since the switch). */
const caughtUp: TArchiverReading = {
  lastArchivedWal: SEGMENT_5,
  lastArchivedAt: secondsBefore(300),
  failedCount: 0,
  lastFailedWal: null,
  lastFailedAt: null,
  archivedCount: 3,
  statsResetAt: secondsBefore(86_400),
  currentWalLsn: "0/6000000",
  currentWalFile: SEGMENT_5,
};

void describe("archive lag: 0 only when caught up, otherwise how long WAL has waited", () => {
  void it("is 0 when the last archived segment holds the last byte written, however long ago it went", () => {
    assert.equal(archiveLagSeconds(caughtUp, AT), 0);
  });

  void it("is the age of the last archive, rounded up, once anything newer was written", () => {
    assert.equal(archiveLagSeconds({ ...caughtUp, currentWalLsn: "0/6000060", currentWalFile: SEGMENT_6 }, AT), 300);
    assert.equal(
      archiveLagSeconds({ ...caughtUp, lastArchivedAt: new Date(AT.getTime() - 200), currentWalFile: SEGMENT_6 }, AT),
      1,
    );
    // A clock behind the cluster's still says that something waits.
    assert.equal(
      archiveLagSeconds({ ...caughtUp, lastArchivedAt: new Date(AT.getTime() + 5000), currentWalFile: SEGMENT_6 }, AT),
      1,
    );
  });

  void it("grows while the archiver fails: the last success stays where it was", () => {
    const failing = {
      ...caughtUp,
      currentWalFile: SEGMENT_6,
      failedCount: 3,
      lastFailedWal: SEGMENT_6,
      lastFailedAt: secondsBefore(10),
    };
    assert.ok(archiveLagSeconds(failing, new Date(AT.getTime() + 60_000)) > archiveLagSeconds(failing, AT));
  });

  void it("counts from the statistics reset when nothing was ever archived, and never treats a history file as caught up", () => {
    assert.equal(
      archiveLagSeconds(
        { ...caughtUp, lastArchivedWal: null, lastArchivedAt: null, currentWalFile: "000000010000000000000001" },
        AT,
      ),
      86_400,
    );
    assert.equal(
      archiveLagSeconds(
        { ...caughtUp, lastArchivedWal: "00000002.history", currentWalFile: "000000020000000000000005" },
        AT,
      ),
      300,
    );
    assert.equal(archiveLagSeconds({ ...caughtUp, currentWalLsn: null, currentWalFile: null }, AT), 300, "in recovery");
  });
});

void describe("archiving alert: a failure after the last success, or a lag past the RPO", () => {
  const lagging = (archiveLagSeconds: number, failure: Partial<TArchiverReading> = {}) => ({
    ...caughtUp,
    currentWalFile: SEGMENT_6,
    ...failure,
    archiveLagSeconds,
  });

  void it("stays quiet while the archiver keeps up within the objective, including right at it", () => {
    assert.equal(archivingAlert({ ...caughtUp, archiveLagSeconds: 0 }, 15), null);
    assert.equal(
      archivingAlert(
        lagging(15 * 60, { failedCount: 2, lastFailedWal: SEGMENT_5, lastFailedAt: secondsBefore(400) }),
        15,
      ),
      null,
      "an old failure, retried with success since",
    );
  });

  void it("names the failed segment, its time and the last success while the last attempt failed", () => {
    const alert = archivingAlert(
      lagging(12, { failedCount: 4, lastFailedWal: SEGMENT_6, lastFailedAt: secondsBefore(2) }),
      15,
    );
    assert.equal(
      alert,
      `WAL archiving is failing: archiving ${SEGMENT_6} failed at 2026-11-29T11:59:58.000Z, after the last success (${SEGMENT_5} at 2026-11-29T11:55:00.000Z); ` +
        "4 failed attempt(s) since 2026-11-28T12:00:00.000Z; pgBackRest says why in the cluster's pgbackrest/log/*archive-push*.log",
    );
    assert.match(
      archivingAlert(
        lagging(12, {
          lastArchivedWal: null,
          lastArchivedAt: null,
          failedCount: 1,
          lastFailedWal: SEGMENT_5,
          lastFailedAt: secondsBefore(2),
        }),
        15,
      ) ?? "",
      /after the last success \(none yet\)/,
    );
  });

  void it("says by how much the lag exceeds the RPO", () => {
    assert.equal(
      archivingAlert(lagging(15 * 60 + 1), 15),
      "WAL archive lag 901 s exceeds the RPO of 15 min: a restore now would lose more than the objective allows",
    );
  });
});
