// Runs the host's binaries (initdb, pg_ctl, redis-server, openssl) the one way STYLE.md item 9
// allows: a file and an argument array, never a shell string. Secrets travel on stdin or in
// 0600 files, never in argv, so `ps` and error messages cannot show them.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { DomainError } from "./errors.js";

/** The OS account a data-tier process runs as. */
export type TOsUser = { readonly name: string; readonly uid: number; readonly gid: number; readonly home: string };

export type TCommandOptions = {
  /** Run as this user (needs root); the current user when omitted. */
  readonly asUser?: TOsUser;
  readonly env?: Readonly<Record<string, string>>;
  /** Written to the command's stdin, e.g. a private key, so it never touches argv or disk. */
  readonly input?: string;
  readonly cwd?: string;
  readonly timeoutMs?: number;
};

export class RuntimeCommandError extends DomainError {
  constructor(
    message: string,
    readonly command: string,
    readonly stderr: string,
    /** What it printed before it failed: some tools (pg_waldump at a segment's end) fail after their output. */
    readonly stdout = "",
  ) {
    super(message);
  }
}

/** The last lines of a command's error output: enough to say why, never a wall of text. */
const tail = (text: string, lines = 6) => text.trim().split("\n").slice(-lines).join("\n");

/**
 * A command carehost waits for dies with carehost, and so does every process it forked.
 * util-linux's setpriv sets the parent-death signal before it execs coreutils' timeout, which
 * leads its own process group and, on that signal or at its time limit, sends SIGTERM to the
 * whole group, then SIGKILL to whatever still runs after GRACE_SECONDS. The group matters:
 * pg_restore --jobs and pgBackRest's process-max fork workers that the parent-death signal does
 * not reach, and a carehost killed outright (SIGKILL, OOM) would otherwise leave them loading a
 * copy that the next start removes or holding the stanza's lock. SIGTERM first lets pg_restore
 * cancel its queries and pgBackRest and restic release their locks. Daemons are not affected:
 * pg_ctl starts the postmaster in a session of its own (setsid), and spawnDetached (Redis) does
 * not go through here.
 */
const GRACE_SECONDS = 5;
const dieWithCarehost = (timeoutMs: number) =>
  ["--pdeathsig", "TERM", "--", "timeout", `--kill-after=${GRACE_SECONDS}s`, `${timeoutMs / 1000}s`] as const;
/** coreutils timeout's status for a command it stopped at its limit; 128 + 9 when SIGKILL was needed. */
const TIMED_OUT_STATUSES: ReadonlySet<unknown> = new Set([124, 137]);

/**
 * The commands running now, so a carehost asked to stop (SIGTERM) can end them instead of waiting
 * out their time limits: the process of each is coreutils' timeout, which passes a signal it gets
 * on to the command's whole process group, and SIGKILLs the group GRACE_SECONDS later.
 */
const runningCommands = new Set<ChildProcess>();

/**
 * Ends every command carehost is waiting for (their callers see them fail) and returns how many.
 * For a stopping carehost: what their runs left half-done, the next start repairs as after a SIGKILL.
 */
export function endRunningCommands(): number {
  const ended = [...runningCommands];
  for (const child of ended) child.kill("SIGTERM");
  return ended.length;
}

/** A command's environment: nothing of carehost's own but PATH, and the account's HOME and USER when it runs as one. */
const environmentOf = (options: Pick<TCommandOptions, "asUser" | "env">): Record<string, string> => {
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C.UTF-8", ...options.env };
  if (options.asUser !== undefined) {
    env.HOME = options.asUser.home;
    env.USER = options.asUser.name;
  }
  return env;
};

export async function runCommand(
  file: string,
  args: readonly string[],
  options: TCommandOptions = {},
): Promise<{ stdout: string; stderr: string }> {
  const env = environmentOf(options);
  const display = [file, ...args].join(" ");
  const timeoutMs = options.timeoutMs ?? 120_000;
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = execFile(
      "setpriv",
      [...dieWithCarehost(timeoutMs), file, ...args],
      {
        env,
        cwd: options.cwd,
        maxBuffer: 64 * 1024 * 1024,
        ...(options.asUser === undefined ? {} : { uid: options.asUser.uid, gid: options.asUser.gid }),
      },
      (error, stdout, stderr) => {
        if (error === null) {
          resolve({ stdout, stderr });
          return;
        }
        const timedOut = TIMED_OUT_STATUSES.has(error.code) && Date.now() - started >= timeoutMs;
        const status = timedOut
          ? `timed out after ${timeoutMs / 1000} s`
          : String(error.code ?? error.signal ?? "error");
        const reason = tail(stderr) || tail(stdout) || error.message;
        reject(new RuntimeCommandError(`${display} failed (${status}): ${reason}`, display, stderr, stdout));
      },
    );
    runningCommands.add(child);
    child.once("exit", () => runningCommands.delete(child));
    child.once("error", () => runningCommands.delete(child));
    // A command that exits before reading its input closes the pipe: that is its exit status's business, not an EPIPE crash.
    child.stdin?.on("error", () => undefined);
    child.stdin?.end(options.input ?? "");
  });
}

export type TPipedCommand = {
  readonly file: string;
  readonly args: readonly string[];
} & Pick<TCommandOptions, "asUser" | "env">;

/**
 * Runs `producer | consumer` without a shell, and without what flows between them touching disk
 * (a database dump on its way to being encrypted): the producer's output is streamed into the
 * consumer's input, each chunk shown to `observe` first (a digest, a byte count). Both die with
 * carehost and at the time limit like runCommand's. A producer that fails has the consumer ended
 * before its input does, so the consumer never takes a truncated stream for a whole one.
 */
export async function runPipeline(
  producer: TPipedCommand,
  consumer: TPipedCommand,
  options: { readonly timeoutMs?: number; readonly observe?: (chunk: Buffer) => void } = {},
): Promise<{ stdout: string }> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  const start = (command: TPipedCommand) => {
    const child = spawn("setpriv", [...dieWithCarehost(timeoutMs), command.file, ...command.args], {
      env: environmentOf(command),
      stdio: ["pipe", "pipe", "pipe"],
      ...(command.asUser === undefined ? {} : { uid: command.asUser.uid, gid: command.asUser.gid }),
    });
    runningCommands.add(child);
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString("utf8")).slice(-64 * 1024)));
    child.stdin.on("error", () => undefined);
    const exited = new Promise<string>((resolve) => {
      child.once("error", (error) => resolve(error.message));
      child.once("close", (code, signal) => resolve(code === 0 ? "" : String(code ?? signal)));
    }).finally(() => runningCommands.delete(child));
    const display = [command.file, ...command.args].join(" ");
    const failure = (status: string) =>
      new RuntimeCommandError(`${display} failed (${status}): ${tail(stderr) || "no output"}`, display, stderr);
    return { child, exited, failure };
  };
  const first = start(producer);
  const second = start(consumer);
  first.child.stdin.end();
  // A consumer that read what it needs and exited 0 (pg_restore --list stops after the table of
  // contents) leaves the rest of the stream to `observe` alone: it is still read to its end, so a
  // digest over it covers every byte, and the producer is not cut off into a false failure.
  let consumerDone = false;
  first.child.stdout.on("data", (chunk: Buffer) => {
    options.observe?.(chunk);
    if (consumerDone) return;
    if (!second.child.stdin.write(chunk)) {
      first.child.stdout.pause();
      second.child.stdin.once("drain", () => first.child.stdout.resume());
    }
  });
  let stdout = "";
  second.child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  // A consumer that fails early fails the pipeline with its own reason; the producer, cut off, stops too.
  let consumerFirst = false;
  void second.exited.then((status) => {
    if (first.child.exitCode !== null || first.child.signalCode !== null) return;
    if (status === "") {
      consumerDone = true;
      first.child.stdout.resume();
      return;
    }
    consumerFirst = true;
    first.child.stdout.destroy();
    first.child.kill("SIGTERM");
  });
  const produced = await first.exited;
  if (produced === "") second.child.stdin.end();
  else second.child.kill("SIGTERM");
  const consumed = await second.exited;
  if (consumerFirst && consumed !== "") throw second.failure(consumed);
  if (produced !== "") throw first.failure(produced);
  if (consumed !== "") throw second.failure(consumed);
  return { stdout };
}

/** Starts a long-running command detached from carehost, so a carehost restart leaves it running. */
export function spawnDetached(
  file: string,
  args: readonly string[],
  options: Pick<TCommandOptions, "asUser" | "env" | "cwd"> = {},
): void {
  const child = spawn(file, [...args], {
    detached: true,
    stdio: "ignore",
    cwd: options.cwd,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C.UTF-8", ...options.env },
    ...(options.asUser === undefined ? {} : { uid: options.asUser.uid, gid: options.asUser.gid }),
  });
  child.unref();
}

const isRoot = () => process.getuid?.() === 0;

/** Looks an account up in /etc/passwd (node has no getpwnam). */
export async function lookupOsUser(name: string): Promise<TOsUser | undefined> {
  const passwd = await readFile("/etc/passwd", "utf8");
  for (const line of passwd.split("\n")) {
    const [user, , uid, gid, , home] = line.split(":");
    if (user === name && uid !== undefined && gid !== undefined)
      return { name, uid: Number(uid), gid: Number(gid), home: home ?? "/" };
  }
  return undefined;
}

/**
 * The account PostgreSQL or Redis runs as: never root (initdb refuses it, and a compromised data
 * tier must not own the host). As root, the Debian package's account; otherwise the current user.
 */
export async function serviceUser(preferred: "postgres" | "redis"): Promise<TOsUser | undefined> {
  if (!isRoot()) return undefined;
  const user = (await lookupOsUser(preferred)) ?? (await lookupOsUser("postgres"));
  if (user === undefined) {
    throw new DomainError(
      `carehost runs as root but the OS user "${preferred}" does not exist; install the Debian package (make system-packages) or run carehost as a non-root user`,
    );
  }
  return user;
}

/** Whether a process id is alive (signal 0 checks without touching it); a zombie is dead. */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  // A daemon killed outright stays a zombie until its parent (often init) reaps it.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}
