// The checks around a change to production, as the change service takes them: a backup of each
// production environment just before the change applies (the recovery service's own backup, so it
// is a backup run like any other, listed and audited), and the posture read back from the live
// systems once it applied. Both are recorded on the change request.
import type { TRecoveryService } from "../backup/recovery-service.js";
import type { TEnvironmentService } from "../environments/environment-service.js";
import type { TEnvironmentStore } from "../environments/environment-store.js";
import type { TDataTier } from "../runtime/runtime-driver.js";
import { systemContext } from "../lib/request-context.js";
import type { TChangeAssessment } from "./change-classify.js";
import type { TChangeRequest, TPostChangeDrill, TPostChangePosture, TPreChangeBackup } from "./change-types.js";

const message = (error: unknown) => (error instanceof Error ? error.message : String(error)).slice(0, 500);

/**
 * An incremental backup (pgBackRest takes a full one when none exists yet); skipped where backups
 * are disabled, and where the runtime's data tier is not on this host (the record says why).
 */
export const preChangeBackupFrom =
  (
    recovery: Pick<TRecoveryService, "backup">,
    revisions: Pick<TEnvironmentStore, "appliedRevision">,
    dataTier: TDataTier,
  ): ((request: TChangeRequest, environment: string) => Promise<TPreChangeBackup>) =>
  async (request, environment) => {
    if (!dataTier.onThisHost) return { environment, status: "skipped", label: null, detail: dataTier.why };
    const applied = await revisions.appliedRevision(request.organization);
    const declared = applied?.spec.environments.find((item) => item.name === environment);
    if (declared === undefined || !declared.backup.enabled)
      return {
        environment,
        status: "skipped",
        label: null,
        detail: declared === undefined ? "the change creates it: nothing to back up yet" : "its backups are disabled",
      };
    try {
      // carehost's own action, whoever applies the change: an approver need not hold backup:run.
      const backup = await recovery.backup(systemContext(`change-${request.id}`), {
        organization: request.organization,
        environment,
        kind: "incr",
      });
      return { environment, status: "succeeded", label: backup.label, detail: `backup run #${backup.id}` };
    } catch (error) {
      return { environment, status: "failed", label: null, detail: message(error) };
    }
  };

/** undefined only when the organization is not recorded, which an applied change rules out. */
export const postChangePostureFrom =
  (
    environments: Pick<TEnvironmentService, "posture">,
  ): ((organization: string) => Promise<TPostChangePosture | undefined>) =>
  async (organization) => {
    const found = (await environments.posture(systemContext("post-change-posture"))).find(
      (item) => item.organization === organization,
    );
    return (
      found && {
        evaluatedAt: found.report.evaluatedAt,
        summary: found.report.summary,
        mandatoryViolations: found.report.mandatoryViolations.map((violation) => violation.line),
      }
    );
  };

const DATA_TIER_FIELDS = ["database.", "backup.", "redis."];

/**
 * The production environments whose data tier a change touched: a field of their database, backups
 * or Redis, or a setting that restarts their PostgreSQL (odoo.workers raises max_connections).
 */
export const dataTierChangedIn = (assessment: TChangeAssessment): string[] =>
  assessment.environments
    .filter((environment) => environment.production && environment.action === "change")
    .filter(
      (environment) =>
        environment.fields.some((field) => DATA_TIER_FIELDS.some((prefix) => field.startsWith(prefix))) ||
        // Recorded before the names were kept (a request from an older carehost): none restarts.
        (assessment.restartedProduction ?? []).includes(environment.name),
    )
    .map((environment) => environment.name);

/** A restore drill of the environment as it is after the change: restorable, and within its objectives. */
export const postChangeDrillFrom =
  (
    recovery: Pick<TRecoveryService, "drill">,
    dataTier: TDataTier,
  ): ((request: TChangeRequest, environment: string) => Promise<TPostChangeDrill>) =>
  async (request, environment) => {
    if (!dataTier.onThisHost) return { environment, status: "skipped", drill: null, detail: dataTier.why };
    try {
      const drill = await recovery.drill(systemContext(`change-${request.id}`), {
        organization: request.organization,
        environment,
      });
      const measured = `RTO ${drill.rtoSeconds ?? "-"} s, RPO ${drill.rpoSeconds ?? "-"} s`;
      return {
        environment,
        status: drill.status === "passed" ? "passed" : "failed",
        drill: drill.id,
        detail:
          drill.status === "passed"
            ? measured
            : `${measured}; ${[...drill.problems, drill.error ?? ""].filter(Boolean).join("; ")}`.slice(0, 500),
      };
    } catch (error) {
      return { environment, status: "failed", drill: null, detail: message(error) };
    }
  };
