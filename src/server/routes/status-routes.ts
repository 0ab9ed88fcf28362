import { z } from "zod";
import type { TServerServices } from "../server-services.js";
import { problemResponses } from "./route-types.js";
import type { TApi } from "./route-types.js";

const StatusSchema = z.object({
  version: z.string(),
  url: z.string(),
  store: z.enum(["pglite", "postgres"]),
  uptimeSeconds: z.number().int(),
  audit: z.object({
    treeSize: z.number().int(),
    lastCheckpoint: z.object({ treeSize: z.number().int(), time: z.string() }).nullable(),
  }),
  organizations: z.array(
    z.object({
      name: z.string(),
      revision: z.object({ id: z.number().int(), digest: z.string(), appliedBy: z.string(), appliedAt: z.string() }),
      environments: z.array(
        z.object({
          name: z.string(),
          entity: z.string(),
          tier: z.string(),
          dataClass: z.string(),
          hosting: z.string(),
          status: z.string(),
          runtime: z.object({ postgres: z.string(), redis: z.string().nullable(), app: z.string(), drift: z.number().int() }).nullable(),
          recovery: z
            .object({
              lastBackup: z.string().nullable(),
              lastDrill: z.string().nullable(),
              archiving: z
                .object({
                  lastArchivedWal: z.string().nullable(),
                  lastArchivedAt: z.string().nullable(),
                  failedCount: z.number().int(),
                  lastFailedWal: z.string().nullable(),
                  lastFailedAt: z.string().nullable(),
                  currentWalLsn: z.string().nullable(),
                  archiveLagSeconds: z
                    .number()
                    .int()
                    .describe("0 when every completed WAL segment is archived and nothing newer was written; otherwise the age of the last successful archive"),
                })
                .nullable()
                .describe("WAL archiving read from the running cluster (pg_stat_archiver); null without a runtime or while the cluster is not running"),
              alert: z.string().nullable(),
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
    { schema: { tags: ["status"], summary: "Server, audit log and environments at a glance", response: { 200: StatusSchema, ...problemResponses } } },
    async (request) => services.status.status(request.ctx),
  );
};
