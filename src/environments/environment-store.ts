import type { TEnvironmentSpec, TOrganizationSpec } from "../spec/spec-schema.js";
import type { TSqlExecutor } from "../store/store-types.js";
import type { TOrganizationIdentityRules } from "../identity/identity-rules.js";
import { exceptionStoreFactory, proposeExceptions } from "../policy/policy-exception-store.js";

export type TRecordedEnvironment = {
  readonly organization: string;
  readonly name: string;
  readonly spec: TEnvironmentSpec;
  readonly specDigest: string;
  readonly status: string;
  readonly revisionId: number;
  readonly updatedAt: Date;
};

export type TSpecRevision = {
  readonly id: number;
  readonly organization: string;
  readonly digest: string;
  readonly appliedBy: string;
  readonly appliedAt: Date;
};

type TEnvironmentRow = {
  org_name: string;
  name: string;
  spec: TEnvironmentSpec;
  spec_digest: string;
  status: string;
  revision_id: number;
  updated_at: Date;
};

const toEnvironment = (row: TEnvironmentRow): TRecordedEnvironment => ({
  organization: row.org_name,
  name: row.name,
  spec: row.spec,
  specDigest: row.spec_digest,
  status: row.status,
  revisionId: row.revision_id,
  updatedAt: new Date(row.updated_at),
});

export const environmentStoreFactory = (db: TSqlExecutor) => ({
  listEnvironments: async (organization?: string): Promise<TRecordedEnvironment[]> => {
    const { rows } = await db.query<TEnvironmentRow>(
      `SELECT org_name, name, spec, spec_digest, status, revision_id, updated_at FROM environments
       WHERE $1::text IS NULL OR org_name = $1 ORDER BY org_name, name`,
      [organization ?? null],
    );
    return rows.map(toEnvironment);
  },

  latestRevisions: async (): Promise<TSpecRevision[]> => {
    const { rows } = await db.query<{
      id: number;
      org_name: string;
      digest: string;
      applied_by: string;
      applied_at: Date;
    }>(
      `SELECT DISTINCT ON (org_name) id, org_name, digest, applied_by, applied_at
       FROM spec_revisions ORDER BY org_name, id DESC`,
    );
    return rows.map((row) => ({
      id: row.id,
      organization: row.org_name,
      digest: row.digest,
      appliedBy: row.applied_by,
      appliedAt: new Date(row.applied_at),
    }));
  },

  /** The organization's newest applied revision with its spec: the side of a plan that the running systems are compared with. */
  appliedRevision: async (organization: string): Promise<{ id: number; spec: TOrganizationSpec } | undefined> => {
    const { rows } = await db.query<{ id: number; spec: TOrganizationSpec }>(
      "SELECT id, spec FROM spec_revisions WHERE org_name = $1 ORDER BY id DESC LIMIT 1",
      [organization],
    );
    return rows[0];
  },

  /** One recorded revision of an organization, with the source it was applied from (a rollback applies it again). */
  revision: async (
    organization: string,
    id: number,
  ): Promise<{ id: number; spec: TOrganizationSpec; source: string; digest: string } | undefined> => {
    const { rows } = await db.query<{ id: number; spec: TOrganizationSpec; source: string; digest: string }>(
      "SELECT id, spec, source, digest FROM spec_revisions WHERE org_name = $1 AND id = $2",
      [organization, id],
    );
    return rows[0];
  },

  /** The identity settings of each organization's latest revision (read on every request, so only these fields). */
  latestIdentityRules: async (): Promise<TOrganizationIdentityRules[]> => {
    const { rows } = await db.query<{
      organization: string;
      idle: number;
      local_users: boolean;
      mfa: boolean;
      max_hours: number;
      oidc: boolean;
    }>(
      // Every recorded spec was parsed with the schema's defaults; COALESCE guards a hand-edited row
      // and a revision recorded before the field existed (sessionMaxHours: its default, 12).
      `SELECT DISTINCT ON (org_name) org_name AS organization,
              COALESCE((spec->'identity'->>'sessionIdleTimeoutMinutes')::int, 15) AS idle,
              COALESCE((spec->'identity'->>'localUsersAllowed')::boolean, true) AS local_users,
              COALESCE((spec->'identity'->>'mfaRequired')::boolean, true) AS mfa,
              COALESCE((spec->'identity'->>'sessionMaxHours')::int, 12) AS max_hours,
              (spec->'identity'->'oidc') IS NOT NULL AS oidc
         FROM spec_revisions ORDER BY org_name, id DESC`,
    );
    return rows.map((row) => ({
      organization: row.organization,
      sessionIdleTimeoutMinutes: row.idle,
      localUsersAllowed: row.local_users,
      mfaRequired: row.mfa,
      sessionMaxHours: row.max_hours,
      oidcConfigured: row.oidc,
    }));
  },

  /** The newest applied spec of every organization. */
  latestSpecs: async (): Promise<TOrganizationSpec[]> => {
    const { rows } = await db.query<{ spec: TOrganizationSpec }>(
      "SELECT DISTINCT ON (org_name) spec FROM spec_revisions ORDER BY org_name, id DESC",
    );
    return rows.map((row) => row.spec);
  },

  /** Which of the organization's exceptions carehost holds as approved, and by whom (the policy engine's input). */
  exceptionApprovals: exceptionStoreFactory(db).approvals,

  /** Records exception versions not seen before as proposed, in the caller's transaction. */
  proposeExceptions,

  /**
   * Records a spec revision and makes its environments the desired state, in the caller's
   * transaction (the one its audit entries are written in).
   */
  recordRevision: async (
    tx: TSqlExecutor,
    input: { spec: TOrganizationSpec; digest: string; source: string; appliedBy: string; removed: readonly string[] },
    environmentDigest: (environment: TEnvironmentSpec) => string,
  ): Promise<number> => {
    const organization = input.spec.metadata.name;
    const { rows } = await tx.query<{ id: number }>(
      `INSERT INTO spec_revisions (org_name, digest, source, spec, applied_by) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
      [organization, input.digest, input.source, JSON.stringify(input.spec), input.appliedBy],
    );
    const revisionId = rows[0]!.id;
    for (const environment of input.spec.environments) {
      await tx.query(
        `INSERT INTO environments (org_name, name, spec, spec_digest, revision_id) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (org_name, name) DO UPDATE SET spec = EXCLUDED.spec, spec_digest = EXCLUDED.spec_digest,
             revision_id = EXCLUDED.revision_id, updated_at = now()
           WHERE environments.spec_digest IS DISTINCT FROM EXCLUDED.spec_digest`,
        [organization, environment.name, JSON.stringify(environment), environmentDigest(environment), revisionId],
      );
    }
    if (input.removed.length > 0) {
      await tx.query(`DELETE FROM environments WHERE org_name = $1 AND name = ANY($2::text[])`, [
        organization,
        input.removed,
      ]);
    }
    return revisionId;
  },
});

export type TEnvironmentStore = ReturnType<typeof environmentStoreFactory>;
