import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { createAuditHarness } from "../../test/audit-fixtures.js";
import { testDatabaseFactories } from "../../test/test-databases.js";
import { systemContext } from "../lib/request-context.js";
import { NO_APPROVALS } from "../policy/policy-exceptions.js";
import { policyCheckerFactory } from "../policy/policy-service.js";
import { RENDERERS } from "../render/render-targets.js";
import { runGit } from "./gitops-git.js";
import { gitopsRepositoryFactory } from "./gitops-repository.js";
import { gitopsServiceFactory } from "./gitops-service.js";

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

      await harness.database.superuserQuery(`CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'audit append failed (injected)'; END $$`);
      await harness.database.superuserQuery(
        "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_entries FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
      );
      await assert.rejects(serviceWith().apply(ctx, submission, "compose"), /audit append failed \(injected\)/);
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
      await harness.database.superuserQuery("DROP TRIGGER refuse_audit ON audit_entries");

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
