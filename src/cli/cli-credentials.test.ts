// writePrivateFile holds tokens and passwords: a reader sees a whole file of mode 0600 or the one
// before, whoever else writes the same path at the same moment, and a failed write leaves nothing.
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { writePrivateFile } from "./cli-credentials.js";

void describe("writePrivateFile", () => {
  const dirs: string[] = [];
  const tempDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), "carehost-private-file-"));
    dirs.push(dir);
    return dir;
  };
  after(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

  void it("lets writers of one path race: each write succeeds, and the file is one of them whole", async () => {
    const dir = await tempDir();
    const path = join(dir, "cli-token");
    const contents = Array.from({ length: 16 }, (_, index) => `token ${index} ${"x".repeat(4096)}\n`);
    await Promise.all(contents.map((content) => writePrivateFile(path, content)));
    assert.ok(contents.includes(await readFile(path, "utf8")), "the file holds one write, whole");
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), ["cli-token"], "no temporary file is left");
  });

  void it("leaves no temporary file behind when the write fails", async () => {
    const dir = await tempDir();
    // A directory in the way: the rename over it fails after the temporary file was written.
    const path = join(dir, "cli-token");
    await mkdir(join(path, "in-the-way"), { recursive: true });
    await assert.rejects(writePrivateFile(path, "a token\n"), { code: "EISDIR" });
    assert.deepEqual(await readdir(dir), ["cli-token"]);
  });
});
