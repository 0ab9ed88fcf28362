// The settings a copy must have at least as high as its primary had, or it cannot replay the WAL:
// PostgreSQL logs every change of them (XLOG_PARAMETER_CHANGE) and a copy whose value is lower
// pauses its recovery ("hot standby is not possible because of insufficient parameter settings")
// and shuts down once resumed (PGBACKREST.md). A backup carries the values it was taken with; the
// WAL after it may carry higher ones (an apply that raised odoo.workers raised max_connections).
// So every restored copy starts with the highest value the cluster has run with: the high-water
// mark carehost keeps beside the cluster (raised at every reconcile, from what the server runs
// with) and what the cluster's control file says it last ran with (kept even by a crashed host).
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type pg from "pg";
import { dataDirectoryOf, postgresBinary } from "./postgres-cluster.js";
import type { TPostgresCluster } from "./postgres-cluster.js";
import { runCommand } from "../../lib/runtime-command.js";

export const REPLAY_SETTINGS = [
  "max_connections",
  "max_worker_processes",
  "max_wal_senders",
  "max_prepared_transactions",
  "max_locks_per_transaction",
] as const;
export type TReplaySetting = (typeof REPLAY_SETTINGS)[number];
export type TReplaySettings = Partial<Record<TReplaySetting, number>>;

/** pg_controldata's names for them (it abbreviates two). */
const CONTROL_LABELS: Readonly<Record<TReplaySetting, string>> = {
  max_connections: "max_connections setting",
  max_worker_processes: "max_worker_processes setting",
  max_wal_senders: "max_wal_senders setting",
  max_prepared_transactions: "max_prepared_xacts setting",
  max_locks_per_transaction: "max_locks_per_xact setting",
};

const HIGH_WATER_FILE = "replay-settings.json";

/** Each setting at the highest value any of the readings has. */
export function highestOf(...readings: readonly TReplaySettings[]): TReplaySettings {
  const highest: TReplaySettings = {};
  for (const reading of readings) {
    for (const name of REPLAY_SETTINGS) {
      const value = reading[name];
      if (value !== undefined && Number.isFinite(value) && value > (highest[name] ?? -1)) highest[name] = value;
    }
  }
  return highest;
}

/** What pg_controldata prints, read back: the values the cluster last ran with. */
export function parseControlData(output: string): TReplaySettings {
  const settings: TReplaySettings = {};
  for (const name of REPLAY_SETTINGS) {
    const match = new RegExp(`^${CONTROL_LABELS[name]}:\\s+(\\d+)\\s*$`, "m").exec(output);
    if (match?.[1] !== undefined) settings[name] = Number(match[1]);
  }
  return settings;
}

/** What pg_controldata prints for the cluster; works on a stopped or crashed cluster too. */
export async function readControlData(cluster: TPostgresCluster): Promise<string> {
  const { stdout } = await runCommand(postgresBinary(cluster, "pg_controldata"), [dataDirectoryOf(cluster)], {
    // pg_controldata translates its labels; C keeps them as its readers match them.
    env: { LC_ALL: "C" },
    ...(cluster.owner === undefined ? {} : { asUser: cluster.owner }),
  });
  return stdout;
}

/** The values in the cluster's control file. */
export async function controlFileSettings(cluster: TPostgresCluster): Promise<TReplaySettings> {
  return parseControlData(await readControlData(cluster));
}

/** What a running server runs with now. */
export async function liveReplaySettings(admin: Pick<pg.Client, "query">): Promise<TReplaySettings> {
  const result = await admin.query<{ name: TReplaySetting; setting: string }>(
    "SELECT name, setting FROM pg_catalog.pg_settings WHERE name = ANY($1)",
    [REPLAY_SETTINGS],
  );
  return Object.fromEntries(result.rows.map((row) => [row.name, Number(row.setting)])) as TReplaySettings;
}

export async function readHighWater(clusterDirectory: string): Promise<TReplaySettings> {
  const text = await readFile(join(clusterDirectory, HIGH_WATER_FILE), "utf8").catch(() => undefined);
  if (text === undefined) return {};
  try {
    return highestOf(JSON.parse(text) as TReplaySettings);
  } catch {
    return {};
  }
}

/** Raises the high-water mark to what the cluster runs with; never lowers it. Returns the new mark. */
export async function raiseHighWater(clusterDirectory: string, running: TReplaySettings): Promise<TReplaySettings> {
  const before = await readHighWater(clusterDirectory);
  const after = highestOf(before, running);
  if (JSON.stringify(after) !== JSON.stringify(before))
    await writeFile(join(clusterDirectory, HIGH_WATER_FILE), `${JSON.stringify(after)}\n`, { mode: 0o644 });
  return after;
}

/** The floor every copy of this cluster starts with. */
export async function replayFloorOf(cluster: TPostgresCluster): Promise<TReplaySettings> {
  return highestOf(await readHighWater(cluster.directory), await controlFileSettings(cluster).catch(() => ({})));
}

/** Lines for a copy's postgresql.auto.conf, which PostgreSQL reads after postgresql.conf. */
export function renderReplayFloor(floor: TReplaySettings): string {
  const lines = REPLAY_SETTINGS.flatMap((name) => (floor[name] === undefined ? [] : [`${name} = ${floor[name]}`]));
  return lines.length === 0
    ? ""
    : `# carehost: at least what the primary ran with, so that every archived WAL record replays\n${lines.join("\n")}\n`;
}
