import { z } from "zod";
import type { TServerServices } from "../server-services.js";
import { ALERT_KINDS } from "../status-service.js";
import { problemResponses } from "./route-types.js";
import type { TApi } from "./route-types.js";

const InstanceSchema = z.object({
  instance: z.string().describe("the cluster or Redis instance, e.g. dedicated-prod or shared"),
  host: z.string(),
  port: z.number().int().nullable().describe("null before it is provisioned"),
  state: z.enum(["running", "stopped", "absent"]),
});
const TierSchema = z.enum(["production", "staging", "development", "training", "dr"]);
const DataClassSchema = z.enum(["phi", "confidential", "internal", "public"]);
const HostingSchema = z.enum(["dedicated", "shared"]);

const FiringAlertSchema = z.object({
  id: z.number().int().describe("carehost alerts ack <id>"),
  rule: z.string().describe("the rule; its runbook is docs/runbooks/<rule>.md"),
  environment: z.string().describe('"" when the series is not one environment\'s'),
  instance: z.string(),
  severity: z.string(),
  summary: z.string(),
  firedAt: z.iso.datetime(),
  acknowledgedBy: z.string().nullable(),
});

const StatusSchema = z.object({
  version: z.string(),
  url: z.string(),
  store: z.enum(["pglite", "postgres"]),
  uptimeSeconds: z.number().int().nonnegative(),
  audit: z.object({
    treeSize: z.number().int(),
    lastCheckpoint: z
      .object({ treeSize: z.number().int(), time: z.string().describe("ISO 8601, as signed into the checkpoint") })
      .nullable(),
  }),
  platformAlerts: z
    .array(FiringAlertSchema)
    .describe("carehost's own alerts firing (failed sign-ins, privilege changes); only over every organization"),
  organizations: z.array(
    z.object({
      name: z.string(),
      revision: z.object({
        id: z.number().int(),
        digest: z.string(),
        appliedBy: z.string(),
        appliedAt: z.iso.datetime(),
      }),
      changeAlerts: z
        .array(
          z.object({
            changeRequest: z.number().int(),
            escalated: z.boolean().describe("true once 24 h passed without the retrospective approval"),
            message: z.string(),
          }),
        )
        .describe(
          "emergency changes applied without approval, until enough people other than the requester approve them",
        ),
      copies: z
        .array(
          z.object({
            name: z.string(),
            kind: z.enum(["copy", "environment"]),
            sourceEnvironment: z.string(),
            restoredTo: z.string(),
            dataClass: z.string().describe("deidentified only once the copy's verification passed"),
            owner: z.string(),
            expiresAt: z.iso.datetime().nullable(),
            pastExpiry: z.boolean().describe("a copy of PHI still live past its expiry (an ALERT)"),
          }),
        )
        .describe("live copies of the organization's environments' data (carehost copies)"),
      firingAlerts: z.array(FiringAlertSchema).describe("the organization's alerts firing now (carehost alerts)"),
      environments: z.array(
        z.object({
          name: z.string(),
          entity: z.string(),
          tier: TierSchema,
          dataClass: DataClassSchema,
          hosting: HostingSchema,
          status: z.string().describe("the environment's record: recorded"),
          runtime: z
            .object({
              postgres: InstanceSchema,
              redis: InstanceSchema.nullable().describe("null when the environment declares no Redis"),
              app: z.object({ state: z.enum(["not-deployed"]), detail: z.string() }),
              drift: z
                .number()
                .int()
                .nonnegative()
                .describe("differences between the spec and the running systems (carehost plan lists them)"),
            })
            .nullable()
            .describe("what runs on this host; null with CAREHOST_RUNTIME=none"),
          recovery: z
            .object({
              lastBackup: z
                .object({
                  kind: z.string().describe("full, diff, incr, filestore or verify"),
                  status: z.string().describe("running, succeeded or failed"),
                  label: z.string().nullable().describe("pgBackRest's backup label, e.g. 20261202-042427F"),
                  startedAt: z.iso.datetime(),
                  finishedAt: z.iso.datetime().nullable(),
                  ageSeconds: z
                    .number()
                    .int()
                    .nonnegative()
                    .describe("seconds since it started, at the time of this report"),
                })
                .nullable(),
              lastSuccessfulBackup: z
                .object({
                  kind: z.string(),
                  label: z.string().nullable(),
                  finishedAt: z.iso.datetime(),
                  ageSeconds: z
                    .number()
                    .int()
                    .nonnegative()
                    .describe("the backup age monitoring counts: seconds since the last backup that completed"),
                })
                .nullable()
                .describe("the last backup that completed; the newest run (lastBackup) may have failed"),
              lastDrill: z
                .object({
                  status: z.string().describe("running, passed or failed (a drill that misses an objective fails)"),
                  startedAt: z.iso.datetime(),
                  ageSeconds: z.number().int().nonnegative(),
                  rtoSeconds: z.number().nullable(),
                  rtoObjectiveMinutes: z.number().int(),
                  rpoSeconds: z.number().nullable(),
                  rpoObjectiveMinutes: z.number().int(),
                  problems: z.array(z.string()),
                })
                .nullable(),
              archiving: z
                .object({
                  lastArchivedWal: z.string().nullable(),
                  lastArchivedAt: z.iso.datetime().nullable(),
                  failedCount: z.number().int(),
                  lastFailedWal: z.string().nullable(),
                  lastFailedAt: z.iso.datetime().nullable(),
                  currentWalLsn: z.string().nullable(),
                  archiveLagSeconds: z
                    .number()
                    .int()
                    .describe(
                      "0 when every completed WAL segment is archived and nothing newer was written; otherwise the age of the last successful archive",
                    ),
                })
                .nullable()
                .describe(
                  "WAL archiving read from the running cluster (pg_stat_archiver); null without a runtime or while the cluster is not running",
                ),
              alerts: z
                .array(z.object({ kind: z.enum(ALERT_KINDS), message: z.string() }))
                .describe(
                  "empty while backups, drills, verification and archiving are healthy and every declared repository is written",
                ),
            })
            .nullable(),
        }),
      ),
    }),
  ),
});

export const registerStatusRoutes = (api: TApi, services: Pick<TServerServices, "status">): void => {
  api.get(
    "/api/status",
    {
      schema: {
        tags: ["status"],
        summary: "Server, audit log and environments at a glance",
        response: { 200: StatusSchema, ...problemResponses },
      },
    },
    async (request) => services.status.status(request.ctx),
  );
};
