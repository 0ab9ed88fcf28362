import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { createAuditHarness } from "../../test/audit-fixtures.js";
import { createRuntimeHarness } from "../../test/runtime-fixtures.js";
import { testDatabaseFactories } from "../../test/test-databases.js";
import { PolicyViolation, ValidationError } from "../lib/errors.js";
import { systemContext } from "../lib/request-context.js";
import { policyCheckerFactory } from "../policy/policy-service.js";
import { environmentServiceFactory } from "./environment-service.js";
import { environmentStoreFactory } from "./environment-store.js";

const NOW = new Date("2026-11-23T12:00:00Z");
const ctx = systemContext("test");

/** The demo with production on shared hosting: CH-ISO-001 (PHI production must be dedicated) fails, and only it. */
const sharedConfidentialProduction = async (exceptions: string) => {
  const source = await readFile("examples/northwind-health.yaml", "utf8");
  return `${source.replace("hosting: dedicated", "hosting: shared")}${exceptions}`;
};

const exception = (expires: string) => `
policyExceptions:
  - controlId: CH-ISO-001
    environment: prod
    owner: ciso@northwind-health.example
    reason: shared until the dedicated host is delivered; network-isolated meanwhile
    expires: "${expires}"
`;

void describe("environment service: documented policy exceptions", () => {
  void it("turns a mandatory failure into 'excepted' while the exception is active, audits it, and refuses once it expires", async () => {
    const harness = await createAuditHarness(testDatabaseFactories.pglite);
    try {
      const service = environmentServiceFactory({
        store: environmentStoreFactory(harness.db),
        policy: policyCheckerFactory({ now: () => NOW }),
        audit: harness.log,
      });
      const without = await sharedConfidentialProduction("");
      await assert.rejects(
        service.plan(ctx, { source: without, fileName: "org.yaml" }),
        (error: unknown) =>
          error instanceof PolicyViolation && /CH-ISO-001/.test(error.message + JSON.stringify(error.details)),
      );

      const withException = await sharedConfidentialProduction(exception("2027-03-31"));
      const applied = await service.apply(ctx, { source: withException, fileName: "org.yaml" });
      assert.ok(applied.revisionId !== null);
      const [posture] = await service.posture(ctx);
      const result = posture?.report.results.find(
        (item) => item.controlId === "CH-ISO-001" && item.environment === "prod",
      );
      assert.equal(result?.status, "excepted");
      assert.equal(result?.exception?.owner, "ciso@northwind-health.example");
      const recorded = await harness.log.list({ type: "policy.exception_recorded", limit: 10 });
      assert.equal(recorded.length, 1);
      assert.deepEqual(recorded[0]?.entry.payload.controlId, "CH-ISO-001");

      // Applying the same spec again records nothing new.
      assert.equal((await service.apply(ctx, { source: withException, fileName: "org.yaml" })).revisionId, null);
      // Dropping the exception from the spec is refused (the control fails again) and nothing is removed.
      await assert.rejects(service.apply(ctx, { source: without, fileName: "org.yaml" }), PolicyViolation);
      // An expired exception no longer applies.
      await assert.rejects(
        service.plan(ctx, {
          source: await sharedConfidentialProduction(exception("2026-11-01")),
          fileName: "org.yaml",
        }),
        PolicyViolation,
      );
      // An exception for a control that does not exist is an error, not a silent no-op.
      await assert.rejects(
        service.plan(ctx, {
          source: (await sharedConfidentialProduction(exception("2027-03-31"))).replace("CH-ISO-001", "CH-ISO-999"),
          fileName: "org.yaml",
        }),
        ValidationError,
      );
    } finally {
      await harness.dispose();
    }
  });
});

void describe("environment service: host paths", () => {
  void it("refuses a spec whose repository leads outside carehost's directories before anything is recorded or made", async () => {
    const harness = await createAuditHarness(testDatabaseFactories.pglite);
    const runtime = await createRuntimeHarness();
    try {
      const store = environmentStoreFactory(harness.db);
      const service = environmentServiceFactory({
        store,
        policy: policyCheckerFactory({ now: () => NOW }),
        audit: harness.log,
        runtime: runtime.runtime,
      });
      const example = await readFile("examples/northwind-health.yaml", "utf8");
      // The review's case: as root, this made carehost chown /etc to postgres for pgBackRest.
      const source = example.replace("name: northwind-health", "name: etc").replace("path: backups/", "path: /");
      for (const submit of [service.plan, service.apply]) {
        await assert.rejects(
          submit(ctx, { source, fileName: "org.yaml" }),
          (error: unknown) =>
            error instanceof ValidationError &&
            error.message.startsWith(`backupRepositories[0].path: "/" (/etc) is outside the allowed roots (`) &&
            error.message.endsWith("set CAREHOST_ALLOWED_PATHS on the host to allow it") &&
            error.details[0]?.path === "backupRepositories[0].path",
        );
      }
      assert.deepEqual(await store.latestSpecs(), []);
      assert.deepEqual(await readdir(runtime.root).catch(() => []), [], "no runtime directory was made");
    } finally {
      await runtime.close([]);
      await harness.dispose();
    }
  });
});
