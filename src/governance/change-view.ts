// A change request as the API and the CLI show it: what is recorded, without the ids carehost tells
// people apart by, and with what is derived at the time of the answer (each production window's
// next opening, an emergency change's review deadline and alert).
import { activeSlot, nextSlotStart } from "../spec/maintenance-window.js";
import type { TMaintenanceWindowSpec, TOrganizationSpec } from "../spec/spec-schema.js";
import type { TChangeApproval, TChangeRequest } from "./change-types.js";

/** An emergency change is approved retrospectively within this long of applying, or escalated. */
export const EMERGENCY_REVIEW_MS = 24 * 3_600_000;

export type TChangeWindow = {
  readonly environment: string;
  readonly timeZone: string;
  readonly slots: TMaintenanceWindowSpec["slots"];
  /** Now, when a slot is open; else the next slot's start. */
  readonly opensAt: Date;
  readonly open: boolean;
};

export type TChangeView = Omit<TChangeRequest, "requesterId" | "approvals" | "source"> & {
  readonly approvals: readonly Omit<TChangeApproval, "approverId">[];
  readonly windows: readonly TChangeWindow[];
  /** For an emergency change: by when it is approved retrospectively, else escalated. */
  readonly reviewBy: Date | null;
  /** Why `status` shows this change as an ALERT; null when it does not. */
  readonly alert: string | null;
};

export const reviewDeadline = (request: Pick<TChangeRequest, "kind" | "appliedAt">): Date | null =>
  request.kind === "emergency" && request.appliedAt !== null
    ? new Date(request.appliedAt.getTime() + EMERGENCY_REVIEW_MS)
    : null;

/** The ALERT an emergency change raises until enough people other than its requester approve it. */
export const emergencyAlert = (request: TChangeRequest, at: Date): string | null => {
  const deadline = reviewDeadline(request);
  if (deadline === null || request.reviewedAt !== null) return null;
  const approvals = `${request.approvals.length} of ${request.approvalsRequired} approval(s)`;
  return request.escalatedAt !== null || at >= deadline
    ? `emergency change #${request.id} by ${request.requestedBy} applied at ${request.appliedAt!.toISOString()} was not approved within 24 h (${approvals}): ESCALATED; carehost change approve ${request.id}`
    : `emergency change #${request.id} by ${request.requestedBy} applied at ${request.appliedAt!.toISOString()} without approval (${approvals}); approve it retrospectively by ${deadline.toISOString()}: carehost change approve ${request.id}`;
};

export const changeViewOf = (
  request: TChangeRequest,
  applied: TOrganizationSpec | undefined,
  at: Date,
): TChangeView => {
  const { requesterId: _requester, approvals, source: _source, ...rest } = request;
  const windows = request.assessment.production.flatMap((name): TChangeWindow[] => {
    const window = applied?.environments.find((environment) => environment.name === name)?.maintenanceWindow;
    if (window === undefined) return [];
    const open = activeSlot(window, at) !== undefined;
    return [
      {
        environment: name,
        timeZone: window.timeZone,
        slots: window.slots,
        opensAt: open ? at : nextSlotStart(window, at).start,
        open,
      },
    ];
  });
  return {
    ...rest,
    approvals: approvals.map(({ approverId: _approverId, ...approval }) => approval),
    windows,
    reviewBy: reviewDeadline(request),
    alert: emergencyAlert(request, at),
  };
};
