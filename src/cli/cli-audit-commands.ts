import { writeFile } from "node:fs/promises";
import type { Command } from "commander";
import type { TApiClient } from "./cli-client.js";
import { CliError, exitCodes } from "./cli-errors.js";
import { paint, printJson, printLine } from "./cli-output.js";
import type { TOutputFormat } from "./cli-output.js";

type TGlobal = { client: () => Promise<TApiClient> };

type TVerifyReport = {
  ok: boolean;
  treeSize: number;
  checkpointsVerified: number;
  problems: { kind: string; seq?: number; message: string }[];
};

const parseInstant = (value: string, flag: string): string => {
  const date = new Date(value);
  if (Number.isNaN(date.getTime()))
    throw new CliError(
      `${flag} ${JSON.stringify(value)} is not a date (use e.g. 2026-11-22 or 2026-11-22T14:03:05Z)`,
      exitCodes.usage,
    );
  return date.toISOString();
};

export const registerAuditCommands = (program: Command, global: TGlobal): void => {
  const audit = program.command("audit").description("the tamper-evident audit log");

  audit
    .command("verify")
    .description("recompute the Merkle tree, check every signed checkpoint, name the first bad entry")
    .option("-o, --output <format>", "text or json", "text")
    .action(async (options: { output: TOutputFormat }) => {
      const report = await (await global.client()).request<TVerifyReport>("POST", "/api/audit/verify");
      if (options.output === "json") printJson(report);
      else if (report.ok)
        printLine(
          `${paint("green", "ok")}: ${report.treeSize} entries, ${report.checkpointsVerified} signed checkpoints verified`,
        );
      else {
        printLine(`${paint("red", "TAMPERED")}: ${report.problems.length} problem(s) in ${report.treeSize} entries`);
        for (const problem of report.problems) printLine(`  ${problem.kind}: ${problem.message}`);
      }
      if (!report.ok) process.exitCode = exitCodes.failure;
    });

  audit
    .command("export")
    .description("write entries, inclusion proofs and the signing key for offline verification")
    .option("--from <time>", "first instant (ISO 8601)")
    .option("--to <time>", "last instant (ISO 8601)")
    .requiredOption("--out <file>", "bundle file to write")
    .action(async (options: { from?: string; to?: string; out: string }) => {
      const query = new URLSearchParams();
      if (options.from !== undefined) query.set("from", parseInstant(options.from, "--from"));
      if (options.to !== undefined) query.set("to", parseInstant(options.to, "--to"));
      const bundle = await (
        await global.client()
      ).request<{ entries: unknown[]; checkpoint: { treeSize: number } }>(
        "GET",
        `/api/audit/export?${query.toString()}`,
      );
      await writeFile(options.out, `${JSON.stringify(bundle, null, 2)}\n`, { mode: 0o600 });
      printLine(
        `Wrote ${bundle.entries.length} entries (checkpoint at tree size ${bundle.checkpoint.treeSize}) to ${options.out}.`,
      );
      printLine(`Verify offline with: node tools/verify-audit-bundle.mjs ${options.out}`);
    });

  audit
    .command("list")
    .description("show audit entries, newest last")
    .option("--from <time>", "first instant (ISO 8601)")
    .option("--to <time>", "last instant (ISO 8601)")
    .option("--type <type>", "only this event type, e.g. auth.login.failed")
    .option("--limit <n>", "at most this many", "50")
    .option("-o, --output <format>", "text or json", "text")
    .action(async (options: { from?: string; to?: string; type?: string; limit: string; output: TOutputFormat }) => {
      const query = new URLSearchParams({ limit: options.limit });
      if (options.from !== undefined) query.set("from", parseInstant(options.from, "--from"));
      if (options.to !== undefined) query.set("to", parseInstant(options.to, "--to"));
      if (options.type !== undefined) query.set("type", options.type);
      const entries = await (
        await global.client()
      ).request<
        {
          seq: number;
          time: string;
          type: string;
          outcome: string;
          actor: string;
          target: string;
          sourceAddress: string;
        }[]
      >("GET", `/api/audit/entries?${query.toString()}`);
      if (options.output === "json") {
        printJson(entries);
        return;
      }
      for (const entry of entries) {
        const outcome = entry.outcome === "success" ? entry.outcome : paint("red", entry.outcome);
        printLine(
          `#${entry.seq}  ${entry.time}  ${entry.type}  ${outcome}  ${entry.actor}@${entry.sourceAddress}  ${entry.target}`,
        );
      }
    });
};
