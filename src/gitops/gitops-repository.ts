// GitOps delivery: rendered environments are committed to a bare repository (by default
// <data dir>/gitops.git) that deployment agents pull from, optionally pushed on to a remote.
// Each environment lives under environments/<env>/. A commit happens only when a render changed
// something, so the history is a list of real changes, each naming its spec digest and actor.
// `diff` compares a fresh render with main: before a commit it previews the change, after one it
// detects drift (someone edited the repository by hand).
//
// Failure rules: commitEnvironments either commits and pushes to the bare repository, or leaves
// the bare repository as it was (the clone is reset on the next call). If only the push to the
// optional remote fails, the local commit stands, the error names the commit, and the next
// successful commit pushes both. One process owns a workDir; calls are serialised within it.
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { TRenderedFile } from "../render/render-types.js";
import { assertIdentity, GitCommandError, runGit } from "./gitops-git.js";
import type { TGitIdentity } from "./gitops-git.js";

export const GITOPS_BRANCH = "main";
export const ENVIRONMENTS_DIR = "environments";
/** Where carehost's clone keeps the remote's main when it checks what the remote has (not a branch agents see). */
const REMOTE_TRACKING_REF = "refs/carehost/remote-main";

const ENVIRONMENT_NAME = /^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/;
const SPEC_DIGEST = /^[0-9a-f]{64}$/;

export type TGitopsRepositoryOptions = {
  /** The bare repository agents pull from, e.g. <data dir>/gitops.git. */
  readonly bareRepositoryPath: string;
  /** carehost's private clone of it; recreated when missing. */
  readonly workDir: string;
  /** Pushed to after every local commit (https:// or ssh://, or a path in tests). */
  readonly remote?: string;
};

export type TCommitEnvironmentsInput = {
  /** Rendered files per environment name; only these environments' directories are touched. */
  readonly files: ReadonlyMap<string, readonly TRenderedFile[]>;
  /** Organization name, for the commit subject. */
  readonly organization: string;
  /** SHA-256 (hex) of the spec the files were rendered from. */
  readonly specDigest: string;
  /** Who asked for the change, as recorded in the audit log. */
  readonly actor: string;
  /** Commit author; defaults to the actor at carehost.invalid. */
  readonly author?: TGitIdentity;
};

export type TCommitResult = { readonly commit: string | null; readonly changedPaths: readonly string[] };

/** A commit carehost made, as found afterwards; onRemote is undefined without a remote. */
export type TFoundCommit = TCommitResult & { readonly commit: string; readonly onRemote?: boolean };

export type TPathChange =
  | { readonly path: string; readonly change: "added" }
  | { readonly path: string; readonly change: "removed" }
  | { readonly path: string; readonly change: "changed"; readonly diff: string };

export type TDiffResult = { readonly inSync: boolean; readonly changes: readonly TPathChange[] };

/** Refuses paths that would land outside the environment's directory or inside .git. */
export function assertRenderedPath(environment: string, path: string): void {
  const segments = path.split("/");
  const bad =
    path === "" ||
    path.startsWith("/") ||
    path.includes("\\") ||
    path.includes("\0") ||
    segments.some(
      (segment) => segment === "" || segment === "." || segment === ".." || segment.toLowerCase() === ".git",
    );
  if (bad)
    throw new TypeError(
      `environment ${JSON.stringify(environment)}: rendered path ${JSON.stringify(path)} is not a plain relative path`,
    );
}

function assertEnvironmentName(name: string): void {
  if (!ENVIRONMENT_NAME.test(name))
    throw new TypeError(`environment name ${JSON.stringify(name)} is not a DNS label of at most 40 characters`);
}

const environmentOf = (repositoryPath: string): string => repositoryPath.split("/")[1] ?? "";

export function gitopsCommitMessage(input: {
  organization: string;
  changedEnvironments: readonly string[];
  specDigest: string;
  actor: string;
}): string {
  const count = input.changedEnvironments.length;
  return [
    `carehost: apply ${input.organization} (${count} environment${count === 1 ? "" : "s"} changed)`,
    "",
    ...input.changedEnvironments.map((environment) => `- ${environment}`),
    "",
    `Spec-Digest: sha256:${input.specDigest}`,
    `Actor: ${input.actor}`,
    "",
  ].join("\n");
}

/** Removes git's header lines so the text names the repository path, not temp files. */
function unifiedDiff(path: string, gitOutput: string): string {
  const lines = gitOutput.split("\n");
  const firstHunk = lines.findIndex((line) => line.startsWith("@@"));
  return [`--- a/${path}`, `+++ b/${path}`, ...lines.slice(firstHunk === -1 ? lines.length : firstHunk)]
    .join("\n")
    .replace(/\n*$/, "\n");
}

export const gitopsRepositoryFactory = ({ bareRepositoryPath, workDir, remote }: TGitopsRepositoryOptions) => {
  let queue: Promise<unknown> = Promise.resolve();
  /** Runs one operation at a time: two commits in one clone would interleave their file writes. */
  const serialised = <T>(operation: () => Promise<T>): Promise<T> => {
    const result = queue.then(operation, operation);
    queue = result.catch(() => undefined);
    return result;
  };

  const bareHasBranch = async (): Promise<boolean> => {
    const result = await runGit(["rev-parse", "--verify", "--quiet", `refs/heads/${GITOPS_BRANCH}`], {
      cwd: bareRepositoryPath,
      okExitCodes: [1],
    });
    return result.exitCode === 0;
  };

  const ensureUnserialised = async (): Promise<void> => {
    if (!existsSync(join(bareRepositoryPath, "HEAD"))) {
      await mkdir(bareRepositoryPath, { recursive: true });
      await runGit(["init", "--quiet", "--bare", `--initial-branch=${GITOPS_BRANCH}`, bareRepositoryPath], {
        cwd: dirname(bareRepositoryPath),
      });
    }
    if (!(await bareHasBranch())) {
      // An empty root commit, so that the first apply is a diff like every later one.
      const emptyTree = (
        await runGit(["hash-object", "-t", "tree", "-w", "/dev/null"], { cwd: bareRepositoryPath })
      ).stdout.trim();
      const root = (
        await runGit(["commit-tree", emptyTree, "-m", "carehost: initialise GitOps repository"], {
          cwd: bareRepositoryPath,
        })
      ).stdout.trim();
      await runGit(["update-ref", `refs/heads/${GITOPS_BRANCH}`, root, ""], { cwd: bareRepositoryPath });
    }
    if (!existsSync(join(workDir, ".git"))) {
      await rm(workDir, { recursive: true, force: true });
      await mkdir(dirname(workDir), { recursive: true });
      await runGit(["clone", "--quiet", "--branch", GITOPS_BRANCH, bareRepositoryPath, workDir], {
        cwd: dirname(workDir),
      });
    }
    // Start from exactly what the bare repository holds, whatever an earlier failed call left.
    await runGit(["fetch", "--quiet", "origin", `+refs/heads/${GITOPS_BRANCH}:refs/remotes/origin/${GITOPS_BRANCH}`], {
      cwd: workDir,
    });
    await runGit(["checkout", "--quiet", "-B", GITOPS_BRANCH, `origin/${GITOPS_BRANCH}`], { cwd: workDir });
    await runGit(["reset", "--quiet", "--hard", `origin/${GITOPS_BRANCH}`], { cwd: workDir });
    await runGit(["clean", "--quiet", "-fdx"], { cwd: workDir });
  };

  const validateFiles = (files: ReadonlyMap<string, readonly TRenderedFile[]>): void => {
    for (const [environment, rendered] of files) {
      assertEnvironmentName(environment);
      const seen = new Set<string>();
      for (const file of rendered) {
        assertRenderedPath(environment, file.path);
        if (seen.has(file.path))
          throw new TypeError(
            `environment ${JSON.stringify(environment)}: rendered path ${JSON.stringify(file.path)} appears twice`,
          );
        seen.add(file.path);
      }
    }
  };

  /** Files of main under environments/<env>/, as repository paths. */
  /** HEAD, when the staged tree is the one its parent holds: committing it undoes HEAD. */
  const revertedCommit = async (): Promise<{ commit: string; subject: string } | undefined> => {
    const parent = await runGit(["rev-parse", "--verify", "--quiet", "HEAD~1^{tree}"], {
      cwd: workDir,
      okExitCodes: [1],
    });
    if (parent.exitCode !== 0) return undefined;
    const staged = await runGit(["write-tree"], { cwd: workDir });
    if (staged.stdout.trim() !== parent.stdout.trim()) return undefined;
    const head = await runGit(["log", "-1", "--format=%H%n%s", "HEAD"], { cwd: workDir });
    const [commit = "", subject = ""] = head.stdout.split("\n");
    return { commit, subject };
  };

  const committedPaths = async (environment: string): Promise<string[]> => {
    const listing = await runGit(
      ["ls-tree", "-r", "-z", "--name-only", GITOPS_BRANCH, "--", `${ENVIRONMENTS_DIR}/${environment}/`],
      { cwd: bareRepositoryPath },
    );
    return listing.stdout.split("\0").filter((path) => path !== "");
  };

  const committedContent = async (path: string): Promise<string> =>
    (await runGit(["cat-file", "blob", `${GITOPS_BRANCH}:${path}`], { cwd: bareRepositoryPath })).stdout;

  return {
    /** Creates the bare repository with a main branch, and carehost's clone of it, when missing. */
    ensure: (): Promise<void> => serialised(ensureUnserialised),

    /** Environment directories on main (after ensure). */
    committedEnvironments: async (): Promise<string[]> => {
      const listing = await runGit(["ls-tree", "-z", "--name-only", GITOPS_BRANCH, "--", `${ENVIRONMENTS_DIR}/`], {
        cwd: bareRepositoryPath,
      });
      return listing.stdout
        .split("\0")
        .filter((path) => path !== "")
        .map((path) => path.slice(ENVIRONMENTS_DIR.length + 1))
        .sort();
    },

    commitEnvironments: (input: TCommitEnvironmentsInput): Promise<TCommitResult> =>
      serialised(async () => {
        validateFiles(input.files);
        if (!SPEC_DIGEST.test(input.specDigest))
          throw new TypeError(`specDigest ${JSON.stringify(input.specDigest)} is not a SHA-256 in hex`);
        if (!/^[^\n\r]{1,200}$/.test(input.actor))
          throw new TypeError(`actor ${JSON.stringify(input.actor)} is not a single line`);
        const author = input.author ?? {
          name: input.actor,
          email: `${input.actor.replace(/[^A-Za-z0-9._-]/g, "_")}@carehost.invalid`,
        };
        assertIdentity(author, "author");
        await ensureUnserialised();

        const environments = [...input.files.keys()].sort();
        for (const environment of environments) {
          const directory = join(workDir, ENVIRONMENTS_DIR, environment);
          // Rewriting the directory from scratch removes files the new render no longer has.
          await rm(directory, { recursive: true, force: true });
          for (const file of input.files.get(environment) ?? []) {
            const target = join(directory, ...file.path.split("/"));
            await mkdir(dirname(target), { recursive: true });
            await writeFile(target, file.content);
          }
          await runGit(["add", "--all", "--", `${ENVIRONMENTS_DIR}/${environment}`], { cwd: workDir });
        }
        const staged = await runGit(["diff", "--cached", "--name-only", "-z"], { cwd: workDir });
        const changedPaths = staged.stdout
          .split("\0")
          .filter((path) => path !== "")
          .sort();
        if (changedPaths.length === 0) return { commit: null, changedPaths: [] };

        const changedEnvironments = [...new Set(changedPaths.map(environmentOf))].sort();
        const applied = gitopsCommitMessage({
          organization: input.organization,
          changedEnvironments,
          specDigest: input.specDigest,
          actor: input.actor,
        });
        // Back to exactly what main held before its last commit (a rollback): say so as git revert
        // does, so Argo CD's history and `git log` read it as the undoing of that commit.
        const reverted = await revertedCommit();
        const message =
          reverted === undefined
            ? applied
            : `Revert "${reverted.subject}"\n\nThis reverts commit ${reverted.commit}.\n\n${applied.slice(applied.indexOf("\n") + 1).trimStart()}`;
        await runGit(["commit", "--quiet", "--no-verify", "-m", message], { cwd: workDir, author });
        const commit = (await runGit(["rev-parse", "HEAD"], { cwd: workDir })).stdout.trim();
        // The bare repository fetches from the clone rather than the clone pushing to it: a push
        // runs receive-pack in the bare repository with its own config and hooks, a fetch runs in
        // this process's hardened git. Fast-forward only: a hand edit pushed meanwhile makes this
        // fail rather than be overwritten silently; the next call starts from it.
        await runGit(["fetch", "--quiet", workDir, `refs/heads/${GITOPS_BRANCH}:refs/heads/${GITOPS_BRANCH}`], {
          cwd: bareRepositoryPath,
        });
        if (remote !== undefined) {
          try {
            await runGit(["push", "--quiet", remote, `HEAD:refs/heads/${GITOPS_BRANCH}`], { cwd: workDir });
          } catch (error) {
            const reason = error instanceof GitCommandError ? error.stderr.trim() : String(error);
            throw new Error(`committed ${commit} locally, but pushing to the remote failed: ${reason}`, {
              cause: error,
            });
          }
        }
        return { commit, changedPaths };
      }),

    /**
     * The newest commit on main that carehost made for this spec digest and actor at or after
     * `since`, and whether the remote has it: what an apply that stopped before recording its
     * conclusion left. Undefined when there is none, or no repository yet (nothing is created).
     * A remote that cannot be read throws: whether it has the commit is then not known.
     */
    findCommit: (query: {
      readonly specDigest: string;
      readonly actor: string;
      readonly since: Date;
    }): Promise<TFoundCommit | undefined> =>
      serialised(async () => {
        if (!existsSync(join(bareRepositoryPath, "HEAD")) || !(await bareHasBranch())) return undefined;
        const specLine = `Spec-Digest: sha256:${query.specDigest}`;
        const actorLine = `Actor: ${query.actor}`;
        // Git's commit times are whole seconds; the commit is made after `since`, never before its second.
        const sinceSeconds = Math.floor(query.since.getTime() / 1000);
        const log = await runGit(
          ["log", "-z", "--fixed-strings", `--grep=${specLine}`, "--format=%H%n%ct%n%B", `refs/heads/${GITOPS_BRANCH}`],
          { cwd: bareRepositoryPath },
        );
        const commit = log.stdout
          .split("\0")
          .map((record) => record.split("\n"))
          .find(
            ([, committedAt, ...message]) =>
              Number(committedAt) >= sinceSeconds && message.includes(specLine) && message.includes(actorLine),
          )?.[0];
        if (commit === undefined) return undefined;
        const changed = await runGit(["diff-tree", "-r", "-z", "--no-commit-id", "--name-only", commit], {
          cwd: bareRepositoryPath,
        });
        const changedPaths = changed.stdout
          .split("\0")
          .filter((path) => path !== "")
          .sort();
        if (remote === undefined) return { commit, changedPaths };
        const advertised = await runGit(["ls-remote", "--exit-code", remote, `refs/heads/${GITOPS_BRANCH}`], {
          cwd: bareRepositoryPath,
          okExitCodes: [2],
        });
        if (advertised.exitCode === 2) return { commit, changedPaths, onRemote: false };
        // The remote's main may have moved past the commit (a later apply, a hand edit): ancestry decides.
        await ensureUnserialised();
        await runGit(["fetch", "--quiet", remote, `+refs/heads/${GITOPS_BRANCH}:${REMOTE_TRACKING_REF}`], {
          cwd: workDir,
        });
        const ancestor = await runGit(["merge-base", "--is-ancestor", commit, REMOTE_TRACKING_REF], {
          cwd: workDir,
          okExitCodes: [1],
        });
        return { commit, changedPaths, onRemote: ancestor.exitCode === 0 };
      }),

    /** What committing these files would change on main; non-empty after a commit means drift. */
    diff: ({ files }: { readonly files: ReadonlyMap<string, readonly TRenderedFile[]> }): Promise<TDiffResult> =>
      serialised(async () => {
        validateFiles(files);
        await ensureUnserialised();
        const changes: TPathChange[] = [];
        const scratch = await mkdtemp(join(tmpdir(), "carehost-gitops-diff-"));
        try {
          for (const environment of [...files.keys()].sort()) {
            const rendered = new Map(
              (files.get(environment) ?? []).map((file) => [
                `${ENVIRONMENTS_DIR}/${environment}/${file.path}`,
                file.content,
              ]),
            );
            const committed = new Set(await committedPaths(environment));
            for (const [path, content] of rendered) {
              if (!committed.has(path)) {
                changes.push({ path, change: "added" });
                continue;
              }
              const current = await committedContent(path);
              if (current === content) continue;
              const before = join(scratch, "before");
              const after = join(scratch, "after");
              await writeFile(before, current);
              await writeFile(after, content);
              const text = await runGit(["diff", "--no-index", "--no-color", "--unified=3", "--", before, after], {
                cwd: scratch,
                okExitCodes: [1],
              });
              changes.push({ path, change: "changed", diff: unifiedDiff(path, text.stdout) });
            }
            for (const path of committed) if (!rendered.has(path)) changes.push({ path, change: "removed" });
          }
        } finally {
          await rm(scratch, { recursive: true, force: true });
        }
        changes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
        return { inSync: changes.length === 0, changes };
      }),
  };
};

export type TGitopsRepository = ReturnType<typeof gitopsRepositoryFactory>;
