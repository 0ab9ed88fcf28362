// A local runtime over a throwaway data dir and the real secret store (PGlite), for tests that
// start real PostgreSQL and Redis processes. Every secret it generates is remembered, so a test
// can scan logs and files for leaks.
import { execFile } from "node:child_process";
import { chmod, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { localRuntimeFactory, type TLocalRuntime } from "../src/runtime/local/local-runtime.js";
import { masterKeyFrom } from "../src/secrets/secrets-master-key.js";
import { secretsServiceFactory, type TSecretsService } from "../src/secrets/secrets-service.js";
import { loadSpecText } from "../src/spec/spec-loader.js";
import type { TOrganizationSpec } from "../src/spec/spec-schema.js";
import { readFileSync } from "node:fs";
import pg from "pg";
import { secretNames } from "../src/runtime/local/local-placement.js";
import { archiveCurrentSegment } from "../src/runtime/local/postgres-archiver.js";
import { testDatabaseFactories } from "./test-databases.js";

export type TRuntimeHarness = {
  readonly root: string;
  readonly runtime: TLocalRuntime;
  readonly secrets: TSecretsService;
  /** Every secret value the store holds, current and previous; hashes (published by design, e.g. admin_passwd) excepted. */
  secretValues(): Promise<string[]>;
  close(organizations: readonly TOrganizationSpec[]): Promise<void>;
};

/** Live processes (zombies excepted) whose program and arguments `matches` accepts, by pid. */
export async function processesRunning(
  matches: (program: string, args: readonly string[]) => boolean,
): Promise<number[]> {
  const { stdout } = await promisify(execFile)("ps", ["-eo", "pid=,stat=,args="]);
  return stdout
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter(([, state, program, ...args]) => !state?.startsWith("Z") && program !== undefined && matches(program, args))
    .map(([pid]) => Number(pid));
}

/** SIGKILL to every process working in or naming a directory (what carehost leaves running, by design, after its test). */
export async function killProcessesUnder(directory: string): Promise<void> {
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cwd = await readlink(`/proc/${entry}/cwd`).catch(() => "");
    const args = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (cwd.startsWith(directory) || args.includes(directory)) process.kill(Number(entry), "SIGKILL");
  }
}

/** `now`: the runtime's clock (a test moves it forward to see what an objective missed later looks like). */
export async function createRuntimeHarness(options: { now?: () => Date } = {}): Promise<TRuntimeHarness> {
  const home = await mkdtemp(join(tmpdir(), "carehost-runtime-"));
  // The service accounts (postgres, redis) must be able to reach their directories below it.
  await chmod(home, 0o711);
  const root = join(home, "runtime");
  const database = await testDatabaseFactories.pglite();
  const db = await database.open();
  const secrets = secretsServiceFactory({
    db,
    masterKey: masterKeyFrom(randomBytes(32), "env"),
    audit: { append: async () => undefined },
    authorizeReveal: async () => undefined,
  });
  const runtime = localRuntimeFactory({ root, secrets, ...(options.now === undefined ? {} : { now: options.now }) });
  return {
    root,
    runtime,
    secrets,
    secretValues: async () => {
      const values: string[] = [];
      for (const listing of (await secrets.list()).filter((item) => !item.name.endsWith("-hash"))) {
        values.push(await secrets.current(listing.name));
        const previous = await secrets.previous(listing.name);
        if (previous !== null) values.push(previous.value);
      }
      return values;
    },
    close: async (organizations) => {
      for (const organization of organizations) await runtime.stopOrganization(organization).catch(() => undefined);
      await runtime.close();
      await db.close();
      await database.dispose();
      await rm(home, { recursive: true, force: true });
    },
  };
}

/** A small organization: one dedicated PHI production with Redis and two shared environments, one with Redis. */
export function runtimeTestSpec(name = "acme-health"): TOrganizationSpec {
  const text = readFileSync(new URL("../examples/northwind-health.yaml", import.meta.url), "utf8")
    .replace("name: northwind-health", `name: ${name}`)
    .replace(/redis:\n(\s+)enabled: false/g, "redis:\n$1enabled: true");
  const result = loadSpecText(text, "runtime-test.yaml");
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result.spec;
}

/**
 * Every regular file below a directory (for secret-leak scans). A file gone between the listing
 * and its stat is left out: pgBackRest's asynchronous archiver takes and drops lock files while
 * the test walks a live runtime.
 */
export async function filesBelow(directory: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(directory, { withFileTypes: true, recursive: true })) {
    const path = join(entry.parentPath, entry.name);
    if (!entry.isFile()) continue;
    const size = await stat(path).then(
      (stats) => stats.size,
      (error: NodeJS.ErrnoException) => {
        if (error.code === "ENOENT") return undefined;
        throw error;
      },
    );
    if (size !== undefined && size < 4 * 1024 * 1024) files.push(path);
  }
  return files;
}

export const readText = (path: string) => readFile(path, "utf8");

/** Switches to a new WAL segment and waits (up to 30 s) until the archiver has pushed it: everything committed before is recoverable. */
export async function waitForArchive(admin: Pick<pg.Client, "query">): Promise<void> {
  await archiveCurrentSegment(admin, 30_000);
}

/** Every file below a directory, relative to it and sorted (the empty-filestore marker excepted). */
export async function filesOf(directory: string): Promise<string[]> {
  const entries = await readdir(directory, { withFileTypes: true, recursive: true }).catch(() => []);
  return entries
    .filter((entry) => entry.isFile() && entry.name !== ".carehost-empty")
    .map((entry) => relative(directory, join(entry.parentPath, entry.name)))
    .sort();
}

/**
 * TLS connections to a harness's clusters, verified against the organization's CA: as any role, or
 * as the admin of one cluster. The harness is a getter: tests create it in `before`.
 */
export function clusterClients(
  harnessOf: () => Pick<TRuntimeHarness, "root" | "secrets">,
  organization: string,
  instance = "dedicated-prod",
) {
  const caPem = () => readText(join(harnessOf().root, organization, "ca.crt"));
  const connect = async (port: number, user: string, password: string, database: string): Promise<pg.Client> => {
    const client = new pg.Client({
      host: "127.0.0.1",
      port,
      user,
      password,
      database,
      ssl: { ca: await caPem(), rejectUnauthorized: true },
    });
    client.on("error", () => undefined);
    await client.connect();
    return client;
  };
  const admin = async (port: number, database = "postgres") =>
    connect(
      port,
      "carehost_admin",
      await harnessOf().secrets.current(secretNames.clusterAdmin(organization, instance)),
      database,
    );
  return { caPem, connect, admin };
}

/**
 * Attachments as Odoo stores them: the file in the filestore, then its ir_attachment row (a table
 * `ir_attachment (id serial, store_fname text, at timestamptz DEFAULT clock_timestamp())`). Both
 * times are remembered, so a test can say which ones a restore to an instant must bring back.
 */
export function attachmentWriter(filestore: () => string, odoo: () => Pick<pg.Client, "query">) {
  const written: { path: string; at: number }[] = [];
  const rows: { id: number; at: number }[] = [];
  /** One attachment and one row, committed together as Odoo does; returns when both are durable. */
  const write = async (index: number) => {
    const path = join(
      randomBytes(1).toString("hex"),
      `${String(index).padStart(4, "0")}-${randomBytes(8).toString("hex")}`,
    );
    await mkdir(join(filestore(), path, ".."), { recursive: true });
    await writeFile(join(filestore(), path), randomBytes(2048));
    const {
      rows: [row],
    } = await odoo().query<{ id: number; at: Date }>(
      "INSERT INTO ir_attachment (store_fname) VALUES ($1) RETURNING id, at",
      [path],
    );
    written.push({ path, at: Date.now() });
    rows.push({ id: row!.id, at: row!.at.getTime() });
  };
  /** Odoo's table, as much of it as the writer fills. */
  const createTable = async () => {
    await odoo().query(
      "CREATE TABLE ir_attachment (id serial PRIMARY KEY, store_fname text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())",
    );
  };
  return { written, rows, write, createTable };
}
