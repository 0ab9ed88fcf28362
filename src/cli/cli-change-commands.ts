// `carehost change …`: change requests from the command line. Every command prints the request as
// it stands and what happens next (who may approve it, when it applies); --output json prints the
// API's answer as it is.
import type { Command } from "commander";
import { formatPlan } from "../environments/environment-plan.js";
import type { TApplyResult } from "../environments/environment-service.js";
import type { TChangeView } from "../governance/change-view.js";
import type { TApiClient } from "./cli-client.js";
import { CliError, exitCodes } from "./cli-errors.js";
import { paint, printJson, printLine } from "./cli-output.js";
import type { TOutputFormat } from "./cli-output.js";
import { readSource } from "./cli-spec-commands.js";

type TGlobal = { client: () => Promise<TApiClient> };
type TOutcome = { request: TChangeView; applied: TApplyResult | null };

const changeId = (value: string): number => {
  const id = Number(value.replace(/^#/, ""));
  if (!Number.isInteger(id) || id <= 0)
    throw new CliError(
      `<cr> must be a change request number (carehost change list), not ${JSON.stringify(value)}`,
      exitCodes.usage,
    );
  return id;
};

const ARTIFACT_MARK = { added: "+", changed: "~", removed: "-" } as const;

/** What happens next, as one line: the command to run, or when it applies by itself. */
const nextStep = (request: TChangeView): string => {
  switch (request.state) {
    case "pending": {
      const missing = request.approvalsRequired - request.approvals.length;
      return `awaits ${missing} more approval(s) by someone other than ${request.requestedBy}${request.approvals.length > 0 ? ` and ${request.approvals.map((approval) => approval.approver).join(", ")}` : ""}: carehost change approve ${request.id}`;
    }
    case "approved":
      return `approved: carehost change apply ${request.id} applies it${request.windows.length > 0 ? " inside its maintenance window (or schedules it for the window's opening)" : ""}`;
    case "scheduled":
      return `scheduled: applies at ${String(request.scheduledFor)}, when the maintenance window of ${request.assessment.production.join(", ")} opens`;
    case "applied":
      return `applied as revision ${request.appliedRevisionId} by ${request.appliedBy} at ${String(request.appliedAt)}; carehost change rollback ${request.id} --reason '…' undoes it`;
    case "failed":
      return `failed: ${request.failure ?? ""}`;
    case "denied":
      return `denied by ${request.closedBy} at ${String(request.closedAt)}: ${request.closeReason ?? ""}`;
    case "cancelled":
      return `cancelled by ${request.closedBy} at ${String(request.closedAt)}: ${request.closeReason ?? ""}`;
  }
};

const summaryLine = (request: TChangeView): string =>
  `#${request.id}  ${request.organization}  ${request.kind.padEnd(9)} ${request.state.padEnd(9)} ${request.requestedBy}  ${String(request.requestedAt)}  ${request.reason}`;

/** Everything an auditor reads on one change request. */
export const formatChange = (request: TChangeView): string[] => {
  const { assessment, plan } = request;
  const lines = [
    paint("bold", `change request #${request.id} (${request.kind}) of ${request.organization}: ${request.state}`),
    `  reason      ${request.reason}${request.ticket === null ? "" : `  (ticket ${request.ticket})`}`,
    `  requested   by ${request.requestedBy} at ${String(request.requestedAt)}, measured from revision ${request.baseRevisionId} (spec ${request.specDigest.slice(0, 12)})${request.rollbackOf === null ? "" : `, rolling back #${request.rollbackOf}`}`,
  ];
  if (request.alert !== null) lines.push(`  ${paint("red", "ALERT")}       ${request.alert}`);
  lines.push(
    "",
    "Change:",
    ...formatPlan(plan.plan)
      .split("\n")
      .map((line) => `  ${line}`),
  );
  if (assessment.organizationFields.length > 0)
    lines.push(`  ~ organization settings: ${assessment.organizationFields.join(", ")}`);
  if (plan.artifacts.length > 0) {
    lines.push("", "Rendered files that change:");
    for (const artifact of plan.artifacts)
      lines.push(
        `${ARTIFACT_MARK[artifact.change]} ${artifact.target}/${artifact.file}`,
        artifact.diff.replace(/\n$/, ""),
      );
  }
  lines.push("", "Applying it:");
  if (plan.effects.length === 0) lines.push("  restarts and reloads nothing");
  for (const effect of plan.effects) lines.push(`  ${effect.line}`);
  const summary = plan.verdict.summary;
  lines.push(
    "",
    `Policy verdict at ${plan.verdict.evaluatedAt}: no mandatory violation; ${summary.pass} pass, ${summary.fail} fail (advisory), ${summary.pending} pending, ${summary.excepted} excepted, ${summary.notEnforced} not enforced, ${summary.notApplicable} n.a.`,
    `Classification: ${request.kind}${assessment.standard ? " (a standard class covers it)" : ""}`,
    ...assessment.reasons.map((reason) => `  ${reason}`),
    `Approvals: ${request.approvals.length} of ${request.approvalsRequired}${request.kind === "standard" ? " (standard: pre-approved)" : ""}`,
    ...request.approvals.map(
      (approval) => `  ${approval.approver} (${approval.role}) at ${String(approval.approvedAt)}`,
    ),
  );
  if (request.windows.length > 0) {
    lines.push("Maintenance window:");
    for (const window of request.windows)
      lines.push(
        `  ${window.environment}: ${window.slots.map((slot) => `${slot.day} ${slot.start} for ${slot.durationMinutes} min`).join(", ")} (${window.timeZone}); ${window.open ? "open now" : `opens at ${String(window.opensAt)}`}`,
      );
  }
  if (request.reviewBy !== null)
    lines.push(
      `Emergency review: ${request.reviewedAt === null ? `approve retrospectively by ${String(request.reviewBy)}` : `reviewed at ${String(request.reviewedAt)}`}${request.escalatedAt === null ? "" : `; escalated at ${String(request.escalatedAt)}`}`,
    );
  for (const backup of request.preChangeBackup ?? [])
    lines.push(
      `Pre-change backup of ${backup.environment}: ${backup.status}${backup.label === null ? "" : ` ${backup.label}`} (${backup.detail})`,
    );
  if (request.postChangePosture !== null)
    lines.push(
      `Posture after the change (${request.postChangePosture.evaluatedAt}): ${request.postChangePosture.mandatoryViolations.length === 0 ? "no mandatory violation" : request.postChangePosture.mandatoryViolations.join("; ")}`,
    );
  for (const drill of request.postChangeDrills ?? [])
    lines.push(
      `Drill after the change of ${drill.environment}: ${drill.status}${drill.drill === null ? "" : ` (drill #${drill.drill})`}: ${drill.detail}`,
    );
  lines.push("", nextStep(request));
  return lines;
};

const printOutcome = (outcome: TOutcome, output: TOutputFormat): void => {
  if (output === "json") {
    printJson(outcome);
    return;
  }
  for (const line of formatChange(outcome.request)) printLine(line);
  if (outcome.applied !== null) {
    for (const action of outcome.applied.runtime) printLine(`  ${action.target}: ${action.action}`);
  }
};

const printView = (request: TChangeView, output: TOutputFormat): void => {
  if (output === "json") printJson(request);
  else for (const line of formatChange(request)) printLine(line);
};

export const registerChangeCommands = (program: Command, global: TGlobal): void => {
  const change = program
    .command("change")
    .description(
      "change requests: record one for a spec, approve (someone other than the requester), apply inside its maintenance window, roll back",
    );
  const post = async <T>(path: string, body?: unknown): Promise<T> =>
    (await global.client()).request<T>("POST", path, body);

  change
    .command("create")
    .description("record a change request for a spec; a standard or --emergency change applies at once")
    .argument("<file>", "carehost.yaml")
    .requiredOption("--reason <text>", "why the change is made")
    .option("--ticket <id>", "the ticket it belongs to")
    .option(
      "--emergency",
      "apply now, even outside the maintenance window or in a freeze; approved retrospectively within 24 h",
    )
    .option("--confirm-destroy <env...>", "confirm the removal of these environments", [])
    .option("-o, --output <format>", "text or json", "text")
    .action(
      async (
        file: string,
        options: {
          reason: string;
          ticket?: string;
          emergency?: boolean;
          confirmDestroy: string[];
          output: TOutputFormat;
        },
      ) => {
        const outcome = await post<TOutcome>("/api/changes", {
          source: await readSource(file),
          fileName: file,
          reason: options.reason,
          ...(options.ticket === undefined ? {} : { ticket: options.ticket }),
          emergency: options.emergency === true,
          confirmDestroy: options.confirmDestroy,
        });
        printOutcome(outcome, options.output);
      },
    );

  change
    .command("list")
    .description("change requests, newest first")
    .option("--organization <name>", "only this organization")
    .option("-o, --output <format>", "text or json", "text")
    .action(async (options: { organization?: string; output: TOutputFormat }) => {
      const query =
        options.organization === undefined ? "" : `?organization=${encodeURIComponent(options.organization)}`;
      const listing = await (await global.client()).request<TChangeView[]>("GET", `/api/changes${query}`);
      if (options.output === "json") {
        printJson(listing);
        return;
      }
      if (listing.length === 0) printLine("no change request yet: carehost change create <file> --reason '…'");
      for (const request of listing) {
        printLine(summaryLine(request));
        if (request.alert !== null) printLine(`      ${paint("red", "ALERT")} ${request.alert}`);
      }
    });

  change
    .command("show")
    .description("one change request: its diff, plan, verdict, files, restarts, approvals, window and state")
    .argument("<cr>", "the change request's number")
    .option("-o, --output <format>", "text or json", "text")
    .action(async (cr: string, options: { output: TOutputFormat }) =>
      printView(
        await (await global.client()).request<TChangeView>("GET", `/api/changes/${changeId(cr)}`),
        options.output,
      ),
    );

  change
    .command("approve")
    .description(
      "approve a change request (never its requester, never twice by one person); an emergency one retrospectively",
    )
    .argument("<cr>", "the change request's number")
    .option("-o, --output <format>", "text or json", "text")
    .action(async (cr: string, options: { output: TOutputFormat }) =>
      printView(await post<TChangeView>(`/api/changes/${changeId(cr)}/approve`), options.output),
    );

  change
    .command("deny")
    .description("deny a pending change request")
    .argument("<cr>", "the change request's number")
    .requiredOption("--reason <text>", "why it is denied")
    .option("-o, --output <format>", "text or json", "text")
    .action(async (cr: string, options: { reason: string; output: TOutputFormat }) =>
      printView(
        await post<TChangeView>(`/api/changes/${changeId(cr)}/deny`, { reason: options.reason }),
        options.output,
      ),
    );

  change
    .command("apply")
    .description("apply an approved change request now, inside its window, or schedule it for the window's opening")
    .argument("<cr>", "the change request's number")
    .option("-o, --output <format>", "text or json", "text")
    .action(async (cr: string, options: { output: TOutputFormat }) =>
      printOutcome(await post<TOutcome>(`/api/changes/${changeId(cr)}/apply`), options.output),
    );

  change
    .command("cancel")
    .description("withdraw a pending, approved or scheduled change request")
    .argument("<cr>", "the change request's number")
    .option("--reason <text>", "why it is withdrawn", "withdrawn")
    .option("-o, --output <format>", "text or json", "text")
    .action(async (cr: string, options: { reason: string; output: TOutputFormat }) =>
      printView(
        await post<TChangeView>(`/api/changes/${changeId(cr)}/cancel`, { reason: options.reason }),
        options.output,
      ),
    );

  change
    .command("rollback")
    .description("record a change request that applies the revision before this one's, gated as any other")
    .argument("<cr>", "the applied change request's number")
    .requiredOption("--reason <text>", "why it is rolled back")
    .option("--ticket <id>", "the ticket it belongs to")
    .option("--emergency", "apply the rollback now, approved retrospectively within 24 h")
    .option("-o, --output <format>", "text or json", "text")
    .action(
      async (cr: string, options: { reason: string; ticket?: string; emergency?: boolean; output: TOutputFormat }) =>
        printOutcome(
          await post<TOutcome>(`/api/changes/${changeId(cr)}/rollback`, {
            reason: options.reason,
            ...(options.ticket === undefined ? {} : { ticket: options.ticket }),
            emergency: options.emergency === true,
          }),
          options.output,
        ),
    );
};
