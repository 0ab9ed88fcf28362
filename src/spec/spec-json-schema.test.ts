import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { SPEC_JSON_SCHEMA_ID, SPEC_JSON_SCHEMA_PATH, specJsonSchema, specJsonSchemaText } from "./spec-json-schema.js";

void describe("spec JSON Schema", () => {
  void it("committed schema/carehost.schema.json is up to date (regenerate with npm run schema)", () => {
    assert.equal(readFileSync(SPEC_JSON_SCHEMA_PATH, "utf8"), specJsonSchemaText());
  });

  void it("is deterministic, 2-space indented, with a trailing newline", () => {
    const text = specJsonSchemaText();
    assert.equal(specJsonSchemaText(), text);
    assert.ok(text.endsWith("}\n"));
    assert.ok(text.startsWith('{\n  "$schema": "http://json-schema.org/draft-07/schema#",\n  "$id": '));
  });

  void it("carries $id, title, strictness, defaults and descriptions for editors", () => {
    const schema = specJsonSchema() as {
      $id: string;
      title: string;
      additionalProperties: boolean;
      required: string[];
      properties: Record<
        string,
        { description?: string; properties?: Record<string, { default?: unknown; description?: string }> }
      >;
    };
    assert.equal(schema.$id, SPEC_JSON_SCHEMA_ID);
    assert.match(schema.title, /carehost/);
    assert.equal(schema.additionalProperties, false);
    assert.deepEqual(schema.required, ["apiVersion", "kind", "metadata", "entities", "identity", "environments"]);
    const identity = schema.properties.identity?.properties;
    assert.equal(identity?.mfaRequired?.default, true);
    assert.equal(identity?.sessionIdleTimeoutMinutes?.default, 15);
    assert.match(identity?.sessionIdleTimeoutMinutes?.description ?? "", /logoff/);
    assert.equal(identity?.sessionMaxHours?.default, 12);
    assert.match(identity?.sessionMaxHours?.description ?? "", /hours after sign-in however active/);
    for (const [key, property] of Object.entries(schema.properties))
      assert.ok(property.description, `${key} has no description`);
  });
});
