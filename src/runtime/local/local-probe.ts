// Probe: the few numbers monitoring reads from an organization's data tier on this host, on every
// probe round. Unlike observe (drift, files, ACL dry runs, everything `status` and the controls
// need) it asks each PostgreSQL and Redis only for counters and sizes: a round over fifty
// environments must stay cheap. It reuses what observe goes through: the kept admin connection,
// the archiver reading, the instance records and the certificates reconcile issued.
import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { TOrganizationSpec } from "../../spec/spec-schema.js";
import type { TLocalContext } from "./local-context.js";
import { adminConnection } from "./local-postgres.js";
import {
  clusterDirectory,
  databaseNameOf,
  organizationDirectory,
  placeOrganization,
  redisDirectory,
  secretNames,
} from "./local-placement.js";
import type { TClusterPlacement, TInstancePlacement } from "./local-placement.js";
import { readArchiver } from "./postgres-archiver.js";
import { runningPid } from "./postgres-cluster.js";
import { connectRedisAdmin, redisPid } from "./redis-instance.js";
import { readInstanceRecord } from "./runtime-instance.js";
import type { TCertificateProbe, TClusterProbe, TOrganizationProbe, TRedisProbe } from "../runtime-types.js";

const reason = (error: unknown) => (error instanceof Error ? error.message : String(error)).slice(0, 300);

const readCertificate = async (
  component: TCertificateProbe["component"],
  instance: string,
  path: string,
): Promise<TCertificateProbe | undefined> => {
  const pem = await readFile(path, "utf8").catch(() => undefined);
  if (pem === undefined) return undefined;
  return { component, instance, path, notAfter: new Date(new X509Certificate(pem).validTo) };
};

/** Parses `INFO` text (`key:value` lines) into a map. */
const infoFields = (text: string): Map<string, string> =>
  new Map(
    text
      .split(/\r?\n/)
      .filter((line) => line.includes(":") && !line.startsWith("#"))
      .map((line) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1).trim()]),
  );

export const localProbeFactory = ({
  root,
  secrets,
  serviceOwners,
  certificateAuthority,
  clusterContext,
}: Pick<TLocalContext, "root" | "secrets" | "serviceOwners" | "certificateAuthority" | "clusterContext">) => {
  const probeCluster = async (
    spec: TOrganizationSpec,
    placement: TClusterPlacement,
    ca: Awaited<ReturnType<typeof certificateAuthority>>,
  ): Promise<TClusterProbe> => {
    const organization = spec.metadata.name;
    const directory = clusterDirectory(root, organization, placement.name);
    const record = await readInstanceRecord(directory);
    const down = (port: number | null, problem: string): TClusterProbe => ({
      instance: placement.name,
      port,
      up: false,
      maxConnections: null,
      databases: [],
      archiver: null,
      problem,
    });
    if (record === undefined) return down(null, "not provisioned");
    const cluster = {
      name: placement.name,
      directory,
      port: record.port,
      version: placement.version,
      owner: (await serviceOwners()).postgres,
    };
    if ((await runningPid(cluster)) === undefined) return down(record.port, "not running");
    try {
      const admin = await adminConnection(await clusterContext(spec, placement, ca), cluster);
      const names = placement.environments.map(databaseNameOf);
      // One statement per cluster: the databases carehost placed here, with their backends,
      // oldest open transaction, size and deadlocks.
      const { rows } = await admin.query<{
        datname: string;
        max_connections: number;
        connections: string;
        longest_transaction_seconds: number | null;
        size_bytes: string;
        deadlocks: string;
      }>(
        `SELECT d.datname,
                current_setting('max_connections')::int AS max_connections,
                (SELECT count(*) FROM pg_stat_activity a WHERE a.datid = d.oid) AS connections,
                (SELECT extract(epoch FROM max(clock_timestamp() - a.xact_start))::float8
                   FROM pg_stat_activity a WHERE a.datid = d.oid AND a.xact_start IS NOT NULL) AS longest_transaction_seconds,
                pg_database_size(d.oid) AS size_bytes,
                coalesce(s.deadlocks, 0) AS deadlocks
           FROM pg_database d LEFT JOIN pg_stat_database s ON s.datid = d.oid
          WHERE d.datname = ANY($1::text[])
          ORDER BY d.datname`,
        [names],
      );
      const maxConnections =
        rows[0]?.max_connections ??
        Number(
          (await admin.query<{ value: string }>("SELECT current_setting('max_connections') AS value")).rows[0]?.value,
        );
      const backedUp = placement.environments.some((environment) => environment.backup.enabled);
      return {
        instance: placement.name,
        port: record.port,
        up: true,
        maxConnections,
        databases: rows.map((row) => ({
          database: row.datname,
          connections: Number(row.connections),
          longestTransactionSeconds: Math.max(0, row.longest_transaction_seconds ?? 0),
          sizeBytes: Number(row.size_bytes),
          deadlocks: Number(row.deadlocks),
        })),
        archiver: backedUp ? await readArchiver(admin) : null,
        problem: null,
      };
    } catch (error) {
      return down(record.port, reason(error));
    }
  };

  const probeRedis = async (
    organization: string,
    placement: TInstancePlacement,
    caPem: string,
  ): Promise<TRedisProbe> => {
    const directory = redisDirectory(root, organization, placement.name);
    const record = await readInstanceRecord(directory);
    const down = (port: number | null, problem: string): TRedisProbe => ({
      instance: placement.name,
      port,
      up: false,
      usedMemoryBytes: null,
      maxMemoryBytes: null,
      evictedKeys: null,
      connectedClients: null,
      problem,
    });
    if (record === undefined) return down(null, "not provisioned");
    const instance = { name: placement.name, directory, port: record.port, owner: (await serviceOwners()).redis };
    if ((await redisPid(instance)) === undefined) return down(record.port, "not running");
    try {
      const password = await secrets.current(secretNames.redisAdmin(organization, placement.name));
      const client = await connectRedisAdmin(instance, password, caPem);
      try {
        const fields = infoFields(await client.info());
        const numberOf = (name: string) => (fields.has(name) ? Number(fields.get(name)) : null);
        return {
          instance: placement.name,
          port: record.port,
          up: true,
          usedMemoryBytes: numberOf("used_memory"),
          maxMemoryBytes: numberOf("maxmemory"),
          evictedKeys: numberOf("evicted_keys"),
          connectedClients: numberOf("connected_clients"),
          problem: null,
        };
      } finally {
        await client.close();
      }
    } catch (error) {
      return down(record.port, reason(error));
    }
  };

  /** Reads every cluster, Redis and certificate of the organization; one that cannot be read is down, with why. */
  const probe = async (spec: TOrganizationSpec): Promise<TOrganizationProbe> => {
    const placement = placeOrganization(spec);
    const organization = placement.organization;
    const ca = await certificateAuthority(organization);
    const [clusters, redis] = await Promise.all([
      Promise.all(placement.clusters.map((cluster) => probeCluster(spec, cluster, ca))),
      Promise.all(placement.redis.map((instance) => probeRedis(organization, instance, ca.certPem))),
    ]);
    const certificates = await Promise.all([
      readCertificate("ca", "ca", join(organizationDirectory(root, organization), "ca.crt")),
      ...placement.clusters.map((cluster) =>
        readCertificate(
          "postgres",
          cluster.name,
          join(clusterDirectory(root, organization, cluster.name), "tls", "server.crt"),
        ),
      ),
      ...placement.redis.map((instance) =>
        readCertificate(
          "redis",
          instance.name,
          join(redisDirectory(root, organization, instance.name), "tls", "server.crt"),
        ),
      ),
    ]);
    return {
      organization,
      clusters,
      redis,
      certificates: certificates.filter((item): item is TCertificateProbe => item !== undefined),
    };
  };

  return { probe };
};
