// What a runtime reports: the actions a reconcile took and the drift an observation found.

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
