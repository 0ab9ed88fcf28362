// `plan` on real clusters: a change the file proposes is shown as a change (its fields, the
// rendered files' diffs, what reconcile restarts) and never as drift; a hand edit of the running
// systems is drift whatever the file proposes; and apply then does what the plan said it would.
import assert from "node:assert/strict";
import { appendFile, readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createAuditHarness } from "../../test/audit-fixtures.js";
import type { TAuditHarness } from "../../test/audit-fixtures.js";
import { clusterClients, createRuntimeHarness } from "../../test/runtime-fixtures.js";
import type { TRuntimeHarness } from "../../test/runtime-fixtures.js";
import { testDatabaseFactories } from "../../test/test-databases.js";
import { systemContext } from "../lib/request-context.js";
import { POLICY_CATALOG } from "../policy/policy-catalog.js";
import { evaluatePolicy } from "../policy/policy-engine.js";
import { offlineVerdict } from "../policy/policy-offline.js";
import type { TArtifactSubject } from "../policy/policy-types.js";
import { statementAuditFor } from "../runtime/local/local-postgres.js";
import { localArtifactSubjects } from "../runtime/local/local-render-offline.js";
import { clusterDirectory, secretNames } from "../runtime/local/local-placement.js";
import { parsePostgresqlConf, RESTART_SETTINGS } from "../runtime/local/postgres-config.js";
import { loadSpecText } from "../spec/spec-loader.js";
import type { TOrganizationSpec } from "../spec/spec-schema.js";
import { formatRuntimePlan } from "./environment-plan.js";
import type { TEnvironmentService } from "./environment-service.js";
import { PolicyViolation } from "../lib/errors.js";
import { createGovernedServices, INSIDE_PROD_WINDOW, userContext } from "../../test/change-fixtures.js";
import type { TGovernedServices } from "../../test/change-fixtures.js";

const ctx = systemContext("test");
const org = "northwind-health";
// prod's workers are a standard change here, but a change that restarts production never is.
const STANDARD_WORKERS = `
changeManagement:
  standardChanges:
    - environments: non-production
    - environment: prod
      fields: [odoo.workers]
`;

void describe("plan on real clusters: the change against the applied revision, drift against the running systems", () => {
  let runtime: TRuntimeHarness;
  let audit: TAuditHarness;
  let service: TEnvironmentService;
  let governed: TGovernedServices;
  let demo: string;
  let changed: string;
  let spec: TOrganizationSpec;
  const clients = clusterClients(() => runtime, org, "dedicated-prod");

  before(async () => {
    runtime = await createRuntimeHarness();
    audit = await createAuditHarness(testDatabaseFactories.pglite);
    governed = createGovernedServices(audit, {
      runtime: runtime.runtime,
      now: () => INSIDE_PROD_WINDOW,
      policyNow: () => new Date(),
    });
    service = governed.environments;
    demo = `${await readFile("examples/northwind-health.yaml", "utf8")}${STANDARD_WORKERS}`;
    changed = demo.replace(/workers: 9\b/, "workers: 11");
    assert.notEqual(changed, demo);
    const loaded = loadSpecText(demo, "northwind-health.yaml");
    assert.ok(loaded.ok);
    spec = loaded.spec;
    const applied = await service.apply(ctx, { source: demo, fileName: "northwind-health.yaml" });
    assert.equal(applied.revisionId, 1);
  });
  after(async () => {
    await runtime.close([spec]);
    await audit.dispose();
  });

  const plan = (source: string) => service.plan(ctx, { source, fileName: "northwind-health.yaml" });
  const prodPort = async () =>
    (await runtime.runtime.observe(spec)).environments.find((item) => item.environment === "prod")!.postgres.port!;

  void it("shows nothing to change and no drift for the applied spec", async () => {
    const unchanged = await plan(demo);
    assert.ok(unchanged.changes.every((change) => change.action === "unchanged"));
    assert.deepEqual(unchanged.artifacts, []);
    assert.deepEqual(unchanged.effects, []);
    assert.deepEqual(unchanged.drift, []);
    assert.equal(unchanged.appliedRevisionId, 1);
  });

  void it("shows odoo.workers 9 → 11 as a change with its files' diffs and the restart it causes, and no drift", async () => {
    const result = await plan(changed);
    const prod = result.changes.find((change) => change.name === "prod");
    assert.ok(prod?.action === "change");
    assert.deepEqual(
      prod.fields.map((field) => [field.path, field.before, field.after]),
      [["odoo.workers", 9, 11]],
    );
    assert.deepEqual(result.drift, [], "a change the file proposes is not drift");

    // (9 + 2 + 2) × 8 + 5 = 109 connections for prod's role, 125 with 11 workers; the cluster admits that plus 10.
    assert.deepEqual(
      result.artifacts.map((artifact) => [artifact.change, `${artifact.target}/${artifact.file}`]),
      [
        ["changed", "environment/prod/odoo.conf"],
        ["changed", "postgres/dedicated-prod/postgresql.conf"],
      ],
    );
    const [odooConf, postgresqlConf] = result.artifacts;
    assert.match(
      odooConf!.diff,
      /^--- a\/environment\/prod\/odoo\.conf\n\+\+\+ b\/environment\/prod\/odoo\.conf\n@@ -\d+,\d+ \+\d+,\d+ @@\n/,
    );
    assert.match(odooConf!.diff, /^-workers = 9\n\+workers = 11$/m);
    assert.match(postgresqlConf!.diff, /^-max_connections = 119\n\+max_connections = 135$/m);
    for (const artifact of result.artifacts) {
      assert.equal(
        artifact.diff.split("\n").filter((line) => /^[-+][^-+]/.test(line)).length,
        2,
        `only the changed line in ${artifact.file}:\n${artifact.diff}`,
      );
    }
    // The master password's hash is never part of a plan, not even as context of a diff.
    const shown = JSON.stringify(result);
    assert.ok(
      !shown.includes(await runtime.secrets.current(secretNames.odooMasterPasswordHash(org, "prod"))),
      "the master password's hash reached the plan",
    );
    const rendered = (await runtime.runtime.render(spec)).files.find(
      (file) => file.target === "environment/prod" && file.file === "odoo.conf",
    );
    assert.match(rendered?.content ?? "", /^admin_passwd = \(pbkdf2-sha512 hash of the master password, not shown\)$/m);
    for (const value of await runtime.secretValues()) assert.ok(!shown.includes(value), "a secret reached the plan");

    assert.deepEqual(
      result.effects.map((effect) => effect.line),
      [
        "writes prod's odoo.conf: workers (no Odoo runs on this host, so nothing restarts here)",
        "restarts prod's PostgreSQL: max_connections",
        "alters role odoo_prod of prod: connection limit 109 → 125 (no restart)",
      ],
    );
    const restart = result.effects.find((effect) => effect.action === "restart");
    assert.deepEqual(
      {
        target: restart?.target,
        environments: restart?.environments,
        component: restart?.component,
        reasons: restart?.reasons,
      },
      {
        target: "postgres/dedicated-prod",
        environments: ["prod"],
        component: "postgresql",
        reasons: ["max_connections"],
      },
    );
    const text = formatRuntimePlan(result);
    assert.match(text, /^Rendered files that change \(applied revision 1 → this file\):$/m);
    assert.match(text, /^ {2}restarts prod's PostgreSQL: max_connections$/m);
    assert.match(text, /^No drift: the running systems match applied revision 1\.$/m);
    assert.doesNotMatch(text, /Drift on the running systems/);
  });

  void it("restarts for exactly the settings pg_settings gives the postmaster context", async () => {
    const admin = await clients.admin(await prodPort());
    try {
      const rendered = parsePostgresqlConf(
        await readFile(join(clusterDirectory(runtime.root, org, "dedicated-prod"), "data", "postgresql.conf"), "utf8"),
      );
      const { rows } = await admin.query<{ name: string; context: string }>(
        "SELECT name, context FROM pg_settings WHERE name = ANY($1)",
        [Object.keys(rendered)],
      );
      assert.equal(rows.length, Object.keys(rendered).length, "every setting carehost writes is one PostgreSQL knows");
      assert.deepEqual(
        rows
          .filter((row) => row.context === "postmaster")
          .map((row) => row.name)
          .sort(),
        [...RESTART_SETTINGS].filter((name) => name in rendered).sort(),
      );
    } finally {
      await admin.end();
    }
  });

  void it("validate's offline render gives every artifact control the result the files reconcile wrote give", async () => {
    const artifactControls = POLICY_CATALOG.filter((control) => control.subject === "artifact");
    const resultsOf = (artifact: readonly TArtifactSubject[]) =>
      evaluatePolicy({ controls: artifactControls, subjects: { artifact }, now: new Date() }).results.map((result) => [
        result.environment,
        result.controlId,
        result.status,
        result.messages,
      ]);
    const onHost = resultsOf((await runtime.runtime.observe(spec)).subjects.artifact);
    assert.equal(onHost.length, artifactControls.length * spec.environments.length);
    // This host's choice of statement audit, as reconcile made it (pgaudit when its package is installed).
    const offline = localArtifactSubjects(spec, {
      statementAudit: (await statementAuditFor(15)) === "pgaudit" ? "pgaudit" : "log-statement-all",
    });
    assert.deepEqual(resultsOf(offline), onHost);
    // The same files, setting by setting, but for what only a host knows: its ports, paths and the master password's hash.
    const hostOnly =
      /^(port|tls-port|db_port|ssl_(cert|key|ca)_file|unix_socket_directories|archive_command|data_dir|tls-(cert|key|ca-cert)-file|aclfile|pidfile|logfile|dir|admin_passwd)$/;
    const comparable = (artifact: readonly TArtifactSubject[]) =>
      artifact.map(({ environment, artifacts }) => ({
        environment: environment.name,
        pgHba: artifacts.pgHba,
        ingress: artifacts.ingress,
        ...Object.fromEntries(
          (["postgresqlConf", "redisConf", "odooConf"] as const).map((kind) => [
            kind,
            Object.entries(artifacts[kind] ?? {}).filter(([key]) => !hostOnly.test(key)),
          ]),
        ),
      }));
    assert.deepEqual(comparable(offline), comparable((await runtime.runtime.observe(spec)).subjects.artifact));
    assert.deepEqual(offlineVerdict(spec).mandatoryViolations, []);
  });

  void it("still shows a hand edit as drift while a change is proposed, and apply does what the plan said", async () => {
    const admin = await clients.admin(await prodPort());
    try {
      await admin.query("ALTER SYSTEM SET work_mem = '64MB'");
      await admin.query("SELECT pg_reload_conf()");
    } finally {
      await admin.end();
    }
    await appendFile(
      join(clusterDirectory(runtime.root, org, "shared"), "data", "postgresql.conf"),
      "work_mem = '1GB'\n",
    );

    const result = await plan(changed);
    assert.deepEqual(result.drift.map((item) => [item.environment, item.target, item.field, item.actual]).sort(), [
      ["prod", "postgres/dedicated-prod", "ALTER SYSTEM work_mem", "overrides postgresql.conf"],
      ["staging", "postgres/shared", "postgresql.conf", "edited by hand"],
      ["training", "postgres/shared", "postgresql.conf", "edited by hand"],
    ]);
    // The change is the same as without the hand edits: renders are compared, not the files on disk.
    assert.deepEqual(
      result.artifacts.map((artifact) => `${artifact.target}/${artifact.file}`),
      ["environment/prod/odoo.conf", "postgres/dedicated-prod/postgresql.conf"],
    );
    assert.ok(result.effects.some((effect) => effect.line === "restarts prod's PostgreSQL: max_connections"));
    assert.match(
      formatRuntimePlan(result),
      /^Drift on the running systems against applied revision 1 \(apply corrects it\):\n {2}~ prod {2}postgres\/dedicated-prod {2}ALTER SYSTEM work_mem: overrides postgresql\.conf \(expected not set\)$/m,
    );

    // Listed as standard, yet it restarts prod's PostgreSQL: carehost apply refuses it, and says why.
    await assert.rejects(
      service.apply(ctx, { source: changed, fileName: "northwind-health.yaml" }),
      (error: unknown) => {
        assert.ok(error instanceof PolicyViolation, String(error));
        assert.match(error.message, /^this change to production prod needs approval: carehost change create/);
        assert.deepEqual(
          error.details.map((detail) => detail.message),
          [
            "restarts prod's PostgreSQL: max_connections: a change that restarts production waits for its maintenance window",
          ],
        );
        return true;
      },
    );
    const { request } = await governed.changes.create(userContext("alice", "operator"), {
      source: changed,
      fileName: "northwind-health.yaml",
      reason: "flu season",
    });
    assert.deepEqual(request.assessment.productionRestarts, ["restarts prod's PostgreSQL: max_connections"]);
    assert.deepEqual(
      request.plan.artifacts.map((artifact) => `${artifact.target}/${artifact.file}`),
      ["environment/prod/odoo.conf", "postgres/dedicated-prod/postgresql.conf"],
      "the change request holds the rendered files' diffs plan showed",
    );
    for (const approver of ["bob", "dana"])
      await governed.changes.approve(userContext(approver, "approver"), request.id);
    const outcome = await governed.changes.apply(userContext("alice", "operator"), request.id);
    const applied = outcome.applied!;
    assert.equal(applied.revisionId, 2);
    assert.deepEqual(applied.changeRequest, { id: request.id, kind: "normal" });
    const actions = applied.runtime.map((action) => `${action.target}: ${action.action}`);
    assert.ok(actions.includes("postgres/dedicated-prod: restarted to apply max_connections"), actions.join("\n"));
    assert.ok(
      actions.some((action) =>
        action.startsWith("environment/prod: corrected role odoo_prod (role.connectionLimit: 109 → 125)"),
      ),
      actions.join("\n"),
    );
    const after = await plan(changed);
    assert.deepEqual([after.artifacts, after.effects, after.drift], [[], [], []]);
    assert.equal(after.appliedRevisionId, 2);
  });
});
