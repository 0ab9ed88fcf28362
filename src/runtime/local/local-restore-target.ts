// Before a restore touches anything, the archive must hold the WAL it replays. PostgreSQL stops a
// point-in-time recovery at the first transaction that committed after the target; when the
// archive holds none (the target is newer than the last archived segment, or nothing committed
// after it), recovery ends early ("recovery ended before configured recovery target was
// reached") and the postmaster exits (PGBACKREST.md). So, with the source running, carehost
// commits its heartbeat (a transaction after the target), switches WAL and waits until that
// segment is archived; with the source down or its archiving failing, it reads the archive's
// newest commit and refuses a newer target at once, naming the newest instant it can restore.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import { pgbackrest, stanzaInfo } from "../../backup/pgbackrest-command.js";
import { ConflictError, NotFoundError, ValidationError } from "../../lib/errors.js";
import { readArchiver } from "./postgres-archiver.js";
import { connectAdmin, postgresBinary, runningPid } from "./postgres-cluster.js";
import { readControlData } from "./postgres-replay-settings.js";
import type { TRestoreTarget } from "../../backup/recovery-driver.js";
import type { TRecoverableCluster } from "./local-recovery.js";
import { writeHeartbeat } from "./local-recovery.js";
import { runCommand, RuntimeCommandError } from "../../lib/runtime-command.js";

/** How long the archiver may take to ship the segment just closed before the restore is refused. */
const ARCHIVE_WAIT_MS = 60_000;
/** How many segments back from the newest the archive is searched for a commit. */
const SEGMENTS_SEARCHED = 16;

const iso = (at: Date) => at.toISOString().replace(/\.\d{3}Z$/, "Z");

/**
 * Refuses a target the backups cannot reach, and makes sure the archive reaches the rest.
 * Returns what it did, for the restore's steps, and the target to restore to: the newest
 * restorable instant it names (the archive's last commit, to the millisecond) becomes "the end of
 * the archive", since a target at or past the last commit has no later one to stop at.
 */
export async function ensureTargetArchived(
  source: TRecoverableCluster,
  target: TRestoreTarget,
  now: Date,
): Promise<{ detail: string; target: TRestoreTarget }> {
  const backups = (await stanzaInfo(source.backup.access)).backups;
  const oldestStop = backups.reduce<Date | undefined>(
    (earliest, backup) => (earliest === undefined || backup.stoppedAt < earliest ? backup.stoppedAt : earliest),
    undefined,
  );
  // pgBackRest records a backup's stop to the second and picks only a backup that stopped before the target's second.
  const oldest = oldestStop === undefined ? undefined : new Date(oldestStop.getTime() + 1000);
  if (oldest === undefined)
    throw new NotFoundError(
      `stanza "${source.backup.access.stanza}" has no backup to restore from yet; run carehost backup first`,
    );
  if (target.kind === "time") {
    if (target.time.getTime() > now.getTime())
      throw new ValidationError(
        `--to ${iso(target.time)} is in the future (it is ${iso(now)} here); give an instant in the past`,
      );
    if (target.time < oldest)
      throw new ValidationError(
        `--to ${iso(target.time)} is before the oldest backup, completed at ${iso(oldestStop!)}; the oldest instant carehost can restore is ${iso(oldest)}`,
      );
  }
  let notArchived = "the source is not running, so carehost cannot archive its newest WAL";
  if ((await runningPid(source.cluster)) !== undefined) {
    const admin = await connectAdmin(source.cluster, source.adminPassword, source.caPem);
    try {
      await writeHeartbeat(admin);
      const failing = await switchAndAwaitArchive(admin);
      if (failing === undefined)
        return { detail: "the WAL up to now archived (switched and waited for its segment)", target };
      notArchived = `the newest WAL of cluster "${source.cluster.name}" is not archived (${failing}; carehost status shows the archiver)`;
    } finally {
      await admin.end();
    }
  }
  // What the archive holds is all there is: the latest state, or an LSN PostgreSQL checks itself.
  if (target.kind !== "time") return { detail: `${notArchived}: restored from the archive as it is`, target };
  const newest = await newestArchivedCommit(source);
  if (newest === undefined || target.time > newest) {
    // An instant before the oldest backup completed cannot be restored: then the newest state is the latest backup's.
    const restorable = newest !== undefined && newest >= oldest;
    throw new ConflictError(
      `${notArchived}, and the archive ` +
        (newest === undefined
          ? "holds no committed transaction carehost can read"
          : `ends with a transaction committed at ${newest.toISOString()}`) +
        `: restore to ${restorable ? `that instant or earlier (--to ${newest.toISOString()})` : "the latest backup (omit --to)"}, or let the cluster archive its WAL first`,
    );
  }
  if (target.time.getTime() === newest.getTime())
    return {
      detail: `${notArchived}; the archive ends with the transaction committed at ${newest.toISOString()}: replayed to its end`,
      target: { kind: "latest" },
    };
  return { detail: `${notArchived}; the archive reaches ${newest.toISOString()}`, target };
}

/**
 * Closes the segment being written and waits until it is archived. Returns undefined once it is,
 * or why not: the archiver failing on it (no waiting out the deadline then) or the deadline.
 */
async function switchAndAwaitArchive(admin: pg.Client): Promise<string | undefined> {
  const closed = (await admin.query<{ segment: string }>("SELECT pg_walfile_name(pg_switch_wal()) AS segment")).rows[0]!
    .segment;
  const deadline = Date.now() + ARCHIVE_WAIT_MS;
  for (;;) {
    const archiver = await readArchiver(admin);
    if (archiver.lastArchivedWal !== null && archiver.lastArchivedWal >= closed) return undefined;
    const describe = () =>
      `last archived ${archiver.lastArchivedWal ?? "none"}${archiver.lastArchivedAt === null ? "" : ` at ${iso(archiver.lastArchivedAt)}`}, ` +
      `${archiver.failedCount} failed attempts${archiver.lastFailedWal === null ? "" : `, last failed ${archiver.lastFailedWal}`}`;
    const failingNow =
      archiver.lastFailedAt !== null &&
      (archiver.lastArchivedAt === null || archiver.lastFailedAt > archiver.lastArchivedAt) &&
      archiver.lastFailedWal !== null &&
      archiver.lastFailedWal <= closed;
    if (failingNow) return `archiving is failing: ${describe()}`;
    if (Date.now() > deadline) return `not archived after ${ARCHIVE_WAIT_MS / 1000} s: ${describe()}`;
    await sleep(50);
  }
}

type TRawArchiveInfo = {
  name: string;
  archive?: { id: string; max: string | null; database?: { "repo-key"?: number } }[];
}[];

/** The newest WAL segment in the first repository's archive, e.g. 00000002000000000000001F. */
async function newestArchivedSegment(source: TRecoverableCluster): Promise<string | undefined> {
  const parsed = JSON.parse(await pgbackrest(source.backup.access, "info", ["--output=json"])) as TRawArchiveInfo;
  const stanza = parsed.find((item) => item.name === source.backup.access.stanza);
  const segments = (stanza?.archive ?? [])
    .filter((archive) => (archive.database?.["repo-key"] ?? 1) === 1)
    .map((archive) => archive.max)
    .filter((max): max is string => typeof max === "string");
  return segments.sort().at(-1);
}

/** The segment before `name` (same timeline), for a cluster whose segments are `segmentBytes` long. */
export function previousSegment(name: string, segmentBytes: number): string | undefined {
  const timeline = name.slice(0, 8);
  const log = parseInt(name.slice(8, 16), 16);
  const segment = parseInt(name.slice(16, 24), 16);
  const perLog = 0x1_0000_0000 / segmentBytes;
  const [previousLog, previousSeg] = segment > 0 ? [log, segment - 1] : [log - 1, perLog - 1];
  if (previousLog < 0) return undefined;
  const hex = (value: number) => value.toString(16).toUpperCase().padStart(8, "0");
  return `${timeline}${hex(previousLog)}${hex(previousSeg)}`;
}

/** The timestamp of the last COMMIT or ABORT record pg_waldump printed (TZ=UTC). */
export function lastTransactionEnd(waldump: string): Date | undefined {
  let last: Date | undefined;
  for (const match of waldump.matchAll(/desc: (?:COMMIT|ABORT) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC/g)) {
    const at = new Date(`${match[1]!.replace(" ", "T")}Z`);
    if (!Number.isNaN(at.getTime())) last = at;
  }
  return last;
}

/** Reads the newest archived segments back (archive-get, pg_waldump) until one holds a commit. */
async function newestArchivedCommit(source: TRecoverableCluster): Promise<Date | undefined> {
  const newest = await newestArchivedSegment(source);
  if (newest === undefined) return undefined;
  const segmentBytes = Number(
    /^Bytes per WAL segment:\s+(\d+)/m.exec(await readControlData(source.cluster))?.[1] ?? 16 * 1024 * 1024,
  );
  const scratch = await mkdtemp(join(tmpdir(), "carehost-wal-"));
  try {
    if (source.cluster.owner !== undefined)
      await runCommand("chown", [`${source.cluster.owner.uid}:${source.cluster.owner.gid}`, scratch]);
    let segment: string | undefined = newest;
    for (
      let searched = 0;
      segment !== undefined && searched < SEGMENTS_SEARCHED;
      searched += 1, segment = previousSegment(segment, segmentBytes)
    ) {
      const path = join(scratch, segment);
      try {
        await pgbackrest(source.backup.access, "archive-get", [], 60_000, [segment, path]);
      } catch {
        // Not in the archive (another timeline, or expired): the search ends here.
        return undefined;
      }
      // pg_waldump fails at the end of a segment whose successor it cannot find, after printing it.
      const dumped = await runCommand(postgresBinary(source.cluster, "pg_waldump"), [path], {
        env: { TZ: "UTC" },
      }).catch((error: unknown) => ({
        stdout: error instanceof RuntimeCommandError ? error.stdout : "",
      }));
      const at = lastTransactionEnd(dumped.stdout);
      if (at !== undefined) return at;
      await rm(path, { force: true });
    }
    return undefined;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
