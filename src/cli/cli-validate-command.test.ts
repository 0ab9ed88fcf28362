// `carehost validate` as a CI pipeline or a pre-commit hook runs it: no server anywhere (the URL it
// would call is a closed port), the controls run offline, and a mandatory violation gives the very
// lines plan prints for the same spec, with exit code 3.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { policyCheckerFactory } from "../policy/policy-service.js";
import { loadSpecText } from "../spec/spec-loader.js";

type TRun = { code: number; stdout: string; stderr: string };

let scratch = "";
const carehost = (...args: string[]): Promise<TRun> =>
  new Promise((resolve) => {
    const env = {
      ...process.env,
      NO_COLOR: "1",
      CAREHOST_HOME: join(scratch, "home"),
      XDG_CONFIG_HOME: join(scratch, "xdg"),
      CAREHOST_URL: "http://127.0.0.1:9",
    };
    execFile(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], { env }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr });
    });
  });

let demo = "";
/** The demo with PHI production on shared hosting: CH-ISO-001 fails, and only it. */
const sharedProduction = () => demo.replace("hosting: dedicated", "hosting: shared");
const exception = (expires: string, controlId = "CH-ISO-001") => `
policyExceptions:
  - controlId: ${controlId}
    environment: prod
    owner: ciso@northwind-health.example
    reason: shared until the dedicated host is delivered; network-isolated meanwhile
    expires: "${expires}"
`;
const write = async (name: string, text: string) => {
  const path = join(scratch, name);
  await writeFile(path, text);
  return path;
};

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "carehost-validate-cli-"));
  demo = await readFile("examples/northwind-health.yaml", "utf8");
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

void describe("carehost validate, offline", () => {
  void it("passes the demo with exit code 0, the controls counted", async () => {
    const run = await carehost("validate", "examples/northwind-health.yaml");
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stdout,
      /^valid: examples\/northwind-health\.yaml \(organization "northwind-health", 3 environments, digest [0-9a-f]{12}\)$/m,
    );
    assert.match(
      run.stdout,
      /^controls over the spec and the files it renders: \d+ pass, 0 fail \(advisory\), 0 pending \(advisory\), 0 excepted, \d+ not enforced, \d+ n\.a\.$/m,
    );
  });

  void it("refuses PHI production on shared hosting with exit code 3 and the line plan prints", async () => {
    const source = sharedProduction();
    const loaded = loadSpecText(source, "shared.yaml");
    assert.ok(loaded.ok);
    // What the server's plan evaluates for this spec (environment-service: policy.evaluateDelivery).
    const planLines = policyCheckerFactory()
      .evaluateDelivery(loaded.spec, ["local"])
      .mandatoryViolations.map((violation) => violation.line);
    assert.equal(planLines.length, 1);
    assert.match(
      planLines[0]!,
      /^CH-ISO-001 \[164\.308\(a\)\(4\), 164\.312\(a\)\(1\)\] environment "prod": .*\(hosting: shared\)$/,
    );

    const run = await carehost("validate", await write("shared.yaml", source));
    assert.equal(run.code, 3, run.stdout + run.stderr);
    assert.equal(run.stderr, `error: 1 mandatory control violation\n  ${planLines[0]}\n`);
    assert.doesNotMatch(run.stdout, /valid/);

    const json = await carehost("validate", join(scratch, "shared.yaml"), "--output", "json");
    assert.equal(json.code, 3);
    const verdict = JSON.parse(json.stdout) as {
      ok: boolean;
      mandatoryViolations: { controlId: string; environment: string; line: string }[];
    };
    assert.equal(verdict.ok, false);
    assert.deepEqual(
      verdict.mandatoryViolations.map((violation) => violation.line),
      planLines,
    );
  });

  void it("refuses with exit code 3 a spec whose Compose and Kubernetes files fail a mandatory artifact control, naming each target", async () => {
    const source = demo.replace(
      "    keySecretRef: backup-offsite-azure-key",
      "    endpoint: https://azurite.northwind-health.example:10000/northwindbackups\n    keySecretRef: backup-offsite-azure-key",
    );
    const run = await carehost("validate", await write("path-style.yaml", source));
    assert.equal(run.code, 3, run.stdout + run.stderr);
    assert.match(run.stderr, /^error: 2 mandatory control violations$/m);
    for (const target of ["compose", "kubernetes"])
      assert.match(
        run.stderr,
        new RegExp(
          `^ {2}CH-BAK-007 \\[.*\\] environment "prod": ${target}: the filestore is not backed up to repository "offsite"`,
          "m",
        ),
      );
    // The local runtime reaches such an endpoint through rclone: no line for it.
    assert.doesNotMatch(run.stderr, /"prod": local:/);
  });

  void it("applies the spec's exceptions as plan does before anyone approved them: active is pending, expired refuses, unknown control fails", async () => {
    // Offline there are no approvals: an active exception is pending, its control fails, exit 3.
    const active = await carehost(
      "validate",
      await write("excepted.yaml", `${sharedProduction()}${exception("2099-12-31")}`),
    );
    assert.equal(active.code, 3, active.stdout + active.stderr);
    assert.match(
      active.stderr,
      /^ {2}CH-ISO-001 .*\(its exception awaits approval by someone other than its proposer\)$/m,
    );
    assert.match(active.stderr, /every exception counts as pending here/);
    const json = JSON.parse((await carehost("validate", join(scratch, "excepted.yaml"), "-o", "json")).stdout) as {
      summary: { pending: number; excepted: number };
    };
    assert.deepEqual([json.summary.pending, json.summary.excepted], [1, 0]);
    const expired = await carehost(
      "validate",
      await write("expired.yaml", `${sharedProduction()}${exception("2020-01-01")}`),
    );
    assert.equal(expired.code, 3, expired.stdout + expired.stderr);
    assert.match(expired.stderr, /^ {2}CH-ISO-001 /m);
    const unknown = await carehost(
      "validate",
      await write("unknown.yaml", `${sharedProduction()}${exception("2099-12-31", "CH-ISO-999")}`),
    );
    assert.equal(unknown.code, 1, unknown.stdout + unknown.stderr);
    assert.match(unknown.stderr, /CH-ISO-999/);
  });
});
