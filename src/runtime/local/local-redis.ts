// Reconciles and observes one Redis of an organization (dedicated or shared) and its ACL users.
// Drift is read back from the server itself (CONFIG GET, ACL LIST) against a snapshot taken right
// after carehost last configured it, so a CONFIG SET or ACL SETUSER made by hand is found.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { TLiveRedisState } from "../../policy/policy-types.js";
import { DANGEROUS_REDIS_COMMANDS } from "../../policy/policy-catalog-live.js";
import { generatePassword } from "../../secrets/secrets-generate.js";
import { redisDirectory, redisKeyPrefixOf, redisUserOf, secretNames } from "./local-placement.js";
import type { TInstancePlacement } from "./local-placement.js";
import { redisSettings, renderRedisAcl, renderRedisConf } from "./redis-config.js";
import {
  connectRedisAdmin,
  prepareRedisDirectory,
  readRedisFile,
  redisPid,
  startRedis,
  stopRedis,
  writeRedisFile,
} from "./redis-instance.js";
import type { TRedisClient, TRedisInstance } from "./redis-instance.js";
import { ensureServerCertificate } from "./runtime-ca.js";
import type { TCertificateAuthority, TRuntimeSecrets } from "./runtime-ca.js";
import type { TOsUser } from "../../lib/runtime-command.js";
import { ensureInstanceRecord, readInstanceRecord } from "./runtime-instance.js";
import type { TRuntimeAction, TRuntimeDrift } from "../runtime-types.js";

export type TRedisContext = {
  readonly root: string;
  readonly organization: string;
  readonly placement: TInstancePlacement;
  readonly ca: TCertificateAuthority;
  readonly secrets: TRuntimeSecrets;
  readonly owner: TOsUser | undefined;
  readonly now: Date;
};

export type TRedisObservation = {
  readonly name: string;
  readonly port: number | null;
  readonly state: "running" | "stopped" | "absent";
  readonly drift: readonly TRuntimeDrift[];
  readonly files: { readonly redisConf?: Record<string, string> };
  readonly live: ReadonlyMap<string, TLiveRedisState>;
};

/** Settings read back with CONFIG GET to notice a CONFIG SET made by hand. */
const TRACKED_SETTINGS = [
  "bind",
  "protected-mode",
  "port",
  "tls-port",
  "maxmemory",
  "maxmemory-policy",
  "appendonly",
  "tls-auth-clients",
] as const;
/** A representative call per dangerous command, for ACL DRYRUN. */
const DANGEROUS_PROBES: Readonly<Record<string, readonly string[]>> = {
  FLUSHALL: ["FLUSHALL"],
  FLUSHDB: ["FLUSHDB"],
  CONFIG: ["CONFIG", "GET", "maxmemory"],
  DEBUG: ["DEBUG", "OBJECT", "probe"],
  SHUTDOWN: ["SHUTDOWN"],
  MODULE: ["MODULE", "LIST"],
};

type TSnapshot = { readonly settings: Record<string, string>; readonly acl: readonly string[] };

const generateRedisPassword = () => generatePassword(24);
const snapshotPath = (instance: TRedisInstance) => join(instance.directory, "applied-state.json");

async function readSnapshot(instance: TRedisInstance): Promise<TSnapshot | undefined> {
  const text = await readFile(snapshotPath(instance), "utf8").catch(() => undefined);
  return text === undefined ? undefined : (JSON.parse(text) as TSnapshot);
}

async function takeSnapshot(client: TRedisClient): Promise<TSnapshot> {
  const settings: Record<string, string> = {};
  for (const name of TRACKED_SETTINGS) settings[name] = (await client.configGet(name))[name] ?? "";
  return { settings, acl: await client.aclList() };
}

function snapshotDrift(target: string, applied: TSnapshot, live: TSnapshot): TRuntimeDrift[] {
  const drift: TRuntimeDrift[] = [];
  for (const name of TRACKED_SETTINGS) {
    if (applied.settings[name] !== live.settings[name])
      drift.push({
        target,
        field: `config ${name}`,
        expected: applied.settings[name] ?? "",
        actual: live.settings[name] ?? "",
      });
  }
  // ACL lines carry password hashes, not passwords; report only which users differ.
  const userOf = (line: string) => line.split(" ")[1] ?? line;
  const appliedUsers = new Map(applied.acl.map((line) => [userOf(line), line]));
  const liveUsers = new Map(live.acl.map((line) => [userOf(line), line]));
  for (const user of new Set([...appliedUsers.keys(), ...liveUsers.keys()])) {
    const expected = appliedUsers.get(user);
    const actual = liveUsers.get(user);
    if (expected !== actual)
      drift.push({
        target,
        field: `acl user ${user}`,
        expected: expected === undefined ? "absent" : "as rendered",
        actual: actual === undefined ? "absent" : "changed by hand",
      });
  }
  return drift;
}

async function desired(context: TRedisContext, instance: TRedisInstance, createSecrets: boolean) {
  const adminSecret = secretNames.redisAdmin(context.organization, instance.name);
  if (createSecrets) await context.secrets.ensure(adminSecret, generateRedisPassword);
  const users = await Promise.all(
    context.placement.environments.map(async (environment) => {
      const name = secretNames.redisPassword(context.organization, environment.name);
      if (createSecrets) await context.secrets.ensure(name, generateRedisPassword);
      return {
        name: redisUserOf(environment),
        password: await context.secrets.current(name),
        keyPrefix: redisKeyPrefixOf(environment),
      };
    }),
  );
  const adminPassword = await context.secrets.current(adminSecret);
  const settings = settingsOf(context, instance);
  return {
    adminPassword,
    users,
    settings,
    redisConf: renderRedisConf(settings),
    usersAcl: renderRedisAcl(adminPassword, users),
  };
}

function settingsOf(context: Pick<TRedisContext, "placement">, instance: TRedisInstance) {
  const tls = join(instance.directory, "tls");
  return redisSettings({
    directory: instance.directory,
    port: instance.port,
    certificate: { certPath: join(tls, "server.crt"), keyPath: join(tls, "server.key"), caPath: join(tls, "ca.crt") },
    maxMemoryMb: context.placement.environments.reduce(
      (total, environment) => total + environment.redis.maxMemoryMb,
      0,
    ),
  });
}

/** A password hash in users.acl, as a plan shows the file: which users and what they may do, never a hash. */
export const HIDDEN_ACL_HASH = "#(password hash not shown)";

/** redis.conf and users.acl as reconcile writes them, the password hashes replaced (plan compares these). */
export function redisFilesWithoutSecrets(
  context: Pick<TRedisContext, "placement">,
  instance: TRedisInstance,
): { redisConf: string; usersAcl: string } {
  const users = context.placement.environments.map((environment) => ({
    name: redisUserOf(environment),
    password: "",
    keyPrefix: redisKeyPrefixOf(environment),
  }));
  return {
    redisConf: renderRedisConf(settingsOf(context, instance)),
    usersAcl: renderRedisAcl("", users).replace(/#[0-9a-f]{64}/g, HIDDEN_ACL_HASH),
  };
}

const instanceOf = (context: TRedisContext, port: number): TRedisInstance => ({
  name: context.placement.name,
  directory: redisDirectory(context.root, context.organization, context.placement.name),
  port,
  owner: context.owner,
});

export async function reconcileRedis(context: TRedisContext): Promise<TRuntimeAction[]> {
  const target = `redis/${context.placement.name}`;
  const actions: TRuntimeAction[] = [];
  const act = (action: string) => actions.push({ target, action });
  const directory = redisDirectory(context.root, context.organization, context.placement.name);
  const { record } = await ensureInstanceRecord(directory, context.owner, context.now);
  const instance = instanceOf(context, record.port);
  await prepareRedisDirectory(instance);
  const { issued } = await ensureServerCertificate(
    context.ca,
    join(instance.directory, "tls"),
    `${context.organization} redis ${instance.name}`,
    context.owner,
    context.now,
  );
  if (issued) act("issued a TLS certificate from the organization CA");
  const files = await desired(context, instance, true);
  const confChanged = await writeRedisFile(instance, "redis.conf", files.redisConf);
  const aclChanged = await writeRedisFile(instance, "users.acl", files.usersAcl);
  if ((await redisPid(instance)) === undefined) {
    await startRedis(instance, files.adminPassword, context.ca.certPem);
    act(`started (TLS port ${instance.port})`);
  } else if (confChanged || issued) {
    // Sessions survive: appendonly is on, and Odoo reconnects.
    await stopRedis(instance);
    await startRedis(instance, files.adminPassword, context.ca.certPem);
    act("restarted with the rendered redis.conf");
  }
  // ACL LOAD drops the connections of the users it reloads, carehost's own included: every step
  // after one reconnects.
  const withAdmin = async <T>(use: (client: TRedisClient) => Promise<T>): Promise<T> => {
    const client = await connectRedisAdmin(instance, files.adminPassword, context.ca.certPem);
    try {
      return await use(client);
    } finally {
      await client.close().catch(() => undefined);
    }
  };
  const justStarted = actions.some(
    (action) => action.action.startsWith("started") || action.action.startsWith("restarted"),
  );
  if (aclChanged && !justStarted) {
    await withAdmin((client) => client.aclLoad());
    act("loaded users.acl");
  }
  const applied = await readSnapshot(instance);
  if (applied !== undefined && !confChanged && !aclChanged) {
    const drift = snapshotDrift(target, applied, await withAdmin(takeSnapshot));
    const settings = drift.filter((entry) => entry.field.startsWith("config "));
    if (settings.length > 0)
      await withAdmin(async (client) => {
        for (const item of settings) await client.configSet(item.field.slice("config ".length), item.expected);
      });
    if (drift.some((item) => item.field.startsWith("acl "))) await withAdmin((client) => client.aclLoad());
    if (drift.length > 0) act(`corrected ${drift.map((item) => item.field).join(", ")}`);
  }
  const snapshot = await withAdmin(takeSnapshot);
  if (JSON.stringify(snapshot) !== JSON.stringify(applied))
    await writeFile(snapshotPath(instance), `${JSON.stringify(snapshot)}\n`, { mode: 0o600 });
  return actions;
}

export async function observeRedis(context: TRedisContext): Promise<TRedisObservation> {
  const target = `redis/${context.placement.name}`;
  const record = await readInstanceRecord(redisDirectory(context.root, context.organization, context.placement.name));
  if (record === undefined)
    return {
      name: context.placement.name,
      port: null,
      state: "absent",
      drift: [{ target, field: "instance", expected: "running", actual: "not provisioned" }],
      files: {},
      live: new Map(),
    };
  const instance = instanceOf(context, record.port);
  const drift: TRuntimeDrift[] = [];
  const files = await desired(context, instance, false);
  const redisConfText = await readRedisFile(instance, "redis.conf");
  if (redisConfText !== files.redisConf)
    drift.push({
      target,
      field: "redis.conf",
      expected: "as rendered",
      actual: redisConfText === undefined ? "missing" : "edited by hand",
    });
  if ((await readRedisFile(instance, "users.acl")) !== files.usersAcl)
    drift.push({ target, field: "users.acl", expected: "as rendered", actual: "edited by hand or out of date" });
  const redisConf =
    redisConfText === undefined
      ? undefined
      : Object.fromEntries(
          redisConfText
            .split("\n")
            .filter((line) => line !== "" && !line.startsWith("#"))
            .map((line) => [line.split(" ")[0] ?? "", line.slice(line.indexOf(" ") + 1)]),
        );
  const fileArtifacts = redisConf === undefined ? {} : { redisConf };
  if ((await redisPid(instance)) === undefined) {
    return {
      name: instance.name,
      port: instance.port,
      state: "stopped",
      drift: [...drift, { target, field: "process", expected: "running", actual: "stopped" }],
      files: fileArtifacts,
      live: new Map(),
    };
  }
  const client = await connectRedisAdmin(instance, files.adminPassword, context.ca.certPem);
  try {
    const snapshot = await takeSnapshot(client);
    const applied = await readSnapshot(instance);
    if (applied !== undefined) drift.push(...snapshotDrift(target, applied, snapshot));
    const defaultUser = await client.aclGetUser("default");
    const live = new Map<string, TLiveRedisState>();
    for (const environment of context.placement.environments) {
      const disabled: string[] = [];
      for (const [command, probe] of Object.entries(DANGEROUS_PROBES)) {
        const answer = await client
          .sendCommand(["ACL", "DRYRUN", redisUserOf(environment), ...probe])
          .catch((error: unknown) => String(error));
        if (answer !== "OK" && DANGEROUS_REDIS_COMMANDS.includes(command)) disabled.push(command);
      }
      live.set(environment.name, {
        bindAddresses: (snapshot.settings.bind ?? "").split(" ").filter((address) => address !== ""),
        protectedMode: snapshot.settings["protected-mode"] === "yes",
        defaultUserEnabled: defaultUser?.flags.includes("on") ?? false,
        renamedOrDisabledCommands: disabled,
        tlsPort: Number(snapshot.settings["tls-port"] ?? 0),
      });
    }
    return { name: instance.name, port: instance.port, state: "running", drift, files: fileArtifacts, live };
  } finally {
    await client.close();
  }
}
