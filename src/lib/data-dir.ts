// carehost's own entries in its data dir (CAREHOST_HOME), in one list because two checks read it:
// an organization may not take the name of one (a posix repository at `path: .` is
// <data dir>/<organization>, and would land in carehost's database, dumps or keys), and no
// directory a spec names may lie in one (src/runtime/local/local-confinement.ts).

/** Each entry and what carehost keeps there, for the messages that refuse it. */
export const DATA_DIR_ENTRIES: Readonly<Record<string, string>> = {
  state: "the embedded control-plane database (PGlite)",
  runtime: "every organization's PostgreSQL clusters and Redis instances",
  "final-backups": "the final dumps of removed environments",
  gitops: "the GitOps repositories",
  cache: "restic's cache",
  "cli-token": "the local CLI token",
  "admin-password": "the bootstrap admin password when no terminal showed it",
  "master.key": "the secret store's master key",
  "audit-signing-key.pem": "the audit log's signing key",
  "server.json": "the running server's address",
};

export const FINAL_BACKUPS_DIRECTORY = "final-backups";
export const BOOTSTRAP_PASSWORD_FILE = "admin-password";

/**
 * Names an organization may not take: the data dir's entries, and `work`, beside which every
 * organization's GitOps bare repositories sit (gitops/<organization>, gitops/work/<organization>).
 */
export const RESERVED_ORGANIZATION_NAMES: Readonly<Record<string, string>> = {
  ...DATA_DIR_ENTRIES,
  work: "the GitOps work trees (gitops/work)",
};
