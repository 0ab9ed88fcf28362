// What the recovery service needs of a runtime to back up, verify, expire, restore and drill an
// environment, and the types both sides speak. The local runtime (src/runtime/local/) implements
// it from the host's pgBackRest and restic; a runtime whose data tier is not on this host (gitops,
// none) rejects every method with its reason, and the service refuses every run before recording it. The service records, audits and serializes runs; a driver does the
// work and says, by resolving or rejecting, what state it left behind (the rules per method).
import type { TBackupInfo } from "./pgbackrest-command.js";
import type { TRepositoryType } from "./pgbackrest-config.js";
import type { TFilestoreBackup } from "./restic-command.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import type { TExtraTable } from "../copies/copies-deidentify.js";
import type { TOdooVersion } from "../copies/copies-neutralize.js";
import type { TVerification } from "../copies/copies-verify.js";

export type TBackupType = "full" | "diff" | "incr";

export type TRestoreTarget =
  | { readonly kind: "latest" }
  | { readonly kind: "time"; readonly time: Date }
  | { readonly kind: "lsn"; readonly lsn: string };

/**
 * A PHI-safe copy (src/copies): the restored data is neutralized and de-identified in a scratch copy
 * and verified there before it is swapped in or announced. `extraTables` are the source
 * environment's custom tables holding PHI (its spec's deidentify.tables).
 */
export type TDeidentifyRequest = { readonly odooVersion: TOdooVersion; readonly extraTables: readonly TExtraTable[] };

/** Where a restore goes: a new copy beside the source, over the environment itself, or over another declared environment. */
export type TRestoreDestination =
  | { readonly kind: "copy"; readonly name: string; readonly deidentify?: TDeidentifyRequest }
  | { readonly kind: "in-place" }
  | { readonly kind: "environment"; readonly name: string; readonly deidentify?: TDeidentifyRequest };
/** Every restore runs these steps in this order, wherever it goes. */
export const RESTORE_STEPS = ["secrets", "postgresql", "filestore", "redis", "application", "ingress"] as const;
/**
 * A de-identified restore's steps: the data restored into a scratch copy (postgresql, filestore),
 * transformed and verified there, and only then swapped in (or, for a new copy, announced).
 */
export const DEIDENTIFIED_RESTORE_STEPS = [
  "secrets",
  "postgresql",
  "filestore",
  "deidentify",
  "verify",
  "swap",
  "redis",
  "application",
  "ingress",
] as const;
export type TRestoreStep = {
  readonly step: (typeof DEIDENTIFIED_RESTORE_STEPS)[number];
  readonly detail: string;
  readonly durationMs: number;
};

/** A declared repository a backup did not write to, with why (a key never stored, a limitation of the runtime). */
export type TSkippedRepository = { readonly name: string; readonly type: TRepositoryType; readonly reason: string };

export type TBackupOutcome = TBackupInfo & {
  readonly stanza: string;
  readonly durationMs: number;
  /** Pairs the database backup (a pgBackRest annotation) with the filestore snapshots (a restic tag). */
  readonly runId: string;
  /** The filestores of every backed-up environment in the cluster, summed. */
  readonly filestore: { readonly files: number; readonly bytes: number; readonly bytesAdded: number };
  readonly skippedRepositories: readonly TSkippedRepository[];
};

export type TVerifyOutcome = { readonly stanza: string; readonly ok: boolean; readonly output: string };

export type TExpireOutcome = {
  readonly stanza: string;
  /** Labels of the backups removed, in any repository. */
  readonly expired: string[];
  readonly reclaimedBytes: number;
  readonly filestoreSnapshots: number;
  readonly durationMs: number;
};

export type TFilestoreSnapshotOutcome = TFilestoreBackup & { readonly durationMs: number };

export type TRestoreOutcome = {
  /** The restored cluster's directory: the new copy's, or the cluster restored into. */
  readonly directory: string;
  readonly port: number;
  readonly database: string;
  readonly filestoreFiles: number;
  readonly steps: readonly TRestoreStep[];
  readonly durationMs: number;
  /** Present for a de-identified restore, whose verification passed (a failed one rejects). */
  readonly deidentified?: TDeidentified;
};

/** What a de-identified restore did and found; names tables and columns, never a value. */
export type TDeidentified = {
  readonly neutralized: readonly string[];
  readonly tables: readonly { readonly table: string; readonly rows: number }[];
  readonly attachmentsReplaced: number;
  readonly filesRemoved: number;
  readonly verification: TVerification;
};

export type TTableCount = {
  readonly database: string;
  readonly table: string;
  readonly source: number;
  readonly restored: number;
};

export type TDrillResult = {
  readonly backupLabel: string;
  readonly startedAt: Date;
  /** Seconds from the start of the restore until the copy answered a query on every database. */
  readonly rtoSeconds: number;
  /** Age of the newest recoverable heartbeat at the start of the drill. */
  readonly rpoSeconds: number | null;
  readonly amcheckPassed: boolean;
  readonly amcheckOutput: string;
  readonly databasesMissing: readonly string[];
  readonly tables: readonly TTableCount[];
};

export type TDrillFilestore = {
  readonly environment: string;
  readonly files: number;
  /** Files the snapshot holds: a verified restore produces exactly these. */
  readonly expectedFiles: number;
  /** Every restored file re-hashed against the snapshot (restic restore --verify). */
  readonly verified: boolean;
  readonly snapshotAgeSeconds: number | null;
};

export type TDrillOutcome = TDrillResult & { readonly stanza: string; readonly filestores: readonly TDrillFilestore[] };

/** A part of a drill (PostgreSQL's, the filestore's), heard as it completes. */
export type TDrillStep = { readonly step: string; readonly detail: string; readonly durationMs: number };

/**
 * Every method names the environment by its name in `organization` and refuses, before it touches
 * anything, one the organization does not hold (NotFoundError), one with backups disabled or no
 * repository the runtime writes to (ValidationError), and one not provisioned yet (NotFoundError).
 * Work on one cluster never overlaps other work on it that would conflict.
 */
export type TRecoveryDriver = {
  /**
   * A database backup of the environment's cluster (a shared cluster is backed up as a whole) and a
   * filestore snapshot of every backed-up environment in it, under one run id.
   * Resolves only once the database backup and every filestore snapshot completed; a declared
   * repository it did not write to is named in skippedRepositories, never silently dropped.
   * Rejects when either part failed, and only after both have settled: nothing of the backup still
   * runs once it rejects, and the caller counts no recovery point from it.
   */
  readonly backup: (organization: TOrganizationSpec, environment: string, type: TBackupType) => Promise<TBackupOutcome>;

  /**
   * Reads back every repository of the environment's cluster (pgBackRest's and the filestores'
   * whole data). Damage, or a check that could not run, resolves with ok false and the tools'
   * output: a finding, not an error. Rejects only with the refusals above; changes no backup.
   */
  readonly verify: (organization: TOrganizationSpec, environment: string) => Promise<TVerifyOutcome>;

  /**
   * Removes what the retention tiers of the cluster's environments no longer keep: full backups
   * with what depends on them, and filestore snapshots. Never removes what a tier keeps. Rejects at
   * the first removal that fails: what it removed before stays removed, and a later call removes
   * the rest (the service retries after the next backup).
   */
  readonly expire: (organization: TOrganizationSpec, environment: string) => Promise<TExpireOutcome>;

  /**
   * A filestore snapshot between database backups. Resolves undefined, having taken nothing, when no
   * file was added or removed since the newest snapshot. Rejects at the first repository whose
   * snapshot fails; those before it keep theirs.
   */
  readonly snapshotFilestore: (
    organization: TOrganizationSpec,
    environment: string,
  ) => Promise<TFilestoreSnapshotOutcome | undefined>;

  /**
   * Restores the environment's data as of `target` to `destination`, step by step in RESTORE_STEPS
   * order, `onStep` hearing each the moment it completes. Refused before anything is touched, besides
   * the refusals above: a copy name that is no name or is taken, a target the archive does not
   * reach, an environment restored into that is not running or still holds an interrupted restore.
   * Into a copy, a rejection leaves nothing behind (the copy is stopped and removed). Over an
   * environment (in place, or another declared one) the caller has taken its safety backup and
   * passed the change gate first. A physical restore in place (a dedicated cluster) that rejects or
   * is killed midway stays marked, and the next reconcile finishes it before the cluster serves
   * again; one database by database (a shared environment in place, another declared one) that
   * rejects removes its scratch copy and says whether the database was already replaced, and one
   * killed midway is set right by the next reconcile.
   * With `deidentify` (a copy, or another declared environment), the data is transformed and
   * verified in the scratch copy before it is swapped in or the copy returned: a failed
   * verification rejects (PolicyViolation, naming table.column, never a value) with the target
   * as it was and the scratch copy removed.
   */
  readonly restore: (
    organization: TOrganizationSpec,
    environment: string,
    target: TRestoreTarget,
    destination: TRestoreDestination,
    onStep?: (step: TRestoreStep) => void,
  ) => Promise<TRestoreOutcome>;

  /**
   * Stops and removes a restored copy (a `copy` destination) of the organization. Resolves with
   * whether one was there; rejects only when it could not be removed (it stays as it was, or stopped).
   */
  readonly removeCopy: (organization: TOrganizationSpec, name: string) => Promise<{ removed: boolean }>;

  /**
   * Restores the latest backup and filestore into a scratch copy, checks and measures it, and
   * removes the copy whether it resolves or rejects (one a killed carehost left, the next reconcile
   * removes); the environment itself is only read. What the
   * drill finds (damage, a missing database, an objective missed) is its result; it rejects only
   * when it could not run to its end (no backup yet, the restore failed).
   */
  readonly drill: (
    organization: TOrganizationSpec,
    environment: string,
    onStep?: (step: TDrillStep) => void,
  ) => Promise<TDrillOutcome>;
};
