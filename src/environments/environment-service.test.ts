import { operationHoldFactory } from "../operations/operation-hold.js";
import { operationStoreFactory } from "../operations/operation-store.js";
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { AUDIT_APPEND_INJECTED, refuseAuditAppends, createAuditHarness } from "../../test/audit-fixtures.js";
import type { TAuditHarness } from "../../test/audit-fixtures.js";
import { createRuntimeHarness } from "../../test/runtime-fixtures.js";
import { forEachStoreKind, testDatabaseFactories } from "../../test/test-databases.js";
import type { TTestDatabase } from "../../test/test-databases.js";
import { ConflictError, ForbiddenError, PolicyViolation, ValidationError } from "../lib/errors.js";
import { systemContext } from "../lib/request-context.js";
import type { TRequestContext, TRole } from "../lib/request-context.js";
import { formatPosture, PENDING_NOTE } from "../policy/policy-engine.js";
import { exceptionServiceFactory } from "../policy/policy-exception-service.js";
import { exceptionStoreFactory } from "../policy/policy-exception-store.js";
import { policyCheckerFactory } from "../policy/policy-service.js";
import { environmentServiceFactory } from "./environment-service.js";
import { environmentStoreFactory } from "./environment-store.js";
import { changeGateFactory } from "../governance/change-gate.js";
import { changeStoreFactory } from "../governance/change-store.js";
import { applyThroughChangeRequest, createGovernedServices, INSIDE_PROD_WINDOW } from "../../test/change-fixtures.js";
import type { TGovernedServices } from "../../test/change-fixtures.js";

const NOW = new Date("2026-11-23T12:00:00Z");
const ctx = systemContext("test");
const userContext = (username: string, role: TRole): TRequestContext => ({
  actor: { kind: "user", userId: `u_${username}`, username, role, bindings: [{ role, organization: "*" }] },
  requestId: `req-${username}`,
  sourceAddress: "10.0.0.7",
});
/** Applies specs and may approve (platform-admin): the one who must not approve what she proposed. */
const carol = userContext("carol", "platform-admin");
/** Applies specs, cannot approve anything. */
const alice = userContext("alice", "operator");
/** Approves, cannot apply. */
const bob = userContext("bob", "approver");
/** The second approval a change to PHI production needs. */
const dana = userContext("dana", "approver");

/** The demo with production on shared hosting: CH-ISO-001 (PHI production must be dedicated) fails, and only it. */
const sharedConfidentialProduction = async (exceptions: string) => {
  const source = await readFile("examples/northwind-health.yaml", "utf8");
  return `${source.replace("hosting: dedicated", "hosting: shared")}${exceptions}`;
};

const exception = (
  expires: string,
  reason = "shared until the dedicated host is delivered; network-isolated meanwhile",
) => `
policyExceptions:
  - controlId: CH-ISO-001
    environment: prod
    owner: ciso@northwind-health.example
    reason: ${reason}
    expires: "${expires}"
`;

const withServices = async (
  createDatabase: () => Promise<TTestDatabase>,
  body: (services: {
    harness: TAuditHarness;
    environments: ReturnType<typeof environmentServiceFactory>;
    governed: TGovernedServices;
    exceptions: ReturnType<typeof exceptionServiceFactory>;
    count: (table: string) => Promise<number>;
  }) => Promise<void>,
) => {
  const harness = await createAuditHarness(createDatabase);
  try {
    // Changes to production apply inside its window; the controls judge exceptions at NOW.
    const governed = createGovernedServices(harness, { now: () => INSIDE_PROD_WINDOW, policyNow: () => NOW });
    const environments = governed.environments;
    const exceptions = exceptionServiceFactory({
      store: exceptionStoreFactory(harness.db),
      audit: harness.log,
      now: () => NOW,
    });
    const count = async (table: string) =>
      (await harness.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]!.n;
    await body({ harness, environments, governed, exceptions, count });
  } finally {
    await harness.dispose();
  }
};

const ofType = async (harness: TAuditHarness, type: Parameters<TAuditHarness["log"]["list"]>[0]["type"]) =>
  harness.log.list({ type, limit: 100 });

forEachStoreKind((kind, createDatabase) => {
  void describe(`environment service on ${kind}: policy exceptions take effect once someone else approves them`, () => {
    void it("shows a proposed exception as pending with the control failing, refuses its proposer's approval, and excepts once another user approves", async () => {
      await withServices(createDatabase, async ({ harness, environments, governed, exceptions }) => {
        const submit = async (exceptions: string) => ({
          source: await sharedConfidentialProduction(exceptions),
          fileName: "org.yaml",
        });
        await assert.rejects(
          environments.plan(carol, await submit("")),
          (error: unknown) =>
            error instanceof PolicyViolation && /CH-ISO-001/.test(error.message + JSON.stringify(error.details)),
        );

        // Applying proposes the exception; the control still fails, so the apply is refused (exit 3).
        const withException = await submit(exception("2027-03-31"));
        const pendingHint = (id: number) =>
          `exception #${id} (CH-ISO-001 for environment "prod") was proposed by carol and awaits approval by someone else: carehost exception approve northwind-health ${id}`;
        const refusedAsPending = (id: number) => (error: unknown) => {
          assert.ok(error instanceof PolicyViolation, String(error));
          const messages = error.details.map((detail) => detail.message);
          assert.match(messages[0]!, /^CH-ISO-001 \[.*\] environment "prod": PHI production must be dedicated/);
          assert.ok(messages[0]!.endsWith(PENDING_NOTE), messages[0]);
          assert.ok(messages.includes(pendingHint(id)), messages.join("\n"));
          return true;
        };
        await assert.rejects(environments.apply(carol, withException), refusedAsPending(1));
        await assert.rejects(environments.plan(carol, withException), refusedAsPending(1));
        const proposed = await ofType(harness, "policy.exception_proposed");
        assert.equal(proposed.length, 1, "applying the same spec twice proposes it once");
        assert.equal(proposed[0]!.entry.actor.kind === "user" && proposed[0]!.entry.actor.username, "carol");
        assert.deepEqual(proposed[0]!.entry.payload, {
          exceptionId: 1,
          controlId: "CH-ISO-001",
          environment: "prod",
          owner: "ciso@northwind-health.example",
          reason: "shared until the dedicated host is delivered; network-isolated meanwhile",
          expires: "2027-03-31",
        });
        assert.deepEqual(
          (await exceptions.list(alice)).map((item) => [item.id, item.status, item.proposedBy, item.approvedBy]),
          [[1, "pending", "carol", null]],
        );

        // Separation of duties: not the proposer, not someone without change:approve, not carehost itself.
        await assert.rejects(
          exceptions.approve(carol, "northwind-health", 1),
          (error: unknown) =>
            error instanceof ForbiddenError &&
            error.message ===
              'carol proposed exception #1 (CH-ISO-001 for environment "prod") by applying the spec that introduced it; someone other than its proposer approves it',
        );
        await assert.rejects(exceptions.approve(alice, "northwind-health", 1), ForbiddenError);
        await assert.rejects(exceptions.approve(systemContext("cli"), "northwind-health", 1), ForbiddenError);
        const denied = await ofType(harness, "policy.exception_approval_denied");
        assert.deepEqual(
          denied.map((item) => item.entry.outcome),
          ["denied", "denied"],
        );
        assert.match(String(denied[0]!.entry.payload.reason), /carol proposed exception #1/);
        assert.equal((await ofType(harness, "access.denied")).length, 1, "alice lacks change:approve");
        await assert.rejects(exceptions.approve(bob, "northwind-health", 99), /has no exception #99/);
        await assert.rejects(exceptions.approve(bob, "another-org", 1), /has no exception #1/);

        const approved = await exceptions.approve(bob, "northwind-health", 1);
        assert.equal(approved.status, "approved");
        assert.equal(approved.approvedBy, "bob");
        assert.equal(approved.approvedAt?.toISOString(), NOW.toISOString());
        await assert.rejects(exceptions.approve(bob, "northwind-health", 1), ConflictError);
        const approvals = await ofType(harness, "policy.exception_approved");
        assert.deepEqual(approvals[0]!.entry.payload, {
          exceptionId: 1,
          controlId: "CH-ISO-001",
          environment: "prod",
          expires: "2027-03-31",
          proposedBy: "carol",
        });

        // Approved: the same spec now applies, and the posture shows it excepted, with its approver.
        const applied = await environments.apply(carol, withException);
        assert.ok(applied.revisionId !== null);
        const [posture] = await environments.posture(alice);
        const result = posture!.report.results.find(
          (item) => item.controlId === "CH-ISO-001" && item.environment === "prod",
        );
        assert.equal(result?.status, "excepted");
        assert.equal(result?.exception?.owner, "ciso@northwind-health.example");
        assert.equal(result?.approval?.approvedBy, "bob");
        assert.match(
          formatPosture(posture!.report, "northwind-health"),
          /excepted until 2027-03-31, owner ciso@northwind-health\.example, approved by bob at 2026-11-23T12:00:00\.000Z/,
        );
        assert.equal((await ofType(harness, "policy.exception_recorded")).length, 1);
        assert.equal((await environments.apply(carol, withException)).revisionId, null, "nothing new to record");

        // A changed exception is a new version: pending, refused, until someone else approves it too;
        // then, a change to PHI production, it applies through a change request two others approve.
        const renewed = await submit(exception("2027-06-30"));
        await assert.rejects(environments.apply(carol, renewed), refusedAsPending(2));
        const [stillApplied] = await environments.posture(alice);
        assert.equal(
          stillApplied!.report.results.find((item) => item.controlId === "CH-ISO-001" && item.environment === "prod")
            ?.status,
          "excepted",
          "the applied revision keeps its approved exception",
        );
        await exceptions.approve(bob, "northwind-health", 2);
        await assert.rejects(environments.apply(carol, renewed), /needs approval: carehost change create org\.yaml/);
        assert.ok((await applyThroughChangeRequest(governed, carol, [bob, dana], renewed)).revisionId !== null);
        assert.deepEqual(
          (await exceptions.list(alice, "northwind-health")).map((item) => [item.id, item.status]),
          [
            [2, "approved"],
            [1, "approved"],
          ],
        );

        // Dropping the exception from the spec is refused (the control fails again).
        await assert.rejects(environments.apply(carol, await submit("")), PolicyViolation);
        // An expired exception no longer applies, and is not proposed.
        await assert.rejects(environments.plan(carol, await submit(exception("2026-11-01"))), PolicyViolation);
        // An exception for a control that does not exist is an error, not a silent no-op, and is not proposed.
        await assert.rejects(
          environments.apply(carol, {
            source: (await sharedConfidentialProduction(exception("2027-03-31"))).replace("CH-ISO-001", "CH-ISO-999"),
            fileName: "org.yaml",
          }),
          ValidationError,
        );
        assert.equal((await exceptions.list(alice)).length, 2);
      });
    });

    void it("refuses approvedBy in a spec, pointing to the approval command", async () => {
      await withServices(createDatabase, async ({ environments, exceptions }) => {
        const source = `${(await sharedConfidentialProduction(exception("2027-03-31"))).trimEnd()}\n    approvedBy: cto@northwind-health.example\n`;
        await assert.rejects(environments.apply(carol, { source, fileName: "org.yaml" }), (error: unknown) => {
          assert.ok(error instanceof ValidationError, String(error));
          const detail = error.details.find((item) => item.path === "policyExceptions[0].approvedBy");
          assert.ok(detail, JSON.stringify(error.details));
          assert.match(detail.message, /approved in carehost, by someone other than whoever applies the spec/);
          assert.match(detail.message, /carehost exception approve <organization> <id>/);
          return true;
        });
        assert.deepEqual(await exceptions.list(alice), []);
      });
    });

    void it("commits a revision with its audit entries: an append that fails leaves no revision, and the retry records both", async () => {
      await withServices(createDatabase, async ({ harness, environments, count }) => {
        const demo = { source: await readFile("examples/northwind-health.yaml", "utf8"), fileName: "org.yaml" };
        const allowAuditAppends = await refuseAuditAppends(harness.database);
        await assert.rejects(environments.apply(carol, demo), AUDIT_APPEND_INJECTED);
        assert.deepEqual([await count("spec_revisions"), await count("environments")], [0, 0]);

        await allowAuditAppends();
        const applied = await environments.apply(carol, demo);
        assert.deepEqual([await count("spec_revisions"), await count("environments")], [1, 3]);
        const events = (await harness.log.list({ limit: 100 })).map((item) => item.entry);
        assert.deepEqual(
          events.map((entry) => entry.type),
          ["spec.applied", "environment.created", "environment.created", "environment.created"],
        );
        assert.equal(events[0]!.payload.revisionId, applied.revisionId);
        assert.equal((await harness.log.verify()).ok, true);
      });
    });

    void it("records nothing when the secret guard refuses an exception's audit entry", async () => {
      await withServices(createDatabase, async ({ harness, environments, count }) => {
        const source = await sharedConfidentialProduction(
          exception("2027-03-31", '"pasted by mistake: -----BEGIN PRIVATE KEY----- MIIE..."'),
        );
        await assert.rejects(
          environments.apply(carol, { source, fileName: "org.yaml" }),
          (error: unknown) => error instanceof ValidationError && /private key material/.test(error.message),
        );
        assert.deepEqual(
          [await count("policy_exceptions"), await count("spec_revisions"), await count("environments")],
          [0, 0, 0],
        );
        assert.equal((await ofType(harness, "policy.exception_proposed")).length, 0);
      });
    });
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
        changes: changeGateFactory({ store: changeStoreFactory(harness.db), audit: harness.log }),
        runtime: runtime.runtime,
        operations: operationHoldFactory({ store: operationStoreFactory(harness.db) }),
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
