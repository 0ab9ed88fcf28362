// What a runtime reports: the actions a reconcile took and the drift an observation found.

/** One thing a reconcile did, e.g. { target: "postgres/shared", action: "started (port 40123)" }. */
export type TRuntimeAction = { readonly target: string; readonly action: string };

/** A difference between what is declared and what runs; values never include a secret. */
export type TRuntimeDrift = { readonly target: string; readonly field: string; readonly expected: string; readonly actual: string };
