// What bench/backup compares carehost with: the ways Odoo users back up and restore today.
//   - Odoo's database manager, zip format (odoo/service/db.py, dump_db and restore_db): the
//     filestore is copied into a temporary directory, `pg_dump --no-owner` writes plain SQL next to
//     it, and the directory is zipped with deflate; a restore unzips, replays the SQL with psql and
//     moves the filestore into place. The zip CLI stands in for Python's zipfile (the same deflate).
//   - A nightly script, as self-hosters write it: pg_dump -Fc, then a zip of the filestore; its
//     restore is createdb + pg_restore, then unzip.
import { execFile } from "node:child_process";
import { mkdtemp, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const BIN = "/usr/lib/postgresql/15/bin";
const DATABASE = "prod";

/** Seconds in all, and how they were spent (for the bench's report). */
export type TTimedWay = { readonly seconds: number; readonly describe: string };

async function timedSteps(steps: ReadonlyArray<readonly [string, () => Promise<unknown>]>): Promise<TTimedWay> {
  const parts: string[] = [];
  let total = 0;
  for (const [name, work] of steps) {
    const start = process.hrtime.bigint();
    await work();
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    total += seconds;
    parts.push(`${name} ${seconds.toFixed(1)} s`);
  }
  return { seconds: total, describe: `${total.toFixed(1)} s (${parts.join(" + ")})` };
}

/** `env` reaches the cluster (PGHOST, PGPORT, PGUSER, PGPASSWORD, TLS); archives are kept under `home` by label. */
export function odooWays(input: { env: NodeJS.ProcessEnv; filestore: string; home: string }) {
  const { env, filestore, home } = input;
  const managerZip = (label: string) => join(home, `manager-${label}.zip`);
  const scriptDump = (label: string) => join(home, `script-${label}.dump`);
  const scriptZip = (label: string) => join(home, `script-${label}-filestore.zip`);
  const pg = (program: string, args: string[]) => run(join(BIN, program), args, { env, maxBuffer: 1 << 26 });

  return {
    async managerBackup(label: string): Promise<TTimedWay> {
      const dumpDirectory = await mkdtemp(join(home, "manager-dump-"));
      try {
        return await timedSteps([
          ["copy of the filestore", () => run("cp", ["-r", filestore, join(dumpDirectory, "filestore")])],
          ["pg_dump", () => pg("pg_dump", ["--no-owner", `--file=${join(dumpDirectory, "dump.sql")}`, DATABASE])],
          ["zip", () => run("zip", ["-r", "-q", managerZip(label), "."], { cwd: dumpDirectory })],
        ]);
      } finally {
        await rm(dumpDirectory, { recursive: true, force: true });
      }
    },

    async managerRestore(label: string): Promise<TTimedWay> {
      const dumpDirectory = await mkdtemp(join(home, "manager-restore-"));
      const restoredFilestore = join(home, "manager-restored-filestore");
      try {
        return await timedSteps([
          ["createdb", () => pg("createdb", [`${DATABASE}_manager`])],
          ["unzip", () => run("unzip", ["-q", managerZip(label), "dump.sql", "filestore/*", "-d", dumpDirectory])],
          [
            "psql",
            () => pg("psql", ["-X", "-q", `--dbname=${DATABASE}_manager`, "-f", join(dumpDirectory, "dump.sql")]),
          ],
          ["move of the filestore", () => rename(join(dumpDirectory, "filestore"), restoredFilestore)],
        ]);
      } finally {
        await pg("dropdb", ["--if-exists", `${DATABASE}_manager`]);
        await rm(dumpDirectory, { recursive: true, force: true });
        await rm(restoredFilestore, { recursive: true, force: true });
      }
    },

    scriptBackup(label: string): Promise<TTimedWay> {
      return timedSteps([
        ["pg_dump -Fc", () => pg("pg_dump", ["-Fc", "-f", scriptDump(label), DATABASE])],
        ["zip", () => run("zip", ["-r", "-q", scriptZip(label), "."], { cwd: filestore })],
      ]);
    },

    async scriptRestore(label: string): Promise<TTimedWay> {
      const unzipped = join(home, "script-restored-filestore");
      try {
        return await timedSteps([
          ["createdb", () => pg("createdb", [`${DATABASE}_script`])],
          ["pg_restore", () => pg("pg_restore", ["-d", `${DATABASE}_script`, scriptDump(label)])],
          ["unzip", () => run("unzip", ["-q", scriptZip(label), "-d", unzipped])],
        ]);
      } finally {
        await pg("dropdb", ["--if-exists", `${DATABASE}_script`]);
        await rm(unzipped, { recursive: true, force: true });
      }
    },

    /** Removes an archive the report no longer needs (the disk holds a few GB per run). */
    async discard(label: string): Promise<void> {
      await Promise.all(
        [managerZip(label), scriptDump(label), scriptZip(label)].map((path) => rm(path, { force: true })),
      );
    },
  };
}
