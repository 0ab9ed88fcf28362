import type { Command } from "commander";
import type { TExceptionView } from "../policy/policy-exception-service.js";
import type { TApiClient } from "./cli-client.js";
import { CliError, exitCodes } from "./cli-errors.js";
import { printJson, printLine } from "./cli-output.js";
import type { TOutputFormat } from "./cli-output.js";

type TGlobal = { client: () => Promise<TApiClient> };

/** Dates arrive as JSON strings. */
type TExceptionJson = Omit<TExceptionView, "proposedAt" | "approvedAt"> & {
  proposedAt: string;
  approvedAt: string | null;
};

const describeException = (exception: TExceptionJson): string => {
  const standing =
    exception.status === "approved"
      ? `approved by ${exception.approvedBy} at ${exception.approvedAt}`
      : exception.status === "pending"
        ? `pending: awaits approval by someone other than ${exception.proposedBy}`
        : "expired";
  return `#${exception.id}  ${exception.organization}  ${exception.controlId}  ${exception.environment}  until ${exception.expires}  owner ${exception.owner}  proposed by ${exception.proposedBy}  ${standing}\n      ${exception.reason}`;
};

const exceptionId = (value: string): number => {
  const id = Number(value);
  if (!Number.isInteger(id) || id <= 0)
    throw new CliError(
      `<id> must be an exception number (carehost exception list), not ${JSON.stringify(value)}`,
      exitCodes.usage,
    );
  return id;
};

export const registerExceptionCommands = (program: Command, global: TGlobal): void => {
  const exceptions = program
    .command("exception")
    .description(
      "policy exceptions the applied specs proposed: list them, approve one (someone other than its proposer)",
    );
  exceptions
    .command("list")
    .description("every recorded version, newest first, with who proposed and who approved it")
    .option("--organization <name>", "only this organization")
    .option("-o, --output <format>", "text or json", "text")
    .action(async (options: { organization?: string; output: TOutputFormat }) => {
      const query =
        options.organization === undefined ? "" : `?organization=${encodeURIComponent(options.organization)}`;
      const listing = await (await global.client()).request<TExceptionJson[]>("GET", `/api/exceptions${query}`);
      if (options.output === "json") {
        printJson(listing);
        return;
      }
      if (listing.length === 0)
        printLine("no exception proposed yet: a spec's policyExceptions are proposed by carehost apply");
      for (const exception of listing) printLine(describeException(exception));
    });
  exceptions
    .command("approve")
    .description("approve one version of an exception; its proposer (who applied the spec that introduced it) cannot")
    .argument("<organization>", "the organization (metadata.name)")
    .argument("<id>", "the exception's number, from carehost exception list")
    .option("-o, --output <format>", "text or json", "text")
    .action(async (organization: string, id: string, options: { output: TOutputFormat }) => {
      const approved = await (
        await global.client()
      ).request<TExceptionJson>(
        "POST",
        `/api/exceptions/${encodeURIComponent(organization)}/${exceptionId(id)}/approve`,
      );
      if (options.output === "json") {
        printJson(approved);
        return;
      }
      printLine(describeException(approved));
      printLine("It applies from the next plan, apply and posture that include it.");
    });
};
