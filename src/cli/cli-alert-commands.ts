// `carehost alerts`: what carehost's own evaluation holds firing, silences, acknowledgement.
import type { Command } from "commander";
import type { TApiClient } from "./cli-client.js";
import { CliError, exitCodes } from "./cli-errors.js";
import { paint, printJson, printLine } from "./cli-output.js";
import type { TOutputFormat } from "./cli-output.js";

type TGlobal = { client: () => Promise<TApiClient> };
type TSilenceView = {
  id: number;
  rule: string;
  organization: string;
  environment: string | null;
  owner: string;
  reason: string;
  expiresAt: string;
};
type TAlertView = {
  id: number;
  rule: string;
  organization: string;
  environment: string;
  severity: string;
  state: string;
  annotations: Record<string, string>;
  firedAt: string | null;
  resolvedAt: string | null;
  clearSince: string | null;
  acknowledgedBy: string | null;
  escalatedAt: string | null;
  silencedBy: TSilenceView | null;
  deliveries: {
    kind: string;
    destination: string;
    event: string;
    state: string;
    attempts: number;
    lastError: string | null;
  }[];
};

const positiveId = (value: string, what: string): number => {
  const id = Number(value);
  if (!Number.isSafeInteger(id) || id < 1)
    throw new CliError(`${what} takes an id (a positive number), not ${JSON.stringify(value)}`, exitCodes.usage);
  return id;
};

export const formatAlert = (alert: TAlertView): string[] => {
  const where = [alert.organization || "carehost", alert.environment].filter((part) => part !== "").join("/");
  const state =
    alert.state === "firing"
      ? paint("red", alert.clearSince === null ? "FIRING" : "FIRING (clearing)")
      : alert.state.toUpperCase();
  const lines = [
    `#${alert.id}  ${state}  ${alert.severity.padEnd(8)} ${alert.rule.padEnd(30)} ${where}  since ${alert.firedAt ?? "-"}${alert.resolvedAt === null ? "" : `, resolved ${alert.resolvedAt}`}`,
    `      ${alert.annotations.summary ?? ""}`,
    `      runbook ${alert.annotations.runbook_url ?? ""}`,
  ];
  if (alert.acknowledgedBy !== null) lines.push(`      acknowledged by ${alert.acknowledgedBy}`);
  if (alert.escalatedAt !== null) lines.push(`      escalated at ${alert.escalatedAt}`);
  if (alert.silencedBy !== null)
    lines.push(
      `      silenced by #${alert.silencedBy.id} (${alert.silencedBy.owner}: ${alert.silencedBy.reason}) until ${alert.silencedBy.expiresAt}`,
    );
  for (const delivery of alert.deliveries)
    lines.push(
      `      ${delivery.event} → ${delivery.kind} ${delivery.destination}: ${delivery.state}${delivery.attempts > 1 ? ` after ${delivery.attempts} attempts` : ""}${delivery.state === "delivered" || delivery.lastError === null ? "" : ` (${delivery.lastError})`}`,
    );
  return lines;
};

export const registerAlertCommands = (program: Command, global: TGlobal): void => {
  const alerts = program
    .command("alerts")
    .description("alerts carehost holds firing (with --all, resolved ones too), where each was sent, and the silences")
    .option("--env <environment>", "only this environment")
    .option("--all", "resolved alerts too")
    .option("-o, --output <format>", "text or json", "text")
    .action(async (options: { env?: string; all?: boolean; output: TOutputFormat }) => {
      const client = await global.client();
      const query = new URLSearchParams({ all: options.all === true ? "true" : "false" });
      if (options.env !== undefined) query.set("environment", options.env);
      const listed = await client.request<{ alerts: TAlertView[]; silences: TSilenceView[] }>(
        "GET",
        `/api/alerts?${query}`,
      );
      if (options.output === "json") return printJson(listed);
      if (listed.alerts.length === 0) printLine("no alert is firing");
      for (const alert of listed.alerts) for (const line of formatAlert(alert)) printLine(line);
      for (const silence of listed.silences)
        printLine(
          `silence #${silence.id}  ${silence.rule} ${silence.organization}/${silence.environment ?? "*"}  by ${silence.owner} until ${silence.expiresAt}: ${silence.reason}`,
        );
    });

  alerts
    .command("silence")
    .description("keep a rule's alerts for an environment from being sent for a while (they still show here)")
    .argument("<rule>", "the rule, e.g. BackupStale")
    .option("--env <environment>", "the environment (every environment of --org when left out)")
    .option("--org <organization>", "the organization (found from --env when left out)")
    .requiredOption("--for <duration>", "how long: 30m, 2h, 1d (at most 7d)")
    .requiredOption("--reason <reason>", "why, for whoever is on call next")
    .option("-o, --output <format>", "text or json", "text")
    .action(
      async (
        rule: string,
        options: { env?: string; org?: string; for: string; reason: string; output: TOutputFormat },
      ) => {
        const client = await global.client();
        const silence = await client.request<TSilenceView>("POST", "/api/alerts/silences", {
          rule,
          for: options.for,
          reason: options.reason,
          ...(options.env === undefined ? {} : { environment: options.env }),
          ...(options.org === undefined ? {} : { organization: options.org }),
        });
        if (options.output === "json") return printJson(silence);
        printLine(
          `Silence #${silence.id}: ${silence.rule} of ${silence.organization}/${silence.environment ?? "*"} is not sent until ${silence.expiresAt} (carehost alerts unsilence ${silence.id} ends it sooner).`,
        );
      },
    );

  alerts
    .command("unsilence")
    .description("end a silence before it expires")
    .argument("<id>", "the silence's id")
    .action(async (id: string) => {
      const client = await global.client();
      const ended = await client.request<TSilenceView>("DELETE", `/api/alerts/silences/${positiveId(id, "unsilence")}`);
      printLine(`Silence #${ended.id} of ${ended.rule} has ended.`);
    });

  alerts
    .command("ack")
    .description("acknowledge a firing alert: someone is on it, so it is not escalated")
    .argument("<id>", "the alert's id (carehost alerts lists them)")
    .option("-o, --output <format>", "text or json", "text")
    .action(async (id: string, options: { output: TOutputFormat }) => {
      const client = await global.client();
      const alert = await client.request<TAlertView>("POST", `/api/alerts/${positiveId(id, "ack")}/ack`);
      if (options.output === "json") return printJson(alert);
      printLine(`Alert #${alert.id} (${alert.rule}) is acknowledged by ${alert.acknowledgedBy ?? "you"}.`);
    });
};
