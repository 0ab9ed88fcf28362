// `carehost status`: one read that tells an operator what carehost holds right now.
import type { TEnvironmentService } from "../environments/environment-service.js";
import { authorize } from "../identity/identity-permissions.js";
import type { TAuditAppend } from "../identity/identity-types.js";
import type { TRequestContext } from "../lib/request-context.js";
import type { TStoreKind } from "../store/store-types.js";

export type TStatusReport = {
  version: string;
  url: string;
  store: TStoreKind;
  uptimeSeconds: number;
  audit: { treeSize: number; lastCheckpoint: { treeSize: number; time: string } | null };
  organizations: {
    name: string;
    revision: { id: number; digest: string; appliedBy: string; appliedAt: string };
    environments: {
      name: string;
      entity: string;
      tier: string;
      dataClass: string;
      hosting: string;
      status: string;
      /** What runs on this host; null when carehost runs no runtime (CAREHOST_RUNTIME=none). */
      runtime: { postgres: string; redis: string | null; app: string; drift: number } | null;
    }[];
  }[];
};

type TStatusServiceDeps = {
  environments: Pick<TEnvironmentService, "listEnvironments" | "latestRevisions" | "runtimeStatus">;
  auditHead: () => Promise<TStatusReport["audit"]>;
  audit: { append: TAuditAppend };
  version: string;
  url: () => string;
  store: TStoreKind;
  startedAt: Date;
  now?: () => Date;
};

export const statusServiceFactory = ({ environments, auditHead, audit, version, url, store, startedAt, now = () => new Date() }: TStatusServiceDeps) => ({
  status: async (ctx: TRequestContext): Promise<TStatusReport> => {
    await authorize(ctx, "status:read", audit);
    const [revisions, recorded, head, runtimes] = await Promise.all([
      environments.latestRevisions(ctx),
      environments.listEnvironments(ctx),
      auditHead(),
      environments.runtimeStatus(ctx),
    ]);
    const runtimeOf = (organization: string, name: string) => {
      const found = runtimes.find((item) => item.organization === organization)?.environments.find((item) => item.environment === name);
      if (found === undefined) return null;
      const where = (instance: string, port: number | null) => `${instance} ${port === null ? "" : `127.0.0.1:${port} `}`;
      return {
        postgres: `${where(found.postgres.instance, found.postgres.port)}${found.postgres.state}`,
        redis: found.redis === null ? null : `${where(found.redis.instance, found.redis.port)}${found.redis.state}`,
        app: found.app.detail,
        drift: found.drift.length,
      };
    };
    return {
      version,
      url: url(),
      store,
      uptimeSeconds: Math.round((now().getTime() - startedAt.getTime()) / 1000),
      audit: head,
      organizations: revisions.map((revision) => ({
        name: revision.organization,
        revision: {
          id: revision.id,
          digest: revision.digest,
          appliedBy: revision.appliedBy,
          appliedAt: revision.appliedAt.toISOString(),
        },
        environments: recorded
          .filter((environment) => environment.organization === revision.organization)
          .map((environment) => ({
            name: environment.name,
            entity: environment.spec.entity,
            tier: environment.spec.tier,
            dataClass: environment.spec.dataClass,
            hosting: environment.spec.hosting,
            status: environment.status,
            runtime: runtimeOf(revision.organization, environment.name),
          })),
      })),
    };
  },
});

export type TStatusService = ReturnType<typeof statusServiceFactory>;
