// instance.json: what carehost remembers about a process it runs (its port above all), kept next
// to the process's data so that the data directory alone is enough to bring it back after a reboot.
import { chown, mkdir, readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import type { TOsUser } from "../../lib/runtime-command.js";

export type TInstanceRecord = {
  readonly port: number;
  readonly createdAt: string;
  /**
   * A PostgreSQL cluster's backups are encrypted under a passphrase of their own, derived from the
   * repository's (backup-passphrase.ts). Absent on a cluster created before: it keeps the
   * repository's passphrase and the organization's shared filestore repository.
   */
  readonly backupPassphrases?: "per-cluster";
};

const recordPath = (directory: string) => join(directory, "instance.json");

export async function readInstanceRecord(directory: string): Promise<TInstanceRecord | undefined> {
  const text = await readFile(recordPath(directory), "utf8").catch(() => undefined);
  return text === undefined ? undefined : (JSON.parse(text) as TInstanceRecord);
}

/** A port nothing listens on right now; it is recorded at once, so it stays this instance's. */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

export async function ensureInstanceRecord(
  directory: string,
  owner: TOsUser | undefined,
  now: Date,
  traits: Pick<TInstanceRecord, "backupPassphrases"> = {},
): Promise<{ record: TInstanceRecord; created: boolean }> {
  const existing = await readInstanceRecord(directory);
  if (existing !== undefined) return { record: existing, created: false };
  // Parents are traversable (not listable) so the service account can reach its own directory.
  await mkdir(dirname(directory), { recursive: true, mode: 0o711 });
  await mkdir(directory, { recursive: true, mode: 0o700 });
  if (owner !== undefined) await chown(directory, owner.uid, owner.gid);
  const record: TInstanceRecord = { port: await freeLoopbackPort(), createdAt: now.toISOString(), ...traits };
  await writeFile(recordPath(directory), `${JSON.stringify(record)}\n`, { mode: 0o644 });
  return { record, created: true };
}
