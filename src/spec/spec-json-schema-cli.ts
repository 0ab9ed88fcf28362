// Regenerates schema/carehost.schema.json (`npm run schema`). The file is committed so editors can
// reference it; spec-json-schema.test.ts fails when it is stale.
import { writeFile } from "node:fs/promises";
import { SPEC_JSON_SCHEMA_PATH, specJsonSchemaText } from "./spec-json-schema.js";

// An optional argument writes elsewhere (to diff against the committed file, for instance).
const target = process.argv[2] ?? SPEC_JSON_SCHEMA_PATH;
await writeFile(target, specJsonSchemaText(), "utf8");
console.log(`wrote ${target}`);
