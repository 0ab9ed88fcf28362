import { isIP } from "node:net";
import { isAbsolute, resolve } from "node:path";
import { z } from "zod";
import type { TStoreConfig } from "../store/store-types.js";
import { RUNTIME_KINDS } from "../runtime/runtime-driver.js";
import type { TRuntimeKind } from "../runtime/runtime-driver.js";

/** How long a client may take to send a whole request (headers and body); a streamed answer is not limited by it. */
export const DEFAULT_REQUEST_TIMEOUT_SECONDS = 30;
/** How long an idle kept-alive connection stays open between requests. */
export const DEFAULT_KEEP_ALIVE_TIMEOUT_SECONDS = 10;

/** Whole seconds within [min, max]: the message names the range, never the value given. */
const seconds = (fallback: number, min: number, max: number) =>
  z
    .string()
    .default(String(fallback))
    .refine((value) => /^\d+$/.test(value.trim()), `must be a whole number of seconds (${min} to ${max})`)
    .transform((value) => Number(value.trim()))
    .refine((value) => value >= min && value <= max, `must be between ${min} and ${max} seconds`);

/** The secret holding the SMTP password (CAREHOST_SMTP_USER's); never in the environment. */
export const SMTP_PASSWORD_SECRET = "platform/smtp-password";

/** proxy-addr's names for whole ranges, as Fastify's trustProxy takes them. */
const PROXY_RANGE_NAMES = ["loopback", "linklocal", "uniquelocal"];

/** Why `entry` is not an address, a CIDR or a range name, or undefined when it is one. */
const proxyEntryProblem = (entry: string): string | undefined => {
  if (PROXY_RANGE_NAMES.includes(entry)) return undefined;
  const [address = "", prefix, extra] = entry.split("/");
  const family = isIP(address);
  if (family === 0 || extra !== undefined)
    return `${JSON.stringify(entry.slice(0, 60))} is not an IP address, a CIDR (address/prefix) or one of ${PROXY_RANGE_NAMES.join(", ")}`;
  if (prefix === undefined) return undefined;
  const most = family === 4 ? 32 : 128;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= most
    ? undefined
    : `${JSON.stringify(entry.slice(0, 60))}: the prefix must be 0 to ${most}`;
};

/** Addresses on which plain HTTP stays on this host: anything else needs TLS. */
export const isLoopbackHost = (host: string): boolean =>
  host === "localhost" || host === "::1" || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);

// Configuration is one schema parsed once at boot (STYLE.md item 3): a bad variable stops
// start-up with its name and what was expected, instead of failing later in a request.
const ConfigSchema = z.object({
  CAREHOST_HOME: z.string().min(1).default(".carehost").describe("data directory"),
  CAREHOST_DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "must be a postgres:// URL")
    .optional()
    .describe("control-plane database; PGlite in the data dir when unset"),
  CAREHOST_HOST: z.string().min(1).default("127.0.0.1"),
  CAREHOST_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  CAREHOST_LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  CAREHOST_AUDIT_CHECKPOINT_ENTRIES: z.coerce.number().int().positive().default(1000),
  CAREHOST_AUDIT_CHECKPOINT_SECONDS: z.coerce.number().int().positive().default(60),
  CAREHOST_RUNTIME: z
    .enum(RUNTIME_KINDS)
    .default("local")
    .describe(
      "where environments run: this host (local), a GitOps repository of Kubernetes manifests (gitops), or nowhere (none: record and check only)",
    ),
  CAREHOST_ALLOWED_PATHS: z
    .string()
    .default("")
    .transform((value) => value.split(":").filter((path) => path !== ""))
    .refine((paths) => paths.every((path) => isAbsolute(path)), "must be absolute directories separated by ':'")
    .describe(
      "directories beyond the data dir where a spec may put posix backup repositories and CA files; the spec cannot widen this",
    ),
  CAREHOST_SUPERVISE_SECONDS: z.coerce
    .number()
    .int()
    .positive()
    .default(10)
    .describe("how often stopped PostgreSQL and Redis processes are restarted"),
  CAREHOST_PUBLIC_URL: z
    .url({ protocol: /^https?$/, error: "must be an http:// or https:// URL (where browsers reach carehost)" })
    .optional()
    .describe(
      "the URL browsers reach carehost at (behind a proxy, its public name); single sign-on sends people back to <it>/api/auth/oidc/callback",
    ),
  CAREHOST_TLS_CERT: z.string().min(1).optional().describe("PEM certificate (chain) the API serves HTTPS with"),
  CAREHOST_TLS_KEY: z.string().min(1).optional().describe("PEM private key of CAREHOST_TLS_CERT"),
  CAREHOST_TRUSTED_PROXIES: z
    .string()
    .default("")
    .transform((value) =>
      value
        .split(",")
        .map((entry) => entry.trim())
        .filter((entry) => entry !== ""),
    )
    .superRefine((entries, context) => {
      for (const entry of entries) {
        const problem = proxyEntryProblem(entry);
        if (problem !== undefined) context.addIssue({ code: "custom", message: problem });
      }
    })
    .describe("proxies whose X-Forwarded-For names the client: comma-separated addresses or CIDRs"),
  CAREHOST_REQUEST_TIMEOUT_SECONDS: seconds(DEFAULT_REQUEST_TIMEOUT_SECONDS, 1, 3600).describe(
    "how long a client may take to send a request (and, over TLS, to finish the handshake)",
  ),
  CAREHOST_KEEP_ALIVE_TIMEOUT_SECONDS: seconds(DEFAULT_KEEP_ALIVE_TIMEOUT_SECONDS, 1, 3600).describe(
    "how long an idle kept-alive connection stays open",
  ),
  CAREHOST_SMTP_URL: z
    .url({ protocol: /^smtps?$/, error: "must be an smtp:// or smtps:// URL (host and port, no credentials)" })
    .refine((value) => new URL(value).username === "" && new URL(value).password === "", {
      error: `must not carry credentials: set CAREHOST_SMTP_USER, and the password as the secret ${SMTP_PASSWORD_SECRET}`,
    })
    .optional()
    .describe("the SMTP server alert email goes through; smtp:// upgrades with STARTTLS when the server offers it"),
  CAREHOST_SMTP_FROM: z.email().default("carehost@localhost").describe("the sender address of alert email"),
  CAREHOST_SMTP_USER: z
    .string()
    .min(1)
    .optional()
    .describe(`the SMTP user; its password is the secret ${SMTP_PASSWORD_SECRET} (carehost secrets set)`),
  CAREHOST_PLATFORM_ALERT_WEBHOOK: z
    .url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" })
    .optional()
    .describe("where carehost's own alerts (failed sign-ins, privilege changes) go: an Alertmanager webhook receiver"),
  CAREHOST_PLATFORM_ALERT_EMAIL: z
    .string()
    .default("")
    .transform((value) =>
      value
        .split(",")
        .map((entry) => entry.trim())
        .filter((entry) => entry !== ""),
    )
    .refine(
      (entries) => entries.every((entry) => z.email().safeParse(entry).success),
      "must be email addresses separated by ','",
    )
    .describe("addresses carehost's own alerts are mailed to"),
});

/** Where alert email goes out and where carehost's own alerts are sent. */
export type TAlertingConfig = {
  readonly smtp?: { readonly url: string; readonly from: string; readonly user?: string };
  readonly platformWebhook?: string;
  readonly platformEmail: readonly string[];
};

export type TConfig = {
  readonly home: string;
  readonly store: TStoreConfig;
  readonly host: string;
  readonly port: number;
  readonly logLevel: z.infer<typeof ConfigSchema>["CAREHOST_LOG_LEVEL"];
  readonly auditCheckpoint: { readonly entries: number; readonly ms: number };
  readonly runtime: { readonly kind: TRuntimeKind; readonly superviseMs: number };
  /** Roots beyond the data dir that a spec's host paths may lead to (CAREHOST_ALLOWED_PATHS). */
  readonly allowedPaths: readonly string[];
  readonly http: THttpConfig;
  /** Where browsers reach carehost (CAREHOST_PUBLIC_URL), without a trailing slash; the listening URL when unset. */
  readonly publicUrl?: string;
  readonly alerting: TAlertingConfig;
};

/** How the API listens: TLS, whose forwarded addresses count, how long a client may take. */
export type THttpConfig = {
  /** Paths of the PEM files (CAREHOST_TLS_CERT, CAREHOST_TLS_KEY); read at start. */
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
  /** Addresses and CIDRs of the proxies whose X-Forwarded-For is believed; empty: none. */
  readonly trustedProxies: readonly string[];
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
};

export class ConfigError extends Error {}

export const loadConfig = (env: NodeJS.ProcessEnv = process.env): TConfig => {
  const parsed = ConfigSchema.safeParse(env);
  if (!parsed.success) {
    // The value itself is left out: a database URL can carry a password.
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join(".")}: ${issue.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
  }
  const values = parsed.data;
  const problems: string[] = [];
  if ((values.CAREHOST_TLS_CERT === undefined) !== (values.CAREHOST_TLS_KEY === undefined))
    problems.push(
      `  ${values.CAREHOST_TLS_CERT === undefined ? "CAREHOST_TLS_CERT" : "CAREHOST_TLS_KEY"}: must be set too: TLS needs both the certificate (CAREHOST_TLS_CERT) and its key (CAREHOST_TLS_KEY)`,
    );
  else if (values.CAREHOST_TLS_CERT === undefined && !isLoopbackHost(values.CAREHOST_HOST))
    // Tokens and passwords would cross the network in the clear; a TLS-terminating proxy on this host talks to 127.0.0.1.
    problems.push(
      `  CAREHOST_HOST: ${values.CAREHOST_HOST} is not a loopback address, and the API serves plain HTTP only on loopback: set CAREHOST_TLS_CERT and CAREHOST_TLS_KEY (PEM files), or bind 127.0.0.1 behind a TLS-terminating proxy (CAREHOST_TRUSTED_PROXIES)`,
    );
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n${problems.join("\n")}`);
  const home = resolve(values.CAREHOST_HOME);
  return {
    home,
    store: values.CAREHOST_DATABASE_URL
      ? { kind: "postgres", url: values.CAREHOST_DATABASE_URL }
      : { kind: "pglite", dataDir: resolve(home, "state") },
    host: values.CAREHOST_HOST,
    port: values.CAREHOST_PORT,
    logLevel: values.CAREHOST_LOG_LEVEL,
    auditCheckpoint: {
      entries: values.CAREHOST_AUDIT_CHECKPOINT_ENTRIES,
      ms: values.CAREHOST_AUDIT_CHECKPOINT_SECONDS * 1000,
    },
    runtime: { kind: values.CAREHOST_RUNTIME, superviseMs: values.CAREHOST_SUPERVISE_SECONDS * 1000 },
    allowedPaths: values.CAREHOST_ALLOWED_PATHS.map((path) => resolve(path)),
    ...(values.CAREHOST_PUBLIC_URL === undefined ? {} : { publicUrl: values.CAREHOST_PUBLIC_URL.replace(/\/+$/, "") }),
    alerting: {
      ...(values.CAREHOST_SMTP_URL === undefined
        ? {}
        : {
            smtp: {
              url: values.CAREHOST_SMTP_URL,
              from: values.CAREHOST_SMTP_FROM,
              ...(values.CAREHOST_SMTP_USER === undefined ? {} : { user: values.CAREHOST_SMTP_USER }),
            },
          }),
      ...(values.CAREHOST_PLATFORM_ALERT_WEBHOOK === undefined
        ? {}
        : { platformWebhook: values.CAREHOST_PLATFORM_ALERT_WEBHOOK }),
      platformEmail: values.CAREHOST_PLATFORM_ALERT_EMAIL,
    },
    http: {
      ...(values.CAREHOST_TLS_CERT === undefined || values.CAREHOST_TLS_KEY === undefined
        ? {}
        : { tls: { certFile: resolve(values.CAREHOST_TLS_CERT), keyFile: resolve(values.CAREHOST_TLS_KEY) } }),
      trustedProxies: values.CAREHOST_TRUSTED_PROXIES,
      requestTimeoutMs: values.CAREHOST_REQUEST_TIMEOUT_SECONDS * 1000,
      keepAliveTimeoutMs: values.CAREHOST_KEEP_ALIVE_TIMEOUT_SECONDS * 1000,
    },
  };
};
