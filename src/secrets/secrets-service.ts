// The secret store: generates, seals, hands out and rotates the passwords, keys and certificates
// carehost creates. Values leave it only through current()/previous() (carehost's own drivers,
// never the API) and reveal() (an authorized person, audited). Nothing here puts a value into an
// error message, an audit payload or a listing.
//
// Rotation without downtime: rotate() adds a new version that becomes current while the previous
// one stays live, so a driver can make both valid (e.g. two database roles), switch its clients,
// and only then retire() the old version, which erases its key material.
import type { TAuditEvent } from "../audit/audit-types.js";
import { ConflictError, NotFoundError, ValidationError } from "../lib/errors.js";
import type { TRequestContext } from "../lib/request-context.js";
import type { TSqlExecutor } from "../store/store-types.js";
import { open, seal } from "./secrets-envelope.js";
import type { TMasterKey } from "./secrets-master-key.js";
import { secretsStoreFactory, type TSecretVersionInfo } from "./secrets-store.js";

export type TSecretsServiceDeps = {
  db: TSqlExecutor;
  masterKey: TMasterKey;
  audit: { append: (ctx: TRequestContext, event: TAuditEvent) => Promise<unknown> };
  /** Throws (ForbiddenError, after auditing the refusal) unless ctx may see secret values; wired by the composition root. */
  authorizeReveal: (ctx: TRequestContext, secretName: string) => Promise<void>;
  now?: () => Date;
};

export type TSecretListing = {
  readonly name: string;
  readonly currentVersion: number;
  readonly versions: readonly Omit<TSecretVersionInfo, "name">[];
};

const namePattern = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$/;
const maxReasonLength = 500;

const checkName = (name: string): void => {
  if (typeof name !== "string" || !namePattern.test(name)) {
    throw new ValidationError(
      `secret name ${JSON.stringify(name)} must be 1–200 characters of letters, digits and . _ : / -, starting with a letter or digit`,
    );
  }
};

// The generator's output is only ever described by its type, never echoed.
const generated = (name: string, generate: () => string): string => {
  const value: unknown = generate();
  if (typeof value !== "string" || value.length === 0) {
    throw new ValidationError(
      `the generator for secret ${JSON.stringify(name)} returned ${typeof value === "string" ? "an empty string" : typeof value}, not a non-empty string`,
    );
  }
  return value;
};

export const secretsServiceFactory = ({
  db,
  masterKey,
  audit,
  authorizeReveal,
  now = () => new Date(),
}: TSecretsServiceDeps) => {
  // Secrets live in the database only (the secrets table): a write on the caller's transaction is all-or-nothing with it.
  const store = secretsStoreFactory(db);
  const storeOn = (tx: TSqlExecutor | undefined) => (tx === undefined ? store : secretsStoreFactory(tx));

  const currentSealed = async (name: string) => {
    checkName(name);
    const [current] = await store.liveVersions(name, 1);
    if (!current) throw new NotFoundError(`secret ${JSON.stringify(name)} does not exist`);
    return current;
  };

  return {
    /**
     * Creates version 1 from `generate` when the name has no secret yet; otherwise changes nothing.
     * With `tx` (a transaction of the audit log's recordChange) it writes there, so the version
     * commits with the entry that records it.
     */
    ensure: async (
      name: string,
      generate: () => string,
      tx?: TSqlExecutor,
    ): Promise<{ created: boolean; version: number }> => {
      checkName(name);
      const writer = storeOn(tx);
      const existing = await writer.latestVersion(name);
      if (existing > 0) return { created: false, version: existing };
      const created = await writer.insertIfAbsent(seal(masterKey, name, 1, generated(name, generate)), now());
      // Another replica may have created it between our read and our insert: theirs stands.
      return created ? { created: true, version: 1 } : { created: false, version: await writer.latestVersion(name) };
    },

    /** The current value, for carehost's own drivers. Never expose this over the API; use reveal(). */
    current: async (name: string): Promise<string> => open(masterKey, await currentSealed(name)),

    /** The newest live version older than the current one, during a rotation; null when there is none. */
    previous: async (name: string): Promise<{ version: number; value: string } | null> => {
      checkName(name);
      const [, previous] = await store.liveVersions(name, 2);
      return previous ? { version: previous.version, value: open(masterKey, previous) } : null;
    },

    /** Shows a value to a person: authorized first, audited with the reason, never the value. */
    reveal: async (ctx: TRequestContext, name: string, reason: string): Promise<string> => {
      checkName(name);
      const trimmed = typeof reason === "string" ? reason.trim() : "";
      if (trimmed.length === 0 || trimmed.length > maxReasonLength) {
        throw new ValidationError(
          `revealing secret ${JSON.stringify(name)} needs a reason of 1–${maxReasonLength} characters`,
        );
      }
      await authorizeReveal(ctx, name);
      const value = open(masterKey, await currentSealed(name));
      // The value is handed out only once the event is durable. A plain append: a reveal changes no row.
      await audit.append(ctx, {
        type: "secret.revealed",
        outcome: "success",
        target: `secret:${name}`,
        payload: { secretName: name, reason: trimmed },
      });
      return value;
    },

    /** Adds a new current version; the previous one stays readable until retire(). `tx` as for ensure(). */
    rotate: async (name: string, generate: () => string, tx?: TSqlExecutor): Promise<{ version: number }> => {
      checkName(name);
      const writer = storeOn(tx);
      const latest = await writer.latestVersion(name);
      if (latest === 0)
        throw new NotFoundError(`secret ${JSON.stringify(name)} does not exist, so it cannot be rotated`);
      const version = latest + 1;
      const inserted = await writer.insertIfAbsent(seal(masterKey, name, version, generated(name, generate)), now());
      if (!inserted)
        throw new ConflictError(
          `secret ${JSON.stringify(name)} was rotated by someone else at the same time; check and retry`,
        );
      return { version };
    },

    /** Ends a version's life and erases its key material. The current version cannot be retired. */
    retire: async (name: string, version: number): Promise<TSecretVersionInfo> => {
      checkName(name);
      const info = await store.info(name, version);
      if (!info) throw new NotFoundError(`secret ${JSON.stringify(name)} has no version ${version}`);
      if (info.retiredAt !== null) return info;
      if (version === (await store.latestVersion(name))) {
        throw new ConflictError(
          `version ${version} is the current version of secret ${JSON.stringify(name)}; rotate before retiring it`,
        );
      }
      // Null here means a concurrent retire won; report the row as it now stands.
      return (await store.retire(name, version, now())) ?? (await store.info(name, version))!;
    },

    /** Names, versions and dates; never values. */
    list: async (): Promise<TSecretListing[]> => {
      const byName = new Map<string, Omit<TSecretVersionInfo, "name">[]>();
      for (const { name, ...version } of await store.list()) {
        const versions = byName.get(name) ?? [];
        versions.push(version);
        byName.set(name, versions);
      }
      return [...byName].map(([name, versions]) => ({
        name,
        currentVersion: Math.max(...versions.map((v) => v.version)),
        versions,
      }));
    },
  };
};

export type TSecretsService = ReturnType<typeof secretsServiceFactory>;
