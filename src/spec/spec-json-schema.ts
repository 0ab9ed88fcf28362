// The JSON Schema of carehost.yaml, generated from the zod schema so the two cannot disagree.
// Editors read it (yaml-language-server via the `# yaml-language-server: $schema=` modeline) for
// completion, hover text from the .describe() strings, and early red squiggles. Checks the JSON
// Schema cannot express (time zones, CIDRs, cron, cross-references) stay with `carehost validate`.
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { OrganizationSpecSchema } from "./spec-schema.js";

export const SPEC_JSON_SCHEMA_ID = "https://carehost.io/schemas/v1/carehost.schema.json";
/** Where the committed copy lives (the repository's schema/ folder). */
export const SPEC_JSON_SCHEMA_PATH = fileURLToPath(new URL("../../schema/carehost.schema.json", import.meta.url));

export function specJsonSchema(): Record<string, unknown> {
  // draft-07 because it is what yaml-language-server and most editors support best.
  // io "input": describe what people write (defaults optional), not what the parser returns.
  const { $schema, ...generated } = z.toJSONSchema(OrganizationSpecSchema, { io: "input", target: "draft-07" });
  return {
    $schema,
    $id: SPEC_JSON_SCHEMA_ID,
    title: "carehost organization spec (carehost.yaml)",
    description:
      "An organization's Odoo environments, backups, maintenance windows and sign-in, as carehost hosts them.",
    ...generated,
  };
}

/** The schema file's exact contents: 2-space JSON with a trailing newline, byte-identical on every run. */
export function specJsonSchemaText(): string {
  return `${JSON.stringify(specJsonSchema(), null, 2)}\n`;
}
