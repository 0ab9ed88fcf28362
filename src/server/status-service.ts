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
    environments: { name: string; entity: string; tier: string; dataClass: string; hosting: string; status: string }[];
  }[];
};

type TStatusServiceDeps = {
  environments: Pick<TEnvironmentService, "listEnvironments" | "latestRevisions">;
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
    const [revisions, recorded, head] = await Promise.all([environments.latestRevisions(ctx), environments.listEnvironments(ctx), auditHead()]);
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
          })),
      })),
    };
  },
});

export type TStatusService = ReturnType<typeof statusServiceFactory>;
