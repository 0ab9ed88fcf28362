import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { createAuditHarness, type TAuditHarness } from "./audit-fixtures.js";
import {
  createRuntimeHarness,
  filesOf,
  readText,
  runtimeTestSpec,
  waitForArchive,
  type TRuntimeHarness,
} from "./runtime-fixtures.js";
import { testDatabaseFactories } from "./test-databases.js";
import { systemContext } from "../src/lib/request-context.js";
import { filestoreDirectoryOf } from "../src/runtime/local/local-filestore.js";
import { secretNames } from "../src/runtime/local/local-placement.js";
import { connectRedis } from "../src/runtime/local/redis-instance.js";
import type { TOrganizationSpec } from "../src/spec/spec-schema.js";
import { recoveryServiceFactory, type TRecoveryService } from "../src/backup/recovery-service.js";

const ORG = "shared-health";
const ctx = systemContext("test");
/** Tuesday 20:00 in New York: inside the organization's default window (tue/thu 19:00, 3 h). */
const IN_WINDOW = new Date("2026-11-25T01:00:00Z");
/** Tuesday noon in New York: outside it. */
const OUTSIDE_WINDOW = new Date("2026-11-24T17:00:00Z");

type TWritten = { note: string; file: string; insertedAt: number; committedAt: number };

void describe("restoring over a declared environment: a shared environment in place, one environment into another, database by database", () => {
  let runtimeHarness: TRuntimeHarness;
  let auditHarness: TAuditHarness;
  let spec: TOrganizationSpec;
  let recovery: TRecoveryService;
  let outsideWindow: TRecoveryService;
  let staging: pg.Client;
  let training: pg.Client;
  const visits: TWritten[] = [];
  const lessons: string[] = [];

  const caPem = () => readText(join(runtimeHarness.root, ORG, "ca.crt"));
  const portOf = async (environment: string) =>
    (await runtimeHarness.runtime.observe(spec)).environments.find((item) => item.environment === environment)!.postgres
      .port!;
  const connect = async (user: string, password: string, database: string) => {
    const client = new pg.Client({
      host: "127.0.0.1",
      port: await portOf("staging"),
      user,
      password,
      database,
      ssl: { ca: await caPem(), rejectUnauthorized: true },
    });
    // The restore ends the target's sessions: an ended client must not crash the test.
    client.on("error", () => undefined);
    await client.connect();
    return client;
  };
  const asOdoo = async (environment: string) =>
    connect(
      `odoo_${environment}`,
      await runtimeHarness.secrets.current(secretNames.databasePassword(ORG, environment)),
      environment,
    );
  const asAdmin = async () =>
    connect(
      "carehost_admin",
      await runtimeHarness.secrets.current(secretNames.clusterAdmin(ORG, "shared")),
      "postgres",
    );
  const filestore = (environment: string) => filestoreDirectoryOf(runtimeHarness.root, ORG, { name: environment });
  const notes = async (client: pg.Client, table: string) =>
    (await client.query<{ note: string }>(`SELECT note FROM ${table} ORDER BY id`)).rows.map((row) => row.note);

  /** A staging visit and its attachment, committed together as Odoo does. */
  const writeVisit = async (note: string) => {
    const file = join(randomBytes(1).toString("hex"), `${note}-${randomBytes(6).toString("hex")}`);
    await mkdir(join(filestore("staging"), file, ".."), { recursive: true });
    await writeFile(join(filestore("staging"), file), randomBytes(1024));
    const {
      rows: [row],
    } = await staging.query<{ at: Date }>("INSERT INTO visit (note, file) VALUES ($1, $2) RETURNING at", [note, file]);
    visits.push({ note, file, insertedAt: row!.at.getTime(), committedAt: Date.now() });
  };
  const writeLesson = async (note: string) => {
    await training.query("INSERT INTO lesson (note) VALUES ($1)", [note]);
    lessons.push(note);
  };
  const archiveNow = async () => {
    const admin = await asAdmin();
    await waitForArchive(admin);
    await admin.end();
  };
  const sessionClient = async (environment: string) => {
    const redis = (await runtimeHarness.runtime.observe(spec)).environments.find(
      (item) => item.environment === environment,
    )!.redis!;
    return connectRedis(
      { name: redis.instance, directory: "", port: redis.port!, owner: undefined },
      `odoo-${environment}`,
      await runtimeHarness.secrets.current(secretNames.redisPassword(ORG, environment)),
      await caPem(),
    );
  };
  const leftovers = async () => {
    const admin = await asAdmin();
    const names = (
      await admin.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE '%\\_\\_%' ORDER BY 1")
    ).rows.map((row) => row.datname);
    await admin.end();
    return {
      databases: names,
      scratch: await readdir(join(runtimeHarness.root, ORG, "restores")).catch(() => [] as string[]),
    };
  };
  const drift = async () =>
    (await runtimeHarness.runtime.observe(spec)).environments.flatMap((environment) => environment.drift);

  before(async () => {
    runtimeHarness = await createRuntimeHarness();
    auditHarness = await createAuditHarness(testDatabaseFactories.pglite);
    const full = runtimeTestSpec(ORG);
    // The shared cluster alone: staging (backed up) and its neighbour training (not backed up on its own).
    spec = { ...full, environments: full.environments.filter((environment) => environment.hosting === "shared") };
    await runtimeHarness.runtime.reconcile(spec);
    const deps = {
      db: auditHarness.db,
      runtime: runtimeHarness.runtime,
      latestSpecs: async () => [spec],
      audit: auditHarness.log,
    };
    recovery = recoveryServiceFactory({ ...deps, now: () => IN_WINDOW });
    outsideWindow = recoveryServiceFactory({ ...deps, now: () => OUTSIDE_WINDOW });
    staging = await asOdoo("staging");
    await staging.query(
      "CREATE TABLE visit (id serial PRIMARY KEY, note text NOT NULL, file text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())",
    );
    training = await asOdoo("training");
    await training.query("CREATE TABLE lesson (id serial PRIMARY KEY, note text NOT NULL)");
  });
  after(async () => {
    await staging.end().catch(() => undefined);
    await training.end().catch(() => undefined);
    await runtimeHarness.close([spec]);
    await auditHarness.dispose();
  });

  void it("restores a shared environment in place to the second; its neighbour keeps every row, its sessions and its database", async () => {
    for (let index = 0; index < 3; index += 1) {
      await writeVisit(`v${index}`);
      await writeLesson(`l${index}`);
    }
    await recovery.backup(ctx, { environment: "staging", kind: "full" });
    for (let index = 3; index < 13; index += 1) {
      await writeVisit(`v${index}`);
      await writeLesson(`l${index}`);
      await sleep(40);
    }
    await runtimeHarness.runtime.snapshotFilestore(spec, "staging");
    // Between two visits: after the eighth committed, before the ninth was written.
    const target = new Date(Math.floor((visits[7]!.committedAt + visits[8]!.insertedAt) / 2));
    for (let index = 13; index < 16; index += 1) {
      await writeVisit(`v${index}`);
      await writeLesson(`l${index}`);
    }
    await runtimeHarness.runtime.snapshotFilestore(spec, "staging");
    await archiveNow();
    const stagingSessions = await sessionClient("staging");
    const trainingSessions = await sessionClient("training");
    await stagingSessions.set("odoo:staging:session:abc", "signed-in");
    await trainingSessions.set("odoo:training:session:def", "signed-in");

    const started = Date.now();
    const restored = await recovery.restore(ctx, {
      environment: "staging",
      target: { kind: "time", time: target },
      inPlace: true,
    });
    const elapsed = Date.now() - started;
    assert.ok("safetyBackup" in restored && restored.safetyBackup.length > 0, "a safety backup of staging first");
    assert.deepEqual(
      restored.steps.map((step) => step.step),
      ["secrets", "postgresql", "filestore", "redis", "application", "ingress"],
    );
    assert.match(
      restored.steps.find((step) => step.step === "postgresql")!.detail,
      /moved over staging in cluster "shared" .*owner odoo_staging/,
    );

    staging = await asOdoo("staging");
    const expected = visits.filter((visit) => visit.insertedAt <= target.getTime());
    assert.equal(expected.length, 8);
    assert.deepEqual(
      await notes(staging, "visit"),
      expected.map((visit) => visit.note),
      "staging: the visits committed before the target, none after",
    );
    assert.deepEqual(
      await filesOf(filestore("staging")),
      expected.map((visit) => visit.file).sort(),
      "staging's filestore as of the same second",
    );
    assert.deepEqual(
      await notes(training, "lesson"),
      lessons,
      "training: every row, those written after the target too, and its session never ended",
    );
    assert.equal(await stagingSessions.get("odoo:staging:session:abc"), null, "staging's sessions flushed");
    assert.equal(await trainingSessions.get("odoo:training:session:def"), "signed-in", "training's sessions kept");
    await stagingSessions.close();
    await trainingSessions.close();
    // Odoo's role owns what came back, so it goes on writing.
    await staging.query("INSERT INTO visit (note, file) VALUES ('after-restore', '')");
    assert.deepEqual(
      await leftovers(),
      { databases: [], scratch: [] },
      "no half-loaded or set-aside database, no scratch copy",
    );
    assert.deepEqual(
      await runtimeHarness.runtime.reconcile(spec),
      [],
      "nothing to correct: owner, CONNECT and limits as declared",
    );
    assert.deepEqual(await drift(), []);
    const [run] = await recovery.listRestores(ctx, "staging");
    assert.equal(run?.destination, "in place");
    assert.equal(run?.status, "succeeded");
    const [completed] = await auditHarness.log.list({ type: "restore.completed", limit: 1 });
    assert.match(JSON.stringify(completed?.entry.payload), /"inPlace":true/);
    console.log(
      `in-place restore of a shared environment: ${elapsed} ms (${restored.steps.map((step) => `${step.step} ${step.durationMs} ms`).join(", ")})`,
    );
  });

  void it("refuses to replace a declared environment's data outside its window, naming the window's time zone, and what the spec does not declare", async () => {
    await assert.rejects(
      outsideWindow.restore(ctx, { environment: "staging", target: { kind: "latest" }, into: "training" }),
      /a restore of "staging" into "training" replaces the data of "training": run it inside its maintenance window \(America\/New_York\), or state the emergency/,
    );
    await assert.rejects(
      outsideWindow.restore(ctx, { environment: "staging", target: { kind: "latest" }, inPlace: true }),
      /an in-place restore of "staging" replaces the data of "staging": run it inside its maintenance window \(America\/New_York\)/,
    );
    await assert.rejects(
      recovery.restore(ctx, { environment: "staging", target: { kind: "latest" }, into: "staging" }),
      /to restore "staging" over itself, use --in-place/,
    );
    /** The recovery service over a spec in which training is declared otherwise. */
    const trainingDeclared = (changes: Partial<TOrganizationSpec["environments"][number]>) =>
      recoveryServiceFactory({
        db: auditHarness.db,
        runtime: runtimeHarness.runtime,
        audit: auditHarness.log,
        now: () => IN_WINDOW,
        latestSpecs: async () => [
          {
            ...spec,
            environments: spec.environments.map((environment) =>
              environment.name === "training" ? { ...environment, ...changes } : environment,
            ),
          },
        ],
      });
    await assert.rejects(
      trainingDeclared({ dataSource: { copyFrom: "prod", deidentify: true } }).restore(ctx, {
        environment: "staging",
        target: { kind: "latest" },
        into: "training",
      }),
      /"training" declares dataSource.copyFrom: "prod"; restoring "staging" into it would load data the spec does not declare for it/,
    );
    await assert.rejects(
      trainingDeclared({ tier: "production" }).restore(ctx, {
        environment: "staging",
        target: { kind: "latest" },
        into: "training",
      }),
      /"training" is a production environment: its data is its own, restored only from its own backups/,
    );
    assert.equal((await recovery.listRestores(ctx, "staging")).length, 1, "nothing refused was started");
  });

  void it("restores one environment into another declared one: the target holds the source's rows as of the second, owned by its own role; the source is untouched", async () => {
    for (let index = 20; index < 26; index += 1) {
      await writeVisit(`v${index}`);
      await sleep(40);
    }
    const target = new Date(Math.floor((visits.at(-4)!.committedAt + visits.at(-3)!.insertedAt) / 2));
    await runtimeHarness.runtime.snapshotFilestore(spec, "staging");
    await archiveNow();
    const stagingBefore = await notes(staging, "visit");
    const stagingFiles = await filesOf(filestore("staging"));
    const trainingSessions = await sessionClient("training");
    await trainingSessions.set("odoo:training:session:ghi", "signed-in");

    const started = Date.now();
    const restored = await outsideWindow.restore(ctx, {
      environment: "staging",
      target: { kind: "time", time: target },
      into: "training",
      emergencyReason: "term starts tomorrow, ticket 8812",
    });
    const elapsed = Date.now() - started;
    assert.ok(!("safetyBackup" in restored), "training has no backups: no safety backup");
    assert.deepEqual(
      restored.steps.map((step) => step.step),
      ["secrets", "postgresql", "filestore", "redis", "application", "ingress"],
    );
    assert.equal(await trainingSessions.get("odoo:training:session:ghi"), null, "training's sessions flushed");
    await trainingSessions.close();

    training = await asOdoo("training");
    const expected = (
      await staging.query<{ note: string }>("SELECT note FROM visit WHERE at <= $1 ORDER BY id", [target])
    ).rows.map((row) => row.note);
    assert.deepEqual(expected.slice(-4), ["after-restore", "v20", "v21", "v22"]);
    assert.deepEqual(
      await notes(training, "visit"),
      expected,
      "training holds staging's visits as of the target second",
    );
    assert.equal(
      (await training.query<{ t: string | null }>("SELECT to_regclass('lesson')::text AS t")).rows[0]?.t,
      null,
      "training's own data is replaced, not merged",
    );
    const owners = await training.query<{ name: string; owner: string }>(
      "SELECT c.relname AS name, pg_get_userbyid(c.relowner) AS owner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' ORDER BY 1",
    );
    assert.deepEqual(
      owners.rows.map((row) => row.owner),
      owners.rows.map(() => "odoo_training"),
      `owned by training's role: ${JSON.stringify(owners.rows)}`,
    );
    await training.query("INSERT INTO visit (note, file) VALUES ('training-writes', '')");
    assert.equal(
      Number((await training.query<{ n: string }>("SELECT count(*) AS n FROM visit")).rows[0]?.n),
      expected.length + 1,
    );
    const sourceVisits = new Map(visits.map((visit) => [visit.file, visit]));
    assert.deepEqual(
      await filesOf(filestore("training")),
      stagingFiles.filter((file) => sourceVisits.get(file)!.insertedAt <= target.getTime()),
      "training's filestore is staging's as of the same second",
    );
    assert.deepEqual(await notes(staging, "visit"), stagingBefore, "staging untouched");
    assert.deepEqual(await filesOf(filestore("staging")), stagingFiles);
    assert.deepEqual(await leftovers(), { databases: [], scratch: [] });
    assert.deepEqual(await runtimeHarness.runtime.reconcile(spec), []);
    assert.deepEqual(await drift(), []);
    // Recorded under the source, whose backups were restored (each service's clock orders the list).
    const run = (await recovery.listRestores(ctx, "staging")).find(
      (item) => item.destination === "environment training",
    );
    assert.equal(run?.status, "succeeded");
    const [emergency] = await auditHarness.log.list({ type: "restore.emergency", limit: 1 });
    assert.equal(emergency?.entry.target, `environment/${ORG}/training`);
    assert.match(JSON.stringify(emergency?.entry.payload), /ticket 8812.*"source":"staging"/);
    const completed = (await auditHarness.log.list({ type: "restore.completed", limit: 10 })).map((item) =>
      JSON.stringify(item.entry.payload),
    );
    assert.ok(
      completed.some((payload) => /"emergency":true.*"intoEnvironment":"training","safetyBackup":null/.test(payload)),
      completed.join("\n"),
    );
    console.log(
      `restore of staging into training: ${elapsed} ms (${restored.steps.map((step) => `${step.step} ${step.durationMs} ms`).join(", ")})`,
    );
  });

  void it("leaves the target untouched when the load fails before the swap, and drops the half-loaded database", async () => {
    // An untrusted extension only a superuser may create: training's role cannot recreate it.
    const admin = await connect(
      "carehost_admin",
      await runtimeHarness.secrets.current(secretNames.clusterAdmin(ORG, "shared")),
      "staging",
    );
    await admin.query("CREATE EXTENSION pageinspect");
    await waitForArchive(admin);
    const trainingBefore = await notes(training, "visit");
    try {
      await assert.rejects(
        recovery.restore(ctx, { environment: "staging", target: { kind: "latest" }, into: "training" }),
        /loading database training into cluster "shared" failed; training is unchanged: .*pageinspect/s,
      );
    } finally {
      await admin.query("DROP EXTENSION pageinspect");
      await admin.end();
    }
    assert.deepEqual(
      await notes(training, "visit"),
      trainingBefore,
      "training's data and its open session are as they were",
    );
    assert.deepEqual(
      await leftovers(),
      { databases: [], scratch: [] },
      "the half-loaded database and the scratch copy are gone",
    );
    const failed = (await recovery.listRestores(ctx, "staging")).find((run) => run.status === "failed");
    assert.match(
      failed?.error ?? "",
      /training is unchanged: pg_restore: .*pageinspect/,
      "the recorded reason names the object",
    );
    assert.deepEqual(await runtimeHarness.runtime.reconcile(spec), []);
  });

  void it("repairs a restore over an environment that a killed carehost left between the two renames of its swap", async () => {
    // What a carehost killed mid-swap leaves: the marker in its scratch directory, training renamed
    // aside, the loaded copy not yet renamed in.
    await training.end();
    const admin = await asAdmin();
    await admin.query("ALTER DATABASE training WITH ALLOW_CONNECTIONS false");
    await admin.query("ALTER DATABASE training RENAME TO training__replaced");
    await admin.query("CREATE DATABASE training__restoring");
    await admin.end();
    const scratch = join(runtimeHarness.root, ORG, "restores", "training.into");
    await mkdir(scratch, { recursive: true });
    await writeFile(
      join(scratch, "restore-in-progress.json"),
      JSON.stringify({
        source: "staging",
        target: { kind: "latest" },
        into: "training",
        cluster: "shared",
        database: "training",
        filestoreDirectory: filestore("training"),
        databaseSwapped: false,
        startedAt: new Date(),
      }),
    );

    const actions = await runtimeHarness.runtime.reconcile(spec);
    assert.deepEqual(actions, [
      {
        target: "environment/training",
        action:
          "an interrupted restore of staging over training left training as it was (removed training__restoring and the scratch copy)",
      },
    ]);
    training = await asOdoo("training");
    assert.ok(
      (await notes(training, "visit")).includes("training-writes"),
      "training's data is back under its name and takes connections",
    );
    assert.deepEqual(await leftovers(), { databases: [], scratch: [] });
    assert.deepEqual(await runtimeHarness.runtime.reconcile(spec), []);
  });
});
