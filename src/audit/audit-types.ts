// The audit event catalogue and the shapes the audit log hands out. Adding an event is one line
// in `auditPayloadSchemas`: its name and the zod schema of its payload. Payloads are strict
// objects (unknown keys refused) and hold digests, names and reasons, never secret values.
import { z } from "zod";
import { roles, type TRequestContext } from "../lib/request-context.js";

const role = z.enum(roles);
const digest = z.string().min(1).max(200);
const reason = z.string().max(500);
const name = z.string().min(1).max(200);
/** A size, count or duration. */
const bytes = z.number().int().nonnegative();
const secondFactor = z.enum(["totp", "recovery-code"]);

/** What a de-identified restore did, in counts and names (tables, checks), never a value. */
const deidentifiedSummary = z.strictObject({
  rows: bytes,
  tables: bytes,
  attachmentsReplaced: bytes,
  filesRemoved: bytes,
  checks: z.array(name).max(20),
  sampled: bytes,
  scannedColumns: bytes,
});

export const auditPayloadSchemas = {
  "auth.login.succeeded": z.strictObject({
    username: name,
    sessionId: name,
    expiresAt: z.string(),
    /** The second factor the sign-in passed (absent: none was asked). */
    secondFactor: secondFactor.optional(),
  }),
  /**
   * The bootstrap admin signed in with its password while an organization allows no local users or
   * signs people in through OIDC: an ALERT, with the reason its user gave. (Entries written before
   * break-glass asked for a reason have neither severity nor reason.)
   */
  "auth.login.break_glass": z.strictObject({
    username: name,
    sessionId: name,
    expiresAt: z.string(),
    localUsersRefusedBy: z.array(name).max(1000),
    oidcConfiguredBy: z.array(name).max(1000).optional(),
    severity: z.literal("alert").optional(),
    reason: reason.optional(),
    secondFactor: secondFactor.optional(),
  }),
  /** The password was right and a second factor is asked before any session: a code, or enrolment first. */
  "auth.mfa.challenged": z.strictObject({
    username: name,
    method: z.enum(["totp", "enrol"]),
    ticketExpiresAt: z.string(),
  }),
  /** A TOTP authenticator was confirmed with a first code; this many recovery codes were issued (stored hashed). */
  "auth.mfa.enrolled": z.strictObject({ username: name, recoveryCodes: bytes }),
  /** A signed-in user began enrolling an authenticator; nothing is asked of it until a first code confirms it. */
  "auth.mfa.enrolment_started": z.strictObject({ username: name }),
  /** A second factor refused: a wrong or reused code, a used recovery code, a ticket out of tries. */
  "auth.mfa.failed": z.strictObject({ username: name, reason, attemptsLeft: bytes.optional() }),
  "auth.mfa.recovery_code_used": z.strictObject({ username: name, recoveryCodesLeft: bytes }),
  /** An admin removed another user's second factor (they enrol again at their next sign-in); their sessions end. */
  "auth.mfa.reset": z.strictObject({
    username: name,
    reason,
    hadSecondFactor: z.boolean(),
    revokedSessionCount: bytes,
  }),
  "auth.login.failed": z.strictObject({ username: name, reason }),
  /** The first refusal of its audit window; the rest are counted in auth.login.failures. */
  "auth.login.rate_limited": z.strictObject({
    username: name,
    scope: z.enum(["source-and-username", "source"]),
    retryAfterSeconds: z.number().int().nonnegative(),
  }),
  /**
   * The failures and refusals of one audit window after its first (which has its own entry): one
   * source, for one username or (null) across usernames. The entry's source address is theirs.
   */
  "auth.login.failures": z.strictObject({
    username: name.nullable(),
    failed: bytes,
    rateLimited: bytes,
    windowStart: z.string(),
    windowSeconds: bytes,
    firstAt: z.string(),
    lastAt: z.string(),
  }),
  /** A person signed in through an organization's OIDC provider: the account it vouched for and what it mapped to. */
  "auth.sso.succeeded": z.strictObject({
    username: name,
    organization: name,
    issuer: name,
    subject: name,
    sessionId: name,
    expiresAt: z.string(),
    roles: z.array(role).max(10),
    amr: z.array(z.string().max(50)).max(20),
  }),
  /** An SSO sign-in refused: at the provider, by the ID token's checks, or by the organization's rules (domain, groups, MFA). */
  "auth.sso.failed": z.strictObject({
    organization: name,
    reason,
    issuer: name.optional(),
    subject: name.optional(),
    email: name.optional(),
  }),
  "auth.logout": z.strictObject({ username: name, sessionId: name }),
  "auth.token_rejected": z.strictObject({ tokenId: name, owner: name, reason }),
  "user.created": z.strictObject({
    username: name,
    role,
    bootstrap: z.boolean().optional(),
    initialLogin: z.enum(["generated", "chosen"]).optional(),
    /** Made at a first single sign-on: the issuer that vouches for the person. */
    identityProvider: name.optional(),
    /** The organizations its role bindings cover ("*" for every one). */
    organizations: z.array(z.string().max(63)).max(1000).optional(),
  }),
  /** Role bindings added to or ended for a user: the role over each organization named. */
  "user.access_granted": z.strictObject({ username: name, role, organizations: z.array(z.string().max(63)).max(1000) }),
  "user.access_revoked": z.strictObject({ username: name, role, organizations: z.array(z.string().max(63)).max(1000) }),
  "user.role_changed": z.strictObject({ username: name, from: role, to: role }),
  "user.disabled": z.strictObject({ username: name, revokedTokenCount: z.number().int().nonnegative() }),
  "token.created": z.strictObject({ tokenId: name, name, owner: name, expiresAt: z.string() }),
  /** An API token refused to a credential that has not passed the second factor its owner needs. */
  "token.refused": z.strictObject({ owner: name, reason }),
  "token.revoked": z.strictObject({
    tokenId: name,
    kind: z.enum(["session", "api"]),
    name: name.nullable(),
    owner: name,
  }),
  "spec.applied": z.strictObject({ digest, revisionId: z.number().int().nonnegative() }),
  "spec.apply_denied": z.strictObject({ digest, reason }),
  "environment.created": z.strictObject({ digest }),
  "environment.changed": z.strictObject({ digest, previousDigest: digest }),
  "environment.removed": z.strictObject({ previousDigest: digest }),
  "audit.exported": z.strictObject({
    from: z.string().nullable(),
    to: z.string().nullable(),
    entries: z.number().int(),
    treeSize: z.number().int(),
  }),
  "audit.verified": z.strictObject({ ok: z.boolean(), treeSize: z.number().int(), problems: z.number().int() }),
  "access.denied": z.strictObject({
    permission: name,
    role: role.nullable(),
    /** The organization the refused action was about; "*" for one over every organization. */
    organization: z.string().max(63).optional(),
  }),
  "server.started": z.strictObject({ version: name }),
  "secret.revealed": z.strictObject({ secretName: name, reason }),
  "secret.rotated": z.strictObject({ secretName: name, version: z.number().int().positive() }),
  "runtime.reconciled": z.strictObject({
    organization: name,
    actionCount: z.number().int().nonnegative(),
    actions: z.array(reason).max(200),
  }),
  "runtime.reconcile_failed": z.strictObject({ organization: name, reason }),
  "runtime.instance_restarted": z.strictObject({ organization: name, instance: name, detail: reason }),
  "environment.final_backup": z.strictObject({
    path: z.string().max(1000),
    /** The restic snapshot of the encrypted dump in that repository. */
    snapshot: z.string().max(64).optional(),
    bytes: z.number().int().nonnegative(),
    sha256Digest: digest,
  }),
  "policy.exception_recorded": z.strictObject({
    controlId: name,
    environment: name,
    owner: name,
    reason,
    expires: z.string(),
  }),
  "policy.exception_removed": z.strictObject({ controlId: name, environment: name }),
  /** Applying a spec proposed a version of an exception carehost had not seen; it applies once someone else approves it. */
  "policy.exception_proposed": z.strictObject({
    exceptionId: z.number().int().positive(),
    controlId: name,
    environment: name,
    owner: name,
    reason,
    expires: z.string(),
  }),
  "policy.exception_approved": z.strictObject({
    exceptionId: z.number().int().positive(),
    controlId: name,
    environment: name,
    expires: z.string(),
    proposedBy: name,
  }),
  "policy.exception_approval_denied": z.strictObject({ exceptionId: z.number().int().positive(), reason }),
  "backup.completed": z.strictObject({
    environment: name,
    kind: z.enum(["full", "diff", "incr", "filestore"]),
    label: name,
    databaseBytes: bytes.optional(),
    repositoryBytes: bytes.optional(),
    filestoreFiles: bytes,
    filestoreBytes: bytes,
    filestoreBytesAdded: bytes,
    durationMs: bytes,
    /** Declared repositories this backup did not reach, with why: an auditor sees a copy missing, not only the copies made. */
    skippedRepositories: z
      .array(z.strictObject({ name, type: z.enum(["posix", "azure", "s3"]), reason }))
      .max(50)
      .optional(),
  }),
  "backup.failed": z.strictObject({
    environment: name,
    kind: z.enum(["full", "diff", "incr", "verify", "filestore"]),
    reason,
  }),
  "backup.verified": z.strictObject({ environment: name, ok: z.boolean(), durationMs: bytes }),
  /** An operation's worker stopped renewing its lease (killed, hung): another worker ended it interrupted. */
  "operation.interrupted": z.strictObject({
    operationId: z.number().int().positive(),
    kind: name,
    target: name,
    reason,
  }),
  /** Someone cancelled an operation: at once when it had not started, else its worker stops it. */
  "operation.cancelled": z.strictObject({
    operationId: z.number().int().positive(),
    kind: name,
    target: name,
    state: z.enum(["cancelled", "stopping"]),
  }),
  "backup.expired": z.union([
    z.strictObject({
      environment: name,
      expired: z.array(name).max(1000),
      reclaimedBytes: bytes,
      filestoreSnapshots: bytes,
      retention: z.strictObject({ daily: bytes, weekly: bytes, monthly: bytes }),
      durationMs: bytes,
    }),
    z.strictObject({ environment: name, reason }),
  ]),
  "drill.completed": z.strictObject({
    environment: name,
    backupLabel: name,
    succeeded: z.boolean(),
    rtoSeconds: z.number().nonnegative(),
    rpoSeconds: z.number().nonnegative().nullable(),
    rtoObjectiveMinutes: z.number().int(),
    rpoObjectiveMinutes: z.number().int(),
    amcheckClean: z.boolean(),
    problems: z.array(reason).max(20),
  }),
  "drill.failed": z.strictObject({ environment: name, reason }),
  "restore.completed": z.union([
    z.strictObject({
      environment: name,
      target: name,
      into: name,
      dataClass: name,
      port: z.number().int(),
      filestoreFiles: bytes,
      steps: z.array(name).max(10),
      durationMs: bytes,
      deidentified: deidentifiedSummary.optional(),
    }),
    z.strictObject({
      environment: name,
      target: name,
      inPlace: z.literal(true),
      safetyBackup: name,
      emergency: z.boolean(),
      filestoreFiles: bytes,
      steps: z.array(name).max(10),
      durationMs: bytes,
    }),
    // Over another declared environment: it may have no backups of its own, hence no safety backup.
    z.strictObject({
      environment: name,
      target: name,
      intoEnvironment: name,
      safetyBackup: name.nullable(),
      emergency: z.boolean(),
      filestoreFiles: bytes,
      steps: z.array(name).max(10),
      durationMs: bytes,
      deidentified: deidentifiedSummary.optional(),
    }),
  ]),
  "restore.failed": z.strictObject({ environment: name, target: name, destination: name, reason }),
  /** A restore refused by policy before it started (PHI into an environment not classed PHI, a de-identified one asked for plainly). */
  "restore.refused": z.strictObject({ environment: name, target: name, into: name, reason }),
  /** A copy of an environment's data recorded (a restored copy, or a restore into a declared environment), with the class of data it holds. */
  "copy.created": z.strictObject({
    name,
    kind: z.enum(["copy", "environment"]),
    source: name,
    restoredTo: name,
    dataClass: z.enum(["phi", "deidentified", "confidential", "internal", "public"]),
    restoreRun: bytes,
    expiresAt: z.string().nullable(),
    /** For a de-identified copy: the verification's checks, all passed. */
    verifiedChecks: z.array(name).max(20).optional(),
  }),
  /** A copy torn down: asked for (carehost copies remove), or past its expiry (the scheduler). */
  "copy.removed": z.strictObject({
    name,
    kind: z.enum(["copy", "environment"]),
    source: name,
    dataClass: z.enum(["phi", "deidentified", "confidential", "internal", "public"]),
    reason: z.enum(["requested", "expired"]),
    createdAt: z.string(),
    expiresAt: z.string().nullable(),
  }),
  "restore.emergency": z.strictObject({ environment: name, target: name, reason, source: name.optional() }),
  /**
   * A backup, restore or drill whose work completed (the backup taken, the data restored, the
   * drill measured) but whose own entry (backup.completed, restore.completed, drill.completed)
   * could not be written: this stands in for it, so the log never calls finished work failed.
   */
  "recovery.completion_unrecorded": z.strictObject({
    kind: z.enum(["backup", "restore", "drill"]),
    environment: name,
    run: z.number().int().positive(),
    reason,
  }),
  /** A change request was recorded: what it changes is on the request (carehost change show), pinned here by digest. */
  "change.requested": z.strictObject({
    changeRequest: z.number().int().positive(),
    kind: z.enum(["standard", "normal", "emergency"]),
    reason,
    ticket: name.optional(),
    specDigest: digest,
    baseRevisionId: z.number().int().positive(),
    environments: z.array(name).max(1000),
    production: z.array(name).max(1000),
    approvalsRequired: z.number().int().positive(),
    rollbackOf: z.number().int().positive().optional(),
  }),
  /** One approval; retrospective for an emergency change that already applied. */
  "change.approved": z.strictObject({
    changeRequest: z.number().int().positive(),
    approvals: z.number().int().positive(),
    approvalsRequired: z.number().int().positive(),
    retrospective: z.boolean(),
    requestedBy: name,
  }),
  /** An approval, denial, apply, cancel or rollback carehost refused, with why. */
  "change.refused": z.strictObject({
    changeRequest: z.number().int().positive(),
    action: z.enum(["approve", "deny", "apply", "cancel", "rollback"]),
    reason,
  }),
  "change.denied": z.strictObject({ changeRequest: z.number().int().positive(), reason }),
  "change.cancelled": z.strictObject({ changeRequest: z.number().int().positive(), reason }),
  /** Approved, outside its maintenance window: it applies when the window opens. */
  "change.scheduled": z.strictObject({ changeRequest: z.number().int().positive(), scheduledFor: z.string() }),
  "change.applied": z.strictObject({
    changeRequest: z.number().int().positive(),
    kind: z.enum(["standard", "normal", "emergency"]),
    revisionId: z.number().int().positive(),
  }),
  "change.failed": z.strictObject({ changeRequest: z.number().int().positive(), reason }),
  /** An emergency change applied without approval: an alert until it is approved retrospectively. */
  "change.emergency_applied": z.strictObject({
    changeRequest: z.number().int().positive(),
    reason,
    reviewBy: z.string(),
  }),
  /** Enough people other than the requester approved an emergency change after it applied. */
  "change.emergency_reviewed": z.strictObject({ changeRequest: z.number().int().positive(), late: z.boolean() }),
  /** An emergency change went unreviewed past its deadline. */
  "change.emergency_escalated": z.strictObject({
    changeRequest: z.number().int().positive(),
    appliedAt: z.string(),
    reviewBy: z.string(),
    approvals: z.number().int().nonnegative(),
    approvalsRequired: z.number().int().positive(),
  }),
  /** The backup taken of a production environment before a change to it applied. */
  "change.pre_change_backup": z.strictObject({
    changeRequest: z.number().int().positive(),
    environment: name,
    status: z.enum(["succeeded", "failed", "skipped"]),
    label: name.optional(),
    detail: reason,
  }),
  /** An alert's condition held for its rule's for-duration: it fires (and is routed unless silenced). */
  "alert.firing": z.strictObject({
    alert: z.number().int().positive(),
    rule: name,
    organization: z.string().max(63),
    environment: z.string().max(63),
    instance: z.string().max(200),
    severity: z.enum(["critical", "warning", "info"]),
    value: z.number().nullable(),
    silencedBy: z.number().int().positive().optional(),
  }),
  /** A firing alert's condition stayed clear for the rule's resolveAfter. */
  "alert.resolved": z.strictObject({
    alert: z.number().int().positive(),
    rule: name,
    organization: z.string().max(63),
    environment: z.string().max(63),
    instance: z.string().max(200),
    firedAt: z.string(),
  }),
  "alert.acknowledged": z.strictObject({
    alert: z.number().int().positive(),
    rule: name,
    organization: z.string().max(63),
  }),
  /** A critical alert nobody acknowledged in time was sent to the organization's escalation route. */
  "alert.escalated": z.strictObject({
    alert: z.number().int().positive(),
    rule: name,
    organization: z.string().max(63),
    firedAt: z.string(),
    after: name,
  }),
  "alert.silenced": z.strictObject({
    silence: z.number().int().positive(),
    rule: name,
    organization: z.string().max(63),
    environment: z.string().max(63).nullable(),
    owner: name,
    reason,
    expiresAt: z.string(),
  }),
  "alert.silence_ended": z.strictObject({
    silence: z.number().int().positive(),
    rule: name,
    organization: z.string().max(63),
  }),
  /** A notification carehost gave up on after its attempts: recorded, never silently dropped. */
  "alert.delivery_failed": z.strictObject({
    delivery: z.number().int().positive(),
    alert: z.number().int().positive(),
    event: z.enum(["firing", "resolved", "escalated"]),
    route: z.enum(["webhook", "alertmanager", "email"]),
    destination: z.string().max(2000),
    attempts: z.number().int().positive(),
    reason,
  }),
  /** Written before a render is committed and pushed: a crash before its conclusion leaves this. */
  "gitops.commit_started": z.strictObject({
    organization: name,
    target: name,
    specDigest: digest,
    environmentCount: z.number().int().nonnegative(),
    /** The spec's gitops.repository (never holds credentials): where start-up looks for the commit when this stays unconcluded. */
    remote: z.string().min(1).max(2000).optional(),
  }),
  /**
   * Concludes gitops.commit_started; commit null: the repository already held this render.
   * startedSeq: the seq of the intent it concludes (older conclusions lack it and pair with the
   * intent of their request); reconciled: written at start-up from what the repository showed,
   * the apply having stopped before its conclusion.
   */
  "gitops.committed": z.strictObject({
    organization: name,
    target: name,
    commit: name.nullable(),
    changedPathCount: z.number().int().nonnegative(),
    specDigest: digest,
    startedSeq: z.number().int().nonnegative().optional(),
    reconciled: z.literal(true).optional(),
  }),
  /** Concludes gitops.commit_started: nothing was committed, or (a failed push) the reason names the local commit; startedSeq and reconciled as for gitops.committed. */
  "gitops.commit_failed": z.strictObject({
    organization: name,
    target: name,
    specDigest: digest,
    reason,
    startedSeq: z.number().int().nonnegative().optional(),
    reconciled: z.literal(true).optional(),
  }),
} as const;

export type TAuditPayloads = { [K in keyof typeof auditPayloadSchemas]: z.infer<(typeof auditPayloadSchemas)[K]> };
export type AuditEventType = keyof TAuditPayloads;
export const auditEventTypes = Object.keys(auditPayloadSchemas) as AuditEventType[];

export type TAuditOutcome = "success" | "denied" | "failure";

/** What a service hands to `append`; actor, source address, request id and time come from the log. */
export type TAuditEvent = {
  [K in AuditEventType]: {
    readonly type: K;
    readonly outcome: TAuditOutcome;
    /** What the action was about, e.g. "environment:northwind/prod"; null when nothing in particular. */
    readonly target: string | null;
    readonly payload: TAuditPayloads[K];
  };
}[AuditEventType];

/**
 * An event a change records under a context of its own instead of the change's: a sweep that
 * summarises several source addresses in one transaction files each summary under its source.
 */
export type TAuditEventUnder = { readonly ctx: TRequestContext; readonly event: TAuditEvent };

/** The context an event of a change is recorded under: its own, or else the change's. */
export const auditEventContext = (
  changeCtx: TRequestContext,
  item: TAuditEvent | TAuditEventUnder,
): { ctx: TRequestContext; event: TAuditEvent } => ("event" in item ? item : { ctx: changeCtx, event: item });

/** The actor as recorded: the request's actor without anything that is not needed to name it. */
export type TAuditActor =
  | {
      readonly kind: "user";
      readonly userId: string;
      readonly username: string;
      readonly role: string;
      readonly tokenId?: string;
    }
  | { readonly kind: "system"; readonly name: string }
  | { readonly kind: "anonymous" };

/** The hashed record. Its canonical JSON (sorted keys, no whitespace) is the Merkle leaf. */
export type TAuditEntry = {
  readonly seq: number;
  readonly type: AuditEventType;
  readonly outcome: TAuditOutcome;
  readonly actor: TAuditActor;
  readonly sourceAddress: string;
  readonly requestId: string;
  readonly target: string | null;
  /** ISO 8601, UTC, milliseconds. */
  readonly time: string;
  readonly payload: Record<string, unknown>;
};

export type TCheckpoint = {
  readonly treeSize: number;
  /** Lowercase hex SHA-256. */
  readonly rootHash: string;
  /** ISO 8601, UTC, milliseconds: exactly the text that was signed. */
  readonly time: string;
  readonly keyId: string;
  /** Base64 Ed25519 signature over checkpointSignedText(). */
  readonly signature: string;
};

export type TAuditProblemKind =
  "altered" | "missing" | "reordered" | "bad-signature" | "inconsistent-checkpoint" | "unknown-key";

export type TAuditProblem = {
  readonly kind: TAuditProblemKind;
  readonly seq?: number;
  /** For a rewrite only a signed root reveals: the entries it may be in, [first, last]. */
  readonly seqRange?: readonly [number, number];
  readonly checkpointTreeSize?: number;
  readonly message: string;
};

export type TAuditVerifyReport = {
  readonly ok: boolean;
  readonly treeSize: number;
  readonly entriesChecked: number;
  readonly checkpointsVerified: number;
  readonly problems: readonly TAuditProblem[];
  readonly firstBadSeq?: number;
};

export type TAuditPublicKey = { readonly keyId: string; readonly publicKeyPem: string };

export type TAuditBundle = {
  readonly format: "carehost-audit-bundle/v1";
  readonly range: { readonly from: string | null; readonly to: string | null };
  readonly publicKeys: readonly TAuditPublicKey[];
  readonly checkpoint: TCheckpoint;
  readonly previousCheckpoint?: TCheckpoint;
  /** Proof that previousCheckpoint's tree is a prefix of checkpoint's (RFC 9162 §2.1.4), hex. */
  readonly consistencyProof?: readonly string[];
  readonly entries: readonly {
    readonly seq: number;
    readonly entry: string;
    readonly inclusionProof: readonly string[];
  }[];
};

export type TAuditListQuery = {
  readonly from?: Date;
  readonly to?: Date;
  readonly type?: AuditEventType;
  readonly target?: string;
  readonly afterSeq?: number;
  readonly limit: number;
};
