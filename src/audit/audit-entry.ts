// The canonical entry: the exact bytes that become a Merkle leaf. Deterministic JSON (keys sorted
// by UTF-16 code unit, no whitespace) so anyone can rebuild it, and a guard so that a payload can
// never carry a secret into a log that can never be edited again.
import { ValidationError } from "../lib/errors.js";
import { actorName, type TActor, type TRequestContext } from "../lib/request-context.js";
import { auditPayloadSchemas, type TAuditActor, type TAuditEntry, type TAuditEvent } from "./audit-types.js";

export const canonicalJson = (value: unknown): string => {
  if (value === null || typeof value === "boolean" || typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") {
    // Non-finite numbers have no JSON form; JSON.stringify would silently write null.
    if (!Number.isFinite(value)) throw new ValidationError(`audit entry holds a non-finite number: ${value}`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object") {
    const fields = Object.entries(value as Record<string, unknown>)
      .filter(([, field]) => field !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, field]) => `${JSON.stringify(key)}:${canonicalJson(field)}`);
    return `{${fields.join(",")}}`;
  }
  throw new ValidationError(`audit entry holds a value JSON cannot represent: ${typeof value}`);
};

// A key that names secret material is refused, unless it only refers to it (an id, a name, a
// digest). Checked on every append, so a new event type cannot leak by accident.
const SECRET_KEY =
  /pass(word|phrase)?|secret|token|private|api.?key|credential|cookie|^key$|signing.?key|otp|totp|mfa.?code/i;
const REFERENCE_SUFFIX = /(Id|Name|Digest|Fingerprint|Count)$/;
const SECRET_VALUE = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;

export const assertNoSecrets = (value: unknown, path = "payload"): void => {
  if (typeof value === "string" && SECRET_VALUE.test(value)) {
    throw new ValidationError(`audit ${path} looks like private key material; audit entries never hold secrets`);
  }
  if (value === null || typeof value !== "object") return;
  for (const [key, field] of Object.entries(value as Record<string, unknown>)) {
    if (SECRET_KEY.test(key) && !REFERENCE_SUFFIX.test(key)) {
      throw new ValidationError(`audit ${path}.${key} is named like a secret; record a digest or an id instead`);
    }
    assertNoSecrets(field, `${path}.${key}`);
  }
};

/** payload keys may not be "seq", which keeps entryClaimsSeq's top-level match unambiguous. */
const assertNoReservedKeys = (value: unknown, path = "payload"): void => {
  if (value === null || typeof value !== "object") return;
  for (const [key, field] of Object.entries(value as Record<string, unknown>)) {
    if (key === "seq") throw new ValidationError(`audit ${path}.seq is reserved for the entry's position`);
    assertNoReservedKeys(field, `${path}.${key}`);
  }
};

/**
 * Does this canonical entry say it sits at `seq`? A substring test instead of JSON.parse, because
 * verify runs it on every entry: in canonical JSON a quote inside a string is escaped, so
 * `,"seq":N,"sourceAddress":` can only be the top-level field (payload keys are never "seq").
 */
export const entryClaimsSeq = (entry: string, seq: number): boolean => entry.includes(`,"seq":${seq},"sourceAddress":`);

const auditActorOf = (actor: TActor): TAuditActor => {
  if (actor.kind === "user") {
    const { userId, username, role, tokenId } = actor;
    return tokenId === undefined
      ? { kind: "user", userId, username, role }
      : { kind: "user", userId, username, role, tokenId };
  }
  return actor.kind === "system" ? { kind: "system", name: actor.name } : { kind: "anonymous" };
};

/** An event validated and stamped, still waiting for its seq (assigned inside the transaction). */
export type TPendingEntry = Omit<TAuditEntry, "seq">;

export const pendingEntryOf = (ctx: TRequestContext, event: TAuditEvent, time: Date): TPendingEntry => {
  const schema = auditPayloadSchemas[event.type];
  if (!schema) throw new ValidationError(`unknown audit event type: ${String(event.type)}`);
  const parsed = schema.safeParse(event.payload);
  if (!parsed.success) {
    throw new ValidationError(
      `audit event ${event.type} has an invalid payload`,
      parsed.error.issues.map((issue) => ({
        path: issue.path.join("."),
        message: issue.message,
      })),
    );
  }
  assertNoSecrets(parsed.data);
  assertNoReservedKeys(parsed.data);
  return {
    type: event.type,
    outcome: event.outcome,
    actor: auditActorOf(ctx.actor),
    sourceAddress: ctx.sourceAddress,
    requestId: ctx.requestId,
    target: event.target,
    time: time.toISOString(),
    payload: parsed.data as Record<string, unknown>,
  };
};

export const canonicalEntry = (seq: number, pending: TPendingEntry): string => canonicalJson({ ...pending, seq });

export const actorNameOf = (actor: TAuditActor): string => actorName(actor as TActor);

/** "#41 (auth.login.failed by alice at 2026-…)": how messages name an entry. */
export const describeEntry = (seq: number, entryText: string): string => {
  try {
    const entry = JSON.parse(entryText) as Partial<TAuditEntry>;
    const who = entry.actor ? actorNameOf(entry.actor) : "unknown actor";
    return `entry #${seq} (${String(entry.type)} by ${who} at ${String(entry.time)})`;
  } catch {
    return `entry #${seq} (not valid JSON)`;
  }
};
