import { isAbsolute, resolve } from "node:path";
import { z } from "zod";
import type { TStoreConfig } from "../store/store-types.js";

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
    .enum(["local", "none"])
    .default("local")
    .describe("where environments run: this host, or nowhere (record and check only)"),
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
});

export type TConfig = {
  readonly home: string;
  readonly store: TStoreConfig;
  readonly host: string;
  readonly port: number;
  readonly logLevel: z.infer<typeof ConfigSchema>["CAREHOST_LOG_LEVEL"];
  readonly auditCheckpoint: { readonly entries: number; readonly ms: number };
  readonly runtime: { readonly kind: "local" | "none"; readonly superviseMs: number };
  /** Roots beyond the data dir that a spec's host paths may lead to (CAREHOST_ALLOWED_PATHS). */
  readonly allowedPaths: readonly string[];
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
  };
};
