// Runs the real git CLI: execFile with an argument array (never a shell string), an environment
// that ignores the system and global configuration, and hooks disabled, so a repository's own
// config or a user's ~/.gitconfig cannot change what carehost commits or run code on its behalf.
import { execFile } from "node:child_process";

export type TGitIdentity = { readonly name: string; readonly email: string };

export type TGitResult = { readonly stdout: string; readonly stderr: string; readonly exitCode: number };

export class GitCommandError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly exitCode: number,
    readonly stderr: string,
  ) {
    super(`git ${args.join(" ")} failed with exit code ${exitCode}: ${stderr.trim()}`);
    this.name = "GitCommandError";
  }
}

/** carehost commits as itself; the person who asked for the change is the author. */
export const CAREHOST_COMMITTER: TGitIdentity = { name: "carehost", email: "carehost@carehost.invalid" };

const IDENTITY_PART = /^[^\n\r<>\0]{1,200}$/;

export function assertIdentity(identity: TGitIdentity, role: string): void {
  if (!IDENTITY_PART.test(identity.name) || !IDENTITY_PART.test(identity.email) || identity.name.trim() === "") {
    throw new TypeError(
      `${role} ${JSON.stringify(identity)} is not a usable git identity (no newlines or angle brackets)`,
    );
  }
}

const FIXED_CONFIG = [
  "-c",
  "core.hooksPath=/dev/null",
  "-c",
  "commit.gpgSign=false",
  "-c",
  "tag.gpgSign=false",
  "-c",
  "core.autocrlf=false",
  "-c",
  "core.quotePath=false",
  "-c",
  "init.defaultBranch=main",
  "-c",
  "advice.detachedHead=false",
] as const;

export type TGitRunOptions = {
  readonly cwd: string;
  readonly author?: TGitIdentity;
  /** Exit codes that are answers rather than failures (git diff --no-index exits 1 on a difference). */
  readonly okExitCodes?: readonly number[];
  /** How long the command may run; a push to a remote that stops answering must not hold the organization's work. */
  readonly timeoutMs?: number;
};

/** Local git commands finish in well under this; a push or fetch over the network gets the same bound. */
export const GIT_TIMEOUT_MS = 120_000;
/** coreutils timeout's status for a command it stopped at its limit (124), or killed after the grace (137). */
const TIMED_OUT_STATUSES: ReadonlySet<number> = new Set([124, 137]);

export function gitEnvironment(author: TGitIdentity = CAREHOST_COMMITTER): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    LC_ALL: "C",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_TERMINAL_PROMPT: "0",
    GIT_AUTHOR_NAME: author.name,
    GIT_AUTHOR_EMAIL: author.email,
    GIT_COMMITTER_NAME: CAREHOST_COMMITTER.name,
    GIT_COMMITTER_EMAIL: CAREHOST_COMMITTER.email,
    // A push to an https remote may need credentials from the process (an askpass helper, SSH agent).
    ...(process.env.SSH_AUTH_SOCK === undefined ? {} : { SSH_AUTH_SOCK: process.env.SSH_AUTH_SOCK }),
    ...(process.env.GIT_ASKPASS === undefined ? {} : { GIT_ASKPASS: process.env.GIT_ASKPASS }),
  };
}

export function runGit(args: readonly string[], options: TGitRunOptions): Promise<TGitResult> {
  const timeoutMs = options.timeoutMs ?? GIT_TIMEOUT_MS;
  // coreutils timeout signals git's whole process group (git-remote-https, ssh) at the limit, then SIGKILLs what is left.
  const fullArgs = ["--kill-after=5s", `${timeoutMs / 1000}s`, "git", ...FIXED_CONFIG, ...args];
  return new Promise((resolve, reject) => {
    execFile(
      "timeout",
      fullArgs,
      { cwd: options.cwd, env: gitEnvironment(options.author), maxBuffer: 64 * 1024 * 1024, encoding: "utf8" },
      (error, stdout, stderr) => {
        const exitCode = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
        if (exitCode === 0 || (options.okExitCodes ?? []).includes(exitCode)) {
          resolve({ stdout, stderr, exitCode });
          return;
        }
        const reason = TIMED_OUT_STATUSES.has(exitCode)
          ? `timed out after ${timeoutMs / 1000} s${stderr.trim() === "" ? "" : `: ${stderr.trim()}`}`
          : stderr || (error?.message ?? "");
        reject(new GitCommandError(args, exitCode, reason));
      },
    );
  });
}
