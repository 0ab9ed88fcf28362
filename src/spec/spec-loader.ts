// Loads carehost.yaml and reports every problem at once, each as file:line:col + path + message,
// so that one run of `carehost validate` gives the whole list rather than one error per attempt.
import { readFile } from "node:fs/promises";
import { LineCounter, parseDocument } from "yaml";
import type { Document } from "yaml";
import { specDigest } from "./spec-digest.js";
import { issuesFromZod, specErrorMap } from "./spec-issues.js";
import type { TSpecIssue } from "./spec-issues.js";
import { formatPath, locatePath, pathAtOffset } from "./spec-locate.js";
import { OrganizationSpecSchema } from "./spec-schema.js";
import type { TOrganizationSpec } from "./spec-schema.js";
import { checkSpecSemantics } from "./spec-semantic.js";

export type TSpecError = {
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  /** 1-based. */
  readonly col: number;
  /** Dotted path with list indexes, e.g. environments[0].backup.rpoMinutes; "" for the document. */
  readonly path: string;
  readonly message: string;
};

export type TSpecLoadResult =
  | { ok: true; spec: TOrganizationSpec; /** SHA-256 (hex) of the canonical JSON of `spec`. */ digest: string }
  | { ok: false; errors: TSpecError[] };

/** file:line:col  path  message (two spaces between parts, so paths with spaces stay readable). */
export function formatSpecError(error: TSpecError): string {
  return `${error.file}:${error.line}:${error.col}  ${error.path === "" ? "(document)" : error.path}  ${error.message}`;
}

function yamlErrors(
  doc: Document,
  lineCounter: LineCounter,
  file: string,
): { errors: TSpecError[]; structureUsable: boolean } {
  const errors = doc.errors.map((error): TSpecError => {
    const { line, col } = lineCounter.linePos(error.pos[0]);
    const path = pathAtOffset(doc, error.pos[0]);
    const message =
      error.code === "DUPLICATE_KEY"
        ? `duplicate key ${JSON.stringify(String(path[path.length - 1] ?? ""))}`
        : `YAML: ${error.message}`;
    return { file, line, col, path: formatPath(path), message };
  });
  // A duplicate key leaves a well-formed tree (the last value wins), so validation can go on and
  // report the rest. After a syntax error the tree past that point is guesswork; validating it
  // would add errors that are not in the file.
  const structureUsable = doc.errors.every((error) => error.code === "DUPLICATE_KEY");
  return { errors, structureUsable };
}

function byPosition(a: TSpecError, b: TSpecError): number {
  return a.line - b.line || a.col - b.col || a.path.localeCompare(b.path) || a.message.localeCompare(b.message);
}

export function loadSpecText(text: string, fileName: string): TSpecLoadResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const { errors, structureUsable } = yamlErrors(doc, lineCounter, fileName);
  if (!structureUsable) return { ok: false, errors: errors.sort(byPosition) };

  let input: unknown;
  try {
    input = doc.toJS();
  } catch (error) {
    // yaml refuses to expand an alias bomb (more aliases than maxAliasCount); report, do not crash.
    return {
      ok: false,
      errors: [
        {
          file: fileName,
          line: 1,
          col: 1,
          path: "",
          message: `YAML: ${error instanceof Error ? error.message : String(error)}`,
        },
      ],
    };
  }
  const parsed = OrganizationSpecSchema.safeParse(input, { error: specErrorMap });
  const issues: TSpecIssue[] = [
    ...(parsed.success ? [] : issuesFromZod(parsed.error.issues, OrganizationSpecSchema, input)),
    ...checkSpecSemantics(input),
  ];
  const seen = new Set<string>();
  for (const issue of issues) {
    const { line, col } = locatePath(doc, lineCounter, issue.path, issue.target);
    const error: TSpecError = { file: fileName, line, col, path: formatPath(issue.path), message: issue.message };
    // The schema and the semantic checks both report a missing maintenance window; say it once.
    const key = `${error.path}\n${error.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    errors.push(error);
  }
  if (errors.length > 0 || !parsed.success) return { ok: false, errors: errors.sort(byPosition) };
  return { ok: true, spec: parsed.data, digest: specDigest(parsed.data) };
}

/** Reads and loads a spec file. I/O failures (a missing file) reject; they are not spec errors. */
export async function loadSpecFile(path: string): Promise<TSpecLoadResult> {
  return loadSpecText(await readFile(path, "utf8"), path);
}
