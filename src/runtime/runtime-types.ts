// What a runtime reports, whichever it is: the actions a reconcile took, what an observation read
// back (each environment's state, its drift, the controls' subjects) and what a change would do.
import type { TArtifactSubject, TLiveBackupState, TLiveSubject } from "../policy/policy-types.js";
import type { TEnvironmentSpec } from "../spec/spec-schema.js";
import type { TArchiverReading, TWalArchiving } from "../backup/wal-archiving.js";

/** One thing a reconcile did, e.g. { target: "postgres/shared", action: "started (port 40123)" }. */
export type TRuntimeAction = { readonly target: string; readonly action: string };

/** A difference between what is declared and what runs; values never include a secret. */
export type TRuntimeDrift = {
  readonly target: string;
  readonly field: string;
  readonly expected: string;
  readonly actual: string;
};

/** A file the runtime renders, without its secrets (hashes replaced by a marker), as a plan compares it. */
export type TRenderedRuntimeFile = {
  /** What the file configures: postgres/<instance>, redis/<instance> or environment/<name>. */
  readonly target: string;
  readonly component: "postgresql" | "pgbackrest" | "redis" | "odoo";
  /** The environments served by what the file configures (a shared cluster serves several). */
  readonly environments: readonly string[];
  readonly file: string;
  readonly content: string;
};

/** The role an environment's Odoo connects as, with what reconcile sets on it. */
export type TRenderedRuntimeRole = {
  readonly target: string;
  readonly environment: string;
  readonly role: string;
  readonly connectionLimit: number;
};

/** Everything the runtime would write for a spec, as a plan compares two of them. */
export type TRuntimeRender = {
  readonly files: readonly TRenderedRuntimeFile[];
  readonly roles: readonly TRenderedRuntimeRole[];
};

/** One rendered file a change adds, changes or removes, with its unified diff (secrets never in it). */
export type TArtifactChange = {
  readonly target: string;
  readonly environments: readonly string[];
  readonly file: string;
  readonly change: "added" | "changed" | "removed";
  readonly diff: string;
};

/** What reconcile does to make a changed file or role real, e.g. restart prod's PostgreSQL for max_connections. */
export type TRuntimeEffect = {
  readonly target: string;
  readonly environments: readonly string[];
  readonly component: TRenderedRuntimeFile["component"];
  readonly action: "restart" | "reload" | "stanza-create" | "acl-load" | "rewrite" | "alter-role";
  /** The settings, files or attributes that cause it. */
  readonly reasons: readonly string[];
  /** The same, as the CLI prints it: "restarts prod's PostgreSQL: max_connections". */
  readonly line: string;
};

/** The change between the applied revision's render and the file's. */
export type TRuntimeChange = {
  readonly artifacts: readonly TArtifactChange[];
  readonly effects: readonly TRuntimeEffect[];
};

export type TEnvironmentRuntimeStatus = {
  readonly environment: string;
  readonly hosting: TEnvironmentSpec["hosting"];
  readonly postgres: {
    readonly instance: string;
    readonly port: number | null;
    readonly state: string;
    readonly database: string;
    readonly role: string;
  };
  readonly redis: {
    readonly instance: string;
    readonly port: number | null;
    readonly state: string;
    readonly user: string;
  } | null;
  readonly app: { readonly state: "not-deployed"; readonly detail: string };
  readonly drift: readonly TRuntimeDrift[];
  /** WAL archiving of the environment's cluster, with the archive lag at the time of reading; null without backups or while the cluster is not running. */
  readonly archiving: TWalArchiving | null;
  /** The environment's declared repositories its backups are written to, and those skipped with why; null without backups or before the cluster exists. */
  readonly backupRepositories: TLiveBackupState | null;
};

export type TOrganizationObservation = {
  readonly organization: string;
  readonly environments: readonly TEnvironmentRuntimeStatus[];
  readonly subjects: { readonly artifact: readonly TArtifactSubject[]; readonly live: readonly TLiveSubject[] };
};

/** The final backup of an environment taken before it is removed. */
export type TFinalBackup = {
  /** The organization's restic repository of final dumps ("" when no database was provisioned). */
  readonly path: string;
  /** The restic snapshot holding the dump, as /<environment>.dump. */
  readonly snapshotId: string;
  /** Size and SHA-256 of the dump itself (pg_dump's custom format), before encryption. */
  readonly bytes: number;
  readonly sha256: string;
};

// What a probe round reads from an organization's data tier (monitoring; runtime-driver's probe).

/** What one database of a running cluster reports. */
export type TDatabaseProbe = {
  readonly database: string;
  /** Backends connected to this database now. */
  readonly connections: number;
  /** Age of the oldest open transaction on this database; 0 when none is open. */
  readonly longestTransactionSeconds: number;
  readonly sizeBytes: number;
  /** Deadlocks detected in this database since the statistics were last reset. */
  readonly deadlocks: number;
};

export type TClusterProbe = {
  readonly instance: string;
  readonly port: number | null;
  readonly up: boolean;
  readonly maxConnections: number | null;
  readonly databases: readonly TDatabaseProbe[];
  /** pg_stat_archiver of a running, backed-up cluster; null otherwise. */
  readonly archiver: TArchiverReading | null;
  /** Why the cluster could not be read, when it is not up. */
  readonly problem: string | null;
};

export type TRedisProbe = {
  readonly instance: string;
  readonly port: number | null;
  readonly up: boolean;
  readonly usedMemoryBytes: number | null;
  /** maxmemory; 0 means unlimited, as Redis says it. */
  readonly maxMemoryBytes: number | null;
  readonly evictedKeys: number | null;
  readonly connectedClients: number | null;
  readonly problem: string | null;
};

/** A certificate carehost issued (the organization CA, or a PostgreSQL's or Redis's server certificate) and when it ends. */
export type TCertificateProbe = {
  readonly component: "ca" | "postgres" | "redis";
  /** The cluster or Redis instance it serves ("ca" for the organization's CA). */
  readonly instance: string;
  readonly path: string;
  readonly notAfter: Date;
};

export type TOrganizationProbe = {
  readonly organization: string;
  readonly clusters: readonly TClusterProbe[];
  readonly redis: readonly TRedisProbe[];
  readonly certificates: readonly TCertificateProbe[];
};
