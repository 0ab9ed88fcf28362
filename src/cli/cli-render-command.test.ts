import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { renderComposeEnvironment } from "../render/compose/compose-render.js";
import { loadSpecFile } from "../spec/spec-loader.js";
import { writeRenderedFiles } from "./cli-render-command.js";

type TRun = { code: number; stdout: string; stderr: string };

/** Runs the real CLI entry point, as an operator would. */
const carehost = (...args: string[]): Promise<TRun> =>
  new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "src/cli/main.ts", ...args],
      { env: { ...process.env, NO_COLOR: "1" } },
      (error, stdout, stderr) => {
        resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr });
      },
    );
  });

let scratch = "";

/** The demo with its offsite Azure repository behind a path-style endpoint (an emulator's form). */
const pathStyleAzureSpec = async () =>
  (await readFile("examples/northwind-health.yaml", "utf8")).replace(
    "    keySecretRef: backup-offsite-azure-key",
    "    endpoint: https://azurite.northwind-health.example:10000/northwindbackups\n    keySecretRef: backup-offsite-azure-key",
  );
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "carehost-render-cli-"));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

void describe("carehost render", () => {
  void it("writes the compose bundle of an environment to DIR and lists the files", async () => {
    const out = join(scratch, "prod-compose");
    const run = await carehost(
      "render",
      "prod",
      "--file",
      "examples/northwind-health.yaml",
      "--target",
      "compose",
      "--out",
      out,
    );
    assert.equal(run.code, 0, run.stderr);
    const loaded = await loadSpecFile("examples/northwind-health.yaml");
    assert.ok(loaded.ok);
    const expected = renderComposeEnvironment(loaded.spec, "prod");
    for (const file of expected) {
      assert.equal(await readFile(join(out, file.path), "utf8"), file.content, file.path);
      assert.ok(run.stdout.includes(join(out, file.path)), `lists ${file.path}`);
    }
    const entries = await readdir(out, { recursive: true, withFileTypes: true });
    assert.equal(
      entries.filter((entry) => entry.isFile()).length,
      expected.length,
      "nothing else is written (no secret files)",
    );
    assert.match(run.stdout, new RegExp(`rendered prod for compose: ${expected.length} files`));
  });

  void it("writes the demo's Kubernetes manifests too: they pass every mandatory artifact control (exit code 0)", async () => {
    const out = join(scratch, "prod-kubernetes");
    const run = await carehost(
      "render",
      "prod",
      "--file",
      "examples/northwind-health.yaml",
      "--target",
      "kubernetes",
      "--out",
      out,
    );
    assert.equal(run.code, 0, run.stderr);
    assert.ok((await readdir(out)).includes("stanza-prod-stanza.yaml"));
  });

  void it("refuses with exit code 3, writing nothing, files that fail a mandatory artifact control", async () => {
    // restic's azure backend cannot address a path-style (emulator) endpoint: neither the bundle
    // nor the manifests can back the filestore up to that repository, so CH-BAK-007 fails.
    const spec = join(scratch, "path-style.yaml");
    await writeFile(spec, await pathStyleAzureSpec());
    for (const target of ["compose", "kubernetes"]) {
      const out = join(scratch, `path-style-${target}`);
      const run = await carehost("render", "prod", "--file", spec, "--target", target, "--out", out);
      assert.equal(run.code, 3, `${target}: ${run.stdout}${run.stderr}`);
      assert.match(
        run.stderr,
        new RegExp(`^error: refusing to write prod for ${target}: 1 mandatory control violation$`, "m"),
      );
      assert.match(
        run.stderr,
        new RegExp(
          `^ {2}CH-BAK-007 \\[.*\\] environment "prod": ${target}: the filestore is not backed up to repository "offsite"`,
          "m",
        ),
      );
      await assert.rejects(readdir(out), { code: "ENOENT" });
    }
  });

  void it("names the unknown environment and the known ones, exit code 1", async () => {
    const run = await carehost(
      "render",
      "qa",
      "--file",
      "examples/northwind-health.yaml",
      "--target",
      "compose",
      "--out",
      join(scratch, "qa"),
    );
    assert.equal(run.code, 1);
    assert.match(
      run.stderr,
      /environment "qa" is not in examples\/northwind-health\.yaml \(known: prod, staging, training\)/,
    );
    await assert.rejects(readdir(join(scratch, "qa")), { code: "ENOENT" });
  });

  void it("prints spec errors as file:line:col and writes nothing", async () => {
    const spec = join(scratch, "broken.yaml");
    const source = await readFile("examples/northwind-health.yaml", "utf8");
    await writeFile(spec, source.replace("rpoMinutes: 15", "rpoMinuts: 15"));
    const run = await carehost(
      "render",
      "prod",
      "--file",
      spec,
      "--target",
      "compose",
      "--out",
      join(scratch, "broken"),
    );
    assert.equal(run.code, 1);
    assert.match(
      run.stderr,
      new RegExp(`${spec.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:\\d+:\\d+  environments\\[0\\]\\.backup`),
    );
    await assert.rejects(readdir(join(scratch, "broken")), { code: "ENOENT" });
  });

  void it("rejects an unknown target as a usage error (exit code 2)", async () => {
    const run = await carehost(
      "render",
      "prod",
      "--file",
      "examples/northwind-health.yaml",
      "--target",
      "helm",
      "--out",
      join(scratch, "helm"),
    );
    assert.equal(run.code, 2);
    assert.match(run.stderr, /unknown target "helm": use kubernetes or compose/);
  });
});

void describe("writeRenderedFiles", () => {
  void it("refuses paths outside DIR before writing anything", async () => {
    const out = join(scratch, "guarded");
    for (const path of ["../escape.txt", "a/../../escape.txt", "/etc/escape.txt", ""]) {
      await assert.rejects(
        writeRenderedFiles(out, [
          { path: "ok.txt", content: "x" },
          { path, content: "x" },
        ]),
        /refusing to write/,
        path,
      );
    }
    await assert.rejects(readdir(out), { code: "ENOENT" });
  });

  void it("refuses to follow a symbolic link in DIR that leads outside it", async () => {
    const out = join(scratch, "linked");
    const outside = join(scratch, "outside");
    await mkdir(out, { recursive: true });
    await mkdir(outside, { recursive: true });
    await symlink(outside, join(out, "odoo"));
    await assert.rejects(writeRenderedFiles(out, [{ path: "odoo/odoo.conf", content: "x" }]), /leads outside/);
    assert.deepEqual(await readdir(outside), []);
  });
});
