// GitOps plan and apply render through renderChecked: the spec's controls and the artifact
// controls over the target's files, with the real catalog and the real renderers. A target whose
// files fail a mandatory control is refused with PolicyViolation (the API's 422, the CLI's exit 3)
// before anything reaches the repository.
// Apply also leaves evidence in the audit log around every commit and push; when the log fails
// too, the repository's failure is still the answer, and a change that went live is answered as
// live (with a warning). An intent left without a conclusion is concluded at the next start from
// what the repository shows.
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { AUDIT_APPEND_INJECTED, refuseAuditAppends, createAuditHarness } from "../../test/audit-fixtures.js";
import type { TAuditHarness } from "../../test/audit-fixtures.js";
import { testDatabaseFactories } from "../../test/test-databases.js";
import {
  INSIDE_PROD_WINDOW,
  OUTSIDE_WINDOWS,
  applyThroughChangeRequest,
  createGovernedServices,
  userContext,
} from "../../test/change-fixtures.js";
import { PolicyViolation } from "../lib/errors.js";
import { systemContext } from "../lib/request-context.js";
import { NO_APPROVALS } from "../policy/policy-exceptions.js";
import { policyCheckerFactory } from "../policy/policy-service.js";
import { RENDERERS } from "../render/render-targets.js";
import { RENDER_TARGETS } from "../render/render-types.js";
import { loadSpecText } from "../spec/spec-loader.js";
import { runGit } from "./gitops-git.js";
import { gitopsRepositoryFactory } from "./gitops-repository.js";
import { gitopsServiceFactory, renderChecked } from "./gitops-service.js";

const specOf = async (edit: (source: string) => string = (source) => source) => {
  const loaded = loadSpecText(edit(await readFile("examples/northwind-health.yaml", "utf8")), "carehost.yaml");
  assert.ok(loaded.ok);
  return loaded.spec;
};

void describe("renderChecked (GitOps plan and apply)", () => {
  void it("renders every environment of the demo for each target", async () => {
    const spec = await specOf();
    for (const target of RENDER_TARGETS) {
      const files = renderChecked(target, RENDERERS[target], spec, policyCheckerFactory(), NO_APPROVALS);
      assert.deepEqual([...files.keys()].sort(), ["prod", "staging", "training"], target);
    }
  });

  void it("refuses a target whose files fail a mandatory artifact control, naming the control and the target", async () => {
    // restic's azure backend cannot address a path-style endpoint: no target can back the filestore up there.
    const spec = await specOf((source) =>
      source.replace(
        "    keySecretRef: backup-offsite-azure-key",
        "    endpoint: https://azurite.northwind-health.example:10000/northwindbackups\n    keySecretRef: backup-offsite-azure-key",
      ),
    );
    for (const target of RENDER_TARGETS) {
      assert.throws(
        () => renderChecked(target, RENDERERS[target], spec, policyCheckerFactory(), NO_APPROVALS),
        (error: unknown) =>
          error instanceof PolicyViolation &&
          error.details.some((detail) =>
            new RegExp(
              `^CH-BAK-007 .*environment "prod": ${target}: the filestore is not backed up to repository "offsite"`,
            ).test(detail.message),
          ),
        target,
      );
    }
  });
});

const ctx = systemContext("test");

void describe("gitops apply: evidence in the audit log around every commit and push", () => {
  void it("writes its intent before the repository is touched, so a log that refuses it leaves the repository as it was; then the commit, an unchanged render and a failed push each conclude it", async () => {
    const harness = await createAuditHarness(testDatabaseFactories.pglite);
    const dir = await mkdtemp(join(tmpdir(), "carehost-gitops-service-"));
    try {
      const bare = join(dir, "northwind-health", "compose.git");
      const serviceWith = (remote?: string, root = dir) =>
        gitopsServiceFactory({
          repositoryFor: (organization, target) =>
            gitopsRepositoryFactory({
              bareRepositoryPath: join(root, organization, `${target}.git`),
              workDir: join(root, "work", organization, target),
              ...(remote === undefined ? {} : { remote }),
            }),
          renderers: RENDERERS,
          policy: policyCheckerFactory(),
          exceptionApprovals: async () => NO_APPROVALS,
          audit: harness.log,
          reportAuditFailure: () => assert.fail("no audit append fails after a commit in this test"),
          // What the repository records is this suite's subject; the gate is the last test's.
          record: async () => undefined,
        });
      const submission = {
        source: await readFile(join("examples", "northwind-health.yaml"), "utf8"),
        fileName: "northwind-health.yaml",
      };
      const commits = async () => {
        const log = await runGit(["--git-dir", bare, "rev-list", "--all"], { cwd: dir }).catch(() => ({ stdout: "" }));
        return log.stdout.split("\n").filter((line) => line.length > 0);
      };
      const gitopsEntries = async () =>
        (await harness.log.list({ limit: 1000 }))
          .filter((item) => item.entry.type.startsWith("gitops."))
          .map((item) => ({ type: item.entry.type, commit: (item.entry.payload as { commit?: unknown }).commit }));

      const allowAuditAppends = await refuseAuditAppends(harness.database);
      await assert.rejects(serviceWith().apply(ctx, submission, "compose"), AUDIT_APPEND_INJECTED);
      const tracked = async () =>
        (
          await runGit(["--git-dir", bare, "ls-tree", "-r", "--name-only", "HEAD"], { cwd: dir }).catch(() => ({
            stdout: "",
          }))
        ).stdout;
      assert.doesNotMatch(
        await tracked(),
        /^environments\//m,
        "a render was committed whose intent the log never held",
      );
      const before = await commits();
      await allowAuditAppends();

      const applied = await serviceWith().apply(ctx, submission, "compose");
      assert.ok(applied.commit !== null);
      assert.deepEqual(await commits(), [applied.commit, ...before]);
      assert.match(await tracked(), /^environments\/prod\/compose\.yaml$/m);
      assert.equal((await serviceWith().apply(ctx, submission, "compose")).commit, null);
      // A push that fails (to a remote that does not exist, from a fresh repository) concludes the intent with the reason.
      await assert.rejects(
        serviceWith(join(dir, "no-such-remote.git"), join(dir, "other")).apply(ctx, submission, "compose"),
      );
      assert.deepEqual(await gitopsEntries(), [
        { type: "gitops.commit_started", commit: undefined },
        { type: "gitops.committed", commit: applied.commit },
        { type: "gitops.commit_started", commit: undefined },
        { type: "gitops.committed", commit: null },
        { type: "gitops.commit_started", commit: undefined },
        { type: "gitops.commit_failed", commit: undefined },
      ]);
      assert.equal((await harness.log.verify()).ok, true);
    } finally {
      await harness.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

const LIVE_REMOTE = "https://git.northwind-health.example/platform/gitops.git";
const LATER_REMOTE = "https://git.northwind-health.example/later/gitops.git";

/**
 * GitOps for the demo organization in a temp dir: the spec's gitops.repository URLs stand for
 * local bare repositories (live.git exists, later.git only once a test creates it).
 */
const gitopsFixture = async (harness: TAuditHarness) => {
  const dir = await mkdtemp(join(tmpdir(), "carehost-gitops-evidence-"));
  const remotes: Record<string, string> = {
    [LIVE_REMOTE]: join(dir, "live.git"),
    [LATER_REMOTE]: join(dir, "later.git"),
  };
  const bareInit = async (path: string) => {
    await mkdir(path, { recursive: true });
    await runGit(["init", "--quiet", "--bare", "--initial-branch=main", path], { cwd: dir });
  };
  await bareInit(remotes[LIVE_REMOTE]!);
  const reported: unknown[] = [];
  const service = gitopsServiceFactory({
    repositoryFor: (organization, target, remote) =>
      gitopsRepositoryFactory({
        bareRepositoryPath: join(dir, organization, `${target}.git`),
        workDir: join(dir, "work", organization, target),
        ...(remote === undefined ? {} : { remote: remotes[remote] ?? assert.fail(`no local stand-in for ${remote}`) }),
      }),
    renderers: RENDERERS,
    policy: policyCheckerFactory(),
    exceptionApprovals: async () => NO_APPROVALS,
    audit: harness.log,
    reportAuditFailure: (_ctx, error) => reported.push(error),
    record: async () => undefined,
  });
  const demo = await readFile(join("examples", "northwind-health.yaml"), "utf8");
  /** The demo delivered to `remote`, with prod's worker count changed so that each variant is a new render. */
  const submission = (remote: string, workers: number) => ({
    source: `${demo.replace("workers: 9", `workers: ${workers}`)}\ngitops:\n  repository: ${remote}\n`,
    fileName: "northwind-health.yaml",
  });
  const tip = async (path: string) =>
    (await runGit(["--git-dir", path, "rev-parse", "refs/heads/main"], { cwd: dir })).stdout.trim();
  const gitopsEntries = async () =>
    (await harness.log.list({ limit: 1000 }))
      .filter((item) => item.entry.type.startsWith("gitops."))
      .map((item) => ({ seq: item.seq, type: item.entry.type, payload: item.entry.payload }));
  return {
    dir,
    remotes,
    bareInit,
    reported,
    service,
    submission,
    tip,
    gitopsEntries,
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
};

void describe("gitops apply when the audit log fails around the commit", () => {
  void it("answers a failed push with the push's error, not the audit log's, when recording the failure fails too", async () => {
    const harness = await createAuditHarness(testDatabaseFactories.pglite);
    const fixture = await gitopsFixture(harness);
    try {
      const allowAuditAppends = await refuseAuditAppends(harness.database, ["gitops.commit_failed"]);
      // later.git does not exist yet: the push fails after the local commit.
      const failed = await fixture.service.apply(ctx, fixture.submission(LATER_REMOTE, 11), "compose").then(
        () => assert.fail("the apply succeeded"),
        (error: unknown) => error,
      );
      await allowAuditAppends();
      assert.ok(failed instanceof AggregateError, String(failed));
      assert.match(
        failed.message,
        /^committed [0-9a-f]{40} locally, but pushing to the remote failed: .*; recording that in the audit log \(gitops\.commit_failed\) failed too: .*audit append failed \(injected\)/s,
      );
      const [gitError, auditError] = failed.errors as [Error, Error];
      assert.match(gitError.message, /^committed [0-9a-f]{40} locally, but pushing to the remote failed/);
      assert.match(auditError.message, AUDIT_APPEND_INJECTED);
      // The intent stays without a conclusion, for the next start to reconcile.
      assert.deepEqual(
        (await fixture.gitopsEntries()).map((entry) => entry.type),
        ["gitops.commit_started"],
      );
    } finally {
      await harness.dispose();
      await fixture.dispose();
    }
  });

  void it("answers a commit that reached the remote with its result and a warning when its audit entry cannot be recorded", async () => {
    const harness = await createAuditHarness(testDatabaseFactories.pglite);
    const fixture = await gitopsFixture(harness);
    try {
      const allowAuditAppends = await refuseAuditAppends(harness.database, ["gitops.committed"]);
      const applied = await fixture.service.apply(ctx, fixture.submission(LIVE_REMOTE, 9), "compose");
      await allowAuditAppends();
      assert.ok(applied.commit !== null);
      assert.ok(applied.changedPaths.includes("environments/prod/compose.yaml"));
      assert.equal(await fixture.tip(fixture.remotes[LIVE_REMOTE]!), applied.commit, "the remote has the commit");
      assert.equal(
        applied.warning,
        `commit ${applied.commit} is live in the GitOps repository and pushed to ${LIVE_REMOTE}, but its audit entry (gitops.committed) could not be recorded; the server log has why, under request ${ctx.requestId}; the next server start records it from the repository`,
      );
      assert.equal(fixture.reported.length, 1);
      assert.match(String(fixture.reported[0]), AUDIT_APPEND_INJECTED);
      assert.deepEqual(
        (await fixture.gitopsEntries()).map((entry) => entry.type),
        ["gitops.commit_started"],
      );
    } finally {
      await harness.dispose();
      await fixture.dispose();
    }
  });
});

void describe("gitops start-up reconciliation of an apply that stopped before its conclusion", () => {
  void it("concludes each intent of an earlier process from the repository: pushed, committed but not on the remote, never committed; and leaves concluded and newer intents alone", async () => {
    const harness = await createAuditHarness(testDatabaseFactories.pglite);
    const fixture = await gitopsFixture(harness);
    try {
      const organizationTarget = "organization/northwind-health";
      // Concluded as usual, and concluded the way entries were before conclusions named their intent.
      await fixture.service.apply(ctx, fixture.submission(LIVE_REMOTE, 10), "compose");
      const legacyPayload = { organization: "northwind-health", target: "kubernetes", specDigest: "d".repeat(64) };
      await harness.log.append(ctx, {
        type: "gitops.commit_started",
        outcome: "success",
        target: organizationTarget,
        payload: { ...legacyPayload, environmentCount: 3 },
      });
      await harness.log.append(ctx, {
        type: "gitops.committed",
        outcome: "success",
        target: organizationTarget,
        payload: { ...legacyPayload, commit: null, changedPathCount: 0 },
      });
      // Pushed, its conclusion refused.
      const refusedCommitted = await refuseAuditAppends(harness.database, ["gitops.committed"]);
      const pushed = await fixture.service.apply(ctx, fixture.submission(LIVE_REMOTE, 9), "compose");
      await refusedCommitted();
      // Committed locally, the push failed (later.git is not there yet), its conclusion refused.
      const refusedFailed = await refuseAuditAppends(harness.database, ["gitops.commit_failed"]);
      const unpushed = await fixture.service.apply(ctx, fixture.submission(LATER_REMOTE, 11), "compose").then(
        () => assert.fail("the push succeeded"),
        (error: unknown) => /^committed ([0-9a-f]{40}) locally/.exec((error as Error).message)?.[1],
      );
      await refusedFailed();
      assert.ok(pushed.commit !== null && unpushed !== undefined);
      // Stopped before committing: its intent is all there is.
      await harness.log.append(ctx, {
        type: "gitops.commit_started",
        outcome: "success",
        target: organizationTarget,
        payload: {
          organization: "northwind-health",
          target: "compose",
          specDigest: "c".repeat(64),
          environmentCount: 3,
        },
      });
      const startedBefore = new Date();
      await new Promise((resolve) => setTimeout(resolve, 5));
      // This process's own apply, still going: not the reconciler's to conclude.
      await harness.log.append(ctx, {
        type: "gitops.commit_started",
        outcome: "success",
        target: organizationTarget,
        payload: {
          organization: "northwind-health",
          target: "compose",
          specDigest: "e".repeat(64),
          environmentCount: 3,
        },
      });
      const intents = (await fixture.gitopsEntries()).filter((entry) => entry.type === "gitops.commit_started");
      const startedSeqs = intents.map((entry) => entry.seq);
      const digestOf = (seq: number) => intents.find((entry) => entry.seq === seq)?.payload.specDigest;
      const [, , pushedSeq, unpushedSeq, neverSeq] = startedSeqs as [number, number, number, number, number];

      const startup = systemContext("startup");
      const first = await fixture.service.reconcileInterrupted(startup, { startedBefore });
      assert.deepEqual(
        first.map(({ startedSeq, outcome }) => ({ startedSeq, outcome })),
        [
          { startedSeq: pushedSeq, outcome: "committed" },
          { startedSeq: unpushedSeq, outcome: "unresolved" },
          { startedSeq: neverSeq, outcome: "failed" },
        ],
      );
      assert.match(first[1]!.detail, /^not reconciled, the next start tries again: /);
      // The remote is reachable again, without the commit.
      await fixture.bareInit(fixture.remotes[LATER_REMOTE]!);
      const second = await fixture.service.reconcileInterrupted(startup, { startedBefore });
      assert.deepEqual(
        second.map(({ startedSeq, outcome }) => ({ startedSeq, outcome })),
        [{ startedSeq: unpushedSeq, outcome: "failed" }],
      );
      assert.deepEqual(await fixture.service.reconcileInterrupted(startup, { startedBefore }), []);

      const conclusions = (await fixture.gitopsEntries()).filter(
        (entry) => (entry.payload as { reconciled?: boolean }).reconciled === true,
      );
      const changedPathCount = (
        await runGit(
          [
            "--git-dir",
            join(fixture.dir, "northwind-health", "compose.git"),
            "diff-tree",
            "-r",
            "--name-only",
            "--no-commit-id",
            pushed.commit,
          ],
          {
            cwd: fixture.dir,
          },
        )
      ).stdout
        .split("\n")
        .filter((path) => path !== "").length;
      const common = { organization: "northwind-health", target: "compose", reconciled: true };
      assert.deepEqual(
        conclusions.map(({ type, payload }) => ({ type, payload })),
        [
          {
            type: "gitops.committed",
            payload: {
              ...common,
              commit: pushed.commit,
              changedPathCount,
              specDigest: digestOf(pushedSeq),
              startedSeq: pushedSeq,
            },
          },
          {
            type: "gitops.commit_failed",
            payload: {
              ...common,
              specDigest: "c".repeat(64),
              startedSeq: neverSeq,
              reason: conclusions[1]!.payload.reason,
            },
          },
          {
            type: "gitops.commit_failed",
            payload: {
              ...common,
              specDigest: digestOf(unpushedSeq),
              startedSeq: unpushedSeq,
              reason: `interrupted: committed ${unpushed} locally, but ${LATER_REMOTE} does not have it; the next apply pushes it`,
            },
          },
        ],
      );
      assert.match(
        String(conclusions[1]!.payload.reason),
        /^interrupted: main has no commit of this spec by system:test since \d{4}-/,
      );
      assert.ok(changedPathCount > 0);
      assert.equal((await harness.log.verify()).ok, true);
    } finally {
      await harness.dispose();
      await fixture.dispose();
    }
  });
});

void describe("gitops apply goes through change management", () => {
  void it("commits a change to production only once its change request applied, and a standard change at once", async () => {
    const harness = await createAuditHarness(testDatabaseFactories.pglite);
    const dir = await mkdtemp(join(tmpdir(), "carehost-gitops-gate-"));
    let now = OUTSIDE_WINDOWS;
    try {
      const governed = createGovernedServices(harness, { now: () => now });
      const service = gitopsServiceFactory({
        repositoryFor: (organization, target) =>
          gitopsRepositoryFactory({
            bareRepositoryPath: join(dir, organization, `${target}.git`),
            workDir: join(dir, "work", organization, target),
          }),
        renderers: RENDERERS,
        policy: policyCheckerFactory(),
        exceptionApprovals: async () => NO_APPROVALS,
        audit: harness.log,
        reportAuditFailure: () => assert.fail("no audit append fails in this test"),
        record: (ctx, submission) => governed.environments.apply(ctx, submission),
      });
      const alice = userContext("alice", "operator");
      const approvers = [userContext("bob", "approver"), userContext("dana", "approver")];
      const demo = await readFile(join("examples", "northwind-health.yaml"), "utf8");
      const tip = async () =>
        (
          await runGit(["--git-dir", join(dir, "northwind-health", "compose.git"), "rev-parse", "refs/heads/main"], {
            cwd: dir,
          })
        ).stdout.trim();
      const first = await service.apply(alice, { source: demo, fileName: "org.yaml" }, "compose");
      assert.ok(first.commit !== null, "the organization's first delivery needs no approval");

      const moreWorkers = { source: demo.replace(/workers: 9\b/, "workers: 11"), fileName: "org.yaml" };
      await assert.rejects(
        service.apply(alice, moreWorkers, "compose"),
        (error: unknown) =>
          error instanceof PolicyViolation && /needs approval: carehost change create org\.yaml/.test(error.message),
      );
      assert.equal(await tip(), first.commit, "nothing reached the repository");

      now = INSIDE_PROD_WINDOW;
      await applyThroughChangeRequest(governed, alice, approvers, moreWorkers);
      const delivered = await service.apply(alice, moreWorkers, "compose");
      assert.ok(delivered.commit !== null && delivered.commit !== first.commit, "the applied change commits");
      assert.ok(delivered.changedPaths.some((path) => path.startsWith("environments/prod/")));

      now = OUTSIDE_WINDOWS;
      const staging = moreWorkers.source.replace(
        /(name: staging[\s\S]*?workers: )(\d+)/,
        (_all, head: string, count: string) => `${head}${Number(count) + 1}`,
      );
      const standard = await service.apply(alice, { source: staging, fileName: "org.yaml" }, "compose");
      assert.ok(standard.commit !== null, "a change to staging alone is standard");
      const [recorded] = await governed.changes.list(alice, {});
      assert.equal(recorded?.kind, "standard", "and recorded as a standard change request");
    } finally {
      await harness.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
