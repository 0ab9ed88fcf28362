// The one shape every control has (STYLE.md item 7, after pulumi-policy's policy.ts), and the
// subjects controls read: the parsed spec, the artifacts rendered from it, and the live state read
// back from the running systems. The runtime fills the artifact and live subjects; controls never
// do I/O, so the whole catalog is pure and can run in `plan` as well as in `posture`.
import type { TEnvironmentSpec, TOrganizationSpec } from "../spec/spec-schema.js";
import type { THipaaCitation } from "./policy-citations.js";

export type TSeverity = "critical" | "high" | "medium" | "low";
export type TEnforcement = "mandatory" | "advisory";

/** What a control found wrong; `path` points into the subject, `actual` is the offending value. */
export type TFailureDetail = { readonly path?: string; readonly actual?: unknown };
export type TFailure = { readonly message: string } & TFailureDetail;
export type TControlReport = {
  fail(message: string, detail?: TFailureDetail): void;
  /** The subject shows the control cannot apply (e.g. a runtime that serves no ingress); recorded with the reason. */
  notApplicable(reason: string): void;
  /**
   * What the control asks for is declared but carehost does not enforce it yet (no second factor,
   * no standby on this runtime): a gap with its reason, counted apart and never as a pass.
   */
  notEnforced(reason: string): void;
};

/** Whether carehost enforces something, and why not when it does not. */
export type TEnforced = { readonly enforced: true } | { readonly enforced: false; readonly reason: string };

/**
 * What carehost itself enforces at its own sign-in and on its own sessions, as the identity service
 * applies it (identity-rules.ts). Absent where no server is asked (an offline `validate`): then
 * only the declaration can be judged, and a control that needs the enforcement is not enforced.
 */
export type TPlatformEnforcement = {
  /** Minutes after which carehost ends a session without a request. */
  readonly sessionIdleMinutes: number;
  /** A second factor at every sign-in. */
  readonly mfa: TEnforced;
  /** Sign-in through the organization's OIDC provider. */
  readonly oidc: TEnforced;
  /** Whether carehost refuses local users (creating them, and signing in but for the audited break-glass admin). */
  readonly localUsers: "refused" | "allowed";
};

export type TSpecSubject = {
  readonly organization: TOrganizationSpec;
  readonly environment: TEnvironmentSpec;
  readonly platform?: TPlatformEnforcement;
};

export type TIngressArtifact = {
  /** Path prefixes the ingress refuses; a trailing "*" is accepted and means the same prefix. */
  readonly blockedPaths: readonly string[];
  readonly tls: boolean;
  readonly hsts: boolean;
};

/** What one repository receives from a target's rendered files: written with which client-side cipher, or why not. */
export type TBackupWrite =
  | { readonly written: true; readonly cipher: string; readonly unverified?: string }
  | { readonly written: false; readonly reason: string };

/** The backups a target's files configure, per repository of the environment (pgBackRest's order). */
export type TBackupArtifact = {
  readonly repositories: readonly {
    readonly name: string;
    readonly database: TBackupWrite;
    readonly filestore: TBackupWrite;
  }[];
};

export type TRenderedArtifacts = {
  /** Parsed key → value of odoo.conf [options]. */
  readonly odooConf?: Readonly<Record<string, string>>;
  /** pg_hba.conf text. */
  readonly pgHba?: string;
  readonly postgresqlConf?: Readonly<Record<string, string>>;
  readonly redisConf?: Readonly<Record<string, string>>;
  /** null: the target serves no ingress at all (the local runtime binds Odoo to loopback only). */
  readonly ingress?: TIngressArtifact | null;
  /** The database's and the filestore's backups, as the target's files configure them. */
  readonly backup?: TBackupArtifact;
};

export type TArtifactSubject = { readonly environment: TEnvironmentSpec; readonly artifacts: TRenderedArtifacts };

export type TLivePostgresState = {
  /** Attributes of the role Odoo connects as. */
  readonly roleSuperuser: boolean;
  readonly roleCreateRole: boolean;
  readonly roleCreateDb: boolean;
  /** Whether PUBLIC still holds CONNECT on the Odoo database. */
  readonly publicConnect: boolean;
  /** SHOW ssl. */
  readonly ssl: boolean;
  /** SHOW password_encryption. */
  readonly passwordEncryption: string;
  /** Distinct auth methods of pg_hba_file_rules. */
  readonly hbaMethods: readonly string[];
  /** SHOW shared_preload_libraries, split. */
  readonly sharedPreloadLibraries: readonly string[];
  /** SHOW data_checksums. */
  readonly dataChecksums: boolean;
  /** Standbys pg_stat_replication reports as synchronous (sync or quorum). */
  readonly synchronousStandbys: number;
};

export type TLiveRedisState = {
  /** CONFIG GET bind, split; a leading "-" (optional address) is allowed. */
  readonly bindAddresses: readonly string[];
  readonly protectedMode: boolean;
  /** Whether the ACL user "default" is on. */
  readonly defaultUserEnabled: boolean;
  /** Commands renamed away or disabled (rename-command X "" or ACL -x for every user). */
  readonly renamedOrDisabledCommands: readonly string[];
  /** CONFIG GET tls-port; undefined or 0 when TLS is off. */
  readonly tlsPort?: number;
};

/** A backup repository as the runtime resolved it for the environment's cluster. */
export type TLiveRepository = { readonly name: string; readonly type: "posix" | "azure" | "s3" };

/** Where each backup of the environment actually goes: what the runtime configured pgBackRest and restic with. */
export type TLiveBackupState = {
  readonly written: readonly TLiveRepository[];
  /** Declared repositories the runtime does not write to, with why (a key never stored, a limitation). */
  readonly skipped: readonly (TLiveRepository & { readonly reason: string })[];
};

/**
 * A copy of data carehost recorded (the copies table): a restored copy made from the environment,
 * or data a restore put into it. `dataClass` "deidentified" is recorded only once the copy's
 * verification passed; `pastExpiry` is judged by the reader at the posture's instant.
 */
export type TLiveCopy = {
  readonly name: string;
  readonly kind: "copy" | "environment";
  readonly sourceEnvironment: string;
  readonly sourceDataClass: "phi" | "confidential" | "internal" | "public";
  readonly dataClass: "phi" | "deidentified" | "confidential" | "internal" | "public";
  readonly verified: boolean;
  readonly expiresAt: string | null;
  readonly pastExpiry: boolean;
};

export type TLiveState = {
  /** The live copies of or into the environment carehost recorded; absent when the record was not read. */
  readonly copies?: readonly TLiveCopy[];
  readonly postgres?: TLivePostgresState;
  readonly redis?: TLiveRedisState;
  /** Absent for an environment without backups, or when the runtime could not resolve them. */
  readonly backup?: TLiveBackupState;
  /**
   * What the runtime that produced this state cannot provide at all, with the reason: a control
   * that needs it is "not enforced" there rather than failed for a setting nobody can change.
   */
  readonly cannotProvide?: { readonly synchronousStandby?: string };
};
export type TLiveSubject = { readonly environment: TEnvironmentSpec; readonly live: TLiveState };

/** One rendered Kubernetes object, as parsed from its manifest. */
export type TManifestObject = {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string };
} & Readonly<Record<string, unknown>>;
/** Every object rendered for one environment (the Kubernetes target). */
export type TManifestSubject = { readonly environment: TEnvironmentSpec; readonly objects: readonly TManifestObject[] };

export type TSubjects = {
  spec: TSpecSubject;
  artifact: TArtifactSubject;
  live: TLiveSubject;
  manifest: TManifestSubject;
};
export type TSubjectKind = keyof TSubjects;

export type TControl<TKind extends TSubjectKind = TSubjectKind> = {
  /** CH-<AREA>-NNN, stable forever: exceptions and evidence refer to it. */
  readonly id: string;
  readonly title: string;
  readonly citations: readonly THipaaCitation[];
  readonly severity: TSeverity;
  readonly enforcement: TEnforcement;
  readonly subject: TKind;
  /** False makes the result "not-applicable" (e.g. a PHI control on an internal environment). */
  appliesTo(environment: TEnvironmentSpec): boolean;
  /** Calls report.fail once per problem; a message says what is wrong, the offending value and what is required. */
  check(subject: TSubjects[TKind], report: TControlReport): void;
};

export type TSpecControl = TControl<"spec">;
export type TArtifactControl = TControl<"artifact">;
export type TLiveControl = TControl<"live">;
export type TManifestControl = TControl<"manifest">;
/** A control of any subject, as the engine and the catalog hold them. */
export type TAnyControl = TSpecControl | TArtifactControl | TLiveControl | TManifestControl;

export const CONTROL_ID_PATTERN = /^CH-[A-Z]{2,5}-\d{3}$/;
