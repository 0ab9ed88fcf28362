// Runs pgBackRest for one stanza as the cluster's OS account, with the repository passphrases in
// the environment. Errors name the stanza, the command and pgBackRest's own last lines, never a
// passphrase (they are not in argv, and pgBackRest does not print them).
import { readdir, readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { DomainError } from "../lib/errors.js";
import { isProcessAlive, runCommand, RuntimeCommandError } from "../lib/runtime-command.js";
import type { TOsUser } from "../lib/runtime-command.js";

export type TStanzaAccess = {
  readonly stanza: string;
  readonly configPath: string;
  readonly owner: TOsUser | undefined;
  /** PGBACKREST_REPOn_CIPHER_PASS and PGPASSWORD (the cluster admin, for backups over the socket). */
  readonly env: Readonly<Record<string, string>>;
};

/** `parameters` follow the command (archive-get's segment and destination); options precede it. */
export async function pgbackrest(
  access: TStanzaAccess,
  command: string,
  options: readonly string[] = [],
  timeoutMs = 30 * 60_000,
  parameters: readonly string[] = [],
): Promise<string> {
  try {
    const { stdout } = await runCommand(
      "pgbackrest",
      [`--config=${access.configPath}`, `--stanza=${access.stanza}`, ...options, command, ...parameters],
      {
        env: access.env,
        timeoutMs,
        ...(access.owner === undefined ? {} : { asUser: access.owner }),
      },
    );
    return stdout;
  } catch (error) {
    const detail =
      error instanceof RuntimeCommandError ? error.message.replace(/^.*? failed /, "failed ") : String(error);
    throw new DomainError(`pgBackRest ${command} for stanza "${access.stanza}" ${detail}`);
  }
}

export type TBackupInfo = {
  readonly label: string;
  readonly type: "full" | "diff" | "incr";
  readonly startedAt: Date;
  readonly stoppedAt: Date;
  /** Size of the database at backup time, and what this backup added to the repository. */
  readonly databaseBytes: number;
  readonly repositoryBytes: number;
  readonly repository: number;
  /** `--annotation` key/value pairs the backup was taken with. */
  readonly annotations: Readonly<Record<string, string>>;
};

export type TStanzaInfo = {
  readonly statusCode: number;
  readonly statusMessage: string;
  readonly backups: readonly TBackupInfo[];
};

type TRawInfo = {
  name: string;
  status: { code: number; message: string };
  backup?: {
    label: string;
    type: "full" | "diff" | "incr";
    timestamp: { start: number; stop: number };
    info: { size: number; repository: { delta: number } };
    database?: { "repo-key": number };
    annotation?: Record<string, string>;
  }[];
}[];

export async function stanzaInfo(access: TStanzaAccess): Promise<TStanzaInfo> {
  // db[].system-id exceeds 2^53 (PGBACKREST.md); carehost reads no field that large, so JSON.parse loses nothing it uses.
  const parsed = JSON.parse(await pgbackrest(access, "info", ["--output=json"])) as TRawInfo;
  const stanza = parsed.find((item) => item.name === access.stanza) ?? parsed[0];
  return {
    statusCode: stanza?.status.code ?? 1,
    statusMessage: stanza?.status.message ?? "missing stanza",
    backups: (stanza?.backup ?? []).map((backup) => ({
      label: backup.label,
      type: backup.type,
      startedAt: new Date(backup.timestamp.start * 1000),
      stoppedAt: new Date(backup.timestamp.stop * 1000),
      databaseBytes: backup.info.size,
      repositoryBytes: backup.info.repository.delta,
      repository: backup.database?.["repo-key"] ?? 1,
      annotations: backup.annotation ?? {},
    })),
  };
}

/** Stanza status codes that mean "not created yet" (missing stanza path, missing stanza data). */
export const STANZA_MISSING_CODES = new Set([1, 3]);

/** The commands carehost runs under an instance's or the organization's lock, and their workers (`backup:local`). */
const LOCKED_COMMANDS = new Set(["backup", "restore", "expire", "verify"]);

/**
 * Ends the pgBackRest backups, restores, expiries and verifications still working with this
 * configuration (never archiving, nor a read such as `info`). The parent-death signal reaches
 * the command's whole process group, its workers (`backup:local`, `restore:local`) included
 * (runtime-command.ts), but one still running, say a run started by an earlier carehost, could
 * write into a copy being removed or race a restore being finished.
 * Call it only under the whole organization's lock (local-context's `exclusive`), when no run of carehost's own can be
 * going: whatever it finds was left by a carehost that was killed. Returns how many it ended.
 */
export async function endLeftoverRuns(configPath: string): Promise<number> {
  const leftovers: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const args = (await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "")).split("\0").filter(Boolean);
    const command = (args.at(-1) ?? "").split(":")[0] ?? "";
    if (args[0]?.endsWith("pgbackrest") && args.includes(`--config=${configPath}`) && LOCKED_COMMANDS.has(command))
      leftovers.push(Number(entry));
  }
  for (const pid of leftovers) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }
  for (let waited = 0; waited < 100 && leftovers.some(isProcessAlive); waited += 1) await sleep(50);
  return leftovers.length;
}
