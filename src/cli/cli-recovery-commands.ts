import type { Command } from "commander";
import { DEIDENTIFIED_RESTORE_STEPS, RESTORE_STEPS } from "../backup/recovery-driver.js";
import type { TApiClient } from "./cli-client.js";
import { CliError, exitCodes } from "./cli-errors.js";
import { paint, printJson, printLine } from "./cli-output.js";
import type { TOutputFormat } from "./cli-output.js";

type TGlobal = { client: () => Promise<TApiClient> };
type TBackupRun = {
  id: number;
  organization: string;
  environment: string;
  kind: string;
  trigger: string;
  status: string;
  label: string | null;
  databaseBytes: number | null;
  durationMs: number | null;
  error: string | null;
  startedAt: string;
};
type TDrillRun = {
  id: number;
  environment: string;
  trigger: string;
  status: string;
  backupLabel: string | null;
  rtoSeconds: number | null;
  rpoSeconds: number | null;
  rtoObjectiveMinutes: number;
  rpoObjectiveMinutes: number;
  problems: string[];
  startedAt: string;
};

type TRestoreRun = {
  id: number;
  environment: string;
  target: string;
  destination: string;
  status: string;
  durationMs: number | null;
  error: string | null;
  startedAt: string;
};

type TCopyLine = {
  organization: string;
  name: string;
  kind: "copy" | "environment";
  sourceEnvironment: string;
  restoredTo: string;
  dataClass: string;
  owner: string;
  port: number | null;
  createdAt: string;
  expiresAt: string | null;
};

/** One copy: where it came from, what it holds, whose it is, when it goes. */
export const formatCopy = (copy: TCopyLine): string =>
  `${copy.organization}/${copy.name}  ${copy.kind === "copy" ? `copy${copy.port === null ? "" : ` on port ${copy.port}`}` : "environment"}  of ${copy.sourceEnvironment} at ${copy.restoredTo}  ${copy.dataClass === "phi" ? "PHI" : copy.dataClass}  by ${copy.owner}  created ${copy.createdAt}  ${copy.expiresAt === null ? "no expiry" : `expires ${copy.expiresAt}`}`;

const megabytes = (bytes: number | null) => (bytes === null ? "-" : `${(bytes / 1024 / 1024).toFixed(1)} MB`);
const seconds = (value: number | null) => (value === null ? "-" : `${value.toFixed(1)} s`);

type TRestoreStepLine = { step: string; detail: string; durationMs: number };

/** One restore step as it completes, numbered in the order every restore follows. */
export const formatRestoreStep = (step: TRestoreStepLine, deidentified = false): string => {
  const order: readonly string[] = deidentified ? DEIDENTIFIED_RESTORE_STEPS : RESTORE_STEPS;
  return `  [${order.findIndex((name) => name === step.step) + 1}/${order.length}] ${step.step.padEnd(11)} ${(step.durationMs / 1000).toFixed(1).padStart(6)} s  ${step.detail}`;
};

/** A step of a run other than a restore (none report steps yet; the server may add them). */
const formatRunStep = (step: TRestoreStepLine): string =>
  `  ${step.step.padEnd(11)} ${(step.durationMs / 1000).toFixed(1).padStart(6)} s  ${step.detail}`;

export const formatDrill = (drill: TDrillRun): string =>
  `#${drill.id}  ${drill.startedAt}  ${drill.environment}  ${drill.status.toUpperCase()}  RTO ${seconds(drill.rtoSeconds)} (objective ${drill.rtoObjectiveMinutes} min)  RPO ${seconds(drill.rpoSeconds)} (objective ${drill.rpoObjectiveMinutes} min)  backup ${drill.backupLabel ?? "-"}${drill.problems.length > 0 ? `\n      ${drill.problems.join("\n      ")}` : ""}`;

export const registerRecoveryCommands = (program: Command, global: TGlobal): void => {
  const orgOption = ["--org <organization>", "when two organizations have an environment of that name"] as const;
  /** `carehost <name> [env]`: the runs GET /api/<name> lists, newest first, as JSON or a line each. */
  const listCommand = <T>(
    name: "backups" | "restores" | "drills",
    description: string,
    line: (run: T) => string,
  ): void => {
    program
      .command(name)
      .description(description)
      .argument("[env]", "only this environment")
      .option("-o, --output <format>", "text or json", "text")
      .action(async (environment: string | undefined, options: { output: TOutputFormat }) => {
        const runs = await (
          await global.client()
        ).request<T[]>(
          "GET",
          `/api/${name}${environment === undefined ? "" : `?environment=${encodeURIComponent(environment)}`}`,
        );
        if (options.output === "json") {
          printJson(runs);
          return;
        }
        if (runs.length === 0) printLine(`no ${name} yet`);
        for (const run of runs) printLine(line(run));
      });
  };

  program
    .command("backup")
    .description("take a pgBackRest backup of an environment now (full, diff or incr)")
    .argument("<env>", "environment")
    .option("--type <kind>", "full, diff or incr", "full")
    .option(...orgOption)
    .option("-o, --output <format>", "text or json", "text")
    .action(async (environment: string, options: { type: string; org?: string; output: TOutputFormat }) => {
      if (!["full", "diff", "incr"].includes(options.type))
        throw new CliError(`--type must be full, diff or incr, not ${JSON.stringify(options.type)}`, exitCodes.usage);
      const result = await (
        await global.client()
      ).run<
        TRestoreStepLine,
        {
          label: string;
          type: string;
          databaseBytes: number;
          repositoryBytes: number;
          durationMs: number;
          skippedRepositories: { name: string; type: string; reason: string }[];
        }
      >(
        "/api/backups",
        {
          environment,
          kind: options.type,
          ...(options.org === undefined ? {} : { organization: options.org }),
        },
        (step) => {
          if (options.output !== "json") printLine(formatRunStep(step));
        },
      );
      if (options.output === "json") printJson(result);
      else {
        printLine(
          `Backup ${result.label} (${result.type}) of ${environment}: ${megabytes(result.databaseBytes)} database, ${megabytes(result.repositoryBytes)} written to the repository, in ${(result.durationMs / 1000).toFixed(1)} s.`,
        );
        for (const skipped of result.skippedRepositories)
          printLine(
            `${paint("red", "NOT WRITTEN")} to repository ${skipped.name} (${skipped.type}): ${skipped.reason}`,
          );
      }
    });

  listCommand<TBackupRun>(
    "backups",
    "backups carehost ran, newest first",
    (run) =>
      `#${run.id}  ${run.startedAt}  ${run.environment}  ${run.kind}  ${run.status}  ${run.label ?? "-"}  ${megabytes(run.databaseBytes)}  ${run.durationMs === null ? "-" : `${(run.durationMs / 1000).toFixed(1)} s`}${run.error === null ? "" : `  ${run.error}`}`,
  );

  program
    .command("verify")
    .description("pgbackrest verify: check every file of the environment's repositories")
    .argument("<env>", "environment")
    .option(...orgOption)
    .action(async (environment: string, options: { org?: string }) => {
      const result = await (
        await global.client()
      ).run<TRestoreStepLine, { ok: boolean; output: string }>(
        "/api/backups/verify",
        { environment, ...(options.org === undefined ? {} : { organization: options.org }) },
        (step) => printLine(formatRunStep(step)),
      );
      printLine(
        result.ok
          ? `The repositories of ${environment} verify clean.`
          : `VERIFY FAILED for ${environment}:\n${result.output}`,
      );
      if (!result.ok) process.exitCode = exitCodes.failure;
    });

  program
    .command("restore")
    .description(
      "restore an environment to --to latest | --to <ISO instant> | --to-lsn <lsn>, into a new copy (--into) or in place (--in-place)",
    )
    .argument("<env>", "environment")
    .option("--to <target>", "latest, or an instant such as 2026-11-22T14:03:05Z", "latest")
    .option("--to-lsn <lsn>", "a WAL position such as 0/3000028")
    .option(
      "--into <name>",
      "name of a new restored copy, or a declared environment to restore over (its window, or --emergency)",
    )
    .option(
      "--in-place",
      "restore over the environment itself, after a safety backup; inside its maintenance window unless --emergency",
    )
    .option("--emergency <reason>", "why an in-place restore cannot wait for the maintenance window (audited)")
    .option(
      "--deidentify",
      "with --into: neutralize and de-identify the data in a scratch copy, verify it, and only then swap it in (a PHI-safe copy)",
    )
    .option(
      "--expires-in-hours <hours>",
      "how long a new copy holding PHI lives (default 24, at most the spec's copies.maxPhiHours)",
    )
    .option(...orgOption)
    .option("-o, --output <format>", "text or json", "text")
    .action(
      async (
        environment: string,
        options: {
          to: string;
          toLsn?: string;
          into?: string;
          inPlace?: boolean;
          emergency?: string;
          deidentify?: boolean;
          expiresInHours?: string;
          org?: string;
          output: TOutputFormat;
        },
      ) => {
        // Each step is printed the moment the server reports it done: a restore takes minutes, and an
        // operator watching an incident needs to see where it is (and where it stopped, if it fails).
        // The restore runs in the server; the CLI follows it, reconnecting when the stream is cut.
        const text = options.output !== "json";
        const deidentified = options.deidentify === true;
        const hours = options.expiresInHours === undefined ? undefined : Number(options.expiresInHours);
        if (hours !== undefined && !Number.isInteger(hours))
          throw new CliError(
            `--expires-in-hours ${JSON.stringify(options.expiresInHours)} is not a whole number of hours`,
            exitCodes.usage,
          );
        let printed = 0;
        const result = await (
          await global.client()
        ).run<
          TRestoreStepLine,
          {
            target: string;
            port: number;
            directory: string;
            database: string;
            durationMs: number;
            safetyBackup?: string;
            into?: string;
            filestoreFiles: number;
            steps: TRestoreStepLine[];
            dataClass?: string;
            expiresAt?: string | null;
          }
        >(
          "/api/restores",
          {
            environment,
            to: options.to,
            ...(options.into === undefined ? {} : { into: options.into }),
            ...(options.inPlace === true ? { inPlace: true } : {}),
            ...(options.emergency === undefined ? {} : { emergency: options.emergency }),
            ...(options.toLsn === undefined ? {} : { toLsn: options.toLsn }),
            ...(options.org === undefined ? {} : { organization: options.org }),
            ...(deidentified ? { deidentify: true } : {}),
            ...(hours === undefined ? {} : { expiresInHours: hours }),
          },
          (step) => {
            printed += 1;
            if (text) printLine(formatRestoreStep(step, deidentified));
          },
        );
        if (options.output === "json") {
          printJson(result);
          return;
        }
        // Steps the run reported only with its result (none, today) are printed with it.
        if (printed === 0) result.steps.forEach((step) => printLine(formatRestoreStep(step, deidentified)));
        const took = `${(result.durationMs / 1000).toFixed(1)} s`;
        const undo =
          result.safetyBackup === undefined
            ? ""
            : ` (safety backup ${result.safetyBackup} taken first; it can undo this)`;
        if (result.into !== undefined)
          printLine(`Restored ${environment} to ${result.target} over environment ${result.into} in ${took}${undo}.`);
        else if (options.inPlace === true)
          printLine(`Restored ${environment} in place to ${result.target} in ${took}${undo}.`);
        else
          printLine(
            `Restored ${environment} to ${result.target} in ${took}: a copy runs on 127.0.0.1:${result.port} (database ${result.database}, TLS from the organization CA), data and filestore in ${result.directory}.`,
          );
        if (result.dataClass !== undefined)
          printLine(
            `The copy holds ${result.dataClass === "deidentified" ? "de-identified data (verified)" : `${result.dataClass} data`}${result.expiresAt === null || result.expiresAt === undefined ? "" : `; it is torn down at ${result.expiresAt} (carehost copies remove ${options.into ?? ""} before)`}.`,
          );
      },
    );

  program
    .command("copies")
    .description(
      "copies of environments' data: source, instant, data class, owner, expiry (remove NAME tears one down)",
    )
    .option(...orgOption)
    .option("-o, --output <format>", "text or json", "text")
    .action(async (options: { org?: string; output: TOutputFormat }) => {
      const copies = await (
        await global.client()
      ).request<TCopyLine[]>(
        "GET",
        `/api/copies${options.org === undefined ? "" : `?organization=${encodeURIComponent(options.org)}`}`,
      );
      if (options.output === "json") printJson(copies);
      else if (copies.length === 0) printLine("no copies");
      else copies.forEach((copy) => printLine(formatCopy(copy)));
    })
    .command("remove")
    .description("tear a restored copy down now: its cluster stopped, its data and filestore removed (audited)")
    .argument("<name>", "the copy's name")
    .option(...orgOption)
    .option("-o, --output <format>", "text or json", "text")
    .action(async (name: string, options: { org?: string; output: TOutputFormat }) => {
      const removed = await (
        await global.client()
      ).request<TCopyLine>(
        "DELETE",
        `/api/copies/${encodeURIComponent(name)}${options.org === undefined ? "" : `?organization=${encodeURIComponent(options.org)}`}`,
      );
      if (options.output === "json") printJson(removed);
      else printLine(`Removed copy ${removed.name} of ${removed.sourceEnvironment} (${removed.dataClass}).`);
    });

  listCommand<TRestoreRun>(
    "restores",
    "restores carehost ran, newest first; one a stop of carehost cut short shows as interrupted",
    (run) =>
      `#${run.id}  ${run.startedAt}  ${run.environment} to ${run.target}, ${run.destination}  ${run.status}  ${run.durationMs === null ? "-" : `${(run.durationMs / 1000).toFixed(1)} s`}${run.error === null ? "" : `  ${run.error}`}`,
  );

  program
    .command("drill")
    .description("run a restore drill now: restore the latest backup, check it, measure RTO and RPO, tear it down")
    .argument("<env>", "environment")
    .option(...orgOption)
    .option("-o, --output <format>", "text or json", "text")
    .action(async (environment: string, options: { org?: string; output: TOutputFormat }) => {
      const drill = await (
        await global.client()
      ).run<TRestoreStepLine, TDrillRun>(
        "/api/drills",
        { environment, ...(options.org === undefined ? {} : { organization: options.org }) },
        (step) => {
          if (options.output !== "json") printLine(formatRunStep(step));
        },
      );
      if (options.output === "json") printJson(drill);
      else printLine(formatDrill(drill));
      if (drill.status !== "passed") process.exitCode = exitCodes.failure;
    });

  listCommand<TDrillRun>(
    "drills",
    "restore drills with achieved RTO/RPO against the objectives, newest first",
    formatDrill,
  );
};
