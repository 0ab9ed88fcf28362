// What a change of the spec does on this host, for `plan`: the files the local runtime renders
// for the applied revision against those it renders for the file, a unified diff each, and what
// reconcile then restarts or reloads to make each difference real. The effects follow what
// reconcileCluster and reconcileRedis do (local-postgres.ts, local-redis.ts): PostgreSQL is
// reloaded after its files are written and restarted when a setting is left pending_restart (a
// `postmaster` setting); Redis is restarted when redis.conf changes and sent ACL LOAD when only
// users.acl does; pgbackrest.conf is written and its stanza created again, online; odoo.conf is
// written, and no Odoo runs here to restart. Pure.
import { unifiedDiff } from "../../lib/unified-diff.js";
import { parseOdooConf } from "../../render/odoo/odoo-conf.js";
import { parsePostgresqlConf, RESTART_SETTINGS } from "./postgres-config.js";
import type {
  TArtifactChange,
  TRenderedRuntimeFile,
  TRuntimeChange,
  TRuntimeEffect,
  TRuntimeRender,
} from "../runtime-types.js";

/** "prod's PostgreSQL", or "the shared PostgreSQL (staging, training)" for what several environments share. */
const whose = (file: Pick<TRenderedRuntimeFile, "target" | "environments">, label: string): string =>
  file.target.endsWith("/shared")
    ? `the shared ${label} (${file.environments.join(", ")})`
    : `${file.environments[0] ?? file.target}'s ${label}`;

/** key → value of a redis.conf ("key value" lines). */
const parseRedisConf = (text: string): Record<string, string> =>
  Object.fromEntries(
    text
      .split("\n")
      .filter((line) => line !== "" && !line.startsWith("#"))
      .map((line) => [line.split(" ")[0] ?? "", line.slice(line.indexOf(" ") + 1)]),
  );

const changedKeys = (before: Readonly<Record<string, string>>, after: Readonly<Record<string, string>>): string[] =>
  [...new Set([...Object.keys(before), ...Object.keys(after)])].filter((key) => before[key] !== after[key]).sort();

const fileKey = (file: Pick<TRenderedRuntimeFile, "target" | "file">) => `${file.target} ${file.file}`;

/** The effects of the changed files of one target (a cluster, a Redis, an environment's Odoo). */
function effectsOf(
  changed: readonly { before: TRenderedRuntimeFile; after: TRenderedRuntimeFile }[],
): TRuntimeEffect[] {
  const effects: TRuntimeEffect[] = [];
  const byFile = new Map(changed.map((item) => [item.after.file, item]));
  const effect = (
    file: TRenderedRuntimeFile,
    action: TRuntimeEffect["action"],
    reasons: readonly string[],
    line: string,
  ) =>
    effects.push({
      target: file.target,
      environments: file.environments,
      component: file.component,
      action,
      reasons,
      line,
    });

  const postgresqlConf = byFile.get("postgresql.conf");
  const pgHba = byFile.get("pg_hba.conf");
  if (postgresqlConf !== undefined || pgHba !== undefined) {
    const file = (postgresqlConf ?? pgHba)!.after;
    const settings =
      postgresqlConf === undefined
        ? []
        : changedKeys(
            parsePostgresqlConf(postgresqlConf.before.content),
            parsePostgresqlConf(postgresqlConf.after.content),
          );
    const restart = settings.filter((name) => RESTART_SETTINGS.has(name));
    // A restart reads every file again: what a reload alone would have applied comes with it.
    if (restart.length > 0)
      effect(file, "restart", restart, `restarts ${whose(file, "PostgreSQL")}: ${restart.join(", ")}`);
    else {
      const reasons = [...settings, ...(pgHba === undefined ? [] : ["pg_hba.conf"])];
      effect(file, "reload", reasons, `reloads ${whose(file, "PostgreSQL")} (no restart): ${reasons.join(", ")}`);
    }
  }
  const pgbackrestConf = byFile.get("pgbackrest.conf");
  if (pgbackrestConf !== undefined) {
    effect(
      pgbackrestConf.after,
      "stanza-create",
      ["pgbackrest.conf"],
      `writes ${whose(pgbackrestConf.after, "pgbackrest.conf")} and runs stanza-create again (no restart)`,
    );
  }
  const redisConf = byFile.get("redis.conf");
  const usersAcl = byFile.get("users.acl");
  if (redisConf !== undefined) {
    const keys = changedKeys(parseRedisConf(redisConf.before.content), parseRedisConf(redisConf.after.content));
    effect(redisConf.after, "restart", keys, `restarts ${whose(redisConf.after, "Redis")}: ${keys.join(", ")}`);
  } else if (usersAcl !== undefined) {
    effect(
      usersAcl.after,
      "acl-load",
      ["users.acl"],
      `reloads the users of ${whose(usersAcl.after, "Redis")} (ACL LOAD; no restart)`,
    );
  }
  const odooConf = byFile.get("odoo.conf");
  if (odooConf !== undefined) {
    const keys = changedKeys(parseOdooConf(odooConf.before.content), parseOdooConf(odooConf.after.content));
    effect(
      odooConf.after,
      "rewrite",
      keys,
      `writes ${whose(odooConf.after, "odoo.conf")}: ${keys.join(", ")} (no Odoo runs on this host, so nothing restarts here)`,
    );
  }
  return effects;
}

export function planLocalChange(applied: TRuntimeRender, proposed: TRuntimeRender): TRuntimeChange {
  const before = new Map(applied.files.map((file) => [fileKey(file), file]));
  const after = new Map(proposed.files.map((file) => [fileKey(file), file]));
  const keys = [...new Set([...before.keys(), ...after.keys()])].sort();
  const artifacts: TArtifactChange[] = [];
  const changedByTarget = new Map<string, { before: TRenderedRuntimeFile; after: TRenderedRuntimeFile }[]>();
  for (const key of keys) {
    const old = before.get(key);
    const updated = after.get(key);
    const file = (updated ?? old)!;
    if (old?.content === updated?.content) continue;
    const change = old === undefined ? "added" : updated === undefined ? "removed" : "changed";
    const name = `${file.target}/${file.file}`;
    artifacts.push({
      target: file.target,
      environments: file.environments,
      file: file.file,
      change,
      diff: unifiedDiff(name, old?.content, updated?.content),
    });
    // Added and removed files come with an environment created or removed: the plan says so there.
    if (old !== undefined && updated !== undefined)
      changedByTarget.set(file.target, [...(changedByTarget.get(file.target) ?? []), { before: old, after: updated }]);
  }
  const effects = [...changedByTarget.values()].flatMap(effectsOf);
  const roles = new Map(applied.roles.map((role) => [role.role, role]));
  for (const role of proposed.roles) {
    const previous = roles.get(role.role);
    if (previous === undefined || previous.connectionLimit === role.connectionLimit) continue;
    effects.push({
      target: role.target,
      environments: [role.environment],
      component: "postgresql",
      action: "alter-role",
      reasons: ["connectionLimit"],
      line: `alters role ${role.role} of ${role.environment}: connection limit ${previous.connectionLimit} → ${role.connectionLimit} (no restart)`,
    });
  }
  return { artifacts, effects };
}
