import assert from "node:assert/strict";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { validateKubernetesObject } from "../../../test/kubernetes-validate.js";
import { loadSpecFile } from "../../spec/spec-loader.js";
import type { TOrganizationSpec } from "../../spec/spec-schema.js";
import { kubernetesObjects, renderKubernetesEnvironment } from "./kubernetes-render.js";

const SNAPSHOT_DIR = new URL("./__snapshots__/prod/", import.meta.url).pathname;

const demo = async (): Promise<TOrganizationSpec> => {
  const loaded = await loadSpecFile("examples/northwind-health.yaml");
  assert.ok(loaded.ok);
  return loaded.spec;
};

type TPodSpec = {
  containers: {
    image: string;
    securityContext?: Record<string, unknown>;
    resources?: { limits?: unknown; requests?: unknown };
  }[];
};

void describe("Kubernetes renderer", () => {
  void it("renders every object of every demo environment valid against its schema", async () => {
    const spec = await demo();
    let count = 0;
    for (const environment of spec.environments) {
      for (const file of renderKubernetesEnvironment(spec, environment.name)) {
        const object = parse(file.content) as { apiVersion: string; kind: string; metadata: { name: string } };
        validateKubernetesObject(object);
        count += 1;
      }
    }
    assert.ok(count >= 60, `${count} objects`);
  });

  void it("writes YAML that parses back to exactly the objects it built", async () => {
    const spec = await demo();
    for (const environment of spec.environments) {
      const objects = kubernetesObjects(spec, environment.name);
      const parsed = renderKubernetesEnvironment(spec, environment.name).map((file) => parse(file.content) as unknown);
      assert.deepEqual(parsed, JSON.parse(JSON.stringify(objects)));
    }
  });

  void it("is deterministic, with apiVersion, kind and metadata first", async () => {
    const spec = await demo();
    const first = renderKubernetesEnvironment(spec, "prod");
    assert.deepEqual(renderKubernetesEnvironment(spec, "prod"), first);
    for (const file of first) assert.match(file.content, /^apiVersion: .*\nkind: .*\nmetadata:\n/);
  });

  void it("hardens every pod and covers it with a NetworkPolicy under a default deny", async () => {
    const spec = await demo();
    for (const environment of spec.environments) {
      const objects = kubernetesObjects(spec, environment.name);
      const policies = objects.filter((object) => object.kind === "NetworkPolicy") as unknown as {
        metadata: { name: string };
        spec: { podSelector: { matchLabels?: Record<string, string> } };
      }[];
      assert.ok(
        policies.some(
          (policy) => policy.metadata.name === "default-deny" && Object.keys(policy.spec.podSelector).length === 0,
        ),
      );
      for (const deployment of objects.filter((object) => object.kind === "Deployment") as unknown as {
        metadata: { name: string };
        spec: {
          template: {
            metadata: { labels: Record<string, string> };
            spec: TPodSpec & { automountServiceAccountToken: boolean };
          };
        };
      }[]) {
        const podLabels = deployment.spec.template.metadata.labels;
        const covered = policies.some((policy) => {
          const match = policy.spec.podSelector.matchLabels;
          return (
            match !== undefined &&
            Object.keys(match).length > 0 &&
            Object.entries(match).every(([key, value]) => podLabels[key] === value)
          );
        });
        assert.ok(covered, `${environment.name}/${deployment.metadata.name} has its own NetworkPolicy`);
        assert.equal(deployment.spec.template.spec.automountServiceAccountToken, false);
        for (const container of deployment.spec.template.spec.containers) {
          assert.deepEqual(container.securityContext?.capabilities, { drop: ["ALL"] });
          assert.equal(container.securityContext?.readOnlyRootFilesystem, true);
          assert.ok(container.resources?.limits !== undefined && container.resources.requests !== undefined);
        }
      }
    }
  });

  void it("routes /websocket to 8072, refuses the database manager, and keeps secrets out of every manifest", async () => {
    const spec = await demo();
    const files = renderKubernetesEnvironment(spec, "prod");
    const route = parse(files.find((file) => file.path === "ingressroute-odoo.yaml")!.content) as {
      spec: { routes: { match: string; middlewares?: { name: string }[]; services: { port: number }[] }[] };
    };
    assert.ok(route.spec.routes.some((item) => item.match.includes("/websocket") && item.services[0]?.port === 8072));
    assert.ok(
      route.spec.routes.some(
        (item) => item.match.includes("/web/database") && item.middlewares?.[0]?.name === "refuse-database-manager",
      ),
    );
    for (const file of files) {
      const object = parse(file.content) as { kind: string; data?: unknown; stringData?: unknown };
      assert.ok(!(object.kind === "Secret"), "no Secret objects: secrets come from ExternalSecrets");
      assert.doesNotMatch(file.content, /admin_passwd = \$pbkdf2/);
    }
    const conf = parse(files.find((file) => file.path === "configmap-odoo-web-conf.yaml")!.content) as {
      data: { "odoo.conf": string };
    };
    assert.match(conf.data["odoo.conf"], /list_db = False/);
    assert.match(conf.data["odoo.conf"], /max_cron_threads = 0/);
  });

  void it("sizes from the spec: three synchronous PostgreSQL instances for HA PHI production with pgaudit", async () => {
    const spec = await demo();
    const cluster = kubernetesObjects(spec, "prod").find((object) => object.kind === "Cluster") as unknown as {
      spec: {
        instances: number;
        minSyncReplicas?: number;
        postgresql: { shared_preload_libraries?: string[]; parameters: Record<string, string> };
        plugins?: { name: string; isWALArchiver: boolean; parameters: { stanzaRef: string } }[];
      };
    };
    assert.equal(cluster.spec.instances, 3);
    assert.equal(cluster.spec.minSyncReplicas, 1);
    assert.deepEqual(cluster.spec.postgresql.shared_preload_libraries, ["pgaudit"]);
    assert.equal(cluster.spec.postgresql.parameters["pgaudit.log"], "read, write, ddl, role");
    assert.equal(cluster.spec.postgresql.parameters.archive_timeout, "225s");
    // WAL goes to pgBackRest (client-side aes-256-cbc), not barman (server-side encryption only).
    assert.deepEqual(cluster.spec.plugins, [
      { name: "pgbackrest.dalibo.com", enabled: true, isWALArchiver: true, parameters: { stanzaRef: "prod-stanza" } },
    ]);
    const prod = kubernetesObjects(spec, "prod");
    const stanza = prod.find((object) => object.kind === "Stanza") as unknown as {
      spec: { stanzaConfiguration: { azureRepositories: { cipherConfig: { type: string }; repoPath: string }[] } };
    };
    assert.deepEqual(
      stanza.spec.stanzaConfiguration.azureRepositories.map((repository) => [
        repository.repoPath,
        repository.cipherConfig.type,
      ]),
      [["/northwind-health/prod", "aes-256-cbc"]],
    );
    // The filestore to every repository (the posix one is a volume of its own), by restic.
    assert.deepEqual(
      prod.filter((object) => object.kind === "CronJob").map((object) => object.metadata.name),
      // A posix repository also gets the database as an encrypted dump (the plugin writes object stores only).
      ["filestore-backup-local", "database-backup-local", "filestore-backup-offsite"],
    );
    const training = kubernetesObjects(spec, "training");
    assert.ok(!training.some((object) => object.kind === "ScheduledBackup"), "training has backups disabled");
  });

  void it("points Argo CD at the organization's GitOps remote when the spec names one", async () => {
    const spec = {
      ...(await demo()),
      gitops: { repository: "https://git.northwind-health.example/platform/gitops.git", targetRevision: "release" },
    };
    const application = kubernetesObjects(spec, "prod").find((object) => object.kind === "Application") as unknown as {
      spec: { source: { repoURL: string; targetRevision: string; path: string } };
    };
    assert.deepEqual(application.spec.source, {
      repoURL: "https://git.northwind-health.example/platform/gitops.git",
      targetRevision: "release",
      path: "environments/prod",
    });
  });

  void it("refuses a production image without a digest, naming it", async () => {
    const spec = await demo();
    const unpinned = {
      ...spec,
      environments: spec.environments.map((environment) =>
        environment.name === "prod"
          ? { ...environment, odoo: { ...environment.odoo, image: "odoo:17.0" } }
          : environment,
      ),
    };
    assert.throws(
      () => renderKubernetesEnvironment(unpinned, "prod"),
      /environment "prod": production image "odoo:17.0" must be pinned by digest/,
    );
    assert.throws(
      () => renderKubernetesEnvironment(spec, "qa"),
      /environment "qa" is not in northwind-health \(known: prod, staging, training\)/,
    );
  });

  void it("matches the reviewed snapshot of the demo's production (UPDATE_SNAPSHOTS=1 rewrites it)", async () => {
    const files = renderKubernetesEnvironment(await demo(), "prod");
    if (process.env.UPDATE_SNAPSHOTS === "1") {
      await rm(SNAPSHOT_DIR, { recursive: true, force: true });
      await mkdir(SNAPSHOT_DIR, { recursive: true });
      for (const file of files) await writeFile(join(SNAPSHOT_DIR, file.path), file.content);
    }
    const stored = (await readdir(SNAPSHOT_DIR)).sort();
    assert.deepEqual(stored, files.map((file) => file.path).sort());
    for (const file of files)
      assert.equal(
        file.content,
        await readFile(join(SNAPSHOT_DIR, file.path), "utf8"),
        `${file.path} differs from its snapshot`,
      );
  });
});
