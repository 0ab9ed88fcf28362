import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { kubernetesObjects } from "../render/kubernetes/kubernetes-render.js";
import { loadSpecFile } from "../spec/spec-loader.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import { MANIFEST_CONTROLS } from "./policy-catalog-manifest.js";
import { evaluatePolicy } from "./policy-engine.js";
import type { TManifestObject } from "./policy-types.js";

const NOW = new Date("2026-11-23T12:00:00Z");

const demo = async (): Promise<TOrganizationSpec> => {
  const loaded = await loadSpecFile("examples/northwind-health.yaml");
  assert.ok(loaded.ok);
  return loaded.spec;
};

type TMutableObject = Record<string, unknown> & { kind: string; metadata: { name: string } };
/** A deep copy of prod's objects that a case may change freely. */
const prodObjects = async () => JSON.parse(JSON.stringify(kubernetesObjects(await demo(), "prod"))) as TMutableObject[];
const webPod = (objects: TMutableObject[]) =>
  (
    objects.find((object) => object.kind === "Deployment" && object.metadata.name === "odoo-web") as unknown as {
      spec: { template: { spec: Record<string, unknown> & { containers: Record<string, unknown>[] } } };
    }
  ).spec.template.spec;
const webContainer = (objects: TMutableObject[]) =>
  webPod(objects).containers[0] as Record<string, unknown> & {
    securityContext: Record<string, unknown>;
    resources: { limits: Record<string, unknown> };
    env: Record<string, unknown>[];
  };

const evaluateProd = async (objects: readonly TMutableObject[]) => {
  const spec = await demo();
  const environment = spec.environments.find((item) => item.name === "prod")!;
  return evaluatePolicy({
    controls: MANIFEST_CONTROLS,
    subjects: { manifest: [{ environment, objects: objects as unknown as TManifestObject[] }] },
    now: NOW,
  });
};

const CASES: { controlId: string; name: string; mutate: (objects: TMutableObject[]) => void; expect: RegExp }[] = [
  {
    controlId: "CH-KUBE-001",
    name: "a privileged container",
    mutate: (objects) => void (webContainer(objects).securityContext.privileged = true),
    expect: /odoo-web container odoo: must not run privileged/,
  },
  {
    controlId: "CH-KUBE-002",
    name: "a hostPath volume",
    mutate: (objects) =>
      void (webPod(objects).volumes as unknown[]).push({ name: "docker", hostPath: { path: "/var/run/docker.sock" } }),
    expect: /must not mount a hostPath volume \(volume docker\)/,
  },
  {
    controlId: "CH-KUBE-003",
    name: "a latest image",
    mutate: (objects) => void (webContainer(objects).image = "odoo:latest"),
    expect: /image "odoo:latest" must name a version tag or a digest, not latest/,
  },
  {
    controlId: "CH-KUBE-004",
    name: "no memory limit",
    mutate: (objects) => void delete webContainer(objects).resources.limits.memory,
    expect: /must set resources \(missing: limits.memory\)/,
  },
  {
    controlId: "CH-KUBE-005",
    name: "no default deny",
    mutate: (objects) =>
      void objects.splice(
        objects.findIndex((object) => object.metadata.name === "default-deny"),
        1,
      ),
    expect: /needs a default-deny NetworkPolicy/,
  },
  {
    controlId: "CH-KUBE-006",
    name: "a production image by tag",
    mutate: (objects) => void (webContainer(objects).image = "odoo:17.0"),
    expect: /production image "odoo:17.0" must be pinned by @sha256 digest/,
  },
  {
    controlId: "CH-KUBE-007",
    name: "a literal password",
    mutate: (objects) => void webContainer(objects).env.push({ name: "PGPASSWORD", value: "hunter2" }),
    expect: /environment variable PGPASSWORD holds a literal value/,
  },
  {
    controlId: "CH-KUBE-008",
    name: "a writable root filesystem",
    mutate: (objects) => void (webContainer(objects).securityContext.readOnlyRootFilesystem = false),
    expect: /must set readOnlyRootFilesystem/,
  },
  {
    controlId: "CH-KUBE-009",
    name: "a mounted token",
    mutate: (objects) => void (webPod(objects).automountServiceAccountToken = true),
    expect: /should set automountServiceAccountToken: false/,
  },
];

void describe("manifest controls", () => {
  void it("has a failing case for every manifest control", () => {
    assert.deepEqual(
      MANIFEST_CONTROLS.map((control) => control.id).sort(),
      CASES.map((testCase) => testCase.controlId).sort(),
    );
  });

  void it("pass on every environment the Kubernetes renderer produces for the demo", async () => {
    const spec = await demo();
    const report = evaluatePolicy({
      controls: MANIFEST_CONTROLS,
      subjects: {
        manifest: spec.environments.map((environment) => ({
          environment,
          objects: kubernetesObjects(spec, environment.name) as unknown as TManifestObject[],
        })),
      },
      now: NOW,
    });
    assert.deepEqual(
      report.results
        .filter((result) => result.status === "fail")
        .map((result) => `${result.controlId} ${result.environment}: ${result.messages.join("; ")}`),
      [],
    );
    assert.ok(report.summary.pass >= MANIFEST_CONTROLS.length * 2);
  });

  void it("hold a CronJob's pods to the same rules: the backup jobs' images are pinned by digest in production", async () => {
    const spec = await demo();
    const prod = spec.environments.find((environment) => environment.name === "prod");
    assert.ok(prod);
    const objects = kubernetesObjects(spec, "prod") as unknown as TManifestObject[];
    const job = objects.find((object) => object.kind === "CronJob") as unknown as {
      spec: { jobTemplate: { spec: { template: { spec: { containers: { image: string }[] } } } } };
    };
    assert.ok(job, "the demo's prod renders backup CronJobs");
    job.spec.jobTemplate.spec.template.spec.containers[0]!.image = "docker.io/restic/restic:0.18.1";
    const report = evaluatePolicy({
      controls: MANIFEST_CONTROLS.filter((control) => control.id === "CH-KUBE-006"),
      subjects: { manifest: [{ environment: prod, objects }] },
      now: NOW,
    });
    assert.match(
      report.mandatoryViolations[0]?.line ?? "",
      /CronJob .* "docker\.io\/restic\/restic:0\.18\.1" must be pinned by @sha256 digest/,
    );
  });

  for (const testCase of CASES) {
    void it(`${testCase.controlId} fails on ${testCase.name}, with its id and citations in the line`, async () => {
      const objects = await prodObjects();
      testCase.mutate(objects);
      const report = await evaluateProd(objects);
      const result = report.results.find((item) => item.controlId === testCase.controlId);
      assert.equal(result?.status, "fail");
      assert.match(result.messages.join("\n"), testCase.expect);
      const control = MANIFEST_CONTROLS.find((item) => item.id === testCase.controlId)!;
      if (control.enforcement === "mandatory")
        assert.ok(
          report.mandatoryViolations.some((violation) =>
            violation.line.startsWith(`${control.id} [${control.citations.join(", ")}] environment "prod": `),
          ),
        );
      const others = report.results.filter(
        (item) =>
          item.status === "fail" &&
          item.controlId !== testCase.controlId &&
          !(
            ["CH-KUBE-003", "CH-KUBE-006"].includes(testCase.controlId) &&
            ["CH-KUBE-003", "CH-KUBE-006"].includes(item.controlId)
          ),
      );
      // A production image without a digest also lacks a version tag when it says latest: the two image controls go together.
      assert.deepEqual(
        others.map((item) => item.controlId),
        [],
        "only the mutated control fails",
      );
    });
  }
});
