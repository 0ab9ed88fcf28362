// bench/fuzz: the fuzz properties of test/fuzz at the scale make test cannot afford: 100,000
// generated inputs in all (60,000 spec texts through the loader, 40,000 requests over every route of
// a running carehost), then the host listing compared before and after. There is nothing a user
// would run instead to compare with; it prints the throughput and fails on the first counterexample.
//
// Run: npx tsx bench/fuzz/fuzz-bench.ts  (FUZZ_SPECS and FUZZ_REQUESTS change the counts)
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { loadConfig } from "../../src/lib/config.js";
import { startCarehost } from "../../src/server/server-start.js";
import {
  createdSince,
  hostListing,
  operationsOf,
  routesProperty,
  specLoaderProperty,
} from "../../test/fuzz/fuzz-targets.js";

const specs = Number(process.env.FUZZ_SPECS ?? 60_000);
const requests = Number(process.env.FUZZ_REQUESTS ?? 40_000);

const listedBefore = await hostListing();
let started = performance.now();
fc.assert(specLoaderProperty(), { numRuns: specs });
const specSeconds = (performance.now() - started) / 1000;
console.log(
  `  spec loader: ${specs} generated texts in ${specSeconds.toFixed(1)} s (${(specs / specSeconds).toFixed(0)}/s), no throw, every error located`,
);

const home = await mkdtemp(join(tmpdir(), "carehost-fuzz-bench-"));
const running = await startCarehost(
  loadConfig({ CAREHOST_HOME: home, CAREHOST_PORT: "0", CAREHOST_LOG_LEVEL: "silent", CAREHOST_RUNTIME: "none" }),
  { specPath: "examples/northwind-health.yaml", print: () => undefined },
);
try {
  const token = (await readFile(join(home, "cli-token"), "utf8")).trim();
  const operations = await operationsOf(running.app, token);
  started = performance.now();
  await fc.assert(routesProperty(running.app, operations, token), { numRuns: requests });
  const routeSeconds = (performance.now() - started) / 1000;
  console.log(
    `  API: ${requests} generated requests over ${operations.length} operations in ${routeSeconds.toFixed(1)} s (${(requests / routeSeconds).toFixed(0)}/s), no 500, every refusal problem+json`,
  );
} finally {
  await running.close();
  await rm(home, { recursive: true, force: true });
}
const created = createdSince(listedBefore, await hostListing());
if (created.length > 0) throw new Error(`paths created on the host outside the data dir: ${created.join(", ")}`);
console.log(`  host: nothing created outside the data dir (${listedBefore.size} paths watched)`);
