// What the fuzz tests and the fuzz benchmark run: generated inputs (fast-check) against the spec
// loader and every route of a running carehost. The properties are the ones a hostile client or a
// broken spec must never break: no crash, no 500, problems as problem+json, nothing written outside
// carehost's own data directory.
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import fc from "fast-check";
import type { FastifyInstance } from "fastify";
import { loadSpecText } from "../../src/spec/spec-loader.js";

// ── The spec loader ──────────────────────────────────────────────────────────────────────────────

/** Texts near a spec: real keys and YAML's sharp edges (anchors, tags, tabs, deep nesting). */
const specFragment = fc.constantFrom(
  "apiVersion: carehost.io/v1\n",
  "kind: Organization\n",
  "metadata:\n  name: northwind-health\n",
  "environments:\n  - name: prod\n    dataClass: phi\n",
  "    hosting: dedicated\n",
  "    backup:\n      repositories: [local]\n      path: /\n",
  "policyExceptions:\n  - control: CH-DB-006\n",
  "a: &x [*x]\n",
  "b: !!binary AAAA\n",
  "\t- tab\n",
  "c: " + "[".repeat(200) + "\n",
  "d: *undefined\n",
  "e: 1e999\n",
  "f: 0x" + "f".repeat(40) + "\n",
  "\u0000\ufeff\n",
  "name: ../../etc\n",
);

export const specTextArbitrary = fc.oneof(
  fc.string({ maxLength: 400 }),
  fc.array(specFragment, { maxLength: 12 }).map((parts) => parts.join("")),
  fc.jsonValue().map((value) => JSON.stringify(value)),
);

/** The loader answers every text with a spec or with located errors; it never throws. */
export const specLoaderProperty = () =>
  fc.property(specTextArbitrary, (text) => {
    const result = loadSpecText(text, "carehost.yaml");
    if (result.ok) return;
    for (const error of result.errors) {
      if (!(error.line >= 1 && error.col >= 1 && error.message.length > 0))
        throw new Error(`an error without a location or a message: ${JSON.stringify(error)}`);
    }
  });

// ── Every route ──────────────────────────────────────────────────────────────────────────────────

type TOperation = {
  readonly method: string;
  readonly path: string;
  readonly pathParams: readonly string[];
  readonly queryParams: readonly string[];
  readonly bodyKeys: readonly string[] | undefined;
};

type TOpenApi = {
  paths: Record<
    string,
    Record<
      string,
      {
        parameters?: { name: string; in: string }[];
        requestBody?: { content?: Record<string, { schema?: { properties?: Record<string, unknown> } }> };
      }
    >
  >;
};

/** Every operation the server documents: the OpenAPI document is the list a new route cannot escape. */
export async function operationsOf(app: FastifyInstance, token: string): Promise<TOperation[]> {
  const answer = await app.inject({
    method: "GET",
    url: "/api/openapi.json",
    headers: { authorization: `Bearer ${token}` },
  });
  const document = answer.json<TOpenApi>();
  const operations: TOperation[] = [];
  for (const [path, methods] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      const parameters = operation.parameters ?? [];
      const body = operation.requestBody?.content?.["application/json"]?.schema;
      operations.push({
        method: method.toUpperCase(),
        path,
        pathParams: parameters.filter((item) => item.in === "path").map((item) => item.name),
        queryParams: parameters.filter((item) => item.in === "query").map((item) => item.name),
        bodyKeys: body === undefined ? undefined : Object.keys(body.properties ?? {}),
      });
    }
  }
  return operations;
}

/** Values a hostile client sends where a name or an id belongs. */
const hostileString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom(
    "northwind-health",
    "prod",
    "admin",
    "..",
    "../../etc/passwd",
    "/etc",
    "%00",
    "a".repeat(300),
    "-1",
    "0",
    "9999999999999999999999",
    "' OR 1=1 --",
    "${jndi:ldap://x}",
    "\u202e",
    "🩺",
  ),
);

const bodyArbitrary = (keys: readonly string[]) =>
  fc.oneof(
    fc.jsonValue(),
    fc
      .record(Object.fromEntries(keys.map((key) => [key, fc.oneof(hostileString, fc.jsonValue())])), {
        requiredKeys: [],
      })
      .map((value) => value as unknown),
  );

type TRequest = {
  method: string;
  url: string;
  headers: Record<string, string>;
  payload?: string;
};

const requestArbitrary = (operations: readonly TOperation[], token: string): fc.Arbitrary<TRequest> =>
  fc.constantFrom(...operations).chain((operation) =>
    fc
      .record({
        params: fc.tuple(...operation.pathParams.map(() => hostileString), fc.constant("")),
        query: fc.array(fc.tuple(fc.constantFrom(...operation.queryParams, "x"), hostileString), { maxLength: 3 }),
        body: operation.bodyKeys === undefined ? fc.constant(undefined) : bodyArbitrary(operation.bodyKeys),
        rawBody: fc.option(fc.string({ maxLength: 60 }), { freq: 8 }),
        auth: fc.constantFrom("admin", "admin", "admin", "none", "garbage"),
      })
      .map(({ params, query, body, rawBody, auth }) => {
        let path = operation.path;
        operation.pathParams.forEach((name, index) => {
          path = path.replace(`{${name}}`, encodeURIComponent(params[index] ?? "") || "x");
        });
        const search = new URLSearchParams(query).toString();
        const headers: Record<string, string> = {};
        if (auth === "admin") headers.authorization = `Bearer ${token}`;
        if (auth === "garbage") headers.authorization = "Bearer chk_not-a-token";
        const request: TRequest = {
          method: operation.method,
          url: search === "" ? path : `${path}?${search}`,
          headers,
        };
        if (operation.bodyKeys !== undefined || rawBody !== null) {
          headers["content-type"] = "application/json";
          request.payload = rawBody ?? JSON.stringify(body ?? null);
        }
        return request;
      }),
  );

/** No route answers 500 to anything, and every refusal is a problem+json document. */
export const routesProperty = (app: FastifyInstance, operations: readonly TOperation[], token: string) =>
  fc.asyncProperty(requestArbitrary(operations, token), async (request) => {
    const answer = await app.inject(request);
    const what = `${request.method} ${request.url} ${request.payload ?? ""}`.slice(0, 300);
    // 502 says a dependency carehost speaks for could not be reached (the demo's identity provider is
    // on the internet, which this host does not reach): an answer, not a crash.
    if (answer.statusCode >= 500 && answer.statusCode !== 502)
      throw new Error(`${what} answered ${answer.statusCode}: ${answer.body.slice(0, 300)}`);
    if (answer.statusCode >= 400 && !String(answer.headers["content-type"]).startsWith("application/problem+json"))
      throw new Error(`${what} answered ${answer.statusCode} without problem+json: ${answer.body.slice(0, 200)}`);
  });

// ── Nothing outside the data dir ─────────────────────────────────────────────────────────────────

/**
 * The host directories a spec that escaped its confinement would write to (carehost runs as root),
 * listed two levels deep. Directories that services and package managers change on their own are left
 * out; /tmp is where every test's data dir lives.
 */
const WATCHED = ["/", "/etc", "/root", "/home", "/opt", "/srv", "/usr/local", "/var/lib", "/var/backups", "/mnt"];
const CHURNING = new Set([
  "/tmp",
  "/proc",
  "/sys",
  "/dev",
  "/run",
  "/root/.npm",
  "/root/.cache",
  "/var/lib/postgresql",
]);

export async function hostListing(): Promise<Set<string>> {
  const seen = new Set<string>();
  const walk = async (directory: string, depth: number): Promise<void> => {
    if (CHURNING.has(directory)) return;
    const entries = await readdir(directory, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      const path = join(directory, entry.name);
      if (CHURNING.has(path)) continue;
      seen.add(path);
      if (depth > 0 && entry.isDirectory()) await walk(path, depth - 1);
    }
  };
  for (const root of WATCHED) await walk(root, root === "/" ? 0 : 1);
  return seen;
}

export const createdSince = (before: ReadonlySet<string>, after: ReadonlySet<string>) =>
  [...after].filter((path) => !before.has(path));
