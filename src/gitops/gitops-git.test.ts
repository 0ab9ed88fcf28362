import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { GitCommandError, runGit } from "./gitops-git.js";

// A GitOps remote that accepts the connection and then says nothing: before the time limit, the
// push waited for it as long as the TCP connection stayed up, holding the organization's changes.
void describe("git against a remote that stops answering", () => {
  let server: Server;
  let port: number;
  let work: string;
  const held: Socket[] = [];

  before(async () => {
    server = createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
    work = await mkdtemp(join(tmpdir(), "carehost-git-timeout-"));
    await runGit(["init", "--quiet"], { cwd: work });
    await runGit(["commit", "--quiet", "--allow-empty", "-m", "first"], { cwd: work });
  });

  after(async () => {
    for (const socket of held) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
    await rm(work, { recursive: true, force: true });
  });

  void it("ends a push at its time limit and says so", async () => {
    const started = Date.now();
    const pushed = runGit(["push", "--quiet", `http://127.0.0.1:${port}/repo.git`, "HEAD:refs/heads/main"], {
      cwd: work,
      timeoutMs: 2000,
    });
    await assert.rejects(pushed, (error: unknown) => {
      assert.ok(error instanceof GitCommandError);
      assert.match(error.message, /git push .* failed with exit code 124: timed out after 2 s/);
      return true;
    });
    const took = Date.now() - started;
    assert.ok(took < 6000, `the push ended after ${took} ms`);
  });
});
