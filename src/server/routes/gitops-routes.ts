import { z } from "zod";
import { RENDER_TARGETS } from "../../render/render-types.js";
import type { TServerServices } from "../server-services.js";
import { ProblemSchema, problemResponses } from "./route-types.js";
import type { TApi } from "./route-types.js";

const GitopsSubmissionSchema = z.strictObject({
  source: z
    .string()
    .min(1)
    .max(2 * 1024 * 1024)
    .describe("carehost.yaml, as text"),
  fileName: z.string().min(1).max(512).default("carehost.yaml").describe("name used in error locations"),
  target: z.enum(RENDER_TARGETS).describe("what to render: Kubernetes manifests or a Docker Compose bundle"),
});

const PathChangeSchema = z.object({
  path: z.string(),
  change: z.enum(["added", "removed", "changed"]),
  diff: z.string().optional(),
});

export const registerGitopsRoutes = (api: TApi, services: Pick<TServerServices, "gitops">): void => {
  api.post(
    "/api/gitops/plan",
    {
      schema: {
        tags: ["gitops"],
        summary:
          "Diff a fresh render of the spec against the GitOps repository, file by file (hand edits show as drift)",
        body: GitopsSubmissionSchema,
        response: {
          200: z.object({
            organization: z.string(),
            target: z.string(),
            inSync: z.boolean(),
            changes: z.array(PathChangeSchema).readonly(),
          }),
          422: ProblemSchema,
          ...problemResponses,
        },
      },
    },
    async (request) => services.gitops.plan(request.ctx, request.body, request.body.target),
  );

  api.post(
    "/api/gitops/apply",
    {
      schema: {
        tags: ["gitops"],
        summary: "Render the spec and commit it to the GitOps repository; an unchanged render makes no commit",
        body: GitopsSubmissionSchema.extend({
          confirmDestroy: z
            .array(z.string())
            .default([])
            .describe("environments whose removal from the repository is confirmed"),
        }),
        response: {
          200: z.object({
            organization: z.string(),
            target: z.string(),
            commit: z.string().nullable(),
            changedPaths: z.array(z.string()).readonly(),
            warning: z
              .string()
              .optional()
              .describe("set when the change is live but its audit entry could not be recorded: for whoever asked"),
          }),
          422: ProblemSchema,
          ...problemResponses,
        },
      },
    },
    async (request) => services.gitops.apply(request.ctx, request.body, request.body.target),
  );
};
