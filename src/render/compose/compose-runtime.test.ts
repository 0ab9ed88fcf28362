// Runs the rendered scripts and configs with real programs (sh, redis-server, redis-cli), with the
// container paths mapped into a temp dir: what the Compose bundle says must also work.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { ARTIFACT_CONTROLS } from "../../policy/policy-catalog-artifact.js";
import { evaluatePolicy } from "../../policy/policy-engine.js";
import { freeLoopbackPort } from "../../runtime/local/runtime-instance.js";
import { loadSpecFile } from "../../spec/spec-loader.js";
import { hashOdooAdminPassword } from "../odoo/odoo-admin-password.js";
import { parseOdooConf } from "../odoo/odoo-conf.js";
import type { TRenderedFile } from "../render-types.js";
import { renderComposeEnvironment } from "./compose-render.js";

let scratch = "";
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "carehost-compose-runtime-"));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const prodFiles = async (): Promise<readonly TRenderedFile[]> => {
  const loaded = await loadSpecFile("examples/northwind-health.yaml");
  assert.ok(loaded.ok);
  return renderComposeEnvironment(loaded.spec, "prod");
};

const fileAt = (files: readonly TRenderedFile[], path: string): string => {
  const file = files.find((candidate) => candidate.path === path);
  assert.ok(file, path);
  return file.content;
};

/** Replaces container paths with host paths, longest first so prefixes do not clash. */
const mapPaths = (text: string, mapping: Record<string, string>): string =>
  Object.entries(mapping)
    .sort(([a], [b]) => b.length - a.length)
    .reduce((mapped, [from, to]) => mapped.split(from).join(to), text);

const run = (
  file: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    execFile(file, args, { env: { PATH: process.env.PATH, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr });
    });
  });

void describe("Compose bundle at run time", () => {
  void it("the Odoo entrypoint completes odoo.conf so every odoo.conf control passes, and writes a libpq password file", async () => {
    const files = await prodFiles();
    const root = join(scratch, "odoo");
    const secrets = join(root, "secrets");
    const runtime = join(root, "run");
    const bin = join(root, "bin");
    for (const directory of [secrets, runtime, bin]) await mkdir(directory, { recursive: true });
    const hash = hashOdooAdminPassword("master", Buffer.alloc(16, 3), 1000);
    await writeFile(join(secrets, "odoo-admin-passwd-hash"), `${hash}\n`);
    await writeFile(join(secrets, "odoo-db-password"), "pa:ss\\word\n");
    await writeFile(join(secrets, "redis-odoo-password"), "redis-Pass_1\n");
    await writeFile(join(root, "odoo-web.conf"), fileAt(files, "odoo/odoo-web.conf"));
    // A stand-in for odoo that shows what it was started with.
    await writeFile(
      join(bin, "odoo"),
      '#!/bin/sh\necho "args: $*"\necho "redis: $ODOO_SESSION_REDIS_URL"\ncat "$PGPASSFILE"\n',
    );
    await chmod(join(bin, "odoo"), 0o755);
    const entrypoint = join(root, "entrypoint.sh");
    await writeFile(
      entrypoint,
      mapPaths(fileAt(files, "odoo/entrypoint.sh"), { "/run/secrets": secrets, "/run/odoo": runtime }),
    );

    const started = await run("sh", [entrypoint, join(root, "odoo-web.conf"), "--no-database-list"], {
      PATH: `${bin}:${process.env.PATH ?? ""}`,
    });
    assert.equal(started.code, 0, started.stderr);
    assert.match(started.stdout, new RegExp(`^args: --config ${runtime}/odoo.conf --no-database-list$`, "m"));
    assert.match(
      started.stdout,
      /^redis: rediss:\/\/odoo:redis-Pass_1@redis:6379\/0\?ssl_cert_reqs=required&ssl_ca_certs=\/.*\/secrets\/postgres-ca\.crt$/m,
    );
    assert.match(started.stdout, /^postgres:5432:odoo:odoo:pa\\:ss\\\\word$/m);

    const completed = parseOdooConf(await readFile(join(runtime, "odoo.conf"), "utf8"));
    assert.equal(completed.admin_passwd, hash);
    const loaded = await loadSpecFile("examples/northwind-health.yaml");
    assert.ok(loaded.ok);
    const environment = loaded.spec.environments[0];
    assert.ok(environment);
    const report = evaluatePolicy({
      // CH-ODOO-003 reads the ingress, not odoo.conf.
      controls: ARTIFACT_CONTROLS.filter((control) => control.id.startsWith("CH-ODOO") && control.id !== "CH-ODOO-003"),
      subjects: { artifact: [{ environment, artifacts: { odooConf: completed } }] },
      now: new Date(),
    });
    assert.deepEqual(
      report.results.filter((result) => result.status === "fail").map((result) => result.messages),
      [],
    );

    await writeFile(join(secrets, "odoo-admin-passwd-hash"), "admin\n");
    const refused = await run("sh", [entrypoint, join(root, "odoo-web.conf")], {
      PATH: `${bin}:${process.env.PATH ?? ""}`,
    });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /not a pbkdf2-sha512 hash; refusing to start/);
  });

  void it("Redis starts from the rendered config with the default user off, and the rendered health check passes", async (context) => {
    const files = await prodFiles();
    const root = join(scratch, "redis");
    const paths = { secrets: join(root, "secrets"), acl: join(root, "acl"), data: join(root, "data") };
    for (const directory of Object.values(paths)) await mkdir(directory, { recursive: true });
    await writeFile(join(paths.secrets, "redis-odoo-password"), "redis-Pass_1\n");
    // The bundle's secret files for TLS: a CA (postgres-ca.crt signs Redis's certificate too) and a server certificate.
    const ca = join(paths.secrets, "postgres-ca.crt");
    const caKey = join(root, "ca.key");
    const openssl = async (args: readonly string[]) =>
      assert.equal((await run("openssl", args)).code, 0, args.join(" "));
    await openssl([
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      caKey,
      "-out",
      ca,
      "-days",
      "1",
      "-subj",
      "/CN=test-ca",
    ]);
    const csr = join(root, "redis.csr");
    await openssl([
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      join(paths.secrets, "redis-server.key"),
      "-out",
      csr,
      "-subj",
      "/CN=redis",
    ]);
    await writeFile(join(root, "san.ext"), "subjectAltName=DNS:redis,IP:127.0.0.1\n");
    await openssl([
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      ca,
      "-CAkey",
      caKey,
      "-CAcreateserial",
      "-out",
      join(paths.secrets, "redis-server.crt"),
      "-days",
      "1",
      "-extfile",
      join(root, "san.ext"),
    ]);
    const port = await freeLoopbackPort();
    const mapping = {
      "/run/secrets": paths.secrets,
      "/run/redis": paths.acl,
      "/data": paths.data,
      "/usr/local/etc/redis/redis.conf": join(root, "redis.conf"),
    };
    // Listen on loopback only and on a free port: the test host is not the container.
    const conf = mapPaths(fileAt(files, "redis/redis.conf"), mapping)
      .replace(/^bind .*$/m, "bind 127.0.0.1")
      .replace(/^tls-port 6379$/m, `tls-port ${port}`);
    assert.match(conf, /^port 0$/m, "no plaintext port");
    await writeFile(join(root, "redis.conf"), conf);
    await writeFile(join(root, "entrypoint.sh"), mapPaths(fileAt(files, "redis/entrypoint.sh"), mapping));

    const server: ChildProcess = spawn("sh", [join(root, "entrypoint.sh")], { stdio: "ignore" });
    context.after(() => {
      server.kill("SIGTERM");
    });
    const cli = (args: readonly string[], env: NodeJS.ProcessEnv = {}) =>
      run("redis-cli", ["-p", String(port), "--tls", "--cacert", ca, "--no-auth-warning", ...args], env);
    for (let attempt = 0; attempt < 50; attempt += 1) {
      if ((await cli(["ping"])).stdout.trim() !== "") break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    assert.match((await cli(["ping"])).stdout, /NOAUTH/, "no anonymous access");
    assert.match((await cli(["auth", "default", "redis-Pass_1"])).stdout, /WRONGPASS/, "the default user is off");
    const auth = { REDISCLI_AUTH: "redis-Pass_1" };
    assert.equal(
      (await cli(["--user", "odoo", "set", "odoo:prod:session:1", "x", "EX", "60"], auth)).stdout.trim(),
      "OK",
    );
    assert.match(
      (await cli(["--user", "odoo", "get", "odoo:staging:session:1"], auth)).stdout,
      /NOPERM/,
      "only the environment's own key prefix",
    );
    const plaintext = await run("redis-cli", ["-p", String(port), "ping"]);
    assert.doesNotMatch(plaintext.stdout, /PONG|NOAUTH/, "a client without TLS gets no answer");
    assert.match((await cli(["--user", "odoo", "flushall"], auth)).stdout, /NOPERM/, "dangerous commands are denied");
    assert.match((await cli(["--user", "odoo", "config", "get", "protected-mode"], auth)).stdout, /NOPERM/);
    assert.doesNotMatch(
      await readFile(join(paths.acl, "users.acl"), "utf8"),
      /redis-Pass_1/,
      "the ACL file holds only the hash",
    );

    const compose = parse(fileAt(files, "compose.yaml")) as {
      services: { redis: { healthcheck: { test: string[] } } };
    };
    const [kind, command] = compose.services.redis.healthcheck.test;
    assert.equal(kind, "CMD-SHELL");
    // Compose turns $$ into $; the test host's redis-cli needs the port.
    const healthcheck = mapPaths((command ?? "").replace(/\$\$/g, "$"), mapping).replace(
      "redis-cli ",
      `redis-cli -p ${port} `,
    );
    assert.equal((await run("sh", ["-c", healthcheck])).code, 0);
  });
});
