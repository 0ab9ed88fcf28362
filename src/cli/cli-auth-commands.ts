import { rm } from "node:fs/promises";
import { createInterface } from "node:readline";
import { Writable } from "node:stream";
import type { Command } from "commander";
import type { TApiClient } from "./cli-client.js";
import { createApiClient } from "./cli-client.js";
import { loginCredentialsPath, resolveServer, saveLogin } from "./cli-credentials.js";
import { CliError, exitCodes } from "./cli-errors.js";
import { printJson, printLine } from "./cli-output.js";
import { ssoLogin } from "./cli-sso-login.js";
import type { TOutputFormat } from "./cli-output.js";

/** --org a,b: the organizations, each trimmed; empty entries dropped. */
const organizationList = (value: string): string[] =>
  value
    .split(",")
    .map((organization) => organization.trim())
    .filter((organization) => organization.length > 0);

type TGlobal = { client: () => Promise<TApiClient>; url: () => string | undefined };

/** Reads a password from the terminal without echoing it, or one line from a pipe. */
const readPassword = async (prompt: string): Promise<string> => {
  if (process.env.CAREHOST_PASSWORD !== undefined) return process.env.CAREHOST_PASSWORD;
  process.stderr.write(prompt);
  let muted = true;
  const output = new Writable({
    write: (chunk: Buffer, _encoding, done) => {
      if (!muted) process.stderr.write(chunk);
      done();
    },
  });
  const rl = createInterface({ input: process.stdin, output, terminal: process.stdin.isTTY === true });
  try {
    const line = await new Promise<string>((resolveLine, reject) => {
      rl.once("line", resolveLine);
      rl.once("close", () => reject(new CliError("no password given", exitCodes.usage)));
    });
    muted = false;
    process.stderr.write("\n");
    return line;
  } finally {
    rl.close();
  }
};

export const registerAuthCommands = (program: Command, global: TGlobal): void => {
  program
    .command("login")
    .description("sign in and keep a session token for later commands")
    .option("-u, --username <name>", "user name", "admin")
    .option(
      "--sso <organization>",
      "sign in through the organization's identity provider instead: open the URL printed in a browser (RFC 8252 loopback redirect)",
    )
    .action(async (options: { username: string; sso?: string }) => {
      const { url } = await resolveServer(global.url());
      if (options.sso !== undefined) {
        const session = await ssoLogin({
          client: createApiClient(url, undefined),
          organization: options.sso,
          announce: (authorizationUrl) => {
            printLine(`Open this URL in a browser on this machine to sign in to ${options.sso}:`);
            printLine(`  ${authorizationUrl}`);
          },
        });
        await saveLogin({ url, token: session.token, username: session.username });
        printLine(
          `Signed in to ${url} as ${session.username} through ${session.organization}'s identity provider (${session.roles.join(", ")} over ${session.organization}); session until ${session.expiresAt}. Saved in ${loginCredentialsPath()}.`,
        );
        return;
      }
      const password = await readPassword(`Password for ${options.username}: `);
      const session = await createApiClient(url, undefined).request<{ token: string; expiresAt: string; role: string }>(
        "POST",
        "/api/auth/login",
        {
          username: options.username,
          password,
        },
      );
      await saveLogin({ url, token: session.token, username: options.username });
      printLine(
        `Signed in to ${url} as ${options.username} (${session.role}); session until ${session.expiresAt}. Saved in ${loginCredentialsPath()}.`,
      );
    });

  program
    .command("logout")
    .description("end the session `carehost login` started and forget it")
    .action(async () => {
      await (await global.client()).request("POST", "/api/auth/logout");
      await rm(loginCredentialsPath(), { force: true });
      printLine("Signed out.");
    });

  const token = program.command("token").description("API tokens");
  token
    .command("create")
    .description("create an API token for yourself; it is shown once")
    .argument("<name>", "what the token is for, e.g. ci-pipeline")
    .option(
      "--expires-in-days <days>",
      "lifetime; the default and the maximum depend on your role (README: API token lifetimes)",
      (value) => Number.parseInt(value, 10),
    )
    .option("-o, --output <format>", "text or json", "text")
    .action(async (name: string, options: { expiresInDays?: number; output: TOutputFormat }) => {
      if (options.expiresInDays !== undefined && !Number.isInteger(options.expiresInDays)) {
        throw new CliError("--expires-in-days must be a whole number of days", exitCodes.usage);
      }
      const created = await (
        await global.client()
      ).request<{ id: string; name: string; token: string; expiresAt: string }>("POST", "/api/tokens", {
        name,
        ...(options.expiresInDays === undefined ? {} : { expiresInDays: options.expiresInDays }),
      });
      if (options.output === "json") {
        printJson(created);
        return;
      }
      printLine(`Token "${created.name}" (id ${created.id}), expires ${created.expiresAt}. It is shown only now:`);
      printLine(created.token);
    });
  token
    .command("list")
    .description("list your active sessions and tokens")
    .option("--all", "everyone's (platform-admin)")
    .option("-o, --output <format>", "text or json", "text")
    .action(async (options: { all?: boolean; output: TOutputFormat }) => {
      const tokens = await (
        await global.client()
      ).request<
        {
          id: string;
          name: string | null;
          kind: string;
          username: string;
          expiresAt: string;
          lastUsedAt: string | null;
        }[]
      >("GET", `/api/tokens?all=${options.all === true ? "true" : "false"}`);
      if (options.output === "json") {
        printJson(tokens);
        return;
      }
      for (const item of tokens) {
        printLine(
          `${item.id}  ${item.name ?? "(session)"}  ${item.kind}  ${item.username}  expires ${item.expiresAt}  last used ${item.lastUsedAt ?? "never"}`,
        );
      }
    });
  token
    .command("revoke")
    .description("revoke a token by id")
    .argument("<id>", "token id")
    .action(async (id: string) => {
      await (await global.client()).request("DELETE", `/api/tokens/${encodeURIComponent(id)}`);
      printLine(`Token ${id} revoked.`);
    });

  const user = program.command("user").description("users, roles and the organizations they cover");
  user
    .command("create")
    .description("create a user with a role over the organizations named; a random password is printed once")
    .argument("<username>")
    .requiredOption("--role <role>", "platform-admin | operator | approver | auditor | viewer")
    .requiredOption(
      "--org <organizations>",
      'organizations the role covers, comma-separated ("*" for every one)',
      organizationList,
    )
    .action(async (username: string, options: { role: string; org: string[] }) => {
      const created = await (
        await global.client()
      ).request<{ username: string; role: string; organizations: string[]; password?: string }>("POST", "/api/users", {
        username,
        role: options.role,
        organizations: options.org,
      });
      printLine(
        `User ${created.username} (${created.role} over ${created.organizations.join(", ")}) created.${created.password === undefined ? "" : ` Password, shown only now: ${created.password}`}`,
      );
    });
  for (const [verb, description] of [
    ["grant", "bind the user's role over more organizations"],
    ["revoke", "end the user's role over the organizations named"],
  ] as const) {
    user
      .command(verb)
      .description(description)
      .argument("<username>")
      .requiredOption("--org <organizations>", 'organizations, comma-separated ("*" for every one)', organizationList)
      .action(async (username: string, options: { org: string[] }) => {
        const changed = await (
          await global.client()
        ).request<{ username: string; role: string; organizations: string[]; added?: string[]; removed?: string[] }>(
          "POST",
          `/api/users/${encodeURIComponent(username)}/${verb}`,
          { organizations: options.org },
        );
        const touched = changed.added ?? changed.removed ?? [];
        printLine(
          `${changed.username} (${changed.role}): ${verb === "grant" ? "granted" : "revoked"} ${touched.length === 0 ? "nothing (no change)" : touched.join(", ")}; now over ${changed.organizations.join(", ") || "no organization"}.`,
        );
      });
  }
  user
    .command("list")
    .option("-o, --output <format>", "text or json", "text")
    .action(async (options: { output: TOutputFormat }) => {
      const users = await (
        await global.client()
      ).request<{ username: string; role: string; organizations: string[]; disabled: boolean }[]>("GET", "/api/users");
      if (options.output === "json") printJson(users);
      else
        for (const item of users)
          printLine(
            `${item.username}  ${item.role}  ${item.organizations.join(",") || "(no organization)"}${item.disabled ? "  (disabled)" : ""}`,
          );
    });
};
