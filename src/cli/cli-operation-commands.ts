import type { Command } from "commander";
import type { TApiClient } from "./cli-client.js";
import { CliError, exitCodes } from "./cli-errors.js";
import { printJson, printLine } from "./cli-output.js";
import type { TOutputFormat } from "./cli-output.js";

type TGlobal = { client: () => Promise<TApiClient> };
type TOperationView = {
  id: number;
  organization: string;
  environment: string | null;
  target: string;
  kind: string;
  state: string;
  requestedBy: string;
  notBefore: string;
  steps: { step: string; detail: string; at: string }[];
  error: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
};

export const formatOperation = (operation: TOperationView): string => {
  const when = operation.finishedAt ?? operation.startedAt ?? operation.notBefore;
  const where = `${operation.organization}/${operation.environment ?? "-"}`;
  return `#${operation.id}  ${when}  ${operation.kind.padEnd(18)} ${where.padEnd(28)} ${operation.state.toUpperCase().padEnd(11)} by ${operation.requestedBy}${operation.error === null ? "" : `\n      ${operation.error}`}`;
};

const parseId = (value: string, option: string): number => {
  const id = Number(value);
  if (!Number.isSafeInteger(id) || id < 1)
    throw new CliError(
      `${option} takes an operation id (a positive number), not ${JSON.stringify(value)}`,
      exitCodes.usage,
    );
  return id;
};

export const registerOperationCommands = (program: Command, global: TGlobal): void => {
  program
    .command("operations")
    .description("what carehost queued and ran: backups, verifications, drills (newest first); follow or cancel one")
    .argument("[env]", "only this environment")
    .option("--org <organization>", "only this organization")
    .option("--limit <n>", "how many (at most 500)", "50")
    .option("--follow <id>", "print the operation's steps as they complete, until it ends")
    .option("--cancel <id>", "cancel a queued operation at once, or ask a running one to stop")
    .option("-o, --output <format>", "text or json", "text")
    .action(
      async (
        environment: string | undefined,
        options: { org?: string; limit: string; follow?: string; cancel?: string; output: TOutputFormat },
      ) => {
        const client = await global.client();
        if (options.cancel !== undefined) {
          const id = parseId(options.cancel, "--cancel");
          const cancelled = await client.request<TOperationView & { cancelRequested: boolean }>(
            "POST",
            `/api/operations/${id}/cancel`,
          );
          if (options.output === "json") printJson(cancelled);
          else
            printLine(
              cancelled.state === "running"
                ? `Operation #${id} is asked to stop; it ends cancelled once its worker stops it (carehost operations --follow ${id}).`
                : cancelled.state === "cancelled"
                  ? `Operation #${id} is cancelled.`
                  : `Operation #${id} had ended already: ${cancelled.state}.`,
            );
          return;
        }
        if (options.follow !== undefined) {
          const id = parseId(options.follow, "--follow");
          let printed = 0;
          let firstState: string | undefined;
          let headed = false;
          const ended = await client.stream<{ kind: string; operation: TOperationView }, TOperationView>(
            "GET",
            `/api/operations/${id}/events`,
            undefined,
            ({ operation }) => {
              if (options.output === "json") return;
              if (!headed) {
                printLine(formatOperation(operation));
                firstState = operation.state;
                headed = true;
              }
              for (const step of operation.steps.slice(printed))
                printLine(`  ${step.at}  ${step.step}  ${step.detail}`);
              printed = Math.max(printed, operation.steps.length);
            },
          );
          if (options.output === "json") printJson(ended);
          // One that had ended already was printed whole as it was first seen.
          else if (ended.state !== firstState) printLine(formatOperation(ended));
          if (ended.state !== "succeeded") process.exitCode = exitCodes.failure;
          return;
        }
        const limit = Number(options.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > 500)
          throw new CliError(
            `--limit takes a number from 1 to 500, not ${JSON.stringify(options.limit)}`,
            exitCodes.usage,
          );
        const query = new URLSearchParams({ limit: String(limit) });
        if (environment !== undefined) query.set("environment", environment);
        if (options.org !== undefined) query.set("organization", options.org);
        const operations = await client.request<TOperationView[]>("GET", `/api/operations?${query}`);
        if (options.output === "json") {
          printJson(operations);
          return;
        }
        if (operations.length === 0) printLine("no operations yet");
        for (const operation of operations) printLine(formatOperation(operation));
      },
    );
};
