// The Compose bundle's data tier run with the real programs, the container paths mapped into a
// temp dir: PostgreSQL 15 starts from the rendered postgresql.conf and pg_hba.conf (pgaudit
// loaded, TLS only), archives WAL through the rendered pgbackrest.conf with the secrets the
// rendered entrypoint exports, and the rendered backup.sh takes an encrypted full backup with
// pgBackRest and a restic snapshot of the filestore into the environment's repository.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { freeLoopbackPort } from "../../runtime/local/runtime-instance.js";
import { loadSpecFile } from "../../spec/spec-loader.js";
import type { TRenderedFile } from "../render-types.js";
import { renderComposeEnvironment } from "./compose-render.js";

const POSTGRES_BIN = "/usr/lib/postgresql/15/bin";
let scratch = "";
let stopServer: (() => Promise<unknown>) | undefined;

type TRun = { code: number; stdout: string; stderr: string };
const run = (file: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<TRun> =>
  new Promise((resolve) => {
    execFile(
      file,
      args,
      { env: { PATH: process.env.PATH, ...env }, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr }),
    );
  });
/** PostgreSQL refuses to run as root: as root, every command runs as the postgres account. */
const asPostgres = (file: string, args: readonly string[], env: NodeJS.ProcessEnv = {}) =>
  process.getuid?.() === 0
    ? run("setpriv", [
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "env",
        ...Object.entries(env).map(([k, v]) => `${k}=${v ?? ""}`),
        file,
        ...args,
      ])
    : run(file, args, env);

const fileAt = (files: readonly TRenderedFile[], path: string) => {
  const file = files.find((candidate) => candidate.path === path);
  assert.ok(file, path);
  return file.content;
};

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "carehost-compose-backup-"));
});
after(async () => {
  await stopServer?.();
  await rm(scratch, { recursive: true, force: true });
});

void describe("Compose bundle's backups at run time", () => {
  void it("archives WAL and takes an aes-256-cbc pgBackRest backup and a restic snapshot of the filestore into the repository", async () => {
    const loaded = await loadSpecFile("examples/northwind-health.yaml");
    assert.ok(loaded.ok);
    // staging writes to the posix repository only, which a volume (here a directory) stands for.
    const files = renderComposeEnvironment(loaded.spec, "staging");
    const port = await freeLoopbackPort();
    const dir = (name: string) => join(scratch, name);
    const mapping: Record<string, string> = {
      "/etc/postgresql/": `${dir("conf")}/`,
      "/etc/pgbackrest/pgbackrest.conf": join(dir("conf"), "pgbackrest.conf"),
      "/run/secrets": dir("secrets"),
      "/var/lib/postgresql/data": dir("data"),
      "/var/run/postgresql": dir("socket"),
      "/tmp/pgbackrest": dir("pgbackrest"),
      "/var/lib/pgbackrest": dir("repositories"),
      "/var/lib/odoo": dir("odoo"),
    };
    const mapped = (text: string) =>
      Object.entries(mapping)
        .sort(([a], [b]) => b.length - a.length)
        .reduce((result, [from, to]) => result.split(from).join(to), text);
    for (const name of ["conf", "secrets", "socket", "pgbackrest", "repositories/local", "odoo/filestore/odoo"])
      await mkdir(dir(name), { recursive: true });
    await writeFile(join(dir("secrets"), "postgres-superuser-password"), "superuser-Pass_1\n");
    await writeFile(join(dir("secrets"), "backup-passphrase-local-staging"), "stanza-passphrase-1\n");
    await writeFile(join(dir("odoo/filestore/odoo"), "ab12.bin"), "patient letter: confidential\n");
    const openssl = await run("openssl", [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=postgres",
      "-keyout",
      join(dir("secrets"), "postgres-server.key"),
      "-out",
      join(dir("secrets"), "postgres-server.crt"),
    ]);
    assert.equal(openssl.code, 0, openssl.stderr);
    // The host is not the container: loopback only, and a free port.
    await writeFile(
      join(dir("conf"), "postgresql.conf"),
      mapped(fileAt(files, "postgres/postgresql.conf"))
        .replace(/^listen_addresses = .*$/m, "listen_addresses = '127.0.0.1'")
        .replace(/^port = 5432$/m, `port = ${port}`),
    );
    await writeFile(join(dir("conf"), "pg_hba.conf"), mapped(fileAt(files, "postgres/pg_hba.conf")));
    await writeFile(
      join(dir("conf"), "pgbackrest.conf"),
      mapped(fileAt(files, "pgbackrest/pgbackrest.conf")).replace(/^pg1-port=5432$/m, `pg1-port=${port}`),
    );
    await writeFile(join(scratch, "backup.sh"), mapped(fileAt(files, "backup/backup.sh")));
    // What the bundle's postgres entrypoint does before it hands over to the image's: the
    // repositories' secrets in the server's environment (archive_command needs them).
    const entrypoint = mapped(fileAt(files, "postgres/entrypoint.sh"))
      .split("\n")
      .filter((line) => line.startsWith("export ") || line.startsWith("mkdir "));
    await writeFile(
      join(scratch, "start.sh"),
      [
        ...entrypoint,
        `exec ${POSTGRES_BIN}/pg_ctl -D ${dir("data")} -o '-c config_file=${join(dir("conf"), "postgresql.conf")}' -l ${join(scratch, "postgres.log")} -w start`,
        "",
      ].join("\n"),
    );
    if (process.getuid?.() === 0) {
      const owned = await run("chown", ["-R", "postgres:postgres", scratch]);
      assert.equal(owned.code, 0, owned.stderr);
      await chmod(scratch, 0o755);
    }
    await chmod(join(dir("secrets"), "postgres-server.key"), 0o600);

    const initdb = await asPostgres(`${POSTGRES_BIN}/initdb`, [
      "-D",
      dir("data"),
      "-U",
      "postgres",
      `--pwfile=${join(dir("secrets"), "postgres-superuser-password")}`,
      "--auth-local=scram-sha-256",
      "--auth-host=scram-sha-256",
      "--data-checksums",
    ]);
    assert.equal(initdb.code, 0, initdb.stderr);
    const started = await asPostgres("sh", [join(scratch, "start.sh")]);
    assert.equal(
      started.code,
      0,
      `${started.stderr}${await readFile(join(scratch, "postgres.log"), "utf8").catch(() => "")}`,
    );
    stopServer = () => asPostgres(`${POSTGRES_BIN}/pg_ctl`, ["-D", dir("data"), "-m", "fast", "stop"]);

    // The rendered settings hold on the running server: pgaudit loaded, TLS only.
    const psql = (sslmode: string, query: string) =>
      run(
        "psql",
        ["-X", "-A", "-t", "-c", query, `host=127.0.0.1 port=${port} user=postgres dbname=postgres sslmode=${sslmode}`],
        { PGPASSWORD: "superuser-Pass_1" },
      );
    assert.equal((await psql("require", "SHOW shared_preload_libraries")).stdout.trim(), "pgaudit");
    const plaintext = await psql("disable", "SELECT 1");
    assert.notEqual(plaintext.code, 0);
    assert.match(plaintext.stderr, /pg_hba\.conf rejects connection/);

    const backup = await asPostgres("sh", [join(scratch, "backup.sh"), "full"]);
    assert.equal(backup.code, 0, `${backup.stdout}${backup.stderr}`);

    const info = await asPostgres(
      "pgbackrest",
      [`--config=${join(dir("conf"), "pgbackrest.conf")}`, "--stanza=staging", "info", "--output=json"],
      { PGBACKREST_REPO1_CIPHER_PASS: "stanza-passphrase-1" },
    );
    assert.equal(info.code, 0, info.stderr);
    const [stanza] = JSON.parse(info.stdout) as {
      cipher: string;
      backup: { type: string }[];
      archive: { min: string | null }[];
    }[];
    assert.equal(stanza?.cipher, "aes-256-cbc");
    assert.deepEqual(
      stanza?.backup.map((item) => item.type),
      ["full"],
    );
    assert.ok(stanza?.archive[0]?.min !== null, "WAL is archived");

    const restic = (args: readonly string[]) =>
      asPostgres("restic", ["-r", join(dir("repositories"), "local", "filestore", "staging"), ...args], {
        RESTIC_PASSWORD: "stanza-passphrase-1",
        RESTIC_CACHE_DIR: join(scratch, "restic-cache"),
      });
    const snapshots = JSON.parse((await restic(["snapshots", "--json"])).stdout) as {
      tags: string[];
      paths: string[];
    }[];
    assert.deepEqual(
      snapshots.map((snapshot) => snapshot.tags),
      [["env:staging"]],
    );
    const dump = await restic(["dump", "latest", join(dir("odoo"), "filestore", "odoo", "ab12.bin")]);
    assert.equal(dump.stdout, "patient letter: confidential\n");
    // Encrypted client-side: nothing in the repository reads as the attachment or the database.
    const grep = await run("grep", ["-r", "-l", "patient letter", join(dir("repositories"), "local")]);
    assert.equal(grep.code, 1, `plaintext found in ${grep.stdout}`);
  });
});
