import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { isMap, isSeq, parseDocument, visit } from "yaml";
import { formatSpecError, loadSpecText } from "./spec-loader.js";
import type { TSpecError, TSpecLoadResult } from "./spec-loader.js";

// A small valid spec whose line numbers the tests below refer to.
const MINIMAL = `apiVersion: carehost.io/v1
kind: Organization
metadata:
  name: acme
  displayName: Acme Care
entities:
  - name: acme-hospital
    displayName: Acme Hospital
    kind: hospital
identity:
  localUsersAllowed: true
environments:
  - name: prod
    entity: acme-hospital
    tier: production
    dataClass: phi
    hosting: dedicated
    odoo:
      version: "18.0"
      image: odoo:18.0
      workers: 5
      cronWorkers: 1
      modules: [account, stock]
    database:
      postgresVersion: 17
      storageGi: 50
    redis:
      enabled: false
    backup:
      enabled: false
    maintenanceWindow:
      timeZone: Europe/Berlin
      slots:
        - { day: sat, start: "22:00", durationMinutes: 120 }
    ingress:
      hostnames: [erp.acme.example]
      allowedCidrs: [203.0.113.0/24]
`;

function load(text: string): TSpecLoadResult {
  return loadSpecText(text, "carehost.yaml");
}

function errorsOf(result: TSpecLoadResult): TSpecError[] {
  if (result.ok) throw new Error("expected the spec to be rejected, but it loaded");
  return result.errors;
}

/** Replaces the one line that equals `line` (after trimming) with `replacement`. */
function edit(line: string, replacement: string, text = MINIMAL): string {
  const lines = text.split("\n");
  const index = lines.findIndex((candidate) => candidate.trim() === line);
  assert.ok(index >= 0, `no line ${line}`);
  lines[index] = replacement;
  return lines.join("\n");
}

const brief = (errors: TSpecError[]) =>
  errors.map((error) => `${error.line}:${error.col} ${error.path} ${error.message}`);

void describe("loadSpecText", () => {
  void it("loads a valid spec and applies defaults", () => {
    const result = load(MINIMAL);
    assert.ok(result.ok, result.ok ? "" : result.errors.map(formatSpecError).join("\n"));
    assert.equal(result.spec.identity.mfaRequired, true);
    assert.equal(result.spec.identity.sessionIdleTimeoutMinutes, 15);
    assert.equal(result.spec.environments[0]?.database.highAvailability, false);
    assert.deepEqual(result.spec.backupRepositories, []);
  });

  void it("takes identity.sessionMaxHours from 1 to 24, 12 when left out, and names the field and value otherwise", () => {
    assert.equal(
      (load(MINIMAL) as { spec: { identity: { sessionMaxHours: number } } }).spec.identity.sessionMaxHours,
      12,
    );
    const eight = load(edit("localUsersAllowed: true", "  localUsersAllowed: true\n  sessionMaxHours: 8"));
    assert.ok(eight.ok && eight.spec.identity.sessionMaxHours === 8);
    for (const refused of ["25", "0", "1.5"]) {
      const errors = errorsOf(
        load(edit("localUsersAllowed: true", `  localUsersAllowed: true\n  sessionMaxHours: ${refused}`)),
      );
      assert.equal(errors.length, 1, refused);
      assert.equal(errors[0]?.path, "identity.sessionMaxHours", refused);
    }
  });

  void it("reports an unknown key at the key, with a suggestion when it looks like a typo", () => {
    const errors = errorsOf(load(edit("hosting: dedicated", "    hosting: dedicated\n    hostnmae: erp")));
    assert.deepEqual(brief(errors), ['18:5 environments[0].hostnmae unknown key "hostnmae"']);
    const typo = errorsOf(load(edit("storageGi: 50", "      storagegi: 50")));
    // A misspelt required key is one mistake, so one error (not "unknown" plus "missing").
    assert.deepEqual(brief(typo), [
      '26:7 environments[0].database.storagegi unknown key "storagegi" (did you mean "storageGi", which is required?)',
    ]);
  });

  void it("reports every unknown key, at every level", () => {
    let text = edit("kind: Organization", "kind: Organization\nlabels: {}");
    text = edit("name: acme", "  name: acme\n  namespace: x", text);
    const errors = errorsOf(load(text));
    assert.deepEqual(
      errors.map((error) => [error.line, error.path]),
      [
        [3, "labels"],
        [6, "metadata.namespace"],
      ],
    );
  });

  void it("reports a missing required key at the mapping that should hold it", () => {
    const errors = errorsOf(load(edit("workers: 5", "")));
    assert.deepEqual(brief(errors), ['18:5 environments[0].odoo.workers missing required key "workers"']);
  });

  void it("reports a wrong value at the value, naming it", () => {
    const errors = errorsOf(load(edit('version: "18.0"', '      version: "15.0"')));
    assert.deepEqual(brief(errors), [
      '19:16 environments[0].odoo.version "15.0" is not one of "16.0", "17.0", "18.0", "19.0"',
    ]);
    const typed = errorsOf(load(edit("workers: 5", "      workers: many")));
    assert.deepEqual(brief(typed), ['21:16 environments[0].odoo.workers expected a number, got "many"']);
  });

  void it("reports values inside flow collections at the value", () => {
    const errors = errorsOf(
      load(edit("allowedCidrs: [203.0.113.0/24]", "      allowedCidrs: [203.0.113.0/24, 203.0.113.7/24]")),
    );
    assert.deepEqual(brief(errors), [
      '37:38 environments[0].ingress.allowedCidrs[1] "203.0.113.7/24" has host bits set (the network is 203.0.113.0/24)',
    ]);
  });

  void it("reports all schema and semantic errors together, sorted by position", () => {
    let text = edit("tier: production", "    tier: prod");
    text = edit("entity: acme-hospital", "    entity: acme-clinic", text);
    text = edit(
      '- { day: sat, start: "22:00", durationMinutes: 120 }',
      '        - { day: sat, start: "22:00", durationMinutes: 120 }\n        - { day: sat, start: "23:00", durationMinutes: 10 }',
      text,
    );
    const errors = errorsOf(load(text));
    assert.deepEqual(
      errors.map((error) => error.path),
      ["environments[0].entity", "environments[0].tier", "environments[0].maintenanceWindow.slots[1]"],
    );
  });

  void it("reports YAML syntax errors and does not validate a tree it could not parse", () => {
    const errors = errorsOf(load(edit("modules: [account, stock]", "      modules: [account, stock")));
    assert.ok(errors.length >= 1);
    assert.ok(
      errors.every((error) => error.message.startsWith("YAML: ")),
      brief(errors).join("\n"),
    );
  });

  void it("reports duplicate keys, and validates the rest", () => {
    let text = edit("workers: 5", "      workers: 5\n      workers: 7");
    text = edit("tier: production", "    tier: prod", text);
    const errors = errorsOf(load(text));
    assert.deepEqual(brief(errors), [
      '15:11 environments[0].tier "prod" is not one of "production", "staging", "development", "training", "dr"',
      '22:7 environments[0].odoo.workers duplicate key "workers"',
    ]);
  });

  void it("reports an alias bomb instead of expanding it", () => {
    const bomb = [
      "a: &a [x, x, x, x, x, x, x, x, x, x]",
      ...Array.from(
        { length: 6 },
        (_, i) => `${"bcdefg"[i]}: &${"bcdefg"[i]} [${Array(10).fill(`*${"abcdef"[i]}`).join(", ")}]`,
      ),
    ].join("\n");
    const errors = errorsOf(load(bomb));
    assert.equal(errors.length, 1);
    assert.match(errors[0]?.message ?? "", /^YAML: .*alias/i);
  });

  void it("reports an empty document at line 1", () => {
    assert.deepEqual(brief(errorsOf(load(""))), ["1:1  expected a mapping, got an empty value"]);
  });

  void it("reports secrets by reference only: a value where a name belongs is rejected, and shown as written", () => {
    const text = `${MINIMAL}backupRepositories:\n  - { name: offsite, type: s3, bucket: acme-backups, region: us-east-1, keySecretRef: "AKIA/not a name" }\n`;
    assert.deepEqual(brief(errorsOf(load(text))), [
      `39:87 backupRepositories[0].keySecretRef "AKIA/not a name" is not a secret reference name (lowercase letters, digits, '.', '_', '-')`,
    ]);
  });
});

void describe("formatSpecError", () => {
  void it("prints file:line:col, path and message separated by two spaces", () => {
    const error: TSpecError = {
      file: "carehost.yaml",
      line: 12,
      col: 7,
      path: "environments[0].backup.rpoMinutes",
      message: "rpoMinutes 2880 is looser than the backup schedule",
    };
    assert.equal(
      formatSpecError(error),
      "carehost.yaml:12:7  environments[0].backup.rpoMinutes  rpoMinutes 2880 is looser than the backup schedule",
    );
    assert.equal(
      formatSpecError({ ...error, path: "" }),
      "carehost.yaml:12:7  (document)  rpoMinutes 2880 is looser than the backup schedule",
    );
  });
});

void describe("digest", () => {
  const exampleText = readFileSync(
    fileURLToPath(new URL("../../examples/northwind-health.yaml", import.meta.url)),
    "utf8",
  );
  const digestOf = (text: string) => {
    const result = load(text);
    assert.ok(result.ok, result.ok ? "" : result.errors.map(formatSpecError).join("\n"));
    return result.digest;
  };

  void it("does not change when keys are reordered, comments dropped or the layout changes", () => {
    const doc = parseDocument(exampleText);
    visit(doc, {
      Map(_key, node) {
        node.items.reverse();
      },
    });
    const reordered = doc.toString({ lineWidth: 0 });
    assert.notEqual(reordered, exampleText);
    assert.equal(digestOf(reordered), digestOf(exampleText));
    const flow = parseDocument(exampleText);
    visit(flow, {
      Node(_key, node) {
        if (isMap(node) || isSeq(node)) node.flow = true;
      },
    });
    assert.equal(digestOf(flow.toString()), digestOf(exampleText));
  });

  void it("changes when a value changes, and is the SHA-256 of the canonical JSON", () => {
    assert.notEqual(digestOf(exampleText.replace("rpoMinutes: 15", "rpoMinutes: 16")), digestOf(exampleText));
    assert.match(digestOf(exampleText), /^[0-9a-f]{64}$/);
  });
});
