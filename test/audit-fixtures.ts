// Shared helpers for the audit suites: a log on a throwaway database with its key in a temp dir.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { auditLogFactory, type TAuditLogDeps, type TAuditLog } from "../src/audit/audit-log.js";
import { auditEventContext, type AuditEventType, type TAuditEvent } from "../src/audit/audit-types.js";
import type { TAuditAppend } from "../src/identity/identity-types.js";
import type { TRequestContext } from "../src/lib/request-context.js";
import type { TSqlClient } from "../src/store/store-types.js";
import type { TTestDatabase } from "./test-databases.js";

export const aliceContext: TRequestContext = {
  actor: {
    kind: "user",
    userId: "u_alice",
    username: "alice",
    role: "operator",
    bindings: [{ role: "operator", organization: "*" }],
  },
  requestId: "req-1",
  sourceAddress: "10.0.0.7",
};

/** A varied, realistic stream of events: entry i differs from entry j. */
export const sampleEvent = (index: number): TAuditEvent =>
  index % 3 === 0
    ? {
        type: "auth.login.failed",
        outcome: "denied",
        target: "user:alice",
        payload: { username: "alice", reason: `bad password #${index}` },
      }
    : index % 3 === 1
      ? {
          type: "environment.changed",
          outcome: "success",
          target: `environment:northwind/env-${index}`,
          payload: { digest: `sha256:${index}`, previousDigest: `sha256:${index - 1}` },
        }
      : {
          type: "access.denied",
          outcome: "denied",
          target: "spec",
          payload: { permission: "spec:apply", role: "viewer" },
        };

export type TAuditHarness = {
  readonly database: TTestDatabase;
  readonly db: TSqlClient;
  readonly log: TAuditLog;
  readonly keyPath: string;
  /** A second log on the same database and key, like another process (the CLI) would open. */
  openAnother(overrides?: Partial<TAuditLogDeps>): TAuditLog;
  dispose(): Promise<void>;
};

export const createAuditHarness = async (
  createDatabase: () => Promise<TTestDatabase>,
  overrides: Partial<TAuditLogDeps> = {},
): Promise<TAuditHarness> => {
  const database = await createDatabase();
  const keyDir = await mkdtemp(join(tmpdir(), "carehost-audit-key-"));
  const keyPath = join(keyDir, "audit-signing-key.pem");
  const db = await database.open();
  const logs: TAuditLog[] = [];
  const openAnother = (more: Partial<TAuditLogDeps> = {}): TAuditLog => {
    const log = auditLogFactory({
      db,
      signingKeyPath: keyPath,
      onBackgroundError: (error) => {
        throw error;
      },
      ...overrides,
      ...more,
    });
    logs.push(log);
    return log;
  };
  const log = openAnother();
  return {
    database,
    db,
    log,
    keyPath,
    openAnother,
    dispose: async () => {
      await Promise.all(logs.map((each) => each.close().catch(() => undefined)));
      await database.dispose();
      await rm(keyDir, { recursive: true, force: true });
    },
  };
};

/**
 * recordChange for a test double of the audit log: the change runs in a transaction of `db` and
 * its events go to `append` inside it, so an append that throws rolls the change back, as the
 * real log's recordChange does.
 */
export const recordChangeThrough =
  (db: Pick<TSqlClient, "transaction">, append: TAuditAppend): TAuditLog["recordChange"] =>
  async (ctx, change) => ({
    result: await db.transaction(async (tx) => {
      const { result, events } = await change(tx);
      for (const item of events) {
        const { ctx: eventCtx, event } = auditEventContext(ctx, item);
        await append(eventCtx, event);
      }
      return result;
    }),
    seqs: [],
  });

export const appendSamples = async (log: TAuditLog, count: number, offset = 0): Promise<void> => {
  for (let index = offset; index < offset + count; index += 1) await log.append(aliceContext, sampleEvent(index));
};

/** What an append refused by refuseAuditAppends fails with. */
export const AUDIT_APPEND_INJECTED = /audit append failed \(injected\)/;

/**
 * Makes every audit append fail inside the database, as a full disk or a lost connection would,
 * or (`only`) the appends of those event types, as the log's guard refusing one payload would;
 * the function it returns lets appends through again.
 */
export const refuseAuditAppends = async (
  database: Pick<TAuditHarness["database"], "superuserQuery">,
  only?: readonly AuditEventType[],
): Promise<() => Promise<void>> => {
  await database.superuserQuery(`CREATE OR REPLACE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'audit append failed (injected)'; END $$`);
  // The types are the catalogue's own names (letters, dots and underscores), checked again here before they enter SQL.
  const types = (only ?? []).map((type) => {
    if (!/^[a-z_.]+$/.test(type)) throw new Error(`refuseAuditAppends: ${JSON.stringify(type)} is no event type`);
    return `'${type}'`;
  });
  const when = only === undefined ? "" : ` WHEN (NEW.type IN (${types.length === 0 ? "NULL" : types.join(", ")}))`;
  await database.superuserQuery(
    `CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_entries FOR EACH ROW${when} EXECUTE FUNCTION refuse_audit()`,
  );
  return async () => {
    await database.superuserQuery("DROP TRIGGER refuse_audit ON audit_entries");
    await database.superuserQuery("DROP FUNCTION refuse_audit()");
  };
};
