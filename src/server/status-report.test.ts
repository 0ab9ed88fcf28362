import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance } from "fastify";
import { formatStatus } from "../cli/cli-server-commands.js";
import type { TBackupRun } from "../backup/recovery-runs.js";
import { systemContext } from "../lib/request-context.js";
import type { TEnvironmentRuntimeStatus } from "../runtime/runtime-types.js";
import { loadSpecText } from "../spec/spec-loader.js";
import { buildServer } from "./server-app.js";
import type { TServerServices } from "./server-services.js";
import { statusServiceFactory, type TStatusReport } from "./status-service.js";

const NOW = new Date("2026-12-02T04:25:27Z");
const ctx = systemContext("test");

const demo = (() => {
  const loaded = loadSpecText(
    readFileSync(new URL("../../examples/northwind-health.yaml", import.meta.url), "utf8"),
    "northwind-health.yaml",
  );
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  return loaded.spec;
})();
const prod = demo.environments.find((environment) => environment.name === "prod")!;

/** What the local runtime reports for prod: its own cluster and Redis, the offsite repository skipped. */
const prodRuntime: TEnvironmentRuntimeStatus = {
  environment: "prod",
  hosting: "dedicated",
  postgres: { instance: "dedicated-prod", port: 42753, state: "running", database: "prod", role: "odoo_prod" },
  redis: { instance: "dedicated-prod", port: 42754, state: "stopped", user: "odoo-prod" },
  app: { state: "not-deployed", detail: "not deployed on this runtime" },
  drift: [
    { target: "postgres/dedicated-prod", field: "pg_hba.conf", expected: "as rendered", actual: "edited by hand" },
  ],
  archiving: {
    lastArchivedWal: "000000010000000000000007",
    lastArchivedAt: new Date("2026-12-02T04:25:00Z"),
    failedCount: 0,
    lastFailedWal: null,
    lastFailedAt: null,
    archivedCount: 3,
    statsResetAt: null,
    currentWalLsn: "0/E000060",
    currentWalFile: "000000010000000000000008",
    archiveLagSeconds: 0,
  },
  backupRepositories: {
    written: [{ name: "local", type: "posix" }],
    skipped: [{ name: "offsite", type: "azure", reason: "its key is not in the secret store" }],
  },
};
const lastBackup: TBackupRun = {
  id: 7,
  organization: "northwind-health",
  environment: "prod",
  kind: "full",
  trigger: "manual",
  status: "succeeded",
  label: "20261202-042427F",
  databaseBytes: 30_000_000,
  repositoryBytes: 4_000_000,
  durationMs: 9000,
  error: null,
  startedAt: new Date("2026-12-02T04:24:27Z"),
  finishedAt: new Date("2026-12-02T04:24:36Z"),
};

// The newest run failed; the one before it is the last good backup, whose age monitoring counts.
let failedNewest = false;
const failedRun = {
  ...lastBackup,
  id: lastBackup.id + 1,
  status: "failed",
  label: null,
  error: "repository unwritable",
  startedAt: new Date(NOW.getTime() - 10_000),
  finishedAt: new Date(NOW.getTime() - 5_000),
};

const status = statusServiceFactory({
  environments: {
    latestRevisions: async () => [
      {
        id: 3,
        organization: "northwind-health",
        digest: "a".repeat(64),
        appliedBy: "admin",
        appliedAt: new Date("2026-12-01T10:00:00Z"),
      },
    ],
    listEnvironments: async () => [
      {
        organization: "northwind-health",
        name: "prod",
        spec: prod,
        specDigest: "b".repeat(64),
        status: "recorded",
        revisionId: 3,
        updatedAt: NOW,
      },
    ],
    runtimeStatus: async () => [{ organization: "northwind-health", environments: [prodRuntime] }],
  },
  auditHead: async () => ({ treeSize: 12, lastCheckpoint: { treeSize: 10, time: "2026-12-02T04:00:00.000Z" } }),
  audit: { append: async () => undefined },
  version: "test",
  url: () => "http://127.0.0.1:8080",
  store: "pglite",
  startedAt: new Date(NOW.getTime() - 90_000),
  recoverySummaries: async () => ({
    backups: failedNewest ? [failedRun] : [lastBackup],
    completedBackups: [lastBackup],
    drills: [],
    verifications: [],
  }),
  now: () => NOW,
});

void describe("status: every -o json field is structured, described in the OpenAPI document, and the text is rendered from it", () => {
  let app: FastifyInstance;
  before(async () => {
    // Only what GET /api/status and the OpenAPI document touch: the HTTP layer's own serializer checks the report against the route's schema.
    const services = { identity: { authenticate: async () => ctx }, status } as unknown as TServerServices;
    app = await buildServer(services, { logger: false, version: "test" });
    await app.ready();
  });
  after(async () => app.close());

  const fetchStatus = async (): Promise<TStatusReport> => {
    const response = await app.inject({ method: "GET", url: "/api/status", headers: { authorization: "Bearer test" } });
    assert.equal(response.statusCode, 200, response.body);
    return response.json();
  };

  void it("says when the last good backup was when the newest run failed", async () => {
    failedNewest = true;
    try {
      const recovery = (await fetchStatus()).organizations[0]!.environments[0]!.recovery;
      assert.equal(recovery?.lastBackup?.status, "failed");
      assert.deepEqual(recovery?.lastSuccessfulBackup, {
        kind: "full",
        label: "20261202-042427F",
        finishedAt: "2026-12-02T04:24:36.000Z",
        ageSeconds: 51,
      });
    } finally {
      failedNewest = false;
    }
  });

  void it("answers numbers, ISO times and enums where the text had prose", async () => {
    const environment = (await fetchStatus()).organizations[0]!.environments[0]!;
    assert.deepEqual(environment.runtime?.postgres, {
      instance: "dedicated-prod",
      host: "127.0.0.1",
      port: 42753,
      state: "running",
    });
    assert.deepEqual(environment.runtime?.redis, {
      instance: "dedicated-prod",
      host: "127.0.0.1",
      port: 42754,
      state: "stopped",
    });
    assert.deepEqual(environment.runtime?.app, { state: "not-deployed", detail: "not deployed on this runtime" });
    assert.equal(environment.runtime?.drift, 1);
    assert.deepEqual(environment.recovery?.lastBackup, {
      kind: "full",
      status: "succeeded",
      label: "20261202-042427F",
      startedAt: "2026-12-02T04:24:27.000Z",
      finishedAt: "2026-12-02T04:24:36.000Z",
      ageSeconds: 60,
    });
    assert.equal(environment.recovery?.lastDrill, null);
    assert.equal(environment.recovery?.archiving?.lastArchivedAt, "2026-12-02T04:25:00.000Z");
    assert.deepEqual(environment.recovery?.alerts, [
      {
        kind: "repository-skipped",
        message: "backups are not written to repository offsite (azure): its key is not in the secret store",
      },
    ]);
    assert.equal(environment.tier, "production");
  });

  void it("renders the text from the same report", async () => {
    const lines = formatStatus(await fetchStatus());
    assert.ok(lines.includes("      postgres  dedicated-prod 127.0.0.1:42753 running"), lines.join("\n"));
    assert.ok(lines.includes("      redis     dedicated-prod 127.0.0.1:42754 stopped"), lines.join("\n"));
    assert.ok(lines.includes("      backup    full succeeded 20261202-042427F, 1 min ago"), lines.join("\n"));
    assert.ok(lines.includes("      drill     none yet"), lines.join("\n"));
    assert.ok(
      lines.some(
        (line) =>
          line.endsWith("backups are not written to repository offsite (azure): its key is not in the secret store") &&
          line.includes("ALERT"),
      ),
      lines.join("\n"),
    );
  });

  void it("describes each field with its type in the OpenAPI document", () => {
    type TSchema = {
      type?: string | string[];
      properties?: Record<string, TSchema>;
      items?: TSchema;
      enum?: string[];
      format?: string;
      anyOf?: TSchema[];
      oneOf?: TSchema[];
    };
    const document = app.swagger() as unknown as {
      paths: Record<string, { get: { responses: Record<string, { content: Record<string, { schema: TSchema }> }> } }>;
    };
    const root = document.paths["/api/status"]!.get.responses["200"]!.content["application/json"]!.schema;
    /** A nullable field is anyOf [schema, null]: its non-null member. */
    const object = (schema: TSchema | undefined): TSchema =>
      schema?.anyOf?.find((member) => member.type !== "null") ?? schema ?? {};
    const environment = object(object(root.properties?.organizations).items?.properties?.environments).items!;
    const runtime = object(environment.properties?.runtime);
    const postgres = object(runtime.properties?.postgres);
    assert.equal(postgres.properties?.port?.anyOf?.[0]?.type ?? postgres.properties?.port?.type, "integer");
    assert.deepEqual(postgres.properties?.state?.enum, ["running", "stopped", "absent"]);
    assert.deepEqual(environment.properties?.tier?.enum, ["production", "staging", "development", "training", "dr"]);
    const backup = object(object(environment.properties?.recovery).properties?.lastBackup);
    assert.equal(backup.properties?.ageSeconds?.type, "integer");
    assert.equal(backup.properties?.startedAt?.format, "date-time");
    const alerts = object(environment.properties?.recovery).properties?.alerts;
    assert.deepEqual(alerts?.items?.properties?.kind?.enum, [
      "drill-failed",
      "backup-failed",
      "verification-failed",
      "archiving",
      "repository-skipped",
    ]);
  });
});
