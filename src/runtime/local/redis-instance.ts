// One redis-server on this host, run as a non-root OS user from the host's binary. Same failure
// rules as postgres-cluster.ts: `start` returns once the server answers over TLS, or throws with
// the log's last lines; every method may be called again after a failure.
import { chown, mkdir, readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";
import { createClient } from "redis";
import { DomainError } from "../../lib/errors.js";
import { isProcessAlive, spawnDetached } from "../../lib/runtime-command.js";
import type { TOsUser } from "../../lib/runtime-command.js";
import { REDIS_ADMIN_USER } from "./redis-config.js";
import { writeFileIfChanged } from "./runtime-files.js";

export type TRedisInstance = {
  readonly name: string;
  readonly directory: string;
  readonly port: number;
  readonly owner: TOsUser | undefined;
};

export type TRedisClient = ReturnType<typeof createClient>;

export const redisConfPath = (instance: TRedisInstance) => join(instance.directory, "redis.conf");

async function own(path: string, owner: TOsUser | undefined): Promise<void> {
  if (owner !== undefined) await chown(path, owner.uid, owner.gid);
}

export async function prepareRedisDirectory(instance: TRedisInstance): Promise<void> {
  await mkdir(join(instance.directory, "data"), { recursive: true, mode: 0o700 });
  await own(instance.directory, instance.owner);
  await own(join(instance.directory, "data"), instance.owner);
}

/** Writes redis.conf or users.acl; returns whether the content changed. */
export async function writeRedisFile(
  instance: TRedisInstance,
  name: "redis.conf" | "users.acl",
  content: string,
): Promise<boolean> {
  return writeFileIfChanged(join(instance.directory, name), content, { mode: 0o600, owner: instance.owner });
}

export async function readRedisFile(
  instance: TRedisInstance,
  name: "redis.conf" | "users.acl",
): Promise<string | undefined> {
  return readFile(join(instance.directory, name), "utf8").catch(() => undefined);
}

export async function redisPid(instance: TRedisInstance): Promise<number | undefined> {
  const pid = Number((await readFile(join(instance.directory, "redis.pid"), "utf8").catch(() => "")).trim());
  return Number.isInteger(pid) && pid > 0 && isProcessAlive(pid) ? pid : undefined;
}

export async function connectRedis(
  instance: TRedisInstance,
  user: string,
  password: string,
  caPem: string,
): Promise<TRedisClient> {
  const client = createClient({
    socket: {
      host: "127.0.0.1",
      port: instance.port,
      tls: true,
      ca: caPem,
      connectTimeout: 5000,
      reconnectStrategy: false,
    },
    username: user,
    password,
  });
  // Errors surface from the awaited calls; without a listener node-redis would crash the process.
  client.on("error", () => undefined);
  await client.connect();
  return client;
}

export const connectRedisAdmin = (instance: TRedisInstance, adminPassword: string, caPem: string) =>
  connectRedis(instance, REDIS_ADMIN_USER, adminPassword, caPem);

async function logTail(instance: TRedisInstance): Promise<string> {
  const text = await readFile(join(instance.directory, "redis.log"), "utf8").catch(() => "");
  return text.trim().split("\n").slice(-4).join("\n");
}

export async function startRedis(instance: TRedisInstance, adminPassword: string, caPem: string): Promise<void> {
  spawnDetached("/usr/bin/redis-server", [redisConfPath(instance)], {
    cwd: instance.directory,
    ...(instance.owner === undefined ? {} : { asUser: instance.owner }),
  });
  const deadline = Date.now() + 20_000;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const client = await connectRedisAdmin(instance, adminPassword, caPem);
      await client.close();
      return;
    } catch (error) {
      lastError = error;
      await sleep(100);
    }
  }
  throw new DomainError(
    `Redis "${instance.name}" (port ${instance.port}) did not start: ${(await logTail(instance)) || String(lastError)}`,
  );
}

export async function stopRedis(instance: TRedisInstance): Promise<void> {
  const pid = await redisPid(instance);
  if (pid === undefined) return;
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + 20_000;
  while (isProcessAlive(pid)) {
    if (Date.now() > deadline) throw new DomainError(`Redis "${instance.name}" (pid ${pid}) did not stop within 20 s`);
    await sleep(50);
  }
}
