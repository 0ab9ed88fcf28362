// runCommand's promise that a command dies with carehost: not only the process it started but
// every process that one forked (pg_restore --jobs and pgBackRest's process-max do), whether
// carehost is killed outright or the command outlives its time limit.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { processesRunning } from "../../test/runtime-fixtures.js";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCommand, runPipeline } from "./runtime-command.js";

/** A shell that forks a worker and waits for it, both sleeping for a duration no other process uses. */
const forkingCommand = () => {
  const marker = `${900 + randomInt(90)}.${randomInt(1_000_000)}`;
  return { marker, args: ["-c", `sleep ${marker} & sleep ${marker}; wait`] };
};
const sleepersOf = (marker: string) =>
  processesRunning((program, [duration]) => program === "sleep" && duration === marker);
const waitUntil = async (condition: () => Promise<boolean>, timeoutMs: number): Promise<boolean> => {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(50))
    if (await condition()) return true;
  return condition();
};

void describe("runCommand", () => {
  it("returns the command's output and names the command and its words when it fails", async () => {
    assert.deepEqual(await runCommand("sh", ["-c", "printf out; printf err >&2"]), { stdout: "out", stderr: "err" });
    await assert.rejects(
      runCommand("sh", ["-c", "echo 'relation \"ledger\" does not exist' >&2; exit 3"]),
      /sh -c .* failed \(3\): relation "ledger" does not exist$/,
    );
  });

  it("hands the command its input on stdin, never in argv", async () => {
    assert.equal((await runCommand("cat", [], { input: "secret on stdin" })).stdout, "secret on stdin");
  });

  it("stops the command and every process it forked at its time limit, and says so", async () => {
    const { marker, args } = forkingCommand();
    const started = Date.now();
    await assert.rejects(runCommand("sh", args, { timeoutMs: 1000 }), /failed \(timed out after 1 s\)/);
    assert.ok(Date.now() - started < 10_000, "the limit was kept");
    assert.ok(
      await waitUntil(async () => (await sleepersOf(marker)).length === 0, 5000),
      "a forked worker outlived the time limit",
    );
  });

  it("takes the command and every process it forked down with a carehost killed outright", async () => {
    const { marker, args } = forkingCommand();
    const program = `import { runCommand } from "./src/lib/runtime-command.ts"; await runCommand("sh", ${JSON.stringify(args)}, { timeoutMs: 600000 });`;
    const carehost = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "--eval", program], {
      stdio: "ignore",
    });
    try {
      assert.ok(
        await waitUntil(async () => (await sleepersOf(marker)).length === 2, 30_000),
        "the command and its worker never ran",
      );
      carehost.kill("SIGKILL");
      assert.ok(
        await waitUntil(async () => (await sleepersOf(marker)).length === 0, 5000),
        "the command or its worker outlived carehost",
      );
    } finally {
      carehost.kill("SIGKILL");
      for (const pid of await sleepersOf(marker)) process.kill(pid, "SIGKILL");
    }
  });
});

void describe("runPipeline", () => {
  it("streams the producer into the consumer through observe, and fails with whichever command failed first", async () => {
    let seen = 0;
    const piped = await runPipeline(
      { file: "sh", args: ["-c", "head -c 300000 /dev/zero | tr '\\0' x"] },
      { file: "wc", args: ["-c"] },
      { observe: (chunk) => (seen += chunk.length) },
    );
    assert.equal(piped.stdout.trim(), "300000");
    assert.equal(seen, 300000);
    await assert.rejects(
      runPipeline(
        { file: "sh", args: ["-c", "yes"] },
        { file: "sh", args: ["-c", "head -c 10 >/dev/null; echo full >&2; exit 5"] },
      ),
      /^RuntimeCommandError: sh -c head .* failed \(5\): full$/,
    );
  });

  it("reads the stream to its end when the consumer needs only its start and exits 0 (pg_restore --list reads the table of contents)", async () => {
    let seen = 0;
    // The consumer exits 0 after 10 bytes while the producer still has ~1 MB to write.
    const piped = await runPipeline(
      { file: "sh", args: ["-c", "head -c 10 /dev/zero; sleep 0.3; head -c 1000000 /dev/zero"] },
      { file: "sh", args: ["-c", "head -c 10 >/dev/null; echo toc"] },
      { observe: (chunk) => (seen += chunk.length) },
    );
    assert.equal(piped.stdout.trim(), "toc");
    assert.equal(seen, 1_000_010, "every byte the producer wrote was observed");
  });

  it("ends the consumer before its input ends when the producer fails, so it never keeps a truncated stream", async () => {
    const directory = await mkdtemp(join(tmpdir(), "carehost-pipe-"));
    try {
      const kept = join(directory, "kept");
      // The consumer writes what it read only once its input has ended: a producer that fails must stop it before.
      await assert.rejects(
        runPipeline(
          { file: "sh", args: ["-c", "printf partial; sleep 0.2; echo 'connection lost' >&2; exit 2"] },
          { file: "sh", args: ["-c", `data=$(cat); printf %s "$data" > ${kept}`] },
        ),
        /failed \(2\): connection lost$/,
      );
      await assert.rejects(readFile(kept), { code: "ENOENT" });
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});
