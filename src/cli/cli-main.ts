// The `carehost` command. Read commands accept --output json; exit codes are 0 ok, 1 failure,
// 2 usage, 3 policy refusal (see cli-errors.ts).
import { Command, CommanderError } from "commander";
import { ConfigError } from "../lib/config.js";
import { carehostVersion } from "../lib/version.js";
import { registerAlertCommands } from "./cli-alert-commands.js";
import { registerAuditCommands } from "./cli-audit-commands.js";
import { registerAuthCommands } from "./cli-auth-commands.js";
import { registerChangeCommands } from "./cli-change-commands.js";
import { createApiClient } from "./cli-client.js";
import { resolveServer } from "./cli-credentials.js";
import { CliError, exitCodes } from "./cli-errors.js";
import { registerExceptionCommands } from "./cli-exception-commands.js";
import { printError } from "./cli-output.js";
import { registerRecoveryCommands } from "./cli-recovery-commands.js";
import { registerOperationCommands } from "./cli-operation-commands.js";
import { registerRenderCommand } from "./cli-render-command.js";
import { registerSecretCommands } from "./cli-secret-commands.js";
import { registerServerCommands } from "./cli-server-commands.js";
import { registerSpecCommands } from "./cli-spec-commands.js";

export const buildProgram = (): Command => {
  const program = new Command("carehost")
    .description("Compliance-first control plane for hosting Odoo for healthcare providers")
    .version(carehostVersion)
    .option("--url <url>", "carehost server URL (default: CAREHOST_URL, your login, or the local server)")
    .showHelpAfterError()
    .exitOverride();
  const url = (): string | undefined => program.opts<{ url?: string }>().url;
  const client = async () => {
    const server = await resolveServer(url());
    return createApiClient(server.url, server.token, server.reloadToken);
  };
  registerServerCommands(program, { client });
  registerSpecCommands(program, { client });
  registerExceptionCommands(program, { client });
  registerChangeCommands(program, { client });
  registerRenderCommand(program);
  registerAuditCommands(program, { client });
  registerAuthCommands(program, { client, url });
  registerSecretCommands(program, { client });
  registerRecoveryCommands(program, { client });
  registerOperationCommands(program, { client });
  registerAlertCommands(program, { client });
  // Sub-commands inherit the usage-error behaviour so every parse failure exits with 2.
  for (const command of program.commands) {
    command.exitOverride();
    for (const sub of command.commands) sub.exitOverride();
  }
  return program;
};

export const runCli = async (argv: readonly string[]): Promise<number> => {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv], { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : exitCodes.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here too, with exit code 0.
      return error.exitCode === 0 ? exitCodes.ok : exitCodes.usage;
    }
    if (error instanceof CliError) {
      printError(error.message);
      for (const detail of error.details) process.stderr.write(`  ${detail}\n`);
      return error.exitCode;
    }
    if (error instanceof ConfigError) {
      printError(error.message);
      return exitCodes.usage;
    }
    printError((error as Error).stack ?? String(error));
    return exitCodes.failure;
  }
};
