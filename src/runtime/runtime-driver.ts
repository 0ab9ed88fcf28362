// The runtime behind one interface: what makes a recorded spec real, reads it back, and backs up,
// restores and drills it. carehost picks one implementation at start from RUNTIME_KINDS
// (CAREHOST_RUNTIME) and every service speaks to it through this type, never through `if` on
// which it is:
//   local   the data tier on this host, from its PostgreSQL, Redis, pgBackRest and restic (runtime/local/)
//   gitops  Kubernetes manifests committed to the organization's GitOps repository (runtime/gitops/)
//   none    nothing runs: carehost records, plans and checks specs only (runtime/none/)
// test/runtime-conformance.test.ts runs one suite against every implementation.
import type { TRecoveryDriver } from "../backup/recovery-driver.js";
import type { TArtifactTarget } from "../policy/policy-rendered.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import type {
  TFinalBackup,
  TOrganizationObservation,
  TOrganizationProbe,
  TRuntimeAction,
  TRuntimeChange,
} from "./runtime-types.js";

export const RUNTIME_KINDS = ["local", "gitops", "none"] as const;
export type TRuntimeKind = (typeof RUNTIME_KINDS)[number];

/**
 * Where the data tier of a recorded organization runs. Only a runtime whose data tier is on this
 * host is backed up, restored and drilled by carehost; every other rejects those methods with
 * `why`, and the scheduler queues nothing for it (CloudNativePG takes Kubernetes' backups itself).
 */
export type TDataTier = { readonly onThisHost: true } | { readonly onThisHost: false; readonly why: string };

/**
 * Failure rules, for every implementation:
 * - A method given an organization names environments by their names in it; one the organization
 *   does not hold is refused with NotFoundError before anything is touched.
 * - reconcile is idempotent: a second call with the same spec does nothing and returns no action.
 *   It rejects at the first thing it could not make real; what it made before stays made and the
 *   next call goes on from there (each call starts by repairing what an interrupted one left).
 * - observe only reads. What it cannot read is reported in the observation (a state, a drift),
 *   never thrown: status and posture show it.
 * - planChange is pure over the two specs (and what the runtime renders): it touches nothing.
 * - destroyEnvironment removes one environment only once its final backup exists and reads back;
 *   a backup that fails rejects with nothing removed. A runtime that cannot take one refuses
 *   (ValidationError) rather than remove data unbacked.
 * - The recovery methods (TRecoveryDriver) follow their own rules there; a runtime whose data tier
 *   is not on this host rejects each with a ValidationError carrying `dataTier.why`.
 * - close releases what the driver holds open (connections); it stops no environment.
 */
export type TRuntimeDriver = TRecoveryDriver & {
  readonly kind: TRuntimeKind;
  readonly dataTier: TDataTier;
  /** The target whose rendered files the artifact controls check before a spec is recorded. */
  readonly deliveryTarget: TArtifactTarget;

  /** Refuses a spec this runtime could never make real (paths outside its directories), before it is recorded. */
  readonly assertPathsConfined: (organization: TOrganizationSpec) => Promise<void>;
  /** Makes the spec real; returns what it did (nothing when everything already matched). */
  readonly reconcile: (organization: TOrganizationSpec) => Promise<TRuntimeAction[]>;
  /** Reads the running systems back: each environment's state and drift, and the controls' subjects. */
  readonly observe: (organization: TOrganizationSpec) => Promise<TOrganizationObservation>;
  /** What applying `proposed` over `applied` would change: rendered artifacts' diffs and what restarts. */
  readonly planChange: (applied: TOrganizationSpec, proposed: TOrganizationSpec) => Promise<TRuntimeChange>;
  /**
   * The counters and sizes monitoring reads on every probe round: cheap, read-only. A runtime that
   * runs nothing on this host reports no cluster, Redis or certificate (nothing here to watch).
   */
  readonly probe: (organization: TOrganizationSpec) => Promise<TOrganizationProbe>;
  /** Starts what stopped (a crash, a reboot); returns what it restarted. */
  readonly restartStopped: (organization: TOrganizationSpec) => Promise<TRuntimeAction[]>;
  /** Writes the heartbeat a restore drill measures the achieved RPO by (nothing where no drill runs). */
  readonly heartbeat: (organization: TOrganizationSpec) => Promise<void>;
  /** Removes one environment after its final backup, written under `backupDirectory`. */
  readonly destroyEnvironment: (
    organization: TOrganizationSpec,
    environment: string,
    backupDirectory: string,
  ) => Promise<TFinalBackup>;
  /** Stops every process of the organization; data stays (tests, a host shutdown). */
  readonly stopOrganization: (organization: TOrganizationSpec) => Promise<void>;
  readonly close: () => Promise<void>;
};
