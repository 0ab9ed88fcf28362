// Generated inputs against the spec loader and every API route (a few thousand here; the fuzz
// benchmark runs 100,000): no crash, no 500, problems as problem+json, nothing written on the host
// outside carehost's data directory. CAREHOST_FUZZ_RUNS raises the count.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { loadConfig } from "../../src/lib/config.js";
import { startCarehost, type TRunningCarehost } from "../../src/server/server-start.js";
import { createdSince, hostListing, operationsOf, routesProperty, specLoaderProperty } from "./fuzz-targets.js";

const runs = Number(process.env.CAREHOST_FUZZ_RUNS ?? 2000);

void describe("fuzz", () => {
  let home: string;
  let running: TRunningCarehost;
  let token: string;
  let listedBefore: Set<string>;

  before(async () => {
    listedBefore = await hostListing();
    home = await mkdtemp(join(tmpdir(), "carehost-fuzz-"));
    // Record and check only: a generated spec that happened to be valid must not start clusters.
    const config = loadConfig({
      CAREHOST_HOME: home,
      CAREHOST_PORT: "0",
      CAREHOST_LOG_LEVEL: "silent",
      CAREHOST_RUNTIME: "none",
    });
    running = await startCarehost(config, { specPath: "examples/northwind-health.yaml", print: () => undefined });
    token = (await readFile(join(home, "cli-token"), "utf8")).trim();
  });

  after(async () => {
    await running.close();
    await rm(home, { recursive: true, force: true });
  });

  void it("the spec loader answers every text with a spec or located errors", () => {
    fc.assert(specLoaderProperty(), { numRuns: runs });
  });

  void it("no route answers 500, and every refusal is problem+json", async () => {
    const operations = await operationsOf(running.app, token);
    assert.ok(operations.length >= 20, `the OpenAPI document lists ${operations.length} operations`);
    await fc.assert(routesProperty(running.app, operations, token), { numRuns: runs });
  });

  void it("wrote nothing on the host outside its data directory", async () => {
    assert.deepEqual(createdSince(listedBefore, await hostListing()), []);
  });
});
