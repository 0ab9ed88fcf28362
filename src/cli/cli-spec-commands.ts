import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { formatPlan, formatRuntimePlan } from "../environments/environment-plan.js";
import type { TApplyResult, TPlanWithDrift } from "../environments/environment-service.js";
import type { TGitopsApply, TGitopsPlan } from "../gitops/gitops-service.js";
import { isRenderTarget } from "../render/render-targets.js";
import { RENDER_TARGETS } from "../render/render-types.js";
import type { TRenderTarget } from "../render/render-types.js";
import { DomainError, PolicyViolation } from "../lib/errors.js";
import { assertNoMandatoryViolations, formatPosture } from "../policy/policy-engine.js";
import { offlineVerdict } from "../policy/policy-offline.js";
import type { TPostureReport } from "../policy/policy-engine.js";
import { formatSpecError, loadSpecText } from "../spec/spec-loader.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import type { TApiClient } from "./cli-client.js";
import { CliError, exitCodes } from "./cli-errors.js";
import { paint, printJson, printLine, printWarning } from "./cli-output.js";
import type { TOutputFormat } from "./cli-output.js";

type TGlobal = { client: () => Promise<TApiClient> };

export const readSource = async (file: string): Promise<string> => {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    throw new CliError(
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      exitCodes.usage,
    );
  }
};

const colorPlan = (text: string): string =>
  text
    .split("\n")
    .map((line) =>
      line.startsWith("+")
        ? paint("green", line)
        : line.startsWith("-")
          ? paint("red", line)
          : line.startsWith("~")
            ? paint("yellow", line)
            : line,
    )
    .join("\n");

/** kubernetes or compose; anything else is a usage error (exit 2). */
const gitopsTarget = (value: string): TRenderTarget => {
  if (!isRenderTarget(value))
    throw new CliError(
      `--target must be local, ${RENDER_TARGETS.join(" or ")}, not ${JSON.stringify(value)}`,
      exitCodes.usage,
    );
  return value;
};

const printGitopsDiff = (diff: TGitopsPlan): void => {
  if (diff.inSync) {
    printLine(
      `The GitOps repository (${diff.target}) matches a fresh render of ${diff.organization}: nothing to commit.`,
    );
    return;
  }
  for (const change of diff.changes) {
    printLine(`${change.change === "added" ? "+" : change.change === "removed" ? "-" : "~"} ${change.path}`);
    if (change.change === "changed") printLine(change.diff);
  }
};

/** The offline verdict; a spec the controls cannot evaluate (an exception naming no control) is a failure, exit 1. */
const controlVerdict = (spec: TOrganizationSpec): TPostureReport => {
  try {
    return offlineVerdict(spec);
  } catch (error) {
    if (error instanceof DomainError)
      throw new CliError(
        error.message,
        exitCodes.failure,
        error.details.map((detail) => detail.message),
      );
    throw error;
  }
};

/** Offline there are no approvals to read: every exception counts as pending, as plan counts one nobody approved. */
const OFFLINE_PENDING_NOTE =
  "validate runs without carehost's records, so every exception counts as pending here; carehost plan and carehost exception list show which are approved";

const assertWithoutViolations = (verdict: TPostureReport): void => {
  try {
    assertNoMandatoryViolations(verdict);
  } catch (error) {
    if (error instanceof PolicyViolation)
      throw new CliError(error.message, exitCodes.policy, [
        ...error.details.map((detail) => detail.message),
        ...(verdict.pendingExceptions.length > 0 ? [OFFLINE_PENDING_NOTE] : []),
      ]);
    throw error;
  }
};

export const registerSpecCommands = (program: Command, global: TGlobal): void => {
  program
    .command("posture")
    .description(
      "show the control baseline per environment: pass, FAIL, PENDING (its exception awaits approval), excepted, NOT ENFORCED (declared, not enforced by carehost yet), n.a.",
    )
    .option("-o, --output <format>", "text or json", "text")
    .action(async (options: { output: TOutputFormat }) => {
      const postures = await (
        await global.client()
      ).request<
        {
          organization: string;
          report: TPostureReport;
          copies?: { live: number; phi: number; pastExpiry: number };
        }[]
      >("GET", "/api/posture");
      if (options.output === "json") printJson(postures);
      else {
        if (postures.length === 0) printLine("no organization recorded yet: run carehost apply <spec>");
        for (const { organization, report, copies } of postures) {
          printLine(paint("bold", `organization ${organization}`));
          printLine(formatPosture(report, organization).replace(/\b(FAIL|PENDING)\b/g, (label) => paint("red", label)));
          if (copies !== undefined)
            printLine(
              `copies: ${copies.live} live, ${copies.phi} holding PHI, ${copies.pastExpiry} past their expiry (carehost copies)`,
            );
        }
      }
      if (postures.some(({ report }) => report.mandatoryViolations.length > 0)) process.exitCode = exitCodes.policy;
    });

  program
    .command("validate")
    .description(
      "check a spec file offline: every error with its line, then the controls over the spec and the files it renders (exit 3 on a mandatory violation, as plan)",
    )
    .argument("<file>", "carehost.yaml")
    .option("-o, --output <format>", "text or json", "text")
    .action(async (file: string, options: { output: TOutputFormat }) => {
      const result = loadSpecText(await readSource(file), file);
      if (!result.ok) {
        if (options.output === "json") printJson(result);
        else {
          for (const error of result.errors) printLine(formatSpecError(error));
          printLine(`${result.errors.length} error(s)`);
        }
        process.exitCode = exitCodes.failure;
        return;
      }
      const verdict = controlVerdict(result.spec);
      const { summary, mandatoryViolations } = verdict;
      if (options.output === "json") {
        printJson({
          ok: mandatoryViolations.length === 0,
          digest: result.digest,
          environments: result.spec.environments.map((environment) => environment.name),
          summary,
          mandatoryViolations,
        });
        if (mandatoryViolations.length > 0) process.exitCode = exitCodes.policy;
        return;
      }
      // The same message and lines plan prints for the same spec, and its exit code.
      assertWithoutViolations(verdict);
      printLine(
        `${paint("green", "valid")}: ${file} (organization "${result.spec.metadata.name}", ${result.spec.environments.length} environments, digest ${result.digest.slice(0, 12)})`,
      );
      printLine(
        `controls over the spec and the files it renders: ${summary.pass} pass, ${summary.fail} fail (advisory), ${summary.pending} pending (advisory), ${summary.excepted} excepted, ${summary.notEnforced} not enforced, ${summary.notApplicable} n.a.`,
      );
    });

  program
    .command("plan")
    .description(
      "show what the spec would change (environments, rendered files, restarts) and the drift of the running systems",
    )
    .argument("<file>", "carehost.yaml")
    .option(
      "--target <target>",
      "local (this host), kubernetes or compose (diff against the GitOps repository)",
      "local",
    )
    .option("-o, --output <format>", "text or json", "text")
    .action(async (file: string, options: { output: TOutputFormat; target: string }) => {
      const source = await readSource(file);
      if (options.target !== "local") {
        const diff = await (
          await global.client()
        ).request<TGitopsPlan>("POST", "/api/gitops/plan", {
          source,
          fileName: file,
          target: gitopsTarget(options.target),
        });
        if (options.output === "json") printJson(diff);
        else printGitopsDiff(diff);
        return;
      }
      const plan = await (
        await global.client()
      ).request<TPlanWithDrift>("POST", "/api/plan", { source, fileName: file });
      if (options.output === "json") {
        printJson(plan);
        return;
      }
      printLine(colorPlan(formatPlan(plan)));
      const sides = formatRuntimePlan(plan);
      if (sides !== "") printLine(colorPlan(sides));
    });

  program
    .command("apply")
    .description(
      "record the spec as the desired state: an organization's first revision or a standard change; anything else needs a change request (carehost change create)",
    )
    .argument("<file>", "carehost.yaml")
    .option("--confirm-destroy <env...>", "confirm the removal of these environments", [])
    .option("--target <target>", "local (this host), kubernetes or compose (commit to the GitOps repository)", "local")
    .option("-o, --output <format>", "text or json", "text")
    .action(async (file: string, options: { confirmDestroy: string[]; output: TOutputFormat; target: string }) => {
      const source = await readSource(file);
      if (options.target !== "local") {
        const committed = await (
          await global.client()
        ).request<TGitopsApply>("POST", "/api/gitops/apply", {
          source,
          fileName: file,
          target: gitopsTarget(options.target),
          confirmDestroy: options.confirmDestroy,
        });
        if (options.output === "json") printJson(committed);
        else if (committed.commit === null)
          printLine(
            `The ${committed.target} render of ${committed.organization} is already in the GitOps repository: no commit.`,
          );
        else
          printLine(
            `Committed ${committed.changedPaths.length} file(s) for ${committed.organization} (${committed.target}) as ${committed.commit.slice(0, 12)}.`,
          );
        if (committed.warning !== undefined) printWarning(committed.warning);
        return;
      }
      const result = await (
        await global.client()
      ).request<TApplyResult>("POST", "/api/apply", {
        source,
        fileName: file,
        confirmDestroy: options.confirmDestroy,
      });
      if (options.output === "json") {
        printJson(result);
        return;
      }
      printLine(colorPlan(formatPlan(result.plan)));
      printLine(
        result.revisionId === null
          ? "No changes to the spec: nothing recorded."
          : `Recorded as spec revision ${result.revisionId}${result.changeRequest === null ? "" : ` (${result.changeRequest.kind} change, change request #${result.changeRequest.id})`}.`,
      );
      for (const action of result.runtime) printLine(`  ${action.target}: ${action.action}`);
      if (result.runtime.length === 0) printLine("The running systems already match the spec.");
    });
};
