// `carehost render ENV --file SPEC --target kubernetes|compose --out DIR`: renders one environment
// locally, without a server, so an operator can read (or hand to a pipeline) exactly what carehost
// would deliver. Secret files are never written: the bundle only names them.
import { mkdir, realpath, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import type { Command } from "commander";
import { isRenderTarget, RENDERERS } from "../render/render-targets.js";
import { RENDER_TARGETS } from "../render/render-types.js";
import type { TRenderedFile, TRenderTarget } from "../render/render-types.js";
import { PolicyViolation } from "../lib/errors.js";
import { assertNoMandatoryViolations } from "../policy/policy-engine.js";
import { renderedArtifactsReport } from "../policy/policy-rendered.js";
import { formatSpecError, loadSpecText } from "../spec/spec-loader.js";
import { CliError, exitCodes } from "./cli-errors.js";
import { printJson, printLine } from "./cli-output.js";
import type { TOutputFormat } from "./cli-output.js";
import { readSource } from "./cli-spec-commands.js";

const isInside = (root: string, candidate: string): boolean => {
  const path = relative(root, candidate);
  return path === "" || (!path.startsWith(`..${sep}`) && path !== ".." && !isAbsolute(path));
};

/**
 * Writes rendered files under outDir, creating subdirectories. Refuses a path that would land
 * outside outDir, also through a symbolic link already in outDir; nothing is written then.
 */
export async function writeRenderedFiles(outDir: string, files: readonly TRenderedFile[]): Promise<string[]> {
  const root = resolve(outDir);
  for (const file of files) {
    const target = resolve(root, ...file.path.split("/"));
    if (
      file.path === "" ||
      isAbsolute(file.path) ||
      file.path.includes("\\") ||
      !isInside(root, target) ||
      target === root
    ) {
      throw new CliError(`refusing to write ${JSON.stringify(file.path)}: it is outside ${outDir}`);
    }
  }
  await mkdir(root, { recursive: true });
  const realRoot = await realpath(root);
  const written: string[] = [];
  for (const file of files) {
    const target = join(root, ...file.path.split("/"));
    await mkdir(dirname(target), { recursive: true });
    if (!isInside(realRoot, await realpath(dirname(target)))) {
      throw new CliError(`refusing to write ${JSON.stringify(file.path)}: its directory leads outside ${outDir}`);
    }
    await writeFile(target, file.content);
    written.push(join(outDir, ...file.path.split("/")));
  }
  return written;
}

/**
 * The artifact controls over the environment's files for this target, as plan and apply run them:
 * a mandatory failure writes nothing and exits 3. Offline nobody's approvals are known, so an
 * exception counts as pending, as in validate.
 */
function assertRenderedFilesCompliant(
  spec: Parameters<typeof renderedArtifactsReport>[0],
  target: TRenderTarget,
  environmentName: string,
): void {
  const report = renderedArtifactsReport(spec, [target]);
  const mine = {
    ...report,
    mandatoryViolations: report.mandatoryViolations.filter((violation) => violation.environment === environmentName),
  };
  try {
    assertNoMandatoryViolations(mine);
  } catch (error) {
    if (error instanceof PolicyViolation)
      throw new CliError(
        `refusing to write ${environmentName} for ${target}: ${error.message}`,
        exitCodes.policy,
        error.details.map((detail) => detail.message),
      );
    throw error;
  }
}

type TRenderOptions = { file: string; target: string; out: string; output: TOutputFormat };

export const registerRenderCommand = (program: Command): void => {
  program
    .command("render")
    .description("render one environment's deployment files locally (no server needed)")
    .argument("<env>", "environment name from the spec")
    .option("-f, --file <spec>", "carehost.yaml", "./carehost.yaml")
    .option("-t, --target <target>", `what to render for: ${RENDER_TARGETS.join(" or ")}`, "kubernetes")
    .requiredOption("--out <dir>", "directory to write the files to")
    .option("-o, --output <format>", "text or json", "text")
    .action(async (environmentName: string, options: TRenderOptions) => {
      if (!isRenderTarget(options.target)) {
        throw new CliError(
          `unknown target ${JSON.stringify(options.target)}: use ${RENDER_TARGETS.join(" or ")}`,
          exitCodes.usage,
        );
      }
      const target: TRenderTarget = options.target;
      const result = loadSpecText(await readSource(options.file), options.file);
      if (!result.ok) {
        throw new CliError(
          `${options.file} is not a valid spec (${result.errors.length} error(s))`,
          exitCodes.failure,
          result.errors.map(formatSpecError),
        );
      }
      const known = result.spec.environments.map((environment) => environment.name);
      if (!known.includes(environmentName)) {
        throw new CliError(
          `environment ${JSON.stringify(environmentName)} is not in ${options.file} (known: ${known.join(", ")})`,
        );
      }
      let files: readonly TRenderedFile[];
      try {
        files = RENDERERS[target](result.spec, environmentName);
      } catch (error) {
        // A renderer rejects input it cannot render safely (an unpinned production image…).
        throw new CliError(`cannot render ${environmentName} for ${target}: ${(error as Error).message}`);
      }
      assertRenderedFilesCompliant(result.spec, target, environmentName);
      const written = await writeRenderedFiles(options.out, files);
      if (options.output === "json") {
        printJson({
          environment: environmentName,
          target,
          specDigest: result.digest,
          out: options.out,
          files: written,
        });
        return;
      }
      for (const path of written) printLine(path);
      printLine(
        `rendered ${environmentName} for ${target}: ${written.length} files in ${options.out} (spec digest ${result.digest.slice(0, 12)})`,
      );
    });
};
