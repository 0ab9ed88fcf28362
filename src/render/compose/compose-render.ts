// A Docker Compose bundle for one environment on a dedicated host: compose.yaml plus the config
// files it mounts. Pure and deterministic (STYLE.md item 6). Only Traefik publishes ports; every
// other service sits on internal networks. The bundle names secret files but holds none: it is
// committed to Git by the GitOps delivery.
import { stringify } from "yaml";
import type { TEnvironmentSpec, TOrganizationSpec } from "../../spec/spec-schema.js";
import type { TEnvironmentRenderer, TRenderedFile } from "../render-types.js";
import {
  CRON_SERVICE_HTTP_WORKERS,
  ODOO_HTTP_PORT,
  ODOO_PATHS,
  odooCpus,
  odooMemoryMiB,
  renderOdooConfs,
  renderOdooEntrypoint,
} from "./compose-odoo.js";
import {
  POSTGRES_PATHS,
  postgresCpus,
  postgresMemoryMiB,
  renderInitRoleScript,
  renderPgbackrestConf,
  renderPgHba,
  renderPostgresDockerfile,
  renderPostgresEntrypoint,
  renderPostgresqlConf,
} from "./compose-postgres.js";
import { BACKUP_PATHS, BACKUP_USER, renderBackupCrontab, renderBackupScript } from "./compose-backup.js";
import { redisKeyPrefixOf } from "../data-tier/data-tier-redis.js";
import { REDIS_PATHS, redisMemoryMiB, renderRedisConf, renderRedisEntrypoint } from "./compose-redis.js";
import { backupRepositoriesOf, composeSecrets, renderSecretsReadme, SECRET_NAMES } from "./compose-secrets.js";
import { TRAEFIK_PATHS, TRAEFIK_PORTS, traefikDynamicConfig, traefikStaticConfig } from "./compose-traefik.js";

/** Images carehost runs next to Odoo. Tags, not digests: see the note in the final report / README. */
export type TComposePlatformImages = {
  readonly traefik: string;
  readonly redis: string;
  /**
   * The base of the bundle's PostgreSQL image: postgres/Dockerfile adds pgaudit, pgBackRest and
   * restic to it (the entrypoint refuses to start without pgaudit, or without pgBackRest when
   * backups are enabled).
   */
  readonly postgres: (postgresVersion: number) => string;
};

export const DEFAULT_PLATFORM_IMAGES: TComposePlatformImages = {
  traefik: "docker.io/library/traefik:v3.5",
  redis: "docker.io/library/redis:7.4-bookworm",
  postgres: (postgresVersion) => `docker.io/library/postgres:${postgresVersion}-bookworm`,
};

type TService = Record<string, unknown>;

// Shared objects are written out in full: YAML anchors would make a reviewer of the diff chase aliases.
const YAML_OPTIONS = { lineWidth: 0, aliasDuplicateObjects: false } as const;

const LOGGING = { driver: "json-file", options: { "max-size": "50m", "max-file": "5" } } as const;

/** The hardening every service gets; callers add tmpfs mounts for the paths their process writes. */
const hardened = (user: string, tmpfs: readonly string[]) => ({
  user,
  read_only: true,
  tmpfs: [...tmpfs],
  cap_drop: ["ALL"],
  security_opt: ["no-new-privileges:true"],
  restart: "unless-stopped",
  logging: LOGGING,
});

const limits = (cpus: number, memoryMiB: number, pids: number) => ({
  resources: { limits: { cpus: String(cpus), memory: `${memoryMiB}M`, pids } },
});

const config = (source: string, target: string) => ({ source, target });

function assertPinned(environment: TEnvironmentSpec): void {
  // Production runs exactly what was approved: a tag can be moved, a digest cannot.
  if (environment.tier === "production" && !/@sha256:[0-9a-f]{64}$/.test(environment.odoo.image)) {
    throw new TypeError(
      `environment ${JSON.stringify(environment.name)} is production but its Odoo image ${JSON.stringify(environment.odoo.image)} is not pinned by @sha256 digest`,
    );
  }
}

const findEnvironment = (organization: TOrganizationSpec, environmentName: string): TEnvironmentSpec => {
  const environment = organization.environments.find((candidate) => candidate.name === environmentName);
  if (environment === undefined) {
    const known = organization.environments.map((candidate) => candidate.name).join(", ");
    throw new TypeError(
      `environment ${JSON.stringify(environmentName)} is not in organization ${JSON.stringify(organization.metadata.name)} (known: ${known})`,
    );
  }
  return environment;
};

const header = (organization: TOrganizationSpec, environment: TEnvironmentSpec): string => {
  const notes = [
    `# Rendered by carehost for ${organization.metadata.name}/${environment.name} (${environment.tier}, ${environment.dataClass}); edits are overwritten and reported as drift.`,
    "# Secret files are not part of this bundle: see secrets/README.md.",
  ];
  if (environment.database.highAvailability) {
    notes.push(
      "# database.highAvailability is not provided by the compose target (one host); the kubernetes target runs a standby.",
    );
  }
  if (environment.backup.enabled) {
    notes.push(
      `# Backups: the backup service runs pgBackRest and restic to every repository (backup/crontab); run one now with: docker compose exec backup sh ${BACKUP_PATHS.script} full`,
    );
  }
  return `${notes.join("\n")}\n`;
};

export type TComposeRendererDeps = { readonly platformImages: TComposePlatformImages };

export const composeRendererFactory = ({ platformImages }: TComposeRendererDeps): TEnvironmentRenderer =>
  function renderCompose(organization, environmentName) {
    const environment = findEnvironment(organization, environmentName);
    assertPinned(environment);
    const backupEnabled = environment.backup.enabled;
    const redisEnabled = environment.redis.enabled;
    const repositories = backupRepositoriesOf(organization, environment);
    // Cloud repositories are reached over the internet; posix repositories are volumes.
    const needsBackupEgress = repositories.some((repository) => repository.type !== "posix");
    const secrets = composeSecrets(organization, environment);
    const postgresImage = `carehost/postgres:${environment.database.postgresVersion}-${organization.metadata.name}-${environment.name}`;
    const posixVolumes = repositories
      .filter((repository) => repository.type === "posix")
      .map((repository) => `pgbackrest-${repository.name}:${POSTGRES_PATHS.posixRepositoryRoot}/${repository.name}`);
    const secretNames = new Set(secrets.map((secret) => secret.name));
    const secretsFor = (service: string) =>
      secrets
        .filter((secret) => secret.usedBy.some((user) => user.split(" ")[0] === service))
        .map((secret) => secret.name);
    const labels = {
      "io.carehost.organization": organization.metadata.name,
      "io.carehost.environment": environment.name,
      "io.carehost.tier": environment.tier,
      "io.carehost.data-class": environment.dataClass,
    };
    const odooConfs = renderOdooConfs(environment);

    const files: TRenderedFile[] = [
      { path: "odoo/odoo-web.conf", content: odooConfs.web },
      { path: "odoo/odoo-cron.conf", content: odooConfs.cron },
      { path: "odoo/entrypoint.sh", content: renderOdooEntrypoint(environment) },
      { path: "traefik/traefik.yaml", content: stringify(traefikStaticConfig(), YAML_OPTIONS) },
      { path: "traefik/dynamic.yaml", content: stringify(traefikDynamicConfig(environment), YAML_OPTIONS) },
      { path: "postgres/postgresql.conf", content: renderPostgresqlConf(environment) },
      { path: "postgres/pg_hba.conf", content: renderPgHba() },
      { path: "postgres/initdb/10-odoo-role.sh", content: renderInitRoleScript(environment) },
      {
        path: "postgres/Dockerfile",
        content: renderPostgresDockerfile(environment, platformImages.postgres(environment.database.postgresVersion)),
      },
      { path: "postgres/entrypoint.sh", content: renderPostgresEntrypoint(organization, environment) },
      { path: "secrets/README.md", content: renderSecretsReadme(organization, environment, secrets) },
    ];
    if (backupEnabled) {
      files.push(
        { path: "pgbackrest/pgbackrest.conf", content: renderPgbackrestConf(organization, environment) },
        { path: "backup/backup.sh", content: renderBackupScript(organization, environment) },
        { path: "backup/crontab", content: renderBackupCrontab(environment) },
      );
    }
    if (redisEnabled) {
      files.push(
        { path: "redis/redis.conf", content: renderRedisConf(environment) },
        { path: "redis/entrypoint.sh", content: renderRedisEntrypoint(environment) },
      );
    }

    const odooHealthcheck = {
      // The Odoo image has Python but not necessarily curl.
      test: [
        "CMD",
        "python3",
        "-c",
        `import sys, urllib.request; sys.exit(0 if urllib.request.urlopen("http://127.0.0.1:${ODOO_HTTP_PORT}/web/health", timeout=5).status == 200 else 1)`,
      ],
      interval: "30s",
      timeout: "10s",
      retries: 3,
      start_period: "120s",
    };
    const odooDependsOn = {
      postgres: { condition: "service_healthy" },
      ...(redisEnabled ? { redis: { condition: "service_healthy" } } : {}),
    };
    const odooEnvironment = {
      PGSSLROOTCERT: `/run/secrets/${SECRET_NAMES.postgresCa}`,
      ...(redisEnabled ? { ODOO_SESSION_REDIS: "1", ODOO_SESSION_REDIS_PREFIX: redisKeyPrefixOf(environment) } : {}),
    };
    const odooTmpfs = ["/tmp", ODOO_PATHS.runtimeDir];
    const odooVolumes = [`odoo-data:${ODOO_PATHS.dataDir}`];
    const odooLabels = {
      ...labels,
      "io.carehost.odoo-version": environment.odoo.version,
      ...(environment.odoo.customAddons === undefined
        ? {}
        : {
            "io.carehost.custom-addons": `${environment.odoo.customAddons.repository}@${environment.odoo.customAddons.ref}`,
          }),
    };

    const services: Record<string, TService> = {
      traefik: {
        image: platformImages.traefik,
        ...hardened("65532:65532", ["/tmp"]),
        command: [`--configFile=${TRAEFIK_PATHS.static}`],
        ports: [
          { target: TRAEFIK_PORTS.websecure, published: "443", protocol: "tcp", mode: "host" },
          { target: TRAEFIK_PORTS.web, published: "80", protocol: "tcp", mode: "host" },
        ],
        networks: ["edge", "app"],
        configs: [config("traefik-static", TRAEFIK_PATHS.static), config("traefik-dynamic", TRAEFIK_PATHS.dynamic)],
        secrets: secretsFor("traefik"),
        healthcheck: {
          test: [
            "CMD",
            "traefik",
            "healthcheck",
            "--ping",
            `--ping.entryPoint=ping`,
            `--entryPoints.ping.address=:${TRAEFIK_PORTS.ping}`,
          ],
          interval: "30s",
          timeout: "5s",
          retries: 3,
        },
        deploy: limits(1, 512, 256),
        labels,
      },
      "odoo-web": {
        image: environment.odoo.image,
        ...hardened("odoo", odooTmpfs),
        entrypoint: ["/bin/sh", ODOO_PATHS.entrypoint, ODOO_PATHS.webConf],
        environment: odooEnvironment,
        networks: ["app", "data"],
        volumes: odooVolumes,
        configs: [config("odoo-web-conf", ODOO_PATHS.webConf), config("odoo-entrypoint", ODOO_PATHS.entrypoint)],
        secrets: secretsFor("odoo-web"),
        depends_on: odooDependsOn,
        healthcheck: odooHealthcheck,
        stop_grace_period: "60s",
        deploy: limits(odooCpus(environment.odoo.workers), odooMemoryMiB(environment.odoo.workers), 1024),
        labels: odooLabels,
      },
      "odoo-cron": {
        image: environment.odoo.image,
        ...hardened("odoo", odooTmpfs),
        entrypoint: ["/bin/sh", ODOO_PATHS.entrypoint, ODOO_PATHS.cronConf],
        environment: { PGSSLROOTCERT: `/run/secrets/${SECRET_NAMES.postgresCa}` },
        // Not on the app network: Traefik cannot reach it, and it serves no user.
        networks: ["data"],
        volumes: odooVolumes,
        configs: [config("odoo-cron-conf", ODOO_PATHS.cronConf), config("odoo-entrypoint", ODOO_PATHS.entrypoint)],
        secrets: secretsFor("odoo-cron"),
        depends_on: { postgres: { condition: "service_healthy" } },
        healthcheck: odooHealthcheck,
        stop_grace_period: "120s",
        deploy: limits(
          Math.max(1, environment.odoo.cronWorkers),
          odooMemoryMiB(CRON_SERVICE_HTTP_WORKERS + environment.odoo.cronWorkers),
          512,
        ),
        labels: odooLabels,
      },
      postgres: {
        image: postgresImage,
        build: { context: "./postgres" },
        ...hardened("postgres", ["/tmp"]),
        entrypoint: ["/bin/sh", POSTGRES_PATHS.entrypoint],
        environment: {
          PGDATA: POSTGRES_PATHS.data,
          POSTGRES_USER: "postgres",
          POSTGRES_PASSWORD_FILE: `/run/secrets/${SECRET_NAMES.postgresSuperuserPassword}`,
          POSTGRES_INITDB_ARGS: "--auth-local=scram-sha-256 --auth-host=scram-sha-256 --data-checksums",
        },
        networks: needsBackupEgress ? ["data", "backup-egress"] : ["data"],
        volumes: [
          `postgres-data:${POSTGRES_PATHS.data}`,
          // A volume, not a tmpfs: the backup service reaches the server through this socket.
          `postgres-socket:${POSTGRES_PATHS.socketDir}`,
          ...posixVolumes,
        ],
        configs: [
          config("postgres-conf", POSTGRES_PATHS.conf),
          config("postgres-hba", POSTGRES_PATHS.hba),
          config("postgres-init-role", POSTGRES_PATHS.initRole),
          config("postgres-entrypoint", POSTGRES_PATHS.entrypoint),
          ...(backupEnabled ? [config("pgbackrest-conf", POSTGRES_PATHS.pgbackrestConf)] : []),
        ],
        secrets: secretsFor("postgres"),
        healthcheck: {
          test: ["CMD", "pg_isready", "-h", POSTGRES_PATHS.socketDir, "-U", "postgres", "-d", "postgres"],
          interval: "10s",
          timeout: "5s",
          retries: 5,
          start_period: "60s",
        },
        stop_grace_period: "120s",
        shm_size: "256m",
        deploy: limits(postgresCpus(environment), postgresMemoryMiB(environment), 1024),
        labels,
      },
    };
    if (backupEnabled) {
      services.backup = {
        image: postgresImage,
        ...hardened(BACKUP_USER, ["/tmp"]),
        entrypoint: ["busybox", "crond", "-f", "-d", "8", "-c", BACKUP_PATHS.crontabs],
        // Only the backup-egress network leads out; data reaches the server's socket volume.
        networks: needsBackupEgress ? ["data", "backup-egress"] : ["data"],
        volumes: [
          `postgres-data:${POSTGRES_PATHS.data}:ro`,
          `postgres-socket:${POSTGRES_PATHS.socketDir}`,
          `odoo-data:${ODOO_PATHS.dataDir}:ro`,
          ...posixVolumes,
        ],
        configs: [
          config("pgbackrest-conf", POSTGRES_PATHS.pgbackrestConf),
          config("backup-script", BACKUP_PATHS.script),
          config("backup-crontab", `${BACKUP_PATHS.crontabs}/${BACKUP_USER}`),
        ],
        secrets: secretsFor("backup"),
        depends_on: { postgres: { condition: "service_healthy" } },
        // What a backup needs first: the server, through the shared socket.
        healthcheck: {
          test: ["CMD", "pg_isready", "-h", POSTGRES_PATHS.socketDir, "-U", "postgres", "-d", "postgres"],
          interval: "60s",
          timeout: "5s",
          retries: 3,
        },
        deploy: limits(1, 1024, 256),
        labels: { ...labels, "io.carehost.purpose": "pgBackRest and restic to every repository of the environment" },
      };
    }
    if (redisEnabled) {
      services.redis = {
        image: platformImages.redis,
        ...hardened("redis", ["/tmp", REDIS_PATHS.aclDir]),
        entrypoint: ["/bin/sh", REDIS_PATHS.entrypoint],
        networks: ["data"],
        volumes: [`redis-data:${REDIS_PATHS.data}`],
        configs: [config("redis-conf", REDIS_PATHS.conf), config("redis-entrypoint", REDIS_PATHS.entrypoint)],
        secrets: secretsFor("redis"),
        healthcheck: {
          // The password goes through REDISCLI_AUTH, not argv.
          test: [
            "CMD-SHELL",
            `REDISCLI_AUTH="$$(cat /run/secrets/${SECRET_NAMES.redisOdooPassword})" redis-cli --tls --cacert /run/secrets/${SECRET_NAMES.postgresCa} --no-auth-warning --user odoo ping | grep -qx PONG`,
          ],
          interval: "10s",
          timeout: "5s",
          retries: 5,
        },
        deploy: limits(1, redisMemoryMiB(environment), 256),
        labels,
      };
    }

    const configs: Record<string, { file: string }> = {
      "traefik-static": { file: "./traefik/traefik.yaml" },
      "traefik-dynamic": { file: "./traefik/dynamic.yaml" },
      "odoo-web-conf": { file: "./odoo/odoo-web.conf" },
      "odoo-cron-conf": { file: "./odoo/odoo-cron.conf" },
      "odoo-entrypoint": { file: "./odoo/entrypoint.sh" },
      "postgres-conf": { file: "./postgres/postgresql.conf" },
      "postgres-hba": { file: "./postgres/pg_hba.conf" },
      "postgres-init-role": { file: "./postgres/initdb/10-odoo-role.sh" },
      "postgres-entrypoint": { file: "./postgres/entrypoint.sh" },
      ...(backupEnabled
        ? {
            "pgbackrest-conf": { file: "./pgbackrest/pgbackrest.conf" },
            "backup-script": { file: "./backup/backup.sh" },
            "backup-crontab": { file: "./backup/crontab" },
          }
        : {}),
      ...(redisEnabled
        ? { "redis-conf": { file: "./redis/redis.conf" }, "redis-entrypoint": { file: "./redis/entrypoint.sh" } }
        : {}),
    };
    const volumes: Record<string, Record<string, unknown>> = {
      "odoo-data": { labels },
      "postgres-data": { labels },
      "postgres-socket": { labels },
      ...(redisEnabled ? { "redis-data": { labels } } : {}),
      ...Object.fromEntries(
        repositories
          .filter((repository) => repository.type === "posix")
          .map((repository) => [
            `pgbackrest-${repository.name}`,
            { labels: { ...labels, "io.carehost.backup-path": repository.path } },
          ]),
      ),
    };
    const networks: Record<string, Record<string, unknown>> = {
      // The only network with a route out; only Traefik joins it.
      edge: { labels },
      app: { internal: true, labels },
      data: { internal: true, labels },
      ...(needsBackupEgress
        ? {
            "backup-egress": {
              labels: {
                ...labels,
                "io.carehost.purpose": "pgBackRest and restic to cloud repositories; publishes nothing",
              },
            },
          }
        : {}),
    };
    const compose = {
      name: `${organization.metadata.name}-${environment.name}`,
      services,
      networks,
      volumes,
      configs,
      secrets: Object.fromEntries([...secretNames].map((name) => [name, { file: `./secrets/${name}` }])),
    };
    files.unshift({
      path: "compose.yaml",
      content: `${header(organization, environment)}${stringify(compose, YAML_OPTIONS)}`,
    });
    return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  };

/** The Compose renderer with carehost's default platform images. */
export const renderComposeEnvironment: TEnvironmentRenderer = composeRendererFactory({
  platformImages: DEFAULT_PLATFORM_IMAGES,
});
