// The three targets of the data tier agree on every setting that matters for security and
// recovery. Each target's files are parsed back as that target renders them (the local runtime's
// postgresql.conf, pg_hba.conf, pgbackrest.conf, redis.conf and users.acl; the Compose bundle;
// the Kubernetes manifests) into one view, and the views must be equal. A renderer that drifts
// from the model (a different archive_timeout, a missing pgaudit, a repository left out, another
// cipher or retention) fails here.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { pgbackrestRepositoriesOf } from "../../policy/policy-rendered-files.js";
import { instanceNameOf } from "../../spec/spec-hosting.js";
import { localArtifactSubjects, localRenderedFiles } from "../../runtime/local/local-render-offline.js";
import { parsePostgresqlConf } from "../../runtime/local/postgres-config.js";
import { renderRedisAcl } from "../../runtime/local/redis-config.js";
import { loadSpecFile } from "../../spec/spec-loader.js";
import type { TEnvironmentSpec, TOrganizationSpec } from "../../spec/spec-schema.js";
import { renderComposeEnvironment } from "../compose/compose-render.js";
import { renderKubernetesEnvironment } from "../kubernetes/kubernetes-render.js";
import type { TRenderedFile } from "../render-types.js";
import { filestoreForgetArguments } from "./data-tier-backup.js";
import { parseRedisConf, redisKeyPrefixOf } from "./data-tier-redis.js";

/** What must be the same on every target, in one shape. */
type TDataTierView = {
  readonly postgres: Readonly<Record<string, string | undefined>>;
  readonly archiveTimeoutSeconds: number | undefined;
  /**
   * The network rules of pg_hba as "type user family method" (local socket rules, and which
   * networks clients come from, loopback here or the cluster's, are each target's own).
   */
  readonly hba: readonly string[];
  readonly odoo: Readonly<Record<string, string | undefined>>;
  readonly backup?: {
    readonly databaseRepositories: readonly string[];
    readonly ciphers: readonly string[];
    readonly retention: string;
    readonly filestoreRepositories: readonly string[];
    readonly filestoreForget: readonly string[];
  };
  readonly redis?: Readonly<Record<string, string | undefined>> & { readonly acl: string };
};

const demo = async (): Promise<TOrganizationSpec> => {
  const loaded = await loadSpecFile("examples/northwind-health.yaml");
  assert.ok(loaded.ok);
  return loaded.spec;
};

const unquote = (value: string | undefined) => value?.trim().replace(/^'(.*)'$/, "$1");
const seconds = (value: string | undefined) =>
  value === undefined ? undefined : Number(unquote(value)?.replace(/s$/, ""));

/** The settings every target writes from the model, unquoted (Kubernetes takes them unquoted). */
const POSTGRES_KEYS = [
  "ssl",
  "ssl_min_protocol_version",
  "password_encryption",
  "log_connections",
  "log_disconnections",
  "shared_preload_libraries",
  "pgaudit.log",
  "pgaudit.log_relation",
  "log_statement",
] as const;
const postgresView = (conf: Readonly<Record<string, string>>) =>
  Object.fromEntries(POSTGRES_KEYS.map((key) => [key, unquote(conf[key])]));

const familyOf = (address: string | undefined) => (address?.includes(":") === true ? "ipv6" : "ipv4");
const hbaView = (text: string) =>
  [
    ...new Set(
      text
        .split("\n")
        .map((line) => line.replace(/#.*$/, "").trim().split(/\s+/))
        .filter((fields) => fields[0] !== undefined && fields[0] !== "" && fields[0] !== "local")
        .map(([type, database, user, address, method]) => [type, database, user, familyOf(address), method].join(" ")),
    ),
  ].sort();

const ODOO_KEYS = ["list_db", "proxy_mode", "db_sslmode"] as const;
/** The database's name is each target's; that dbfilter serves exactly that one is not. */
const odooView = (conf: Readonly<Record<string, string>>) => ({
  ...Object.fromEntries(ODOO_KEYS.map((key) => [key, conf[key]])),
  dbfilterPinned: String(conf.db_name !== undefined && conf.dbfilter === `^${conf.db_name}$`),
});

const REDIS_KEYS = [
  "port",
  "protected-mode",
  "tls-auth-clients",
  "tls-protocols",
  "maxmemory",
  "maxmemory-policy",
  "appendonly",
  "save",
  "enable-debug-command",
  "enable-module-command",
] as const;
/** The ACL line of Odoo's user from its permissions on: the user's name and hash are each target's. */
const aclRules = (line: string) => line.replace(/^user \S+ on #(\{\{[^}]*\}\}|\S+) /, "");
const redisView = (conf: Readonly<Record<string, string>>, aclLine: string) => ({
  ...Object.fromEntries(REDIS_KEYS.map((key) => [key, conf[key]])),
  tls: String(Number(conf["tls-port"] ?? "0") > 0),
  acl: aclRules(aclLine),
});

const pgbackrestView = (text: string, names: readonly string[]) => {
  const repositories = pgbackrestRepositoriesOf(text);
  const retention = [
    ...new Set(
      repositories.map(({ index }) => {
        const type = new RegExp(`^repo${index}-retention-full-type=(\\S+)$`, "m").exec(text)?.[1];
        const full = new RegExp(`^repo${index}-retention-full=(\\S+)$`, "m").exec(text)?.[1];
        return `${type}:${full}`;
      }),
    ),
  ];
  assert.equal(retention.length, 1, "one retention for every repository");
  assert.deepEqual(repositories.map(({ name }) => name).sort(), [...names].sort());
  return {
    databaseRepositories: repositories.map(({ name }) => name).sort(),
    ciphers: [...new Set(repositories.map(({ cipher }) => cipher))],
    retention: retention[0] ?? "",
  };
};

function localView(organization: TOrganizationSpec, environment: TEnvironmentSpec): TDataTierView {
  const files = localRenderedFiles(organization);
  const cluster = files.clusterFiles.get(instanceNameOf(environment));
  assert.ok(cluster, environment.name);
  const conf = parsePostgresqlConf(cluster.postgresqlConf);
  const odoo =
    localArtifactSubjects(organization).find((subject) => subject.environment.name === environment.name)?.artifacts
      .odooConf ?? {};
  const redisText = files.redisFiles.get(instanceNameOf(environment));
  const backup = environment.backup;
  return {
    postgres: postgresView(conf),
    // An environment without backups may share a local cluster with one that has them.
    archiveTimeoutSeconds: environment.backup.enabled ? seconds(conf.archive_timeout) : undefined,
    hba: hbaView(cluster.pgHba),
    odoo: odooView(odoo),
    ...(backup.enabled
      ? {
          backup: {
            ...pgbackrestView(cluster.pgbackrestConf ?? "", backup.repositories),
            // Every repository written holds the filestore too (clusterRepositoriesOf), and the
            // runtime's resticForget builds its arguments with the model's filestoreForgetArguments.
            filestoreRepositories: [...backup.repositories].sort(),
            filestoreForget: filestoreForgetArguments(backup.retention),
          },
        }
      : {}),
    ...(environment.redis.enabled && redisText !== undefined
      ? {
          redis: redisView(
            parseRedisConf(redisText),
            renderRedisAcl("admin", [{ name: "odoo", password: "p", keyPrefix: redisKeyPrefixOf(environment) }])
              .split("\n")
              .find((line) => line.startsWith("user odoo ")) ?? "",
          ),
        }
      : {}),
  };
}

const contentOf = (files: readonly TRenderedFile[], path: string) => {
  const file = files.find((candidate) => candidate.path === path);
  assert.ok(file, path);
  return file.content;
};

/** restic's `forget` arguments of a rendered command line, from --keep-last on. */
const forgetArguments = (line: string) => line.slice(line.indexOf("--keep-last")).trim().split(/\s+/);

function composeView(organization: TOrganizationSpec, environment: TEnvironmentSpec): TDataTierView {
  const files = renderComposeEnvironment(organization, environment.name);
  const conf = parsePostgresqlConf(contentOf(files, "postgres/postgresql.conf"));
  const backup = environment.backup;
  const script = backup.enabled ? contentOf(files, "backup/backup.sh") : "";
  const entrypoint = environment.redis.enabled ? contentOf(files, "redis/entrypoint.sh") : "";
  return {
    postgres: postgresView(conf),
    // An environment without backups may share a local cluster with one that has them.
    archiveTimeoutSeconds: environment.backup.enabled ? seconds(conf.archive_timeout) : undefined,
    hba: hbaView(contentOf(files, "postgres/pg_hba.conf")),
    odoo: odooView(
      Object.fromEntries(
        contentOf(files, "odoo/odoo-web.conf")
          .split("\n")
          .flatMap((line) => {
            const match = /^\s*([a-z_]+)\s*=\s*(.*)$/.exec(line);
            return match?.[1] === undefined ? [] : [[match[1], (match[2] ?? "").trim()]];
          }),
      ),
    ),
    ...(backup.enabled
      ? {
          backup: {
            ...pgbackrestView(contentOf(files, "pgbackrest/pgbackrest.conf"), backup.repositories),
            filestoreRepositories: [...script.matchAll(/^# filestore -> (\S+)$/gm)]
              .map((match) => match[1] ?? "")
              .sort(),
            filestoreForget: [
              ...new Set(
                script
                  .split("\n")
                  .filter((line) => line.includes(" forget "))
                  .map((line) => forgetArguments(line).join(" ")),
              ),
            ].flatMap((line) => line.split(" ")),
          },
        }
      : {}),
    ...(environment.redis.enabled
      ? {
          redis: redisView(
            parseRedisConf(contentOf(files, "redis/redis.conf")),
            (/printf '(user odoo [^']*)\\n'/.exec(entrypoint)?.[1] ?? "").replace("%s", "hash"),
          ),
        }
      : {}),
  };
}

type TObject = {
  kind: string;
  metadata: { name: string };
  spec: Record<string, unknown>;
  data?: Record<string, string>;
};

function kubernetesView(organization: TOrganizationSpec, environment: TEnvironmentSpec): TDataTierView {
  const objects = renderKubernetesEnvironment(organization, environment.name).map(
    (file) => parse(file.content) as TObject,
  );
  const find = (kind: string, name?: string) =>
    objects.find((object) => object.kind === kind && (name === undefined || object.metadata.name === name));
  const cluster = find("Cluster")?.spec as {
    postgresql: { parameters: Record<string, string>; shared_preload_libraries: string[]; pg_hba: string[] };
  };
  const conf: Record<string, string> = {
    ...cluster.postgresql.parameters,
    ssl: "on",
    shared_preload_libraries: cluster.postgresql.shared_preload_libraries.join(","),
  };
  const backup = environment.backup;
  const stanza = find("Stanza")?.spec as
    | {
        stanzaConfiguration: Record<
          string,
          { cipherConfig: { type: string }; retentionPolicy: { fullType: string; full: number } }[]
        >;
      }
    | undefined;
  const stanzaRepositories = [
    ...(stanza?.stanzaConfiguration.s3Repositories ?? []),
    ...(stanza?.stanzaConfiguration.azureRepositories ?? []),
  ];
  const cronJobs = objects.filter((object) => object.kind === "CronJob");
  const scripts = cronJobs.map((job) => JSON.stringify(job.spec));
  const acl =
    (
      find("ExternalSecret", "redis-acl")?.spec as
        { target?: { template?: { data?: Record<string, string> } } } | undefined
    )?.target?.template?.data?.["users.acl"] ?? "";
  return {
    postgres: postgresView(conf),
    // An environment without backups may share a local cluster with one that has them.
    archiveTimeoutSeconds: environment.backup.enabled ? seconds(conf.archive_timeout) : undefined,
    hba: hbaView(cluster.postgresql.pg_hba.join("\n")),
    odoo: odooView(
      Object.fromEntries(
        (find("ConfigMap", "odoo-web-conf")?.data?.["odoo.conf"] ?? "").split("\n").flatMap((line) => {
          const match = /^\s*([a-z_]+)\s*=\s*(.*)$/.exec(line);
          return match?.[1] === undefined ? [] : [[match[1], (match[2] ?? "").trim()]];
        }),
      ),
    ),
    ...(backup.enabled
      ? {
          backup: {
            // The object stores through the plugin's Stanza, each selected by a ScheduledBackup; a
            // posix repository through an encrypted dump (reported not enforced: no WAL there).
            databaseRepositories: backup.repositories
              .filter(
                (name) =>
                  find("ScheduledBackup", `${environment.name}-full-${name}`) !== undefined ||
                  find("CronJob", `database-backup-${name}`) !== undefined,
              )
              .sort(),
            ciphers:
              stanzaRepositories.length === 0 &&
              cronJobs.some((job) => job.metadata.name.startsWith("database-backup-"))
                ? ["restic"]
                : [...new Set(stanzaRepositories.map((repository) => repository.cipherConfig.type))],
            retention:
              stanzaRepositories.length === 0
                ? "restic-forget"
                : [
                    ...new Set(
                      stanzaRepositories.map(
                        (repository) => `${repository.retentionPolicy.fullType}:${repository.retentionPolicy.full}`,
                      ),
                    ),
                  ].join(),
            filestoreRepositories: cronJobs
              .filter((job) => job.metadata.name.startsWith("filestore-backup-"))
              .map((job) => job.metadata.name.slice("filestore-backup-".length))
              .sort(),
            filestoreForget: [
              ...new Set(scripts.map((text) => forgetArguments(/forget [^"\\]*/.exec(text)?.[0] ?? "").join(" "))),
            ].flatMap((line) => line.split(" ")),
          },
        }
      : {}),
    ...(environment.redis.enabled
      ? {
          redis: redisView(
            parseRedisConf(find("ConfigMap", "redis-conf")?.data?.["redis.conf"] ?? ""),
            acl.split("\n").find((line) => line.startsWith("user odoo ")) ?? "",
          ),
        }
      : {}),
  };
}

/**
 * The one known difference, reported by CH-BAK-008 as not enforced: the pgbackrest.dalibo.com
 * plugin writes object stores only, so a cluster whose repositories are all posix has no Stanza:
 * its database goes there as a pg_dump encrypted by restic, kept by restic's tiers.
 */
const kubernetesExpected = (
  local: TDataTierView,
  organization: TOrganizationSpec,
  environment: TEnvironmentSpec,
): TDataTierView => {
  const posixOnly =
    environment.backup.enabled &&
    environment.backup.repositories.every(
      (name) => organization.backupRepositories.find((repository) => repository.name === name)?.type === "posix",
    );
  return posixOnly && local.backup !== undefined
    ? { ...local, backup: { ...local.backup, ciphers: ["restic"], retention: "restic-forget" } }
    : local;
};

void describe("the data tier on every target", () => {
  void it("agrees on statement auditing, TLS, archive_timeout, pg_hba, odoo.conf, repositories, cipher, retention and Redis", async () => {
    const organization = await demo();
    for (const environment of organization.environments) {
      const local = localView(organization, environment);
      const compose = composeView(organization, environment);
      const kubernetes = kubernetesView(organization, environment);
      assert.deepEqual(compose, local, `${environment.name}: compose vs local`);
      assert.deepEqual(
        kubernetes,
        kubernetesExpected(local, organization, environment),
        `${environment.name}: kubernetes vs local`,
      );
    }
  });

  void it("holds what each setting must be, so agreement is not agreement on a wrong value", async () => {
    const organization = await demo();
    const prod = organization.environments.find((environment) => environment.name === "prod");
    assert.ok(prod);
    const view = localView(organization, prod);
    assert.equal(view.postgres.shared_preload_libraries, "pgaudit");
    assert.equal(view.postgres["pgaudit.log"], "read, write, ddl, role");
    assert.equal(view.postgres.ssl, "on");
    // A quarter of the 15-minute RPO.
    assert.equal(view.archiveTimeoutSeconds, 225);
    assert.deepEqual(view.hba, [
      "hostnossl all all ipv4 reject",
      "hostnossl all all ipv6 reject",
      "hostssl all all ipv4 scram-sha-256",
      "hostssl all all ipv6 scram-sha-256",
    ]);
    assert.equal(view.odoo.dbfilterPinned, "true");
    assert.equal(view.odoo.list_db, "False");
    assert.deepEqual(view.backup?.databaseRepositories, ["local", "offsite"]);
    assert.deepEqual(view.backup?.filestoreRepositories, ["local", "offsite"]);
    assert.deepEqual(view.backup?.ciphers, ["aes-256-cbc"]);
    assert.equal(view.backup?.retention, "time:372");
    assert.equal(view.redis?.port, "0");
    assert.equal(view.redis?.tls, "true");
    assert.equal(view.redis?.["maxmemory-policy"], "volatile-lru");
    assert.match(
      view.redis?.acl ?? "",
      /^resetkeys ~odoo:prod:\* resetchannels -@all .* -@dangerous -scan -keys -randomkey$/,
    );
  });
});
