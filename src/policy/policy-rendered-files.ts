// What the artifact controls read, parsed back from the files each target renders (not from the
// model that produced them): the Compose bundle's config files, the Kubernetes manifests. A
// setting a file does not carry is absent, and the control that needs it fails. Pure.
import { parse } from "yaml";
import { parseOdooConf } from "../render/odoo/odoo-conf.js";
import { parsePostgresqlConf } from "../runtime/local/postgres-config.js";
import { parseRedisConf } from "../render/data-tier/data-tier-redis.js";
import type { TRenderedFile } from "../render/render-types.js";
import type { TEnvironmentSpec } from "../spec/spec-schema.js";
import type { TBackupArtifact, TBackupWrite, TIngressArtifact, TRenderedArtifacts } from "./policy-types.js";

/** The start-up scripts' refusal of a master password that is not a hash (compose-odoo.ts, kubernetes-odoo.ts). */
const ADMIN_HASH_REFUSAL = "is not a pbkdf2-sha512 hash; refusing to start";
/**
 * odoo.conf is completed at start with the hash from a secret file; where the script that does it
 * refuses anything but a pbkdf2-sha512 hash, that is what the running file holds.
 */
const ENFORCED_ADMIN_HASH = "$pbkdf2-sha512$(from the secret file, checked at start)";

const contentOf = (files: readonly TRenderedFile[], path: string) => files.find((file) => file.path === path)?.content;

/** `# repoN: name` and `repoN-cipher-type=…` of a pgbackrest.conf rendered by carehost, in repository order. */
export function pgbackrestRepositoriesOf(text: string): { index: number; name: string; cipher: string }[] {
  const names = [...text.matchAll(/^# repo(\d+): (\S+)$/gm)];
  return names.map((match) => {
    const index = Number(match[1]);
    const cipher = new RegExp(`^repo${index}-cipher-type=(\\S+)$`, "m").exec(text)?.[1] ?? "none";
    return { index, name: match[2] ?? "", cipher };
  });
}

const notWritten = (reason: string): TBackupWrite => ({ written: false, reason });

// ---------------------------------------------------------------------------------------- Compose

type TTraefikRouter = { rule: string; entryPoints: string[]; middlewares?: string[]; tls?: unknown };
type TTraefikDynamic = {
  http: { routers: Record<string, TTraefikRouter>; middlewares: Record<string, { headers?: { stsSeconds?: number } }> };
};

/** A path is blocked when every router excludes it; TLS and HSTS when every router has them. */
function composeIngressOf(text: string): TIngressArtifact {
  const dynamic = parse(text) as TTraefikDynamic;
  const routers = Object.values(dynamic.http.routers);
  const excluded = routers.map((router) =>
    [...router.rule.matchAll(/!PathPrefix\(`([^`]+)`\)/g)].map((m) => m[1] ?? ""),
  );
  const blockedPaths = (excluded[0] ?? []).filter((path) => excluded.every((paths) => paths.includes(path)));
  const hstsMiddlewares = Object.entries(dynamic.http.middlewares)
    .filter(([, middleware]) => (middleware.headers?.stsSeconds ?? 0) > 0)
    .map(([name]) => name);
  return {
    blockedPaths: blockedPaths.map((path) => `${path}*`),
    tls:
      routers.length > 0 &&
      routers.every((router) => router.tls !== undefined && router.entryPoints.join() === "websecure"),
    hsts:
      routers.length > 0 &&
      routers.every((router) => (router.middlewares ?? []).some((name) => hstsMiddlewares.includes(name))),
  };
}

function composeBackupOf(files: readonly TRenderedFile[], environment: TEnvironmentSpec): TBackupArtifact {
  const conf = contentOf(files, "pgbackrest/pgbackrest.conf") ?? "";
  const script = contentOf(files, "backup/backup.sh") ?? "";
  const database = pgbackrestRepositoriesOf(conf);
  const names = environment.backup.enabled ? environment.backup.repositories : [];
  return {
    repositories: names.map((name) => {
      const repo = database.find((candidate) => candidate.name === name);
      const backedUp = repo !== undefined && script.includes(`--repo=${repo.index} --type="$type" backup  # ${name}`);
      return {
        name,
        database: backedUp
          ? { written: true, cipher: repo.cipher }
          : notWritten("neither pgbackrest.conf nor backup.sh of the bundle writes it"),
        filestore: script.includes(`# filestore -> ${name}\n`)
          ? { written: true, cipher: "restic" }
          : notWritten("backup.sh of the bundle does not snapshot the filestore there"),
      };
    }),
  };
}

export function composeArtifactsOf(files: readonly TRenderedFile[], environment: TEnvironmentSpec): TRenderedArtifacts {
  const odoo = contentOf(files, "odoo/odoo-web.conf");
  const entrypoint = contentOf(files, "odoo/entrypoint.sh") ?? "";
  const postgresql = contentOf(files, "postgres/postgresql.conf");
  const redis = contentOf(files, "redis/redis.conf");
  const dynamic = contentOf(files, "traefik/dynamic.yaml");
  return {
    ...(odoo === undefined
      ? {}
      : {
          odooConf: {
            ...parseOdooConf(odoo),
            ...(entrypoint.includes(ADMIN_HASH_REFUSAL) ? { admin_passwd: ENFORCED_ADMIN_HASH } : {}),
          },
        }),
    ...(postgresql === undefined ? {} : { postgresqlConf: parsePostgresqlConf(postgresql) }),
    ...(contentOf(files, "postgres/pg_hba.conf") === undefined
      ? {}
      : { pgHba: contentOf(files, "postgres/pg_hba.conf") }),
    ...(redis === undefined ? {} : { redisConf: parseRedisConf(redis) }),
    ...(dynamic === undefined ? {} : { ingress: composeIngressOf(dynamic) }),
    ...(environment.backup.enabled ? { backup: composeBackupOf(files, environment) } : {}),
  };
}

// ------------------------------------------------------------------------------------- Kubernetes

type TObject = {
  kind: string;
  metadata: { name: string };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
};

const objectsOf = (files: readonly TRenderedFile[]): TObject[] => files.map((file) => parse(file.content) as TObject);
const find = (objects: readonly TObject[], kind: string, name?: string) =>
  objects.find((object) => object.kind === kind && (name === undefined || object.metadata.name === name));

type TRoute = { match: string; priority?: number; middlewares?: { name: string }[] };

/** A path is blocked when the highest-priority route for it goes through a middleware that admits no address. */
function kubernetesIngressOf(objects: readonly TObject[]): TIngressArtifact | undefined {
  const route = find(objects, "IngressRoute");
  if (route === undefined) return undefined;
  const spec = route.spec as { entryPoints: string[]; routes: TRoute[]; tls?: { secretName?: string } };
  const middlewares = objects.filter((object) => object.kind === "Middleware");
  const spec0 = (name: string) => middlewares.find((middleware) => middleware.metadata.name === name)?.spec ?? {};
  const refusesAll = (name: string) => {
    const range = (spec0(name) as { ipAllowList?: { sourceRange?: string[] } }).ipAllowList?.sourceRange ?? [];
    return range.length > 0 && range.every((cidr) => cidr === "255.255.255.255/32");
  };
  const sendsHsts = (name: string) =>
    ((spec0(name) as { headers?: { stsSeconds?: number } }).headers?.stsSeconds ?? 0) > 0;
  const top = Math.max(...spec.routes.map((candidate) => candidate.priority ?? 0));
  const blockedPaths = spec.routes
    .filter(
      (candidate) => (candidate.priority ?? 0) === top && (candidate.middlewares ?? []).some((m) => refusesAll(m.name)),
    )
    .flatMap((candidate) => [...candidate.match.matchAll(/PathPrefix\(`([^`]+)`\)/g)].map((m) => `${m[1] ?? ""}*`));
  const served = spec.routes.filter((candidate) => !(candidate.middlewares ?? []).some((m) => refusesAll(m.name)));
  return {
    blockedPaths,
    tls: spec.tls?.secretName !== undefined && spec.entryPoints.join() === "websecure",
    hsts:
      served.length > 0 && served.every((candidate) => (candidate.middlewares ?? []).some((m) => sendsHsts(m.name))),
  };
}

type TStanzaRepository = { cipherConfig?: { type?: string; encryptionPass?: unknown } };

function kubernetesBackupOf(objects: readonly TObject[], environment: TEnvironmentSpec): TBackupArtifact {
  const stanza = find(objects, "Stanza")?.spec as
    | { stanzaConfiguration: { s3Repositories?: TStanzaRepository[]; azureRepositories?: TStanzaRepository[] } }
    | undefined;
  const s3 = stanza?.stanzaConfiguration.s3Repositories ?? [];
  const azure = stanza?.stanzaConfiguration.azureRepositories ?? [];
  const pluginRepositories = [
    ...s3.map((repository) => ({ repository, azure: false })),
    ...azure.map((repository) => ({ repository, azure: true })),
  ];
  const names = environment.backup.enabled ? environment.backup.repositories : [];
  const cluster = find(objects, "Cluster")?.spec as
    { plugins?: { name: string; isWALArchiver?: boolean }[] } | undefined;
  const archives = (cluster?.plugins ?? []).some(
    (plugin) => plugin.name === "pgbackrest.dalibo.com" && plugin.isWALArchiver === true,
  );
  return {
    repositories: names.map((name) => {
      const scheduled = find(objects, "ScheduledBackup", `${environment.name}-full-${name}`)?.spec as
        { pluginConfiguration?: { parameters?: { selectedRepository?: string } } } | undefined;
      const selected = Number(scheduled?.pluginConfiguration?.parameters?.selectedRepository ?? "0");
      const target = pluginRepositories[selected - 1];
      const cipher =
        target?.repository.cipherConfig?.encryptionPass === undefined
          ? "none"
          : (target.repository.cipherConfig.type ?? "none");
      const dump = find(objects, "CronJob", `database-backup-${name}`);
      const dumped = dump !== undefined && JSON.stringify(dump.spec).includes('"name":"RESTIC_PASSWORD"');
      const database: TBackupWrite =
        dumped && target === undefined
          ? {
              written: true,
              cipher: "restic",
              unverified:
                "a nightly pg_dump encrypted by restic, without WAL: no point-in-time recovery from this repository (the pgbackrest.dalibo.com plugin writes object stores only)",
            }
          : target === undefined || !archives
            ? notWritten(
                "no pgBackRest repository of the cluster's Stanza and no ScheduledBackup select it (the pgbackrest.dalibo.com plugin writes object stores only)",
              )
            : target.azure
              ? {
                  written: true,
                  cipher,
                  unverified:
                    "the pgbackrest.dalibo.com plugin's API declares cipherConfig for S3 repositories; for Azure it is rendered but not known to be applied",
                }
              : { written: true, cipher };
      const job = find(objects, "CronJob", `filestore-backup-${name}`);
      const encrypted = job !== undefined && JSON.stringify(job.spec).includes('"name":"RESTIC_PASSWORD"');
      return {
        name,
        database,
        filestore: encrypted
          ? { written: true, cipher: "restic" }
          : notWritten("no restic CronJob writes the filestore there"),
      };
    }),
  };
}

export function kubernetesArtifactsOf(
  files: readonly TRenderedFile[],
  environment: TEnvironmentSpec,
): TRenderedArtifacts {
  const objects = objectsOf(files);
  const odoo = find(objects, "ConfigMap", "odoo-web-conf")?.data?.["odoo.conf"];
  const web = find(objects, "Deployment", "odoo-web");
  const redis = find(objects, "ConfigMap", "redis-conf")?.data?.["redis.conf"];
  const cluster = find(objects, "Cluster")?.spec as
    | { postgresql: { parameters: Record<string, string>; shared_preload_libraries?: string[]; pg_hba?: string[] } }
    | undefined;
  const ingress = kubernetesIngressOf(objects);
  return {
    ...(odoo === undefined
      ? {}
      : {
          odooConf: {
            ...parseOdooConf(odoo),
            ...(JSON.stringify(web?.spec ?? {}).includes(ADMIN_HASH_REFUSAL)
              ? { admin_passwd: ENFORCED_ADMIN_HASH }
              : {}),
          },
        }),
    ...(cluster === undefined
      ? {}
      : {
          postgresqlConf: {
            ...cluster.postgresql.parameters,
            // CloudNativePG always serves TLS and loads the libraries the Cluster lists.
            ssl: "on",
            shared_preload_libraries: `'${(cluster.postgresql.shared_preload_libraries ?? []).join(",")}'`,
          },
          pgHba: (cluster.postgresql.pg_hba ?? []).join("\n"),
        }),
    ...(redis === undefined ? {} : { redisConf: parseRedisConf(redis) }),
    ...(ingress === undefined ? {} : { ingress }),
    ...(environment.backup.enabled ? { backup: kubernetesBackupOf(objects, environment) } : {}),
  };
}
