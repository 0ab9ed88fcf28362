// Each cross-field check, failing and passing, on variants of the Northwind example.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { parseDocument } from "yaml";
import type { Document } from "yaml";
import { formatSpecError, loadSpecText } from "./spec-loader.js";
import type { TSpecLoadResult } from "./spec-loader.js";

const exampleText = readFileSync(
  fileURLToPath(new URL("../../examples/northwind-health.yaml", import.meta.url)),
  "utf8",
);

function loadVariant(change: (doc: Document) => void): TSpecLoadResult {
  const doc = parseDocument(exampleText);
  change(doc);
  return loadSpecText(doc.toString(), "variant.yaml");
}

/** The variant's errors as "path  message". */
function errors(change: (doc: Document) => void): string[] {
  const result = loadVariant(change);
  return result.ok ? [] : result.errors.map((error) => `${error.path}  ${error.message}`);
}

function assertClean(change: (doc: Document) => void): void {
  const result = loadVariant(change);
  assert.ok(result.ok, result.ok ? "" : result.errors.map(formatSpecError).join("\n"));
}

const PROD = ["environments", 0] as const;
const STAGING = ["environments", 1] as const;
const TRAINING = ["environments", 2] as const;
const slot = (day: string, start: string, durationMinutes: number) => ({ day, start, durationMinutes });

void describe("names", () => {
  void it("rejects duplicate environment, entity and backup repository names", () => {
    assert.deepEqual(
      errors((doc) => doc.setIn([...TRAINING, "name"], "prod")),
      ['environments[2].name  environment name "prod" is already used by environments[0]'],
    );
    assert.deepEqual(
      errors((doc) => doc.setIn(["entities", 2, "name"], "lakeside-clinic")),
      ['entities[2].name  entity name "lakeside-clinic" is already used by entities[1]'],
    );
    assert.deepEqual(
      errors((doc) => doc.setIn(["backupRepositories", 1, "name"], "local")),
      // The renamed repository is no longer there for prod to reference.
      [
        'backupRepositories[1].name  backup repository name "local" is already used by backupRepositories[0]',
        'environments[0].backup.repositories[1]  backup repository "offsite" is not declared in backupRepositories (declared: local)',
      ],
    );
  });

  void it("refuses environment names that are PostgreSQL's own databases, saying why", () => {
    for (const name of ["postgres", "template0", "template1"]) {
      const found = errors((doc) => doc.setIn([...TRAINING, "name"], name));
      assert.ok(
        found.some((line) =>
          line.startsWith(
            `environments[2].name  environment name "${name}" is reserved: an environment's database takes its name`,
          ),
        ),
        found.join("\n"),
      );
    }
    assertClean((doc) => doc.setIn([...TRAINING, "name"], "postgres-training"));
  });

  void it("refuses organization names that are carehost's own directories in its data dir, saying why", () => {
    for (const name of [
      "state",
      "final-backups",
      "runtime",
      "gitops",
      "cache",
      "cli-token",
      "admin-password",
      "work",
    ]) {
      const found = errors((doc) => doc.setIn(["metadata", "name"], name));
      assert.equal(found.length, 1, found.join("\n"));
      assert.match(
        found[0]!,
        new RegExp(
          `^metadata\\.name {2}organization name "${name}" is reserved: carehost's data dir keeps .+; choose another name$`,
        ),
      );
    }
    assert.match(errors((doc) => doc.setIn(["metadata", "name"], "state"))[0]!, /control-plane database/);
    assertClean((doc) => doc.setIn(["metadata", "name"], "state-hospital"));
  });

  void it("refuses credentials in every other URL of the spec (OIDC issuer, object-store endpoints), pointing to the secret store", () => {
    const url = "https://svc:s3cr3t-pass@blob.example.org/";
    const cases: [readonly (string | number)[], string, string][] = [
      [["identity", "oidc"], "identity.oidc.issuer", "clientSecretRef"],
      [["backupRepositories", 1], "backupRepositories[1].endpoint", "keySecretRef"],
    ];
    for (const [at, path, reference] of cases) {
      const found = errors((doc) => doc.setIn([...at, at[0] === "identity" ? "issuer" : "endpoint"], url));
      assert.equal(found.length, 1, found.join("\n"));
      assert.ok(found[0]!.startsWith(`${path}  carries credentials in the URL`), found[0]);
      assert.match(found[0]!, new RegExp(`carehost's secret store .*named by ${reference}`));
      assert.ok(!found[0]!.includes("s3cr3t"), found[0]);
    }
    // Not https and with a password: the message names the scheme problem without repeating the password.
    const plain = errors((doc) =>
      doc.setIn(["backupRepositories", 1, "endpoint"], "http://svc:s3cr3t-pass@blob.example.org/"),
    );
    assert.ok(plain.length > 0 && plain.every((line) => !line.includes("s3cr3t")), plain.join("\n"));
    const git = errors((doc) =>
      doc.setIn([...PROD, "odoo", "customAddons", "repository"], "http://deploy:s3cr3t-pass@git.example.org/a.git"),
    );
    assert.ok(git.length > 0 && git.every((line) => !line.includes("s3cr3t")), git.join("\n"));
  });

  void it("refuses credentials in Git URLs (custom addons, GitOps) without repeating them", () => {
    for (const url of [
      "https://deploy:s3cr3t-pass@git.example.org/addons.git",
      "https://ghp_T0kenT0kenT0ken@github.com/northwind/addons.git",
      "ssh://git:s3cr3t-pass@git.example.org/addons.git",
    ]) {
      const found = errors((doc) => doc.setIn([...PROD, "odoo", "customAddons", "repository"], url));
      assert.equal(found.length, 1, found.join("\n"));
      assert.match(found[0]!, /^environments\[0\]\.odoo\.customAddons\.repository {2}carries credentials in the URL/);
      assert.ok(!found[0]!.includes("s3cr3t") && !found[0]!.includes("T0ken"), found[0]);
      const gitops = errors((doc) => doc.set("gitops", { repository: url }));
      assert.match(gitops.join("\n"), /^gitops\.repository {2}carries credentials in the URL/);
    }
    assertClean((doc) =>
      doc.setIn([...PROD, "odoo", "customAddons", "repository"], "ssh://git@git.example.org/northwind/addons.git"),
    );
    assertClean((doc) => doc.set("gitops", { repository: "https://git.example.org/northwind/deploy.git" }));
  });

  void it("rejects a host name used by two environments, whatever its case", () => {
    assert.deepEqual(
      errors((doc) =>
        doc.setIn(
          [...TRAINING, "ingress", "hostnames"],
          ["erp-training.northwind-health.example", "erp.northwind-health.example"],
        ),
      ),
      [
        'environments[2].ingress.hostnames[1]  host name "erp.northwind-health.example" is already used by environments[0] (prod)',
      ],
    );
    assertClean((doc) =>
      doc.setIn(
        [...TRAINING, "ingress", "hostnames"],
        ["erp-training.northwind-health.example", "learn.northwind-health.example"],
      ),
    );
  });
});

void describe("references", () => {
  void it("rejects an unknown entity, listing the declared ones", () => {
    assert.deepEqual(
      errors((doc) => doc.setIn([...STAGING, "entity"], "northwind")),
      [
        'environments[1].entity  entity "northwind" is not declared in entities (declared: northwind-general, lakeside-clinic, riverside-clinic)',
      ],
    );
    assertClean((doc) => doc.setIn([...STAGING, "entity"], "riverside-clinic"));
  });

  void it("rejects an unknown or looping entity parent", () => {
    assert.deepEqual(
      errors((doc) => doc.setIn(["entities", 1, "parent"], "northwind")),
      [
        'entities[1].parent  parent "northwind" is not an entity (declared: northwind-general, lakeside-clinic, riverside-clinic)',
      ],
    );
    assert.deepEqual(
      errors((doc) => doc.setIn(["entities", 0, "parent"], "lakeside-clinic")),
      [
        'entities[0].parent  entity "northwind-general" is its own ancestor (northwind-general -> lakeside-clinic -> northwind-general)',
        'entities[1].parent  entity "lakeside-clinic" is its own ancestor (lakeside-clinic -> northwind-general -> lakeside-clinic)',
      ],
    );
  });

  void it("rejects unknown and repeated backup repositories", () => {
    assert.deepEqual(
      errors((doc) => doc.setIn([...PROD, "backup", "repositories"], ["local", "azure-offsite"])),
      [
        'environments[0].backup.repositories[1]  backup repository "azure-offsite" is not declared in backupRepositories (declared: local, offsite)',
      ],
    );
    assert.deepEqual(
      errors((doc) => doc.setIn([...PROD, "backup", "repositories"], ["local", "local"])),
      ['environments[0].backup.repositories[1]  backup repository "local" is listed twice'],
    );
    assertClean((doc) => doc.setIn([...STAGING, "backup", "repositories"], ["offsite"]));
  });

  void it("rejects a copyFrom that is unknown, the environment itself, or on a production environment", () => {
    assert.deepEqual(
      errors((doc) => doc.setIn([...STAGING, "dataSource", "copyFrom"], "production")),
      [
        'environments[1].dataSource.copyFrom  copyFrom "production" is not an environment (declared: prod, staging, training)',
      ],
    );
    assert.deepEqual(
      errors((doc) => doc.setIn([...STAGING, "dataSource", "copyFrom"], "staging")),
      ['environments[1].dataSource.copyFrom  environment "staging" cannot copy its data from itself'],
    );
    assert.deepEqual(
      errors((doc) => doc.setIn([...PROD, "dataSource"], { copyFrom: "staging" })),
      [
        "environments[0].dataSource  dataSource is for non-production copies; a production environment's data is its own",
      ],
    );
    assertClean((doc) => doc.setIn([...TRAINING, "dataSource"], { copyFrom: "staging", deidentify: true }));
  });

  void it("still checks references when another part of the spec is invalid", () => {
    assert.deepEqual(
      errors((doc) => {
        doc.setIn([...PROD, "odoo", "workers"], -1);
        doc.setIn([...TRAINING, "entity"], "nowhere");
      }),
      [
        "environments[0].odoo.workers  -1 is below the minimum of 0",
        'environments[2].entity  entity "nowhere" is not declared in entities (declared: northwind-general, lakeside-clinic, riverside-clinic)',
      ],
    );
  });
});

void describe("maintenance windows", () => {
  const prodSlots = [...PROD, "maintenanceWindow", "slots"];

  void it("rejects a start that is not a time of day, a duration of zero or over a week, and an unknown time zone", () => {
    assert.deepEqual(
      errors((doc) => doc.setIn([...prodSlots, 0, "start"], "24:00")),
      ['environments[0].maintenanceWindow.slots[0].start  "24:00" is not a time of day HH:MM between 00:00 and 23:59'],
    );
    assert.deepEqual(
      errors((doc) => doc.setIn([...prodSlots, 0, "start"], "2:00")),
      ['environments[0].maintenanceWindow.slots[0].start  "2:00" is not a time of day HH:MM between 00:00 and 23:59'],
    );
    assert.deepEqual(
      errors((doc) => doc.setIn([...prodSlots, 0, "durationMinutes"], 0)),
      ["environments[0].maintenanceWindow.slots[0].durationMinutes  durationMinutes 0 must be at least 1"],
    );
    assert.deepEqual(
      errors((doc) => doc.setIn([...prodSlots, 0, "durationMinutes"], 10081)),
      [
        "environments[0].maintenanceWindow.slots[0].durationMinutes  durationMinutes 10081 is longer than a week (10080)",
      ],
    );
    assert.deepEqual(
      errors((doc) => doc.setIn([...PROD, "maintenanceWindow", "timeZone"], "EST5EDT-ish")),
      ['environments[0].maintenanceWindow.timeZone  "EST5EDT-ish" is not an IANA time zone (e.g. America/New_York)'],
    );
    assertClean((doc) => doc.setIn([...PROD, "maintenanceWindow", "timeZone"], "Europe/Zurich"));
    assertClean((doc) => doc.setIn([...prodSlots, 0, "durationMinutes"], 10080));
  });

  void it("rejects overlapping slots, including across midnight and the end of the week", () => {
    assert.deepEqual(
      errors((doc) => doc.setIn(prodSlots, [slot("sun", "02:00", 240), slot("sun", "05:59", 30)])),
      [
        "environments[0].maintenanceWindow.slots[1]  slot sun 05:59 for 30 min overlaps slots[0] (sun 02:00 for 240 min)",
      ],
    );
    assert.deepEqual(
      errors((doc) => doc.setIn(prodSlots, [slot("mon", "00:30", 60), slot("sun", "23:00", 120)])),
      [
        "environments[0].maintenanceWindow.slots[1]  slot sun 23:00 for 120 min overlaps slots[0] (mon 00:30 for 60 min)",
      ],
    );
    assert.deepEqual(
      errors((doc) => doc.setIn(["defaults", "maintenanceWindow", "slots", 0, "durationMinutes"], 3000)),
      ["defaults.maintenanceWindow.slots[1]  slot thu 19:00 for 180 min overlaps slots[0] (tue 19:00 for 3000 min)"],
    );
    // Back to back is not an overlap.
    assertClean((doc) =>
      doc.setIn(prodSlots, [slot("sun", "02:00", 240), slot("sun", "06:00", 60), slot("sat", "23:00", 180)]),
    );
  });

  void it("requires a window, or a default one", () => {
    assert.deepEqual(
      errors((doc) => doc.deleteIn(["defaults"])),
      [
        "environments[1]  no maintenanceWindow, and defaults.maintenanceWindow is not set",
        "environments[2]  no maintenanceWindow, and defaults.maintenanceWindow is not set",
      ],
    );
    assertClean((doc) => doc.deleteIn([...PROD, "maintenanceWindow"]));
  });
});

void describe("backups", () => {
  const prodBackup = [...PROD, "backup"];
  const stagingBackup = [...STAGING, "backup"];

  void it("rejects invalid cron expressions, naming them", () => {
    assert.deepEqual(
      errors((doc) => doc.setIn([...prodBackup, "schedule", "incremental"], "0 * * *")),
      [
        'environments[0].backup.schedule.incremental  "0 * * *" is not a valid cron expression: expected 5 fields (minute hour day-of-month month day-of-week), found 4',
      ],
    );
    assert.deepEqual(
      errors((doc) => doc.setIn([...prodBackup, "restoreDrill", "schedule"], "0 9 31 2 *")),
      [
        'environments[0].backup.restoreDrill.schedule  "0 9 31 2 *" is not a valid cron expression: never fires: none of the listed days occurs in the listed months',
      ],
    );
  });

  void it("rejects an RPO looser than the longest gap between scheduled backups, and accepts one equal to it", () => {
    // Without the hourly incrementals, prod backs up daily.
    assert.deepEqual(
      errors((doc) => doc.setIn([...prodBackup, "rpoMinutes"], 61)),
      [
        "environments[0].backup.rpoMinutes  rpoMinutes 61 is looser than the backup schedule, which takes a backup at least every 60 minutes (1 h); declare at most 60",
      ],
    );
    assertClean((doc) => doc.setIn([...prodBackup, "rpoMinutes"], 60));
    assertClean((doc) => {
      doc.deleteIn([...prodBackup, "schedule", "incremental"]);
      doc.setIn([...prodBackup, "rpoMinutes"], 1440);
    });
    // An RPO tighter than the schedule is what WAL archiving is for.
    assertClean((doc) => doc.setIn([...stagingBackup, "rpoMinutes"], 5));
  });

  void it("rejects retention shorter than the longest gap between backups", () => {
    // Weekly backups kept for seven days: the old one expires just as the new one is taken.
    assertClean((doc) => {
      doc.setIn([...stagingBackup, "schedule", "full"], "30 7 * * sun");
      doc.setIn([...stagingBackup, "rpoMinutes"], 60);
    });
    assert.deepEqual(
      errors((doc) => {
        doc.setIn([...stagingBackup, "schedule", "full"], "30 7 1 * *");
        doc.setIn([...stagingBackup, "rpoMinutes"], 60);
      }),
      [
        "environments[1].backup.retention  retention keeps backups for 7 days, but scheduled backups are up to 31 days apart: the newest backup could expire before the next one exists",
      ],
    );
    assertClean((doc) => {
      doc.setIn([...stagingBackup, "schedule", "full"], "30 7 1 * *");
      doc.setIn([...stagingBackup, "retention", "monthly"], 1);
    });
  });

  void it("rejects an RTO under five minutes", () => {
    assert.deepEqual(
      errors((doc) => doc.setIn([...prodBackup, "rtoMinutes"], 4)),
      [
        "environments[0].backup.rtoMinutes  rtoMinutes 4 is not achievable: a restore takes at least 5 minutes to run and verify",
      ],
    );
    assertClean((doc) => doc.setIn([...prodBackup, "rtoMinutes"], 5));
  });

  void it("rejects objectives on a disabled backup", () => {
    assert.deepEqual(
      errors((doc) => doc.setIn([...TRAINING, "backup", "rpoMinutes"], 60)),
      [
        'environments[2].backup.rpoMinutes  "rpoMinutes" is not allowed: backup is disabled; remove it, or set enabled: true (an objective without backups cannot be met)',
      ],
    );
    assert.deepEqual(
      errors((doc) => doc.deleteIn([...TRAINING, "backup", "enabled"])),
      ['environments[2].backup.enabled  missing required key "enabled"'],
    );
  });

  void it("leaves policy alone: production PHI without backups is valid as a spec", () => {
    assertClean((doc) => doc.setIn(prodBackup, { enabled: false }));
  });
});

void describe("identity", () => {
  void it("rejects a spec nobody could sign in to", () => {
    assert.deepEqual(
      errors((doc) => doc.deleteIn(["identity", "oidc"])),
      [
        "identity.localUsersAllowed  nobody could sign in: localUsersAllowed is false and no oidc provider is configured",
      ],
    );
    assertClean((doc) => {
      doc.deleteIn(["identity", "oidc"]);
      doc.setIn(["identity", "localUsersAllowed"], true);
    });
  });
});
