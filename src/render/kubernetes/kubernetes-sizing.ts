// Resources derived from the spec, in one place so the workloads and the namespace's quota agree.
import type { TEnvironmentSpec } from "../../spec/spec-schema.js";

/** Production with four or more workers runs two web pods, so one can be drained or lost; otherwise one. */
export const webReplicasOf = (environment: TEnvironmentSpec): number =>
  environment.tier === "production" && environment.odoo.workers >= 4 ? 2 : 1;
/** Odoo workers per web pod (at least one: workers = 0 is threaded mode, for development only). */
export const workersPerPodOf = (environment: TEnvironmentSpec): number =>
  Math.max(1, Math.ceil(environment.odoo.workers / webReplicasOf(environment)));

export type TPodResources = {
  readonly cpuRequestMilli: number;
  readonly cpuLimitMilli: number;
  readonly memoryRequestMi: number;
  readonly memoryLimitMi: number;
};

/**
 * Per Odoo process (workers plus the master or gevent process): 512 MiB requested and 1.5 GiB
 * allowed; Odoo itself recycles a worker above limit_memory_hard, so the pod limit is a backstop.
 */
export const odooPodResources = (processes: number): TPodResources => ({
  cpuRequestMilli: 250 * processes,
  cpuLimitMilli: 1000 * processes,
  memoryRequestMi: 512 * processes,
  memoryLimitMi: 1536 * processes,
});

export const webPodResources = (environment: TEnvironmentSpec) => odooPodResources(workersPerPodOf(environment) + 1);
export const cronPodResources = (environment: TEnvironmentSpec) =>
  odooPodResources(Math.max(1, environment.odoo.cronWorkers) + 1);
export const postgresInstancesOf = (environment: TEnvironmentSpec) => (environment.database.highAvailability ? 3 : 1);
/** PostgreSQL gets a quarter of its memory as shared_buffers; size it from the storage it serves. */
export const postgresPodResources = (environment: TEnvironmentSpec): TPodResources => {
  const memoryMi = Math.min(16384, Math.max(1024, environment.database.storageGi * 32));
  return { cpuRequestMilli: 500, cpuLimitMilli: 2000, memoryRequestMi: memoryMi, memoryLimitMi: memoryMi };
};
/** Redis: its maxmemory plus a quarter for fragmentation and buffers. */
export const redisPodResources = (environment: TEnvironmentSpec): TPodResources => {
  const memoryMi = Math.ceil(environment.redis.maxMemoryMb * 1.25);
  return { cpuRequestMilli: 100, cpuLimitMilli: 500, memoryRequestMi: memoryMi, memoryLimitMi: memoryMi };
};
export const filestoreGiOf = (environment: TEnvironmentSpec) =>
  Math.max(10, Math.ceil(environment.database.storageGi / 2));

export const resourcesOf = (resources: TPodResources) => ({
  requests: { cpu: `${resources.cpuRequestMilli}m`, memory: `${resources.memoryRequestMi}Mi` },
  limits: { cpu: `${resources.cpuLimitMilli}m`, memory: `${resources.memoryLimitMi}Mi` },
});

/** Everything the namespace may ask for: the sum of its pods, with room for one rolling update of the web tier. */
export function namespaceBudget(environment: TEnvironmentSpec) {
  const pods: TPodResources[] = [
    ...Array.from({ length: webReplicasOf(environment) + 1 }, () => webPodResources(environment)),
    cronPodResources(environment),
    ...Array.from({ length: postgresInstancesOf(environment) }, () => postgresPodResources(environment)),
    ...(environment.redis.enabled ? [redisPodResources(environment)] : []),
  ];
  const sum = (field: keyof TPodResources) => pods.reduce((total, pod) => total + pod[field], 0);
  return {
    cpuRequestMilli: sum("cpuRequestMilli"),
    cpuLimitMilli: sum("cpuLimitMilli"),
    memoryRequestMi: sum("memoryRequestMi"),
    memoryLimitMi: sum("memoryLimitMi"),
    storageGi: environment.database.storageGi * postgresInstancesOf(environment) + filestoreGiOf(environment),
    pods: pods.length + 2,
  };
}
