import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { createClient } from "redis";
import {
  createRuntimeHarness,
  filesBelow,
  readText,
  runtimeTestSpec,
  type TRuntimeHarness,
} from "../../../test/runtime-fixtures.js";
import { POLICY_CATALOG } from "../../policy/policy-catalog.js";
import { evaluatePolicy } from "../../policy/policy-engine.js";
import { specSubjectsOf } from "../../policy/policy-service.js";
import type { TOrganizationSpec } from "../../spec/spec-schema.js";
import { databaseNameOf, databaseRoleOf, redisUserOf, secretNames } from "./local-placement.js";

void describe("local runtime: dedicated and shared environments on real PostgreSQL and Redis", () => {
  let harness: TRuntimeHarness;
  let spec: TOrganizationSpec;
  const org = "acme-health";

  before(async () => {
    harness = await createRuntimeHarness();
    spec = runtimeTestSpec(org);
  });
  after(async () => harness.close([spec]));

  const portOf = async (environment: string) => {
    const observation = await harness.runtime.observe(spec);
    const status = observation.environments.find((item) => item.environment === environment);
    assert.ok(status?.postgres.port);
    return { postgres: status.postgres.port, redis: status.redis?.port ?? null };
  };
  const caPem = async () => readText(`${harness.root}/${org}/ca.crt`);
  const connectAs = async (environment: string, database: string, ssl: boolean | "verify" = "verify") => {
    const client = new pg.Client({
      host: "127.0.0.1",
      port: (await portOf(environment)).postgres,
      user: databaseRoleOf({ name: environment }),
      password: await harness.secrets.current(secretNames.databasePassword(org, environment)),
      database,
      ssl: ssl === "verify" ? { ca: await caPem(), rejectUnauthorized: true } : ssl,
    });
    client.on("error", () => undefined);
    await client.connect();
    return client;
  };

  void it("provisions from nothing, and a second reconcile does nothing", async () => {
    const first = await harness.runtime.reconcile(spec);
    assert.ok(
      first.some((action) => action.target === "postgres/dedicated-prod" && action.action.startsWith("initialized")),
    );
    assert.ok(first.some((action) => action.target === "postgres/shared" && action.action.startsWith("started")));
    assert.ok(first.some((action) => action.target === "redis/dedicated-prod" && action.action.startsWith("started")));
    assert.ok(
      first.some((action) => action.target === "environment/staging" && action.action.startsWith("created role")),
    );
    assert.deepEqual(await harness.runtime.reconcile(spec), []);
  });

  void it("passes every control of the baseline on what it built, read back from the running systems, but the repository it skips and the standby it cannot run", async () => {
    const observation = await harness.runtime.observe(spec);
    for (const environment of observation.environments)
      assert.deepEqual(environment.drift, [], `drift in ${environment.environment}`);
    const report = evaluatePolicy({
      controls: POLICY_CATALOG,
      subjects: {
        spec: specSubjectsOf(spec),
        artifact: observation.subjects.artifact,
        live: observation.subjects.live,
      },
      now: new Date(),
    });
    const failures = report.results
      .filter((result) => result.status === "fail")
      .map((result) => `${result.controlId} ${result.environment}: ${result.messages.join("; ")}`);
    // The demo's offsite repository has no key in this store: every backup of prod goes to local alone, and says so.
    assert.deepEqual(failures, [
      `CH-BAK-006 prod: backup repository "offsite" (azure) is declared but not written: its key "backup/${org}/backup-offsite-azure-key" is not in the secret store; add it with: carehost secrets set backup/${org}/backup-offsite-azure-key (backups go to: local)`,
    ]);
    const prod = observation.environments.find((environment) => environment.environment === "prod");
    assert.deepEqual(prod?.backupRepositories, {
      written: [{ name: "local", type: "posix" }],
      skipped: [
        {
          name: "offsite",
          type: "azure",
          reason: `its key "backup/${org}/backup-offsite-azure-key" is not in the secret store; add it with: carehost secrets set backup/${org}/backup-offsite-azure-key`,
        },
      ],
    });
    // highAvailability: true is declared; pg_stat_replication shows no standby, and this runtime runs none.
    const standby = report.results.find((result) => result.controlId === "CH-DB-001" && result.environment === "prod");
    assert.equal(standby?.status, "not-enforced");
    assert.match(
      standby.messages.join(""),
      /database\.highAvailability is true, but the host runtime runs one PostgreSQL per cluster and no standby/,
    );
    assert.ok(report.results.some((result) => result.subject === "live" && result.status === "pass"));
  });

  void it("isolates tenants: staging's role cannot connect to training's database, and plain TCP is refused", async () => {
    const own = await connectAs("staging", databaseNameOf({ name: "staging" }));
    assert.equal((await own.query<{ u: string }>("SELECT current_user AS u")).rows[0]?.u, "odoo_staging");
    await own.end();
    await assert.rejects(
      connectAs("staging", databaseNameOf({ name: "training" })),
      /permission denied for database "training"/,
    );
    await assert.rejects(connectAs("staging", "staging", false), /no pg_hba.conf entry|rejects connection|reject/);
  });

  void it("keeps tenants out of the maintenance databases, where pg_database would list every tenant's database", async () => {
    for (const database of ["postgres", "template1"]) {
      await assert.rejects(connectAs("staging", database), new RegExp(`permission denied for database "${database}"`));
      await assert.rejects(connectAs("prod", database), new RegExp(`permission denied for database "${database}"`));
    }
    // The admin (a superuser) still connects there: the drills' heartbeat is written into `postgres`.
    await harness.runtime.heartbeat(spec);
  });

  void it("isolates Redis tenants by key prefix, refuses the default user and plaintext", async () => {
    const { redis: port } = await portOf("staging");
    assert.ok(port);
    const connect = async (environment: string) => {
      const client = createClient({
        socket: { host: "127.0.0.1", port, tls: true, ca: await caPem(), reconnectStrategy: false },
        username: redisUserOf({ name: environment }),
        password: await harness.secrets.current(secretNames.redisPassword(org, environment)),
      });
      client.on("error", () => undefined);
      await client.connect();
      return client;
    };
    const staging = await connect("staging");
    const training = await connect("training");
    await staging.set("odoo:staging:session:1", "a");
    await assert.rejects(training.get("odoo:staging:session:1"), /NOPERM/);
    await assert.rejects(staging.flushAll(), /NOPERM/);
    // Nothing that walks the keyspace: key patterns do not limit it, so it would show staging's keys to training.
    await assert.rejects(training.scan("0", { MATCH: "*", COUNT: 1000 }), /NOPERM/);
    await assert.rejects(training.keys("*"), /NOPERM/);
    await assert.rejects(training.randomKey(), /NOPERM/);
    await assert.rejects(training.objectEncoding("odoo:staging:session:1"), /NOPERM/);
    await assert.rejects(training.sendCommand(["OBJECT", "FREQ", "odoo:staging:session:1"]), /NOPERM/);
    // What a session store does with its own keys still works.
    await training.set("odoo:training:session:1", "b", { EX: 60 });
    assert.equal(await training.get("odoo:training:session:1"), "b");
    assert.equal(await training.objectEncoding("odoo:training:session:1"), "embstr");
    await staging.close();
    await training.close();
    const plaintext = createClient({
      socket: { host: "127.0.0.1", port, reconnectStrategy: false, connectTimeout: 2000 },
    });
    plaintext.on("error", () => undefined);
    await assert.rejects(plaintext.connect().then(() => plaintext.ping()));
  });

  void it("detects drift made by hand and corrects it on the next reconcile", async () => {
    const { postgres: port } = await portOf("staging");
    const { connectAdmin } = await import("./postgres-cluster.js");
    const admin = await connectAdmin(
      { name: "shared", directory: "", port, version: 15, owner: undefined },
      await harness.secrets.current(secretNames.clusterAdmin(org, "shared")),
      await caPem(),
    );
    await admin.query("ALTER ROLE odoo_staging SUPERUSER");
    await admin.query("GRANT CONNECT ON DATABASE training TO PUBLIC");
    await admin.query("GRANT CONNECT ON DATABASE postgres TO PUBLIC");
    await admin.query("ALTER SYSTEM SET log_connections = off");
    await admin.end();
    const drifted = await harness.runtime.observe(spec);
    const fields = drifted.environments.flatMap((environment) =>
      environment.drift.map((item) => `${environment.environment}:${item.field}`),
    );
    assert.ok(fields.includes("staging:role.superuser"), fields.join(", "));
    assert.ok(fields.includes("training:database.publicConnect"), fields.join(", "));
    assert.ok(fields.includes("staging:ALTER SYSTEM log_connections"), fields.join(", "));
    assert.ok(fields.includes("staging:database postgres.publicConnect"), fields.join(", "));
    // The grant really let the tenant in again: what observe reports is an open door, not a label.
    const reopened = await connectAs("staging", "postgres");
    await reopened.end();
    const posture = evaluatePolicy({
      controls: POLICY_CATALOG,
      subjects: { live: drifted.subjects.live },
      now: new Date(),
    });
    assert.ok(
      posture.mandatoryViolations.some(
        (violation) => violation.controlId === "CH-DB-007" && violation.environment === "staging",
      ),
    );
    const corrections = await harness.runtime.reconcile(spec);
    assert.ok(corrections.length >= 3, JSON.stringify(corrections));
    assert.ok(
      corrections.some(
        (item) =>
          item.target === "postgres/shared" && item.action === "revoked CONNECT on database postgres from PUBLIC",
      ),
      JSON.stringify(corrections),
    );
    await assert.rejects(connectAs("staging", "postgres"), /permission denied for database "postgres"/);
    const clean = await harness.runtime.observe(spec);
    assert.deepEqual(
      clean.environments.flatMap((environment) => environment.drift),
      [],
    );
    assert.deepEqual(await harness.runtime.reconcile(spec), []);
  });

  void it("detects Redis drift made by hand (CONFIG SET, ACL SETUSER) and corrects it", async () => {
    const { redis: port } = await portOf("prod");
    assert.ok(port);
    const connectAdmin = async () => {
      const client = createClient({
        socket: { host: "127.0.0.1", port, tls: true, ca: await caPem(), reconnectStrategy: false },
        username: "carehost-admin",
        password: await harness.secrets.current(secretNames.redisAdmin(org, "dedicated-prod")),
      });
      client.on("error", () => undefined);
      await client.connect();
      return client;
    };
    const admin = await connectAdmin();
    await admin.configSet("protected-mode", "no");
    await admin.sendCommand(["ACL", "SETUSER", "default", "on", "nopass", "+@all"]);
    const drifted = await harness.runtime.observe(spec);
    const prod = drifted.environments.find((environment) => environment.environment === "prod")!;
    assert.deepEqual(prod.drift.map((item) => item.field).sort(), ["acl user default", "config protected-mode"]);
    const live = drifted.subjects.live.find((subject) => subject.environment.name === "prod")!.live.redis!;
    assert.equal(live.protectedMode, false);
    assert.equal(live.defaultUserEnabled, true);
    await admin.close();
    assert.deepEqual(await harness.runtime.reconcile(spec), [
      { target: "redis/dedicated-prod", action: "corrected config protected-mode, acl user default" },
    ]);
    // ACL LOAD dropped the old connections: look again with a new one.
    const after = await connectAdmin();
    assert.equal((await after.configGet("protected-mode"))["protected-mode"], "yes");
    assert.ok(!(await after.aclGetUser("default"))?.flags.includes("on"));
    await after.close();
    assert.deepEqual(await harness.runtime.reconcile(spec), []);
  });

  void it("restarts a crashed PostgreSQL and Redis", async () => {
    const { readFile } = await import("node:fs/promises");
    const pgPid = Number(
      (await readFile(`${harness.root}/${org}/postgres/dedicated-prod/data/postmaster.pid`, "utf8")).split("\n")[0],
    );
    const redisPid = Number((await readFile(`${harness.root}/${org}/redis/dedicated-prod/redis.pid`, "utf8")).trim());
    process.kill(pgPid, "SIGKILL");
    process.kill(redisPid, "SIGKILL");
    await new Promise((resolve) => setTimeout(resolve, 300));
    const restarted = await harness.runtime.restartStopped(spec);
    assert.deepEqual(restarted.map((action) => action.target).sort(), [
      "postgres/dedicated-prod",
      "redis/dedicated-prod",
    ]);
    const client = await connectAs("prod", "prod");
    await client.end();
  });

  void it("writes no secret into any file it renders or any log", async () => {
    const secrets = await harness.secretValues();
    assert.ok(secrets.length >= 10);
    const allowed = new Set(["pgpass"]);
    for (const path of await filesBelow(harness.root)) {
      if (allowed.has(path.split("/").pop() ?? "")) continue;
      const text = await readText(path).catch(() => "");
      for (const secret of secrets) assert.ok(!text.includes(secret), `a secret appears in ${path}`);
    }
  });
});
