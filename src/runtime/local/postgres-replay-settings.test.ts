import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { lastTransactionEnd, previousSegment } from "./local-restore-target.js";
import {
  highestOf,
  parseControlData,
  raiseHighWater,
  readHighWater,
  renderReplayFloor,
} from "./postgres-replay-settings.js";

// As PostgreSQL 15's pg_controldata prints them (LC_ALL=C).
const CONTROL_DATA = `pg_control version number:            1300
Bytes per WAL segment:                2097152
wal_level setting:                    replica
wal_log_hints setting:                off
max_connections setting:              135
max_worker_processes setting:         8
max_wal_senders setting:              10
max_prepared_xacts setting:           0
max_locks_per_xact setting:           64
track_commit_timestamp setting:       off
`;

void describe("the settings a restored copy needs to replay the archive", () => {
  void it("reads every one of them from pg_controldata, under its abbreviated name too", () => {
    assert.deepEqual(parseControlData(CONTROL_DATA), {
      max_connections: 135,
      max_worker_processes: 8,
      max_wal_senders: 10,
      max_prepared_transactions: 0,
      max_locks_per_transaction: 64,
    });
  });

  void it("takes each at the highest value any reading has, and renders them for postgresql.auto.conf", () => {
    const floor = highestOf(
      { max_connections: 135, max_prepared_transactions: 0 },
      { max_connections: 40, max_prepared_transactions: 5, max_wal_senders: 10 },
    );
    assert.deepEqual(floor, { max_connections: 135, max_prepared_transactions: 5, max_wal_senders: 10 });
    assert.match(renderReplayFloor(floor), /^max_connections = 135$/m);
    assert.match(renderReplayFloor(floor), /^max_prepared_transactions = 5$/m);
    assert.equal(renderReplayFloor({}), "");
  });

  void it("keeps a high-water mark that rises and never falls", async () => {
    const directory = await mkdtemp(join(tmpdir(), "carehost-high-water-"));
    try {
      assert.deepEqual(await readHighWater(directory), {});
      await raiseHighWater(directory, { max_connections: 135, max_locks_per_transaction: 64 });
      await raiseHighWater(directory, { max_connections: 40, max_locks_per_transaction: 128 });
      assert.deepEqual(await readHighWater(directory), { max_connections: 135, max_locks_per_transaction: 128 });
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  void it("walks WAL segment names back across a log id, for 2 MB and 16 MB segments", () => {
    assert.equal(previousSegment("000000020000000100000000", 2 * 1024 * 1024), "0000000200000000000007FF");
    assert.equal(previousSegment("000000010000000000000010", 16 * 1024 * 1024), "00000001000000000000000F");
    assert.equal(previousSegment("000000010000000000000000", 16 * 1024 * 1024), undefined);
  });

  void it("finds the last transaction's end in pg_waldump's output", () => {
    const dump = [
      "rmgr: Transaction len (rec/tot):     34/    34, tx:        741, lsn: 0/03000108, prev 0/030000D0, desc: COMMIT 2026-12-02 09:13:33.610151 UTC",
      "rmgr: Transaction len (rec/tot):     34/    34, tx:        742, lsn: 0/03000130, prev 0/03000108, desc: ABORT 2026-12-02 09:13:34.000001 UTC",
      "rmgr: XLOG        len (rec/tot):     24/    24, tx:          0, lsn: 0/03000158, prev 0/03000130, desc: SWITCH",
    ].join("\n");
    assert.equal(lastTransactionEnd(dump)?.toISOString(), "2026-12-02T09:13:34.000Z");
    assert.equal(lastTransactionEnd("desc: SWITCH"), undefined);
  });
});
