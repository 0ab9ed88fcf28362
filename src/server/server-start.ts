// The composition root: reads nothing but the config it is given, opens the store, wires every
// service by hand (STYLE.md item 1), starts the HTTP server, and on first start bootstraps the
// admin user and the local CLI token.
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { auditLogFactory } from "../audit/audit-log.js";
import { auditServiceFactory } from "../audit/audit-service.js";
import {
  localCliTokenPath,
  localServerPointerPath,
  serverRecordPath,
  writePrivateFile,
} from "../cli/cli-credentials.js";
import { environmentServiceFactory } from "../environments/environment-service.js";
import { environmentStoreFactory } from "../environments/environment-store.js";
import { postChangeDrillFrom, postChangePostureFrom, preChangeBackupFrom } from "../governance/change-checks.js";
import { changeGateFactory } from "../governance/change-gate.js";
import { changeServiceFactory } from "../governance/change-service.js";
import { changeStoreFactory } from "../governance/change-store.js";
import { defaultSessionLimits, identityServiceFactory } from "../identity/identity-service.js";
import { oidcServiceFactory } from "../identity/identity-oidc.js";
import type { CustomFetch } from "openid-client";
import { policyCheckerFactory } from "../policy/policy-service.js";
import { exceptionServiceFactory } from "../policy/policy-exception-service.js";
import { exceptionStoreFactory } from "../policy/policy-exception-store.js";
import type { TConfig } from "../lib/config.js";
import { BOOTSTRAP_PASSWORD_FILE, FINAL_BACKUPS_DIRECTORY } from "../lib/data-dir.js";
import { systemContext } from "../lib/request-context.js";
import { carehostVersion } from "../lib/version.js";
import { openStore } from "../store/store-open.js";
import { authorize } from "../identity/identity-permissions.js";
import { RUNTIME_DRIVERS } from "../runtime/runtime-drivers.js";
import { endRunningCommands } from "../lib/runtime-command.js";
import { runtimeSupervisorFactory } from "../runtime/runtime-supervisor.js";
import { gitopsRepositoryFactory } from "../gitops/gitops-repository.js";
import type { TGitopsRepository } from "../gitops/gitops-repository.js";
import { gitopsServiceFactory } from "../gitops/gitops-service.js";
import { RENDERERS } from "../render/render-targets.js";
import type { TRenderTarget } from "../render/render-types.js";
import { recoveryServiceFactory } from "../backup/recovery-service.js";
import { operationServiceFactory } from "../operations/operation-service.js";
import { operationHoldFactory } from "../operations/operation-hold.js";
import { operationStoreFactory } from "../operations/operation-store.js";
import type { TOperation, TOperationHandler } from "../operations/operation-types.js";
import { newWorkerId, operationWorkerFactory } from "../operations/operation-worker.js";
import type { TOperationWorker } from "../operations/operation-worker.js";
import type { TChangeRequest } from "../governance/change-types.js";
import { secretScope, secretsAdminServiceFactory } from "../secrets/secrets-admin-service.js";
import { loadMasterKey } from "../secrets/secrets-master-key.js";
import { secretsServiceFactory } from "../secrets/secrets-service.js";
import { loadSpecText } from "../spec/spec-loader.js";
import { buildServer, redactedLogPaths } from "./server-app.js";
import { loadTransport } from "./server-transport.js";
import { statusServiceFactory } from "./status-service.js";
import { auditCountsFactory } from "../monitor/monitor-audit-counts.js";
import { monitorMetricsFactory } from "../monitor/monitor-metrics.js";
import { monitorProbesFactory } from "../monitor/monitor-probes.js";
import { monitorServiceFactory } from "../monitor/monitor-service.js";
import { copiesLifecycleFactory } from "../copies/copies-lifecycle.js";
import { liveCopies, liveCopyView } from "../copies/copies-store.js";
import { alertDeliveryFactory, alertSenders } from "../monitor/monitor-alert-delivery.js";
import { alertEvaluatorFactory } from "../monitor/monitor-alert-evaluator.js";
import { alertServiceFactory } from "../monitor/monitor-alert-service.js";
import type { TDestination } from "../monitor/monitor-alert-types.js";
import { SMTP_PASSWORD_SECRET } from "../lib/config.js";
import nodemailer from "nodemailer";

export type TRunningCarehost = {
  readonly url: string;
  readonly app: FastifyInstance;
  /** Stops the PostgreSQL and Redis processes of every recorded organization (tests; a host shutdown). */
  stopEnvironments(): Promise<void>;
  close(): Promise<void>;
};

type TStartOptions = {
  /** A spec to apply once the server is up (make up passes the demo organization). */
  readonly specPath?: string;
  /** Where the URL and what happened at start are printed. */
  readonly print: (line: string) => void;
  /**
   * Whether `print` reaches a terminal: only then is the one-time admin password printed. Anywhere
   * else (journald, a file, a CI log) it would stay readable for as long as the log, so it goes to
   * a 0600 file in the data dir instead, and only that file's path is printed.
   */
  readonly printsToTerminal?: boolean;
  /** Where the JSON log lines go (stdout by default); tests capture them to scan for secrets. */
  readonly logStream?: NodeJS.WritableStream;
  /** Remember this data dir in the user's config dir so the CLI finds it from any directory. */
  readonly recordLocalServer?: boolean;
  /** The identity service's clock (tests move it past token lifetimes); the system clock otherwise. */
  readonly clock?: () => Date;
  /**
   * How single sign-on reaches identity providers; Node's fetch otherwise. Tests pass one that trusts
   * their in-process provider's CA: a start option, never something a spec can set.
   */
  readonly oidcFetch?: CustomFetch;
  /** Change management's clock (maintenance windows, freezes, an emergency change's review deadline); the system clock otherwise. */
  readonly changeClock?: () => Date;
  /** How often scheduled changes are looked at (applied once their window opens) and emergency ones escalated; a minute by default. */
  readonly changeTickMs?: number;
  /** How often the local CLI token is checked for renewal; hourly by default. */
  readonly cliTokenCheckMs?: number;
  /** How often closed sign-in failure windows are summarised in the audit log; every 30 s by default. */
  readonly loginSweepMs?: number;
};

const LOCAL_CLI_TOKEN_NAME = "local-cli";
const CLI_TOKEN_CHECK_MS = 3_600_000;
// A window closes 15 minutes after its first failure: its summary is in the log within 30 s of that.
const LOGIN_SWEEP_MS = 30_000;
const CHANGE_TICK_MS = 60_000;
/** A scheduled change's apply (reconcile included) not done within this is failed and its target freed. */
const CHANGE_APPLY_DEADLINE_SECONDS = 3600;

export const startCarehost = async (config: TConfig, options: TStartOptions): Promise<TRunningCarehost> => {
  // The PEM files first: a wrong path stops the start before anything is opened.
  const transport = await loadTransport(config.http);
  await mkdir(config.home, { recursive: true, mode: 0o700 });
  const db = await openStore(config.store);
  const startedAt = new Date();
  const log = auditLogFactory({
    db,
    signingKeyPath: join(config.home, "audit-signing-key.pem"),
    checkpointEvery: config.auditCheckpoint,
  });
  const audit = auditServiceFactory({ log, db });
  const environmentStore = environmentStoreFactory(db);
  // The master key lives outside the database (CAREHOST_MASTER_KEY or a 0600 file), so a copy of
  // the database alone does not open the secrets (nor the users' TOTP secrets).
  const masterKey = await loadMasterKey({ filePath: join(config.home, "master.key") });
  const identity = identityServiceFactory({
    db,
    audit: log,
    masterKey,
    organizationRules: environmentStore.latestIdentityRules,
    ...(options.clock === undefined ? {} : { now: options.clock }),
  });
  const secrets = secretsServiceFactory({
    db,
    masterKey,
    audit: log,
    authorizeReveal: (ctx, name) => authorize(ctx, "secret:reveal", log, `secret:${name}`, secretScope(name)),
  });
  const repositories = new Map<string, TGitopsRepository>();
  // A local bare repository per organization and target in the data dir: Argo CD or Flux can sync
  // from it (or from the remote the spec names, which carehost pushes to).
  const repositoryFor = (organization: string, target: TRenderTarget, remote?: string) => {
    const key = `${organization}/${target}/${remote ?? ""}`;
    const repository =
      repositories.get(key) ??
      gitopsRepositoryFactory({
        bareRepositoryPath: join(config.home, "gitops", organization, `${target}.git`),
        workDir: join(config.home, "gitops", "work", organization, target),
        ...(remote === undefined ? {} : { remote }),
      });
    repositories.set(key, repository);
    return repository;
  };
  const runtime = await RUNTIME_DRIVERS[config.runtime.kind]({
    home: config.home,
    secrets,
    allowedPaths: config.allowedPaths,
    kubernetesRepositoryFor: (spec) => repositoryFor(spec.metadata.name, "kubernetes", spec.gitops?.repository),
  });
  // The operation queue: scheduled work is rows any replica's worker claims, so replicas sharing one
  // PostgreSQL run each once and one dying hands its work on; what this process runs itself (an
  // apply, a person's backup) it holds under the same name, one name in every lease it holds.
  const operationStore = operationStoreFactory(db);
  const workerId = newWorkerId();
  const hold = operationHoldFactory({ store: operationStore, workerId });
  const clock = options.changeClock === undefined ? {} : { now: options.changeClock };
  const changeStore = changeStoreFactory(db);
  const environments = environmentServiceFactory({
    store: environmentStore,
    policy: policyCheckerFactory(),
    audit: log,
    changes: changeGateFactory({ store: changeStore, audit: log, ...clock }),
    platform: identity.enforcement,
    runtime,
    operations: hold,
    finalBackupDirectory: join(config.home, FINAL_BACKUPS_DIRECTORY),
    copies: async (organization, at) => (await liveCopies(db, [organization])).map((copy) => liveCopyView(copy, at)),
  });
  const exceptions = exceptionServiceFactory({ store: exceptionStoreFactory(db), audit: log });
  const secretsAdmin = secretsAdminServiceFactory({
    secrets,
    audit: log,
    latestSpecs: environments.latestSpecs,
    // Rolling a rotated secret out to the running systems is an operation on the organization.
    reconcile: (ctx, spec) =>
      hold.within(
        ctx,
        { organization: spec.metadata.name, target: `organization/${spec.metadata.name}`, kind: "secret-rotation" },
        () => environments.reconcileOrganization(ctx, spec),
      ),
  });
  const recovery = recoveryServiceFactory({
    db,
    hold,
    runtime,
    latestSpecs: environments.latestSpecs,
    audit: log,
    endCommands: endRunningCommands,
  });
  const copies = copiesLifecycleFactory({ db, runtime, latestSpecs: environments.latestSpecs, audit: log });
  const wakeWorker = { wake: () => undefined as void };
  const operations = operationServiceFactory({ store: operationStore, audit: log, wake: () => wakeWorker.wake() });
  const changes = changeServiceFactory({
    store: changeStore,
    environments,
    revisions: environmentStore,
    audit: log,
    ...clock,
    postChangePosture: postChangePostureFrom(environments),
    preChangeBackup: preChangeBackupFrom(recovery, environmentStore, runtime.dataTier),
    postChangeDrill: postChangeDrillFrom(recovery, runtime.dataTier),
  });
  const gitops = gitopsServiceFactory({
    repositoryFor,
    renderers: RENDERERS,
    policy: policyCheckerFactory(),
    exceptionApprovals: environmentStore.exceptionApprovals,
    audit: log,
    // Only requests call it, and they come once the app below exists.
    reportAuditFailure: (ctx, error) =>
      app.log.error(
        { err: error, requestId: ctx.requestId },
        "a GitOps commit is live but its audit entry could not be recorded",
      ),
    record: (ctx, submission) => environments.apply(ctx, submission),
  });
  let url = `${transport.tls === undefined ? "http" : "https"}://${config.host}:${config.port}`;
  const oidc = oidcServiceFactory({
    db,
    audit: log,
    organizations: environments.latestSpecs,
    secrets,
    callbackUrl: () => `${config.publicUrl ?? url}/api/auth/oidc/callback`,
    sessionHours: defaultSessionLimits.absoluteHours,
    ...(options.clock === undefined ? {} : { now: options.clock }),
    ...(options.oidcFetch === undefined ? {} : { fetch: options.oidcFetch }),
  });
  const status = statusServiceFactory({
    environments,
    auditHead: audit.head,
    audit: log,
    version: carehostVersion,
    url: () => url,
    store: config.store.kind,
    startedAt,
    recoverySummaries: recovery.summaries,
    changeAlerts: changes.alerts,
    copies: (statusCtx) => copies.list(statusCtx),
    firingAlerts: (ctx) => alerts.firing(ctx),
  });
  // Alert email goes through the configured SMTP server, its password from the secret store (read
  // at each send, so `carehost secrets set platform/smtp-password` takes effect without a restart).
  const smtp = config.alerting.smtp;
  const mail =
    smtp === undefined
      ? undefined
      : async () => {
          const url = new URL(smtp.url);
          const password = smtp.user === undefined ? undefined : await secrets.current(SMTP_PASSWORD_SECRET);
          return {
            transport: nodemailer.createTransport({
              host: url.hostname,
              port: Number(url.port || (url.protocol === "smtps:" ? 465 : 587)),
              secure: url.protocol === "smtps:",
              ...(smtp.user === undefined ? {} : { auth: { user: smtp.user, pass: password ?? "" } }),
            }),
            from: smtp.from,
          };
        };
  const alertDelivery = alertDeliveryFactory({
    db,
    log,
    senders: alertSenders({ externalURL: () => config.publicUrl ?? url, mail }),
    onError: (error) => app.log.error({ err: error }, "delivering alerts failed"),
  });
  const platformDestinations: TDestination[] = [
    ...(config.alerting.platformWebhook === undefined
      ? []
      : [{ kind: "webhook" as const, destination: config.alerting.platformWebhook }]),
    ...(config.alerting.platformEmail.length === 0
      ? []
      : [{ kind: "email" as const, destination: config.alerting.platformEmail.join(",") }]),
  ];
  const alertEvaluator = alertEvaluatorFactory({
    log,
    latestSpecs: environments.latestSpecs,
    platformDestinations,
    onQueued: () => void alertDelivery.kick(),
  });
  const alerts = alertServiceFactory({ db, log, latestSpecs: environments.latestSpecs });
  // Probe rounds on their own timer at the supervisor's interval; /metrics serves the last one, and
  // carehost evaluates its alert rules on each.
  const probes = monitorProbesFactory({
    latestSpecs: environments.latestSpecs,
    probeRuntime: runtime.probe,
    recoverySummaries: recovery.summaries,
    auditCounts: auditCountsFactory({ db }),
    onRound: async (round) => {
      const evaluation = await alertEvaluator.evaluate(round);
      await alertDelivery.resendFiring(evaluation.active);
    },
    onError: (error) => app.log.error({ err: error }, "a monitoring probe round failed"),
  });
  const monitor = monitorServiceFactory({
    probes,
    metrics: monitorMetricsFactory(),
    audit: log,
    latestSpecs: environments.latestSpecs,
  });

  const app = await buildServer(
    {
      db,
      identity,
      oidc,
      environments,
      exceptions,
      audit,
      status,
      secrets: secretsAdmin,
      gitops,
      recovery,
      copies,
      operations,
      changes,
      monitor,
      alerts,
    },
    {
      version: carehostVersion,
      transport,
      logger: {
        level: config.logLevel,
        redact: { paths: redactedLogPaths, censor: "[redacted]" },
        ...(options.logStream === undefined ? {} : { stream: options.logStream }),
      },
    },
  );
  const address = await app.listen({ host: config.host, port: config.port });
  url = address.replace("[::1]", "localhost");
  await writeFile(
    serverRecordPath(config.home),
    `${JSON.stringify({ url, pid: process.pid, startedAt: startedAt.toISOString() })}\n`,
  );
  if (options.recordLocalServer === true) {
    await writePrivateFile(localServerPointerPath(), `${JSON.stringify({ url, home: config.home })}\n`);
  }

  const ctx = systemContext("startup");
  await log.append(ctx, {
    type: "server.started",
    outcome: "success",
    target: null,
    payload: { version: carehostVersion },
  });
  const bootstrap = await identity.bootstrapAdmin(ctx, { cliTokenName: LOCAL_CLI_TOKEN_NAME });
  if (bootstrap.created) {
    if (bootstrap.cliToken !== undefined)
      await writePrivateFile(localCliTokenPath(config.home), `${bootstrap.cliToken.token}\n`);
    options.print("");
    if (options.printsToTerminal === true) {
      options.print(`First start: created user "${bootstrap.username}" with password (shown only now):`);
      options.print(`    ${bootstrap.password}`);
    } else {
      const passwordPath = join(config.home, BOOTSTRAP_PASSWORD_FILE);
      await writePrivateFile(passwordPath, `${bootstrap.password}\n`);
      options.print(
        `First start: created user "${bootstrap.username}"; its password is in ${passwordPath} (mode 0600, not shown: this output is not a terminal). Delete the file once you have signed in.`,
      );
    }
    options.print(
      `A local CLI token for ${bootstrap.username} was written to ${localCliTokenPath(config.home)} (mode 0600).`,
    );
  }

  // The local CLI token expires like any API token of its role; the server that wrote it renews it
  // (now, after a long stop, and hourly while it runs) so `carehost` on the host never finds it dead.
  // The successor is written beside the file first and renamed over it once the database has
  // swapped the tokens: a write that fails leaves the old token working, and a stop between the
  // commit and the rename is finished by the next pass, which adopts a side file the database holds.
  const cliTokenPath = localCliTokenPath(config.home);
  const stagedCliTokenPath = `${cliTokenPath}.next`;
  const readTokenFile = async (path: string): Promise<string | undefined> => {
    try {
      return (await readFile(path, "utf8")).trim();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
  };
  const settleStagedCliToken = async () => {
    const staged = await readTokenFile(stagedCliTokenPath);
    if (staged === undefined) return;
    if (await identity.isCurrentLocalCliToken(staged, LOCAL_CLI_TOKEN_NAME)) {
      await rename(stagedCliTokenPath, cliTokenPath);
      app.log.info("adopted the local CLI token a renewal committed before its file was replaced");
    } else {
      await rm(stagedCliTokenPath, { force: true });
    }
  };
  const renewCliToken = async () => {
    await settleStagedCliToken();
    const current = await readTokenFile(cliTokenPath);
    if (current === undefined) return;
    let renewed: Awaited<ReturnType<typeof identity.renewLocalCliToken>>;
    try {
      renewed = await identity.renewLocalCliToken(
        systemContext("local-cli-renewal"),
        current,
        LOCAL_CLI_TOKEN_NAME,
        (issued) => writePrivateFile(stagedCliTokenPath, `${issued.token}\n`),
      );
    } catch (error) {
      // A commit whose outcome was lost may have happened: settle now rather than an hour from now.
      await settleStagedCliToken().catch(() => undefined);
      throw error;
    }
    if (renewed === undefined) {
      // Nothing was committed (the token was revoked or its user disabled meanwhile): the side file names no token.
      await rm(stagedCliTokenPath, { force: true });
      return;
    }
    await rename(stagedCliTokenPath, cliTokenPath);
    app.log.info({ tokenId: renewed.id, expiresAt: renewed.expiresAt }, "renewed the local CLI token");
  };
  // One pass at a time: a tick during a slow pass joins it rather than staging a second successor.
  let cliTokenPass: Promise<void> | undefined;
  const renewCliTokenLogged = () =>
    (cliTokenPass ??= renewCliToken()
      .catch((error: unknown) => app.log.error({ err: error }, "renewing the local CLI token failed"))
      .finally(() => (cliTokenPass = undefined)));
  await renewCliTokenLogged();
  const cliTokenTimer = setInterval(() => void renewCliTokenLogged(), options.cliTokenCheckMs ?? CLI_TOKEN_CHECK_MS);
  cliTokenTimer.unref();

  // Sign-in failure windows are summarised here, a bounded batch per tick, never on the sign-in path.
  let loginSweep: Promise<void> | undefined;
  const sweepLoginFailures = () =>
    (loginSweep ??= identity
      .summariseLoginFailures()
      .then(
        () => undefined,
        (error: unknown) => app.log.error({ err: error }, "summarising sign-in failures failed"),
      )
      .finally(() => (loginSweep = undefined)));
  const loginSweepTimer = setInterval(() => void sweepLoginFailures(), options.loginSweepMs ?? LOGIN_SWEEP_MS);
  loginSweepTimer.unref();

  const runScheduled: TOperationHandler = async ({ operation }) => recovery.runScheduled(operation);
  // Scheduled changes apply when their window opens; emergency changes nobody reviewed in 24 h are escalated.
  const changeScheduler = systemContext("change-scheduler");
  const applyChange: TOperationHandler = async ({ operation }) => {
    if (operation.changeRequest === null) throw new Error(`apply operation ${operation.id} names no change request`);
    return changes.applyQueued(changeScheduler, operation.changeRequest);
  };
  // Another replica died holding an operation: its runs are interrupted, and the organization's
  // reconcile repairs what they left half-done, as this process's own start-up would.
  // The reconcile is started, not awaited: the worker's pass goes on claiming (another organization's
  // work must not wait behind this one's repair), and the reconcile waits for its organization.
  const repairInterrupted = async (operation: TOperation) => {
    await operations.recordInterrupted(operation);
    const interruptedRuns = await recovery.markInterruptedFor(operation);
    // An apply or a roll-out stopped mid-reconcile, or a run stopped mid-restore, left things half-made.
    if (interruptedRuns === 0 && !["apply", "secret-rotation"].includes(operation.kind)) return;
    const spec = (await environments.latestSpecs()).find((item) => item.metadata.name === operation.organization);
    if (spec !== undefined)
      void environments
        .reconcileOrganization(systemContext("operations"), spec)
        .catch((error: unknown) => app.log.error({ err: error }, "repairing after an interrupted operation failed"));
  };
  const worker: TOperationWorker = operationWorkerFactory({
    store: operationStore,
    workerId,
    handlers: {
      apply: applyChange,
      // Queued only where the runtime's data tier is on this host (the scheduler asks it).
      backup: runScheduled,
      "filestore-snapshot": runScheduled,
      verify: runScheduled,
      drill: runScheduled,
    },
    pollMs: Math.min(config.runtime.superviseMs, 5000),
    onInterrupted: repairInterrupted,
    onError: (error) => app.log.error({ err: error }, "running an operation failed"),
  });
  wakeWorker.wake = worker.wake;
  const queueChange = (request: TChangeRequest) =>
    operations.enqueueAsSystem(
      {
        organization: request.organization,
        target: `organization/${request.organization}`,
        kind: "apply",
        params: { changeRequest: request.id },
        changeRequest: request.id,
        dedupeKey: `change:${request.id}`,
        deadlineSeconds: CHANGE_APPLY_DEADLINE_SECONDS,
      },
      "change-scheduler",
    );
  let changeTick: Promise<unknown> = Promise.resolve();
  const tickChanges = () =>
    (changeTick = changeTick
      .then(() => changes.runDue(changeScheduler, queueChange))
      .catch((error: unknown) => app.log.error({ err: error }, "applying scheduled changes failed")));
  const changeTimer = setInterval(() => void tickChanges(), options.changeTickMs ?? CHANGE_TICK_MS);
  changeTimer.unref();

  const supervisor = runtimeSupervisorFactory({
    runtime,
    schedule: async (spec) => {
      for (const due of await recovery.scheduledOperationsFor(spec)) await operations.enqueueAsSystem(due, "scheduler");
      // A copy of PHI past its expiry is torn down on the tick after it (audited as copy.removed).
      const expired = await copies.expire(systemContext("scheduler"), spec.metadata.name);
      for (const failure of expired.failed)
        app.log.error({ copy: failure.name, reason: failure.reason }, "tearing down an expired copy failed");
    },
    latestSpecs: environments.latestSpecs,
    audit: log,
    intervalMs: config.runtime.superviseMs,
    onError: (error) => app.log.error({ err: error }, "supervising the runtime failed"),
  });
  // PGlite is one process's database: an operation it holds as running (or reserved) was this
  // process's before it stopped, and no other replica will ever renew its lease.
  if (config.store.kind === "pglite") {
    for (const interruptedOperation of await operationStore.interruptRunning(
      "interrupted: carehost stopped before it finished",
    ))
      await operations.recordInterrupted(interruptedOperation);
  }
  // The runs no live lease holds: on PostgreSQL, another replica's keep running.
  const interrupted = await recovery.markInterrupted();
  if (interrupted > 0)
    options.print(
      `Recovery: ${interrupted} backup, restore or drill run(s) left running by the last stop were marked interrupted.`,
    );
  // After a reboot or a crash: every recorded environment comes back before anything else.
  const restored = await environments.reconcileRecorded(ctx);
  if (restored.length > 0) options.print(`Runtime: ${restored.length} action(s) to bring recorded environments back.`);
  supervisor.start();
  worker.start();
  probes.start(config.runtime.superviseMs);
  alertDelivery.start(Math.min(config.runtime.superviseMs, 5000));

  // An apply the last process stopped between its intent and its conclusion: the repository says
  // how it ended. After the admin and the runtime, since a remote that is slow to answer holds this.
  for (const apply of await gitops.reconcileInterrupted(ctx, { startedBefore: startedAt }))
    options.print(
      `GitOps: the ${apply.target} apply of ${apply.organization} (audit entry #${apply.startedSeq}) had no conclusion: ${apply.outcome === "unresolved" ? "" : `recorded as ${apply.outcome}, `}${apply.detail}.`,
    );

  // The spec given to `up` seeds an organization carehost does not hold yet. Once one is recorded,
  // what users applied since wins: a restart never reverts their changes to the file's.
  const loaded =
    options.specPath === undefined
      ? undefined
      : loadSpecText(await readFile(options.specPath, "utf8"), options.specPath);
  const recorded =
    loaded?.ok === true
      ? (await environmentStore.latestRevisions()).find(
          (revision) => revision.organization === loaded.spec.metadata.name,
        )
      : undefined;
  if (
    options.specPath !== undefined &&
    recorded !== undefined &&
    loaded?.ok === true &&
    recorded.digest !== loaded.digest
  ) {
    options.print(
      `Spec ${options.specPath}: not applied; organization "${recorded.organization}" is at revision ${recorded.id}, applied by ${recorded.appliedBy} at ${recorded.appliedAt.toISOString()}. carehost plan ${options.specPath} shows what applying it would change.`,
    );
  } else if (options.specPath !== undefined) {
    const source = await readFile(options.specPath, "utf8");
    const result = await environments.apply(systemContext("up"), { source, fileName: options.specPath });
    options.print(
      result.revisionId === null
        ? `Spec ${options.specPath}: already recorded, nothing to do.`
        : `Spec ${options.specPath}: recorded as revision ${result.revisionId} (${result.plan.changes.length} environments).`,
    );
    for (const action of result.runtime) options.print(`  ${action.target}: ${action.action}`);
  }
  options.print(
    `carehost ${carehostVersion} is up at ${url} (state: ${config.store.kind === "pglite" ? join(config.home, "state") : "PostgreSQL"}).`,
  );
  options.print("In another shell: carehost status");

  return {
    url,
    app,
    stopEnvironments: async () => {
      await probes.stop();
      await supervisor.stop();
      await worker.stop(0);
      for (const spec of await environments.latestSpecs()) await runtime.stopOrganization(spec);
    },
    /**
     * Stops within seconds whatever runs: backups, restores and drills are marked interrupted and
     * their commands ended (recovery.shutdown), so their followers' streams end and nothing waits
     * out a time limit; what they left half-done, the next start repairs as after a SIGKILL.
     */
    close: async () => {
      clearInterval(cliTokenTimer);
      clearInterval(loginSweepTimer);
      // The worker stops claiming at once; what it runs ends as recovery.shutdown interrupts its runs.
      const workerStopped = worker.stop(0);
      // A pass still running would fail on the database closed under it: a sweep would log that it
      // did, and a renewal would leave its side file for the next start to settle.
      await Promise.all([cliTokenPass, loginSweep]);
      clearInterval(changeTimer);
      await changeTick;
      await probes.stop();
      await alertDelivery.stop();
      const interrupted = await recovery.shutdown();
      await workerStopped;
      if (interrupted > 0)
        options.print(
          `Recovery: ${interrupted} run(s) still going were marked interrupted; the next start repairs what they left.`,
        );
      // The supervisor's pass ends once its runs are interrupted; a pass stuck elsewhere is not waited for.
      await Promise.race([supervisor.stop(), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
      await app.close();
      await runtime.close();
      await log.close();
      await db.close();
      await rm(serverRecordPath(config.home), { force: true });
    },
  };
};
