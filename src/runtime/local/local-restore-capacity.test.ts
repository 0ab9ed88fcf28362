// Restores and drills after ordinary changes, on real clusters: a capacity change that raised
// max_connections (and each other setting a copy must match to replay WAL), a restore to an
// instant two seconds old while rows are written, a recovery that pauses, and a restore to an
// instant the archive does not reach while the source is down.
import assert from "node:assert/strict";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import type pg from "pg";
import {
  clusterClients,
  createRuntimeHarness,
  runtimeTestSpec,
  waitForArchive,
  type TRuntimeHarness,
} from "../../../test/runtime-fixtures.js";
import type { TOrganizationSpec } from "../../spec/spec-schema.js";
import { secretNames } from "./local-placement.js";
import { restoreToScratch } from "./local-recovery.js";
import { runningPid, startCluster, stopCluster } from "./postgres-cluster.js";

const ORG = "capacity-health";

type TRow = { id: number; insertedAt: number; committedBy: number };

void describe("restores and drills after ordinary changes, on real clusters", () => {
  let harness: TRuntimeHarness;
  let spec: TOrganizationSpec;
  let odoo: pg.Client;
  const rows: TRow[] = [];

  const { connect, admin } = clusterClients(() => harness, ORG);
  const prodPort = async () => (await harness.runtime.observe(spec)).environments[0]!.postgres.port!;
  const withWorkers = (workers: number): TOrganizationSpec => ({
    ...spec,
    environments: spec.environments.map((environment) => ({ ...environment, odoo: { ...environment.odoo, workers } })),
  });
  const setting = async (name: string) => {
    const client = await admin(await prodPort());
    try {
      return Number(
        (await client.query<{ setting: string }>("SELECT setting FROM pg_settings WHERE name = $1", [name])).rows[0]
          ?.setting,
      );
    } finally {
      await client.end();
    }
  };
  const connectOdoo = async () =>
    connect(
      await prodPort(),
      "odoo_prod",
      await harness.secrets.current(secretNames.databasePassword(ORG, "prod")),
      "prod",
    );
  /** One row, committed on its own; its insert time (the server's clock) and a time by which it had committed. */
  const writeRow = async () => {
    const {
      rows: [row],
    } = await odoo.query<{ id: number; at: Date }>("INSERT INTO ledger DEFAULT VALUES RETURNING id, at");
    rows.push({ id: row!.id, insertedAt: row!.at.getTime(), committedBy: Date.now() });
  };
  /** An instant between two rows: the first had committed before it, the second not begun. */
  const instantBetween = (earlier: TRow, later: TRow) => {
    assert.ok(later.insertedAt > earlier.committedBy, "rows far enough apart to put an instant between them");
    return new Date(Math.floor((earlier.committedBy + later.insertedAt) / 2));
  };
  const restoredIds = async (port: number) => {
    const copy = await admin(port, "prod");
    try {
      return (await copy.query<{ id: number }>("SELECT id FROM ledger ORDER BY id")).rows.map((row) => row.id);
    } finally {
      await copy.end();
    }
  };
  const idsUpTo = (target: Date) => rows.filter((row) => row.committedBy <= target.getTime()).map((row) => row.id);

  /** Rows 40 ms apart, then a restore into a copy to the second between two of them (the restore archives the WAL itself). */
  const restoreToASecond = async (copyName: string) => {
    const first = rows.length;
    for (let index = 0; index < 12; index += 1) {
      await writeRow();
      await sleep(40);
    }
    const target = instantBetween(rows[first + 5]!, rows[first + 6]!);
    const restored = await harness.runtime.restore(
      spec,
      "prod",
      { kind: "time", time: target },
      { kind: "copy", name: copyName },
    );
    assert.deepEqual(await restoredIds(restored.port), idsUpTo(target), `restored up to ${target.toISOString()}`);
    return restored;
  };
  const drillPasses = async () => {
    const drill = await harness.runtime.drill(spec, "prod");
    assert.equal(drill.amcheckPassed, true, drill.amcheckOutput);
    assert.deepEqual(drill.databasesMissing, []);
    assert.ok(
      drill.tables.some((table) => table.table === "public.ledger" && table.restored === table.source),
      JSON.stringify(drill.tables),
    );
  };

  before(async () => {
    harness = await createRuntimeHarness();
    const full = runtimeTestSpec(ORG);
    spec = {
      ...full,
      environments: full.environments
        .filter((environment) => environment.name === "prod")
        .map((environment) => ({ ...environment, odoo: { ...environment.odoo, workers: 9 } })),
    };
    await harness.runtime.reconcile(spec);
    odoo = await connectOdoo();
    await odoo.query("CREATE TABLE ledger (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())");
    await writeRow();
    // The backup every restore below starts from: taken before any setting rose.
    await harness.runtime.backup(spec, "prod", "full");
  });
  after(async () => {
    await odoo?.end().catch(() => undefined);
    await harness.close([spec]);
  });

  void it("restores to a second and drills after an apply raised odoo.workers, max_connections with it, and restarted prod", async () => {
    const before = await setting("max_connections");
    await odoo.end();
    spec = withWorkers(11);
    const actions = (await harness.runtime.reconcile(spec)).map((action) => action.action);
    assert.ok(
      actions.some((action) => action.startsWith("restarted to apply") && action.includes("max_connections")),
      actions.join("; "),
    );
    assert.ok((await setting("max_connections")) > before);
    odoo = await connectOdoo();
    await restoreToASecond("after-workers");
    await drillPasses();
  });

  for (const [name, raised] of [
    ["max_worker_processes", 12],
    ["max_wal_senders", 14],
    ["max_prepared_transactions", 5],
    ["max_locks_per_transaction", 96],
  ] as const) {
    void it(`restores to a second and drills after ${name} is raised to ${raised} and prod restarted`, async () => {
      const source = await harness.runtime.recoverable(spec, "prod");
      const client = await admin(source.cluster.port);
      await client.query(`ALTER SYSTEM SET ${name} = ${raised}`);
      await client.end();
      await odoo.end();
      await stopCluster(source.cluster);
      await startCluster(source.cluster, source.backup.access.env);
      assert.equal(await setting(name), raised);
      odoo = await connectOdoo();
      await restoreToASecond(`after-${name.split("_")[1]}`);
      await drillPasses();
    });
  }

  void it("restores to an instant 2 s old while rows are being written", async () => {
    let writing = true;
    const writer = (async () => {
      while (writing) {
        await writeRow();
        await sleep(25);
      }
    })();
    try {
      await sleep(3000);
      const twoSecondsAgo = Date.now() - 2000;
      const index = rows.findIndex((row) => row.insertedAt > twoSecondsAgo);
      const target = instantBetween(rows[index - 1]!, rows[index]!);
      const restored = await harness.runtime.restore(
        spec,
        "prod",
        { kind: "time", time: target },
        { kind: "copy", name: "two-seconds-ago" },
      );
      assert.deepEqual(await restoredIds(restored.port), idsUpTo(target), `restored up to ${target.toISOString()}`);
    } finally {
      writing = false;
      await writer;
    }
  });

  void it("reports a recovery that pauses at once, with PostgreSQL's reason, and leaves no copy behind", async () => {
    // The copy starts with the backup's settings alone, lower than those the WAL after it was written with.
    const source = await harness.runtime.recoverable(spec, "prod");
    const directory = join(harness.root, ORG, "restores", "paused", "postgres");
    const started = Date.now();
    await assert.rejects(restoreToScratch(source, directory, { kind: "latest" }, {}), (error: Error) => {
      assert.match(
        error.message,
        /insufficient parameter settings|is a lower setting than on the primary/,
        error.message,
      );
      return true;
    });
    assert.ok(Date.now() - started < 60_000, `reported after ${Date.now() - started} ms`);
    await assert.rejects(stat(directory), /ENOENT/);
  });

  void it("refuses at once a restore past the archive while the source is down, names the newest restorable instant, and restores to it", async () => {
    const source = await harness.runtime.recoverable(spec, "prod");
    // One row archived (a second after any backup: pgBackRest times backups to the second), then one written
    // after the switch, then the host is lost (a clean stop would switch and archive it).
    await sleep(1100);
    await writeRow();
    const client = await admin(source.cluster.port);
    await waitForArchive(client);
    await client.end();
    await writeRow();
    const unarchived = rows.at(-1)!;
    await odoo.end();
    process.kill((await runningPid(source.cluster))!, "SIGKILL");
    while ((await runningPid(source.cluster)) !== undefined) await sleep(50);
    try {
      const started = Date.now();
      const refusal = await harness.runtime
        .restore(
          spec,
          "prod",
          { kind: "time", time: new Date(Date.now() - 200) },
          { kind: "copy", name: "past-archive" },
        )
        .then(
          () => assert.fail("restored past the archive"),
          (error: Error) => error,
        );
      assert.ok(Date.now() - started < 30_000, `refused after ${Date.now() - started} ms`);
      assert.match(
        refusal.message,
        /is not running.*ends with a transaction committed at (\S+): restore to that instant or earlier/,
        refusal.message,
      );
      const newest = new Date(/--to (\S+)\)/.exec(refusal.message)![1]!);
      assert.ok(newest.getTime() < unarchived.insertedAt, `${newest.toISOString()} is before the unarchived row`);
      await assert.rejects(stat(join(harness.root, ORG, "restores", "past-archive")), /ENOENT/);

      const restored = await harness.runtime.restore(
        spec,
        "prod",
        { kind: "time", time: newest },
        { kind: "copy", name: "newest-restorable" },
      );
      const ids = await restoredIds(restored.port);
      assert.ok(!ids.includes(unarchived.id));
      assert.deepEqual(
        ids,
        rows.filter((row) => row.id !== unarchived.id && row.insertedAt <= newest.getTime()).map((row) => row.id),
      );
    } finally {
      await startCluster(source.cluster, source.backup.access.env);
      odoo = await connectOdoo();
    }
  });
});
