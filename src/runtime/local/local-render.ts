// Render: the files reconcile would write for a spec on the clusters and Redis instances provisioned
// here, without their secrets, and what applying one spec over another changes in them and restarts
// (a plan). Unlike local-render-offline.ts, it reads this host: the instances' ports and which
// repositories have their keys.
import { instanceNameOf } from "../../spec/spec-hosting.js";
import type { TOrganizationSpec } from "../../spec/spec-schema.js";
import { odooConnectionLimit } from "../../render/odoo/odoo-conf.js";
import { planLocalChange } from "./local-change.js";
import type { TLocalContext } from "./local-context.js";
import type { TLocalOdooFiles } from "./local-odoo-files.js";
import { clusterDirectory, databaseRoleOf, placeOrganization, redisDirectory } from "./local-placement.js";
import { backupOf, desiredFiles } from "./local-postgres.js";
import { redisFilesWithoutSecrets } from "./local-redis.js";
import type { TPostgresCluster } from "./postgres-cluster.js";
import { readInstanceRecord } from "./runtime-instance.js";
import type { TRenderedRuntimeFile, TRenderedRuntimeRole, TRuntimeChange, TRuntimeRender } from "../runtime-types.js";

/** odoo.conf as a plan shows it: the master password's hash is never part of a diff. */
const HIDDEN_ADMIN_PASSWD = "admin_passwd = (pbkdf2-sha512 hash of the master password, not shown)";
/** Rendered in its place, then replaced by HIDDEN_ADMIN_PASSWD: a hash of nothing, in the form renderOdooConf accepts. */
const HIDDEN_HASH_STANDIN = "$pbkdf2-sha512$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA";

export const localRenderFactory = ({
  root,
  serviceOwners,
  certificateAuthority,
  clusterContext,
  odooConfOf,
}: Pick<TLocalContext, "root" | "serviceOwners" | "certificateAuthority" | "clusterContext"> &
  Pick<TLocalOdooFiles, "odooConfOf">) => {
  /**
   * The files reconcile would write for a spec, on the clusters and Redis instances provisioned
   * here (a new one has no port yet: the plan shows it as created), without their secrets. Reads
   * nothing but the instance records and which repositories have their keys; writes nothing.
   */
  const renderNow = async (organization: TOrganizationSpec): Promise<TRuntimeRender> => {
    const placement = placeOrganization(organization);
    const org = placement.organization;
    const ca = await certificateAuthority(org);
    const files: TRenderedRuntimeFile[] = [];
    const roles: TRenderedRuntimeRole[] = [];
    const ports = new Map<string, number>();
    for (const cluster of placement.clusters) {
      const record = await readInstanceRecord(clusterDirectory(root, org, cluster.name));
      if (record === undefined) continue;
      ports.set(cluster.name, record.port);
      const context = await clusterContext(organization, cluster, ca);
      const instance: TPostgresCluster = {
        name: cluster.name,
        directory: clusterDirectory(root, org, cluster.name),
        port: record.port,
        version: cluster.version,
        owner: context.owner,
      };
      const backup = await backupOf(context, instance, false).catch(() => undefined);
      const desired = await desiredFiles(context, instance, backup);
      const of = {
        target: `postgres/${cluster.name}`,
        environments: cluster.environments.map((environment) => environment.name),
      };
      files.push(
        { ...of, component: "postgresql", file: "postgresql.conf", content: desired.postgresqlConf },
        { ...of, component: "postgresql", file: "pg_hba.conf", content: desired.pgHba },
      );
      if (backup !== undefined)
        files.push({ ...of, component: "pgbackrest", file: "pgbackrest.conf", content: backup.confText });
      for (const environment of cluster.environments)
        roles.push({
          target: of.target,
          environment: environment.name,
          role: databaseRoleOf(environment),
          connectionLimit: odooConnectionLimit(environment),
        });
    }
    for (const instance of placement.redis) {
      const directory = redisDirectory(root, org, instance.name);
      const record = await readInstanceRecord(directory);
      if (record === undefined) continue;
      const rendered = redisFilesWithoutSecrets(
        { placement: instance },
        { name: instance.name, directory, port: record.port, owner: (await serviceOwners()).redis },
      );
      const of = {
        target: `redis/${instance.name}`,
        environments: instance.environments.map((environment) => environment.name),
        component: "redis" as const,
      };
      files.push(
        { ...of, file: "redis.conf", content: rendered.redisConf },
        { ...of, file: "users.acl", content: rendered.usersAcl },
      );
    }
    for (const environment of organization.environments) {
      const port = ports.get(instanceNameOf(environment));
      if (port === undefined) continue;
      const odooConf = odooConfOf(org, environment, ca, port, HIDDEN_HASH_STANDIN).replace(
        /^admin_passwd = .*$/m,
        HIDDEN_ADMIN_PASSWD,
      );
      files.push({
        target: `environment/${environment.name}`,
        environments: [environment.name],
        component: "odoo",
        file: "odoo.conf",
        content: odooConf,
      });
    }
    return { files, roles };
  };

  return {
    /** The files reconcile would write for a spec, without secrets (see renderNow). */
    render: (organization: TOrganizationSpec): Promise<TRuntimeRender> => renderNow(organization),

    /** What applying `proposed` over `applied` changes in the rendered files, and what reconcile restarts or reloads for it. */
    planChange: async (applied: TOrganizationSpec, proposed: TOrganizationSpec): Promise<TRuntimeChange> =>
      planLocalChange(await renderNow(applied), await renderNow(proposed)),
  };
};
