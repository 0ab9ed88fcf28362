// What a change request is, as the store keeps it and the API shows it.
import type { TPlan } from "../environments/environment-plan.js";
import type { TPostureReport } from "../policy/policy-engine.js";
import type { TArtifactChange, TRuntimeEffect } from "../runtime/runtime-types.js";
import type { TChangeAssessment } from "./change-classify.js";

export const CHANGE_KINDS = ["standard", "normal", "emergency"] as const;
export type TChangeKind = (typeof CHANGE_KINDS)[number];

/**
 * pending → approved | denied | cancelled; approved → scheduled (outside its window) → applied |
 * failed. A standard change is approved when it is recorded; an emergency one is applied at once
 * and reviewed afterwards (reviewedAt), or escalated (escalatedAt).
 */
export const CHANGE_STATES = ["pending", "approved", "scheduled", "applied", "failed", "denied", "cancelled"] as const;
export type TChangeState = (typeof CHANGE_STATES)[number];

/** The control baseline's verdict over the proposed spec when the change was recorded (no mandatory violation, or it was refused). */
export type TChangeVerdict = { readonly evaluatedAt: string; readonly summary: TPostureReport["summary"] };

/** What `plan` showed for the change: the environments' fields, the rendered files' diffs, what applying restarts. */
export type TChangePlan = {
  readonly plan: TPlan;
  readonly artifacts: readonly TArtifactChange[];
  readonly effects: readonly TRuntimeEffect[];
  readonly verdict: TChangeVerdict;
};

export type TChangeApproval = {
  readonly approver: string;
  readonly approverId: string;
  readonly role: string;
  readonly approvedAt: Date;
};

/** The backup taken of a production environment just before the change applied. */
export type TPreChangeBackup = {
  readonly environment: string;
  readonly status: "succeeded" | "failed" | "skipped";
  readonly label: string | null;
  readonly detail: string;
};

/** The posture read back from the live systems once the change applied. */
export type TPostChangePosture = {
  readonly evaluatedAt: string;
  readonly summary: TPostureReport["summary"];
  readonly mandatoryViolations: readonly string[];
};

/** The restore drill run after a change to a production environment's data tier. */
export type TPostChangeDrill = {
  readonly environment: string;
  /** skipped: the runtime's data tier is not on this host, so carehost drills nothing (the detail says why). */
  readonly status: "passed" | "failed" | "skipped";
  /** The drill run (carehost drills lists it); null when it could not start. */
  readonly drill: number | null;
  readonly detail: string;
};

export type TChangeRequest = {
  readonly id: number;
  readonly organization: string;
  readonly kind: TChangeKind;
  readonly state: TChangeState;
  readonly reason: string;
  readonly ticket: string | null;
  readonly requestedBy: string;
  readonly requesterId: string;
  readonly requestedAt: Date;
  readonly source: string;
  readonly fileName: string;
  readonly specDigest: string;
  /** The applied revision the change was measured from; applying refuses once another revision was applied. */
  readonly baseRevisionId: number;
  readonly confirmDestroy: readonly string[];
  readonly assessment: TChangeAssessment;
  readonly plan: TChangePlan;
  readonly approvalsRequired: number;
  readonly approvals: readonly TChangeApproval[];
  /** The change request this one rolls back. */
  readonly rollbackOf: number | null;
  readonly scheduledFor: Date | null;
  readonly appliedRevisionId: number | null;
  readonly appliedBy: string | null;
  readonly appliedAt: Date | null;
  /** Who denied or cancelled it, when and why. */
  readonly closedBy: string | null;
  readonly closedAt: Date | null;
  readonly closeReason: string | null;
  readonly failure: string | null;
  readonly reviewedAt: Date | null;
  readonly escalatedAt: Date | null;
  readonly preChangeBackup: readonly TPreChangeBackup[] | null;
  readonly postChangePosture: TPostChangePosture | null;
  readonly postChangeDrills: readonly TPostChangeDrill[] | null;
};
