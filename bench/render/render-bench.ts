// bench/render: render and validate 10, 100 and 1,000 environments as Kubernetes manifests
// (targets at 1,000: under 5 s and under 500 MB), side by side with what teams do instead: copy one
// environment's manifests as a template and substitute names (sed/envsubst), then parse and
// validate each file. Prints time, peak RSS and how time grows with the number of environments.
//
// Run: npx tsx bench/render/render-bench.ts
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { validateKubernetesObject } from "../../test/kubernetes-validate.js";
import {
  kubernetesObjects,
  renderKubernetesEnvironment,
  renderKubernetesObjects,
} from "../../src/render/kubernetes/kubernetes-render.js";
import { loadSpecText } from "../../src/spec/spec-loader.js";
import type { TOrganizationSpec } from "../../src/spec/spec-schema.js";

const SIZES = [10, 100, 1000];

function organizationOf(count: number): TOrganizationSpec {
  const loaded = loadSpecText(
    readFileSync(new URL("../../examples/northwind-health.yaml", import.meta.url), "utf8"),
    "northwind-health.yaml",
  );
  if (!loaded.ok) throw new Error("the demo spec does not load");
  const templates = loaded.spec.environments;
  const environments = Array.from({ length: count }, (_, index) => {
    const template = templates[index % templates.length]!;
    return { ...template, name: `env-${index}`, ingress: { ...template.ingress, hostnames: [`env-${index}.example`] } };
  });
  return { ...loaded.spec, environments };
}

const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;

function carehost(count: number): { seconds: number; objects: number } {
  const organization = organizationOf(count);
  const start = process.hrtime.bigint();
  let objects = 0;
  // Each object is validated as built, then written as YAML (the unit tests prove the YAML parses back to the same objects).
  for (const environment of organization.environments) {
    const built = kubernetesObjects(organization, environment.name);
    for (const object of built) validateKubernetesObject(object);
    objects += renderKubernetesObjects(built).length;
  }
  return { seconds: seconds(start), objects };
}

function templated(count: number): number {
  const template = renderKubernetesEnvironment(organizationOf(1), "env-0");
  const start = process.hrtime.bigint();
  for (let index = 0; index < count; index += 1) {
    for (const file of template) {
      const content = file.content.replaceAll("env-0", `env-${index}`);
      validateKubernetesObject(parse(content) as { apiVersion: string; kind: string; metadata: { name: string } });
    }
  }
  return seconds(start);
}

console.log(
  "bench/render (Kubernetes manifests of the demo environments, rendered and validated against kubernetes-models schemas)",
);
const results: { count: number; seconds: number }[] = [];
for (const count of SIZES) {
  const result = carehost(count);
  const baseline = templated(count);
  results.push({ count, seconds: result.seconds });
  console.log(
    `  ${String(count).padStart(5)} environments: ${result.objects} objects in ${result.seconds.toFixed(2)} s (${((result.seconds / count) * 1000).toFixed(2)} ms per environment); templates + sed + validation: ${baseline.toFixed(2)} s (carehost/template ${(result.seconds / baseline).toFixed(2)}x)`,
  );
}
const peakMb = process.resourceUsage().maxRSS / 1024;
const first = results[0]!;
const last = results.at(-1)!;
console.log(
  `  growth: ${last.count / first.count}x the environments took ${(last.seconds / first.seconds).toFixed(1)}x the time (linear would be ${last.count / first.count}x)`,
);
console.log(`  peak RSS of the whole run: ${peakMb.toFixed(0)} MB`);
console.log(
  `  targets at 1,000 environments: < 5 s (${last.seconds < 5 ? "met" : "MISSED"}), < 500 MB (${peakMb < 500 ? "met" : "MISSED"})`,
);
