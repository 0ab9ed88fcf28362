// bench/provision: how long carehost takes to provision environments on this host, side by side
// with doing the same by hand with the host's tools (initdb, pg_ctl, psql), and how long a no-op
// reconcile of 50 environments takes (target: under 2 s), against checking them by hand with psql.
//
// Run: npx tsx bench/provision/provision-bench.ts
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { openStore } from "../../src/store/store-open.js";
import { localRuntimeFactory } from "../../src/runtime/local/local-runtime.js";
import { freeLoopbackPort } from "../../src/runtime/local/runtime-instance.js";
import { serviceUser } from "../../src/lib/runtime-command.js";
import { masterKeyFrom } from "../../src/secrets/secrets-master-key.js";
import { secretsServiceFactory } from "../../src/secrets/secrets-service.js";
import { loadSpecText } from "../../src/spec/spec-loader.js";
import type { TEnvironmentSpec, TOrganizationSpec } from "../../src/spec/spec-schema.js";

const run = promisify(execFile);
const BIN = "/usr/lib/postgresql/15/bin";
const SHARED_ENVIRONMENTS = 49;

const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;

function demo(): TOrganizationSpec {
  const loaded = loadSpecText(
    readFileSync(new URL("../../examples/northwind-health.yaml", import.meta.url), "utf8"),
    "northwind-health.yaml",
  );
  if (!loaded.ok) throw new Error("the demo spec does not load");
  return loaded.spec;
}

function organizationWith(environments: TEnvironmentSpec[], name: string): TOrganizationSpec {
  return { ...demo(), metadata: { name, displayName: name }, environments };
}

/** 1 dedicated production + 49 shared environments cloned from the demo's training environment. */
function fiftyEnvironments(): TOrganizationSpec {
  const spec = demo();
  const prod = spec.environments.find((environment) => environment.name === "prod")!;
  const training = spec.environments.find((environment) => environment.name === "training")!;
  const shared = Array.from({ length: SHARED_ENVIRONMENTS }, (_, index) => ({
    ...training,
    name: `clinic-${String(index + 1).padStart(2, "0")}`,
    ingress: { ...training.ingress, hostnames: [`clinic-${index + 1}.example`] },
  }));
  return organizationWith([prod, ...shared], "bench-fifty");
}

/** What a platform engineer would do by hand for one environment: initdb, start, a role and a database. */
async function byHand(directory: string, environments: number): Promise<number> {
  const owner = await serviceUser("postgres");
  const as = owner === undefined ? {} : { uid: owner.uid, gid: owner.gid };
  const port = await freeLoopbackPort();
  const data = join(directory, "data");
  await writeFile(join(directory, "pw"), "bench-password\n");
  if (owner !== undefined) await run("chown", ["-R", `${owner.uid}:${owner.gid}`, directory]);
  const start = process.hrtime.bigint();
  await run(
    join(BIN, "initdb"),
    ["-D", data, "--data-checksums", "--auth=scram-sha-256", "-U", "admin", `--pwfile=${join(directory, "pw")}`],
    as,
  );
  await run(
    join(BIN, "pg_ctl"),
    [
      "start",
      "-D",
      data,
      "-l",
      join(directory, "log"),
      "-w",
      "-o",
      `-p ${port} -k ${directory} -c listen_addresses=127.0.0.1`,
    ],
    as,
  );
  const env = { ...process.env, PGPASSWORD: "bench-password" };
  for (let index = 0; index < environments; index += 1) {
    for (const sql of [
      `CREATE ROLE odoo_${index} LOGIN PASSWORD 'x' CONNECTION LIMIT 45`,
      `CREATE DATABASE db_${index} OWNER odoo_${index}`,
      `REVOKE CONNECT ON DATABASE db_${index} FROM PUBLIC`,
    ]) {
      await run("psql", ["-h", "127.0.0.1", "-p", String(port), "-U", "admin", "-d", "postgres", "-qc", sql], { env });
    }
  }
  const elapsed = seconds(start);
  const check = process.hrtime.bigint();
  // The by-hand no-op check: is each role still unprivileged and each database still closed to PUBLIC?
  for (let index = 0; index < 50; index += 1) {
    await run(
      "psql",
      [
        "-h",
        "127.0.0.1",
        "-p",
        String(port),
        "-U",
        "admin",
        "-d",
        "postgres",
        "-Atc",
        `SELECT rolsuper, has_database_privilege('public', 'db_${index % environments}', 'CONNECT') FROM pg_roles WHERE rolname = 'odoo_${index % environments}'`,
      ],
      { env },
    );
  }
  const checkSeconds = seconds(check);
  await run(join(BIN, "pg_ctl"), ["stop", "-D", data, "-m", "fast", "-w"], as);
  console.log(
    `  by hand: initdb + start + ${environments} role/database(s): ${elapsed.toFixed(2)} s; checking 50 environments with psql: ${checkSeconds.toFixed(2)} s`,
  );
  return environments === 1 ? elapsed : checkSeconds;
}

async function main(): Promise<void> {
  const home = await mkdtemp(join(tmpdir(), "carehost-bench-provision-"));
  await chmod(home, 0o711);
  const db = await openStore({ kind: "pglite", dataDir: join(home, "state") });
  const secrets = secretsServiceFactory({
    db,
    masterKey: masterKeyFrom(randomBytes(32), "env"),
    audit: { append: async () => undefined },
    authorizeReveal: async () => undefined,
  });
  const runtime = localRuntimeFactory({ root: join(home, "runtime"), secrets });
  const base = demo();
  const prod = base.environments.find((environment) => environment.name === "prod")!;
  const staging = base.environments.find((environment) => environment.name === "staging")!;
  const dedicated = organizationWith([prod], "bench-dedicated");
  const shared = organizationWith([{ ...staging, dataSource: undefined }], "bench-shared");
  const fifty = fiftyEnvironments();
  try {
    console.log("bench/provision (PostgreSQL 15, Redis 7 on this host)");
    let start = process.hrtime.bigint();
    await runtime.reconcile(dedicated);
    const dedicatedSeconds = seconds(start);
    start = process.hrtime.bigint();
    await runtime.reconcile(shared);
    const sharedSeconds = seconds(start);
    const handDirectory = await mkdtemp(join(home, "by-hand-"));
    await chmod(handDirectory, 0o755);
    const handOne = await byHand(handDirectory, 1);
    console.log(
      `  carehost, dedicated environment from nothing (CA, TLS cluster, pgaudit, Redis with ACLs, odoo.conf): ${dedicatedSeconds.toFixed(2)} s (${(dedicatedSeconds / handOne).toFixed(2)}x the bare by-hand steps)`,
    );
    console.log(
      `  carehost, shared environment from nothing (shared cluster + tenant): ${sharedSeconds.toFixed(2)} s (${(sharedSeconds / handOne).toFixed(2)}x)`,
    );

    start = process.hrtime.bigint();
    const created = await runtime.reconcile(fifty);
    console.log(
      `  carehost, 50 environments (1 dedicated + ${SHARED_ENVIRONMENTS} shared) from nothing: ${seconds(start).toFixed(2)} s, ${created.length} actions`,
    );
    const timings: number[] = [];
    for (let round = 0; round < 5; round += 1) {
      start = process.hrtime.bigint();
      const actions = await runtime.reconcile(fifty);
      timings.push(seconds(start));
      if (actions.length > 0) throw new Error(`a no-op reconcile acted: ${JSON.stringify(actions.slice(0, 3))}`);
    }
    timings.sort((a, b) => a - b);
    const median = timings[2]!;
    const handDirectory50 = await mkdtemp(join(home, "by-hand-50-"));
    await chmod(handDirectory50, 0o755);
    const handCheck = await byHand(handDirectory50, 5);
    console.log(
      `  carehost, no-op reconcile of 50 environments: median ${median.toFixed(3)} s of 5 (target < 2 s: ${median < 2 ? "met" : "MISSED"}); by-hand psql check of 50: ${handCheck.toFixed(2)} s (carehost ${(handCheck / median).toFixed(1)}x faster)`,
    );
  } finally {
    for (const organization of [dedicated, shared, fifty])
      await runtime.stopOrganization(organization).catch(() => undefined);
    await runtime.close();
    await db.close();
    await rm(home, { recursive: true, force: true });
  }
}

await main();
