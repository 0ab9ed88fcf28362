import type { Command } from "commander";
import { loadConfig } from "../lib/config.js";
import { startCarehost } from "../server/server-start.js";
import type { TInstanceStatus, TStatusReport } from "../server/status-service.js";
import type { TApiClient } from "./cli-client.js";
import { paint, printJson, printLine } from "./cli-output.js";
import type { TOutputFormat } from "./cli-output.js";

type TGlobal = { client: () => Promise<TApiClient> };

/** How long `carehost up` takes at most to stop on SIGTERM or SIGINT. */
const STOP_DEADLINE_MS = 25_000;

const where = (instance: TInstanceStatus) =>
  `${instance.instance} ${instance.port === null ? "" : `${instance.host}:${instance.port} `}${instance.state}`;
const ago = (seconds: number) => `${Math.round(seconds / 60)} min ago`;
const measured = (value: number | null) => (value === null ? "-" : `${value.toFixed(1)} s`);

/** The text of `carehost status`, rendered from the same report `--output json` prints. */
export const formatStatus = (status: TStatusReport): string[] => {
  const lines = [
    `carehost ${status.version} at ${status.url}, up ${status.uptimeSeconds}s, state in ${status.store}`,
    `audit log: ${status.audit.treeSize} entries, last checkpoint ${status.audit.lastCheckpoint === null ? "none yet" : `at size ${status.audit.lastCheckpoint.treeSize} (${status.audit.lastCheckpoint.time})`}`,
  ];
  const firing = (alert: TStatusReport["platformAlerts"][number]) =>
    `  ${paint("red", "FIRING")} #${alert.id} ${alert.severity} ${alert.rule}: ${alert.summary} (since ${alert.firedAt}${alert.acknowledgedBy === null ? "" : `, acknowledged by ${alert.acknowledgedBy}`})`;
  for (const alert of status.platformAlerts) lines.push(firing(alert));
  if (status.organizations.length === 0) lines.push("no organization recorded yet: run carehost apply <spec>");
  for (const organization of status.organizations) {
    lines.push(
      "",
      `organization ${paint("bold", organization.name)}: spec revision ${organization.revision.id} (${organization.revision.digest.slice(0, 12)}) applied by ${organization.revision.appliedBy} at ${organization.revision.appliedAt}`,
    );
    for (const alert of organization.changeAlerts) lines.push(`  ${paint("red", "ALERT")}  ${alert.message}`);
    for (const copy of organization.copies ?? []) {
      lines.push(
        `  copy ${copy.name} (${copy.kind}) of ${copy.sourceEnvironment} at ${copy.restoredTo}, ${copy.dataClass === "phi" ? "PHI" : copy.dataClass}, by ${copy.owner}, ${copy.expiresAt === null ? "no expiry" : `expires ${copy.expiresAt}`}`,
      );
      if (copy.pastExpiry)
        lines.push(
          `  ${paint("red", "ALERT")}  copy ${copy.name} holds PHI past its expiry: carehost copies remove ${copy.name}`,
        );
    }
    for (const alert of organization.firingAlerts) lines.push(firing(alert));
    for (const environment of organization.environments) {
      lines.push(
        `  ${environment.name.padEnd(16)} ${environment.tier.padEnd(11)} ${environment.dataClass.padEnd(13)} ${environment.hosting.padEnd(10)} ${environment.status}`,
      );
      const runtime = environment.runtime;
      if (runtime === null) continue;
      lines.push(`      postgres  ${where(runtime.postgres)}`);
      if (runtime.redis !== null) lines.push(`      redis     ${where(runtime.redis)}`);
      lines.push(`      app       ${runtime.app.detail}`);
      const recovery = environment.recovery;
      if (recovery !== null) {
        const backup = recovery.lastBackup;
        lines.push(
          `      backup    ${backup === null ? "none yet" : `${backup.kind} ${backup.status}${backup.label === null ? "" : ` ${backup.label}`}, ${ago(backup.ageSeconds)}`}`,
        );
        const good = recovery.lastSuccessfulBackup;
        if (backup !== null && backup.status !== "succeeded")
          lines.push(
            `      last good ${good === null ? "none ever completed" : `${good.kind}${good.label === null ? "" : ` ${good.label}`}, ${ago(good.ageSeconds)}`}`,
          );
        const drill = recovery.lastDrill;
        lines.push(
          `      drill     ${drill === null ? "none yet" : `${drill.status}, ${ago(drill.ageSeconds)}: RTO ${measured(drill.rtoSeconds)} (objective ${drill.rtoObjectiveMinutes} min), RPO ${measured(drill.rpoSeconds)} (objective ${drill.rpoObjectiveMinutes} min)`}`,
        );
        const archiving = recovery.archiving;
        if (archiving !== null) {
          lines.push(
            `      archive   lag ${archiving.archiveLagSeconds} s, last archived ${archiving.lastArchivedWal === null ? "none yet" : `${archiving.lastArchivedWal} at ${archiving.lastArchivedAt}`}, ` +
              `WAL at ${archiving.currentWalLsn ?? "-"}, ${archiving.failedCount} failed${archiving.lastFailedWal === null ? "" : ` (last ${archiving.lastFailedWal} at ${archiving.lastFailedAt})`}`,
          );
        }
        for (const alert of recovery.alerts) lines.push(`      ${paint("red", "ALERT")}     ${alert.message}`);
      }
      if (runtime.drift > 0)
        lines.push(
          `      drift     ${runtime.drift} difference(s) from the spec: carehost plan shows them, carehost apply corrects them`,
        );
    }
  }
  return lines;
};

export const registerServerCommands = (program: Command, global: TGlobal): void => {
  program
    .command("up")
    .description("start the carehost server (embedded defaults: PGlite under CAREHOST_HOME)")
    .option(
      "--spec <file>",
      "apply this spec once the server is up, unless its organization is recorded already with another revision (the demo uses examples/northwind-health.yaml)",
    )
    .option("--host <host>", "address to bind (default CAREHOST_HOST or 127.0.0.1)")
    .option("--port <port>", "port (default CAREHOST_PORT or 8080)")
    .action(async (options: { spec?: string; host?: string; port?: string }) => {
      const config = loadConfig({
        ...process.env,
        ...(options.host === undefined ? {} : { CAREHOST_HOST: options.host }),
        ...(options.port === undefined ? {} : { CAREHOST_PORT: options.port }),
      });
      const running = await startCarehost(config, {
        specPath: options.spec,
        print: printLine,
        printsToTerminal: process.stdout.isTTY === true,
        recordLocalServer: true,
      });
      await new Promise<void>((resolveStop) => {
        const stop = (signal: string) => {
          printLine(`\n${signal}: stopping carehost…`);
          // A service manager waits about 30 s before it kills: whatever still hangs then is left to the next start's repair.
          const deadline = setTimeout(() => {
            process.stderr.write(
              `error while stopping: not stopped after ${STOP_DEADLINE_MS / 1000} s; exiting, the next start repairs what runs left\n`,
            );
            process.exitCode = 1;
            resolveStop();
          }, STOP_DEADLINE_MS);
          running.close().then(
            () => {
              clearTimeout(deadline);
              resolveStop();
            },
            (error: unknown) => {
              clearTimeout(deadline);
              process.stderr.write(`error while stopping: ${String(error)}\n`);
              process.exitCode = 1;
              resolveStop();
            },
          );
        };
        process.once("SIGINT", () => stop("SIGINT"));
        process.once("SIGTERM", () => stop("SIGTERM"));
      });
      // An interrupted run may still have a timer of its own (a wait for PostgreSQL); it is over, and must not keep carehost up.
      process.exit();
    });

  program
    .command("status")
    .description("show the server, the audit log and every recorded environment")
    .option("-o, --output <format>", "text or json", "text")
    .action(async (options: { output: TOutputFormat }) => {
      const status = await (await global.client()).request<TStatusReport>("GET", "/api/status");
      if (options.output === "json") printJson(status);
      else for (const line of formatStatus(status)) printLine(line);
    });
};
