import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { planLocalChange } from "./local-change.js";
import type { TRenderedRuntimeFile, TRuntimeRender } from "../runtime-types.js";

const shared = { target: "postgres/shared", environments: ["staging", "training"] };
const file = (
  of: Pick<TRenderedRuntimeFile, "target" | "environments">,
  component: TRenderedRuntimeFile["component"],
  name: string,
  content: string,
): TRenderedRuntimeFile => ({ ...of, component, file: name, content });
const render = (files: TRenderedRuntimeFile[]): TRuntimeRender => ({ files, roles: [] });

void describe("local change: what reconcile does for each changed file", () => {
  void it("reloads PostgreSQL for a sighup setting or pg_hba.conf, and names a shared cluster's environments", () => {
    const before = render([
      file(shared, "postgresql", "postgresql.conf", "archive_timeout = 225s\nmax_connections = 100\n"),
      file(shared, "postgresql", "pg_hba.conf", "hostssl all all 127.0.0.1/32 scram-sha-256\n"),
    ]);
    const after = render([
      file(shared, "postgresql", "postgresql.conf", "archive_timeout = 60s\nmax_connections = 100\n"),
      file(shared, "postgresql", "pg_hba.conf", "hostssl all all ::1/128 scram-sha-256\n"),
    ]);
    const change = planLocalChange(before, after);
    assert.deepEqual(
      change.effects.map((effect) => effect.line),
      ["reloads the shared PostgreSQL (staging, training) (no restart): archive_timeout, pg_hba.conf"],
    );
    assert.deepEqual(
      change.artifacts.map((artifact) => [artifact.change, artifact.file]),
      [
        ["changed", "pg_hba.conf"],
        ["changed", "postgresql.conf"],
      ],
    );
  });

  void it("restarts for a postmaster setting, Redis for redis.conf, ACL LOAD for users.acl alone, stanza-create for pgbackrest.conf", () => {
    const prod = { target: "postgres/dedicated-prod", environments: ["prod"] };
    const redis = { target: "redis/dedicated-prod", environments: ["prod"] };
    const sharedRedis = { target: "redis/shared", environments: ["staging"] };
    const before = render([
      file(prod, "postgresql", "postgresql.conf", "wal_level = replica\nlog_statement = 'all'\n"),
      file(prod, "pgbackrest", "pgbackrest.conf", "[global]\nrepo1-path=/a\n"),
      file(redis, "redis", "redis.conf", "maxmemory 1024mb\nappendonly yes\n"),
      file(sharedRedis, "redis", "users.acl", "user odoo-staging on\n"),
    ]);
    const after = render([
      file(prod, "postgresql", "postgresql.conf", "wal_level = logical\nlog_statement = 'ddl'\n"),
      file(prod, "pgbackrest", "pgbackrest.conf", "[global]\nrepo1-path=/a\nrepo2-path=/b\n"),
      file(redis, "redis", "redis.conf", "maxmemory 2048mb\nappendonly yes\n"),
      file(sharedRedis, "redis", "users.acl", "user odoo-staging on\nuser odoo-dev on\n"),
      file({ target: "environment/dev", environments: ["dev"] }, "odoo", "odoo.conf", "[options]\nworkers = 2\n"),
    ]);
    const change = planLocalChange(before, after);
    assert.deepEqual(
      change.effects.map((effect) => effect.line),
      [
        "restarts prod's PostgreSQL: wal_level",
        "writes prod's pgbackrest.conf and runs stanza-create again (no restart)",
        "restarts prod's Redis: maxmemory",
        "reloads the users of the shared Redis (staging) (ACL LOAD; no restart)",
      ],
    );
    // A file that only appears comes with an environment created: listed, without an effect of its own.
    assert.deepEqual(change.artifacts.find((artifact) => artifact.target === "environment/dev")?.change, "added");
  });
});
