// The copies commands and the restore refusal as an operator meets them: the carehost CLI against a
// running server (no runtime: the refusal comes before anything would run), exit codes included.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { loadConfig } from "../src/lib/config.js";
import { startCarehost, type TRunningCarehost } from "../src/server/server-start.js";

const run = promisify(execFile);

void describe("carehost restore --deidentify, copies and copies remove from the CLI", () => {
  let home: string;
  let running: TRunningCarehost;

  const cli = async (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
    try {
      const { stdout, stderr } = await run(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], {
        env: { ...process.env, CAREHOST_HOME: home, XDG_CONFIG_HOME: join(home, "xdg"), NO_COLOR: "1" },
      });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  };

  before(async () => {
    home = await mkdtemp(join(tmpdir(), "carehost-copies-cli-"));
    const config = loadConfig({ CAREHOST_HOME: home, CAREHOST_PORT: "0", CAREHOST_RUNTIME: "none" });
    running = await startCarehost(config, {
      specPath: "examples/northwind-health.yaml",
      print: () => undefined,
      logStream: new Writable({ write: (_chunk, _encoding, done) => done() }),
    });
  });
  after(async () => {
    await running.close();
    await rm(home, { recursive: true, force: true });
  });

  void it("refuses a plain restore of prod's PHI into staging with exit 3, naming CH-DATA-001 and --deidentify", async () => {
    const refused = await cli(["restore", "prod", "--to", "latest", "--into", "staging"]);
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(refused.stderr, /CH-DATA-001 .*environment "prod" holds PHI.*add --deidentify/);
    // --deidentify in place is a usage mistake, not a policy refusal.
    const inPlace = await cli(["restore", "prod", "--to", "latest", "--in-place", "--deidentify"]);
    assert.equal(inPlace.code, 1, inPlace.stderr);
    assert.match(inPlace.stderr, /--deidentify makes a copy/);
  });

  void it("lists no copies yet, in text and JSON, and says so for a copy that does not exist", async () => {
    const listed = await cli(["copies"]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(listed.stdout.trim(), "no copies");
    const json = await cli(["copies", "-o", "json"]);
    assert.deepEqual(JSON.parse(json.stdout), []);
    const removed = await cli(["copies", "remove", "prod-1403"]);
    assert.equal(removed.code, 1);
    assert.match(removed.stderr, /no live copy is named "prod-1403"/);
    const posture = await cli(["posture", "-o", "json"]);
    const [organization] = JSON.parse(posture.stdout) as {
      copies: { live: number; phi: number; pastExpiry: number };
    }[];
    assert.deepEqual(organization!.copies, { live: 0, phi: 0, pastExpiry: 0 });
  });
});
