// Which certificates the CLI trusts. Node's fetch trusts its bundled public roots and the file named
// by NODE_EXTRA_CA_CERTS, which Node reads only as the process starts (Node 20 has no way to add a
// CA later, and undici is not a dependency): with CAREHOST_CA_FILE the CLI checks the file and runs
// itself again once with NODE_EXTRA_CA_CERTS naming it (with what NODE_EXTRA_CA_CERTS named already).
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { constants, tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const CA_FILE_VARIABLE = "CAREHOST_CA_FILE";
/** Set in the command run again, so that it goes on instead of running itself once more. */
const RELAUNCHED_VARIABLE = "CAREHOST_CA_FILE_TRUSTED";

/** Why the CA file cannot be used, naming the variable and the path (never its content), or undefined. */
export const caFileProblem = (path: string): string | undefined => {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    return `${CA_FILE_VARIABLE}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? "unreadable"})`;
  }
  return text.includes("-----BEGIN CERTIFICATE-----")
    ? undefined
    : `${CA_FILE_VARIABLE}: ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`;
};

/**
 * The exit code of this command run again trusting CAREHOST_CA_FILE, or undefined when this process
 * may go on as it is (no CA file, or it is already the one Node trusts).
 */
export const runTrustingCaFile = (env: NodeJS.ProcessEnv = process.env): number | undefined => {
  const configured = env[CA_FILE_VARIABLE];
  if (configured === undefined || configured === "") return undefined;
  const path = resolve(configured);
  if (env[RELAUNCHED_VARIABLE] === path) return undefined;
  const problem = caFileProblem(path);
  if (problem !== undefined) {
    process.stderr.write(`error: ${problem}\n`);
    return 2;
  }
  // Node trusts one extra file: when NODE_EXTRA_CA_CERTS names one already, both go into a private copy.
  const already = env.NODE_EXTRA_CA_CERTS;
  const combinedDir = already === undefined || already === "" ? undefined : mkdtempSync(join(tmpdir(), "carehost-ca-"));
  let trusted = path;
  if (combinedDir !== undefined && already !== undefined) {
    trusted = join(combinedDir, "ca.pem");
    const previous = caFileProblem(already) === undefined ? readFileSync(already, "utf8") : "";
    writeFileSync(trusted, `${previous}\n${readFileSync(path, "utf8")}`, { mode: 0o600 });
  }
  try {
    const run = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
      stdio: "inherit",
      env: { ...env, NODE_EXTRA_CA_CERTS: trusted, [RELAUNCHED_VARIABLE]: path },
    });
    if (run.signal !== null) return 128 + (constants.signals[run.signal] ?? 0);
    return run.status ?? 1;
  } finally {
    if (combinedDir !== undefined) rmSync(combinedDir, { recursive: true, force: true });
  }
};
