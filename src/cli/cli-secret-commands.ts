import type { Command } from "commander";
import type { TApiClient } from "./cli-client.js";
import { printJson, printLine } from "./cli-output.js";
import type { TOutputFormat } from "./cli-output.js";

type TGlobal = { client: () => Promise<TApiClient> };

export const registerSecretCommands = (program: Command, global: TGlobal): void => {
  const secrets = program
    .command("secrets")
    .description("secrets: list, rotate, reveal what carehost generated; set a backup repository key");
  secrets
    .command("list")
    .description("secret names and versions (never values)")
    .option("-o, --output <format>", "text or json", "text")
    .action(async (options: { output: TOutputFormat }) => {
      const listing = await (
        await global.client()
      ).request<{ name: string; currentVersion: number; versions: { version: number }[] }[]>("GET", "/api/secrets");
      if (options.output === "json") {
        printJson(listing);
        return;
      }
      for (const secret of listing)
        printLine(
          `${secret.name}  v${secret.currentVersion}${secret.versions.length > 1 ? ` (${secret.versions.length} versions kept)` : ""}`,
        );
    });
  secrets
    .command("rotate")
    .description("generate a new value and re-apply what uses it, without downtime")
    .argument("<name>", "secret name, e.g. runtime/northwind-health/env/prod/database")
    .option("-o, --output <format>", "text or json", "text")
    .action(async (name: string, options: { output: TOutputFormat }) => {
      const result = await (
        await global.client()
      ).request<{ name: string; version: number; runtime: { target: string; action: string }[] }>(
        "POST",
        "/api/secrets/rotate",
        { name },
      );
      if (options.output === "json") {
        printJson(result);
        return;
      }
      printLine(`Rotated ${result.name} to version ${result.version}.`);
      for (const action of result.runtime) printLine(`  ${action.target}: ${action.action}`);
    });
  secrets
    .command("set")
    .description(
      "store a backup repository's access key or an OIDC client secret, read from standard input (never from the command line)",
    )
    .argument("<name>", "backup/<organization>/<keySecretRef> or identity/<organization>/<clientSecretRef>")
    .action(async (name: string) => {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      const result = await (
        await global.client()
      ).request<{ name: string; version: number; runtime: { target: string; action: string }[] }>(
        "POST",
        "/api/secrets/set",
        {
          name,
          value: Buffer.concat(chunks).toString("utf8"),
        },
      );
      printLine(`Stored ${result.name} as version ${result.version}.`);
      for (const action of result.runtime) printLine(`  ${action.target}: ${action.action}`);
    });
  secrets
    .command("reveal")
    .description("print a secret's current value (platform-admin; audited with the reason)")
    .argument("<name>", "secret name")
    .requiredOption("--reason <text>", "why it is needed, recorded in the audit log")
    .action(async (name: string, options: { reason: string }) => {
      const result = await (
        await global.client()
      ).request<{ value: string }>("POST", "/api/secrets/reveal", { name, reason: options.reason });
      printLine(result.value);
    });
};
