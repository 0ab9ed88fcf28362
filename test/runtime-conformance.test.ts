// One suite, every runtime (runtime-driver.ts): the local runtime on real PostgreSQL and Redis
// processes, the GitOps runtime on a real bare repository, and the runtime that runs nothing. Each
// implementation brings only how to set it up and how to change what it runs by hand; every rule
// below is checked the same way against each.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { gitopsRepositoryFactory } from "../src/gitops/gitops-repository.js";
import type { TGitopsRepository } from "../src/gitops/gitops-repository.js";
import { NotFoundError, ValidationError } from "../src/lib/errors.js";
import { gitopsRuntimeFactory } from "../src/runtime/gitops/gitops-runtime.js";
import { connectAdmin } from "../src/runtime/local/postgres-cluster.js";
import { secretNames } from "../src/runtime/local/local-placement.js";
import { noneRuntimeFactory } from "../src/runtime/none/none-runtime.js";
import type { TRuntimeDriver, TRuntimeKind } from "../src/runtime/runtime-driver.js";
import type { TOrganizationSpec } from "../src/spec/spec-schema.js";
import { createRuntimeHarness, runtimeTestSpec } from "./runtime-fixtures.js";

const git = promisify(execFile);

/** What a runtime brings to the suite: itself, a hand edit of what it runs (where it runs anything), and its teardown. */
type TSubject = {
  readonly driver: TRuntimeDriver;
  /** Changes what the runtime made, behind its back; absent for a runtime that makes nothing. */
  readonly tamper?: (spec: TOrganizationSpec) => Promise<void>;
  readonly tearDown: (spec: TOrganizationSpec) => Promise<void>;
};

const IMPLEMENTATIONS: Record<TRuntimeKind, () => Promise<TSubject>> = {
  local: async () => {
    const harness = await createRuntimeHarness();
    const driver: TRuntimeDriver = harness.runtime;
    return {
      driver,
      tamper: async (spec) => {
        const staging = (await driver.observe(spec)).environments.find((item) => item.environment === "staging");
        const admin = await connectAdmin(
          { name: "shared", directory: "", port: staging!.postgres.port!, version: 15, owner: undefined },
          await harness.secrets.current(secretNames.clusterAdmin(spec.metadata.name, "shared")),
          await readFile(join(harness.root, spec.metadata.name, "ca.crt"), "utf8"),
        );
        await admin.query("ALTER ROLE odoo_staging SUPERUSER");
        await admin.end();
      },
      tearDown: (spec) => harness.close([spec]),
    };
  },
  gitops: async () => {
    const home = await mkdtemp(join(tmpdir(), "carehost-gitops-runtime-"));
    const repositories = new Map<string, TGitopsRepository>();
    const bareOf = (organization: string) => join(home, organization, "kubernetes.git");
    const driver = gitopsRuntimeFactory({
      repositoryFor: (spec) => {
        const name = spec.metadata.name;
        const repository =
          repositories.get(name) ??
          gitopsRepositoryFactory({ bareRepositoryPath: bareOf(name), workDir: join(home, "work", name) });
        repositories.set(name, repository);
        return repository;
      },
    });
    return {
      driver,
      // Someone pushes a hand edit of staging's manifests to main, as a cluster admin might.
      tamper: async (spec) => {
        const clone = join(home, "hand-edit");
        await rm(clone, { recursive: true, force: true });
        await git("git", ["clone", "--quiet", bareOf(spec.metadata.name), clone]);
        const file = join(clone, "environments", "staging", `namespace-${spec.metadata.name}-staging.yaml`);
        await writeFile(file, `${await readFile(file, "utf8")}# edited by hand\n`);
        const identity = ["-c", "user.name=someone", "-c", "user.email=someone@example.org"];
        await git("git", [...identity, "commit", "--quiet", "-am", "hand edit"], { cwd: clone });
        await git("git", ["push", "--quiet", "origin", "HEAD:main"], { cwd: clone });
      },
      tearDown: () => rm(home, { recursive: true, force: true }),
    };
  },
  none: async () => ({ driver: noneRuntimeFactory(), tearDown: async () => undefined }),
};

const driftOf = async (driver: TRuntimeDriver, spec: TOrganizationSpec) =>
  (await driver.observe(spec)).environments.flatMap((environment) =>
    environment.drift.map((item) => `${environment.environment}:${item.target}:${item.field}`),
  );

for (const [kind, setUp] of Object.entries(IMPLEMENTATIONS) as [TRuntimeKind, () => Promise<TSubject>][]) {
  void describe(`runtime conformance: ${kind}`, { timeout: 600_000 }, () => {
    // Two shared environments keep the local runtime to one PostgreSQL cluster and one Redis.
    const full = runtimeTestSpec(`conform-${kind}`);
    const spec: TOrganizationSpec = {
      ...full,
      environments: full.environments.filter((environment) => environment.name !== "prod"),
    };
    let subject: TSubject;
    before(async () => {
      subject = await setUp();
    });
    after(async () => {
      await subject.tearDown(spec);
    });

    void it("is the runtime it says it is", () => {
      assert.equal(subject.driver.kind, kind);
    });

    void it("reconciles, and a second reconcile of the same spec does nothing", async () => {
      const first = await subject.driver.reconcile(spec);
      // A runtime that makes things real reports what it made; the one that runs nothing, nothing.
      assert.equal(first.length > 0, kind !== "none", JSON.stringify(first));
      assert.deepEqual(await subject.driver.reconcile(spec), []);
    });

    void it("observes what it made with no drift, every declared environment accounted for", async () => {
      const observation = await subject.driver.observe(spec);
      assert.equal(observation.organization, spec.metadata.name);
      assert.deepEqual(await driftOf(subject.driver, spec), []);
      const observed = observation.environments.map((environment) => environment.environment).sort();
      // Only a runtime that runs something has something to say about each environment.
      assert.deepEqual(observed, kind === "none" ? [] : ["staging", "training"]);
    });

    void it("probes what runs on this host, and only that", async () => {
      const probe = await subject.driver.probe(spec);
      assert.equal(probe.organization, spec.metadata.name);
      if (!subject.driver.dataTier.onThisHost) {
        assert.deepEqual([probe.clusters, probe.redis, probe.certificates], [[], [], []]);
        return;
      }
      assert.deepEqual(
        probe.clusters.map((cluster) => [cluster.instance, cluster.up]),
        [["shared", true]],
      );
      assert.ok(probe.certificates.length > 0);
    });

    void it("reports a change made by hand as drift, and the next reconcile corrects it", async (t) => {
      if (subject.tamper === undefined) return t.skip("this runtime makes nothing that could be changed by hand");
      await subject.tamper(spec);
      const drift = await driftOf(subject.driver, spec);
      assert.ok(
        drift.some((item) => item.startsWith("staging:")),
        `no drift of staging reported: ${drift.join(", ")}`,
      );
      assert.ok(!drift.some((item) => item.startsWith("training:")), drift.join(", "));
      const corrections = await subject.driver.reconcile(spec);
      assert.ok(corrections.length > 0);
      assert.deepEqual(await driftOf(subject.driver, spec), []);
    });

    void it("plans a change without touching anything", async () => {
      const proposed: TOrganizationSpec = {
        ...spec,
        environments: spec.environments.map((environment) =>
          environment.name === "staging"
            ? { ...environment, odoo: { ...environment.odoo, workers: environment.odoo.workers + 2 } }
            : environment,
        ),
      };
      const change = await subject.driver.planChange(spec, proposed);
      // What it renders differs for the change; the one that renders nothing has no artifact to show.
      assert.equal(change.artifacts.length > 0, kind !== "none", JSON.stringify(change.artifacts.map((a) => a.target)));
      for (const artifact of change.artifacts) assert.ok(artifact.environments.includes("staging"), artifact.target);
      assert.deepEqual(await driftOf(subject.driver, spec), []);
      assert.deepEqual(await subject.driver.reconcile(spec), []);
    });

    void it("refuses an environment the organization does not hold, before touching anything", async () => {
      const missing = /not part of organization/;
      await assert.rejects(subject.driver.backup(spec, "nowhere", "full"), (error: Error) => {
        assert.ok(error instanceof NotFoundError && missing.test(error.message), error.message);
        return true;
      });
      await assert.rejects(subject.driver.drill(spec, "nowhere"), NotFoundError);
      await assert.rejects(
        subject.driver.restore(spec, "nowhere", { kind: "latest" }, { kind: "in-place" }),
        NotFoundError,
      );
      await assert.rejects(subject.driver.destroyEnvironment(spec, "nowhere", tmpdir()), NotFoundError);
    });

    void it("backs up where its data tier is on this host, and otherwise refuses with the reason", async () => {
      const { dataTier } = subject.driver;
      if (dataTier.onThisHost) {
        const backup = await subject.driver.backup(spec, "staging", "full");
        assert.match(backup.label, /F$/);
        assert.equal((await subject.driver.verify(spec, "staging")).ok, true);
        return;
      }
      const refusals = [
        subject.driver.backup(spec, "staging", "full"),
        subject.driver.verify(spec, "staging"),
        subject.driver.expire(spec, "staging"),
        subject.driver.snapshotFilestore(spec, "staging"),
        subject.driver.restore(spec, "staging", { kind: "latest" }, { kind: "copy", name: "copy" }),
        subject.driver.drill(spec, "staging"),
      ];
      for (const refusal of refusals)
        await assert.rejects(refusal, (error: Error) => {
          assert.ok(error instanceof ValidationError, error.message);
          assert.equal(error.message, dataTier.why);
          return true;
        });
    });

    void it("removes an environment only after its final backup, or refuses and removes nothing", async () => {
      const directory = await mkdtemp(join(tmpdir(), "carehost-final-"));
      try {
        const removal = subject.driver.destroyEnvironment(spec, "training", directory);
        if (kind === "gitops") {
          await assert.rejects(removal, ValidationError);
          assert.deepEqual(await driftOf(subject.driver, spec), []);
          return;
        }
        const backup = await removal;
        // A runtime that ran nothing has nothing to back up, and says so; one that ran it has the dump.
        assert.equal(backup.sha256 === "", kind === "none");
        const rest: TOrganizationSpec = {
          ...spec,
          environments: spec.environments.filter((environment) => environment.name !== "training"),
        };
        // The rest of the organization, reconciled to the spec without it, runs as declared.
        await subject.driver.reconcile(rest);
        assert.deepEqual(await driftOf(subject.driver, rest), []);
      } finally {
        await rm(directory, { recursive: true, force: true });
      }
    });

    void it("restarts nothing that runs, and closes", async () => {
      const rest: TOrganizationSpec = {
        ...spec,
        environments: spec.environments.filter((environment) => environment.name !== "training"),
      };
      assert.deepEqual(await subject.driver.restartStopped(rest), []);
      await subject.driver.heartbeat(rest);
      await subject.driver.close();
    });
  });
}
