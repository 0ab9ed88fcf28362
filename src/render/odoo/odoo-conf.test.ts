import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadSpecFile } from "../../spec/spec-loader.js";
import { ARTIFACT_CONTROLS } from "../../policy/policy-catalog-artifact.js";
import { evaluatePolicy } from "../../policy/policy-engine.js";
import { hashOdooAdminPassword, verifyOdooAdminPassword } from "./odoo-admin-password.js";
import { odooConnectionLimit, parseOdooConf, renderOdooConf } from "./odoo-conf.js";
import type { TOdooConfInput } from "./odoo-conf.js";

const demo = async () => {
  const loaded = await loadSpecFile("examples/northwind-health.yaml");
  assert.ok(loaded.ok);
  return loaded.spec;
};

const inputFor = async (overrides: Partial<TOdooConfInput> = {}): Promise<TOdooConfInput> => {
  const spec = await demo();
  const environment = spec.environments[0];
  assert.ok(environment);
  return {
    environment,
    database: { host: "127.0.0.1", port: 54321, name: "prod", user: "odoo_prod", sslRootCertPath: "/ca.crt" },
    adminPasswordHash: hashOdooAdminPassword("correct horse", Buffer.alloc(16, 7), 1000),
    dataDir: "/var/lib/odoo",
    addonsPaths: ["/opt/odoo/addons"],
    ...overrides,
  };
};

void describe("odoo.conf", () => {
  void it("is hardened: every odoo.conf control passes on the rendered file", async () => {
    const input = await inputFor();
    const options = parseOdooConf(renderOdooConf(input));
    assert.equal(options.list_db, "False");
    assert.equal(options.dbfilter, "^prod$");
    assert.equal(options.workers, "9");
    assert.equal(options.max_cron_threads, "2");
    assert.equal(options.db_password, undefined, "the database password never appears in odoo.conf");
    const report = evaluatePolicy({
      // CH-ODOO-003 reads the ingress, not odoo.conf.
      controls: ARTIFACT_CONTROLS.filter((control) => control.id.startsWith("CH-ODOO") && control.id !== "CH-ODOO-003"),
      subjects: { artifact: [{ environment: input.environment, artifacts: { odooConf: options } }] },
      now: new Date(),
    });
    assert.deepEqual(
      report.results.filter((result) => result.status === "fail").map((result) => result.messages),
      [],
    );
    assert.ok(report.summary.pass >= 5);
  });

  void it("is deterministic", async () => {
    const input = await inputFor();
    assert.equal(renderOdooConf(input), renderOdooConf(input));
  });

  void it("refuses a plain master password and names that look like injections", async () => {
    await assert.rejects(
      async () => renderOdooConf(await inputFor({ adminPasswordHash: "admin" })),
      /not a pbkdf2-sha512 hash/,
    );
    const input = await inputFor();
    assert.throws(
      () => renderOdooConf({ ...input, database: { ...input.database, name: "prod\nlist_db = True" } }),
      /database.name "prod\\nlist_db = True"/,
    );
  });

  void it("renders without admin_passwd when an entrypoint joins it from a secret file, and takes split-process overrides", async () => {
    const input = await inputFor({
      adminPasswordHash: { joinedAtStartFrom: "/run/secrets/odoo-admin-passwd-hash" },
      httpInterface: "0.0.0.0",
      workers: 4,
      maxCronThreads: 0,
    });
    const text = renderOdooConf(input);
    const options = parseOdooConf(text);
    assert.equal(options.admin_passwd, undefined);
    assert.match(text, /^; admin_passwd is appended at container start from \/run\/secrets\/odoo-admin-passwd-hash$/m);
    assert.equal(options.http_interface, "0.0.0.0");
    assert.equal(options.workers, "4");
    assert.equal(options.max_cron_threads, "0");
    assert.throws(
      () => renderOdooConf({ ...input, adminPasswordHash: { joinedAtStartFrom: "/run/x\nlist_db = True" } }),
      /joinedAtStartFrom "\/run\/x\\nlist_db = True"/,
    );
  });

  void it("sizes the role's connection limit from the workers", async () => {
    const input = await inputFor();
    assert.equal(odooConnectionLimit(input.environment), (9 + 2 + 2) * 8 + 5);
  });
});

void describe("Odoo master password hash", () => {
  void it("verifies the password it was made from and nothing else", () => {
    const hash = hashOdooAdminPassword("s3cret-master", undefined, 1000);
    assert.match(hash, /^\$pbkdf2-sha512\$1000\$[./A-Za-z0-9]{22}\$[./A-Za-z0-9]{86}$/);
    assert.ok(verifyOdooAdminPassword("s3cret-master", hash));
    assert.ok(!verifyOdooAdminPassword("s3cret-master!", hash));
  });

  void it("matches passlib's format for a known vector (salt and checksum in ab64)", () => {
    // pbkdf2_hmac('sha512', b'password', bytes(16), 1000) computed independently with Python's hashlib.
    const hash = hashOdooAdminPassword("password", Buffer.alloc(16), 1000);
    assert.equal(
      hash,
      "$pbkdf2-sha512$1000$AAAAAAAAAAAAAAAAAAAAAA$EESOu4DSyRTBWpf82FivmZXiTYfkULQLoZjh6nGOCGarHm1DTihjbaJZfqZDei58BEaIVyE3uYNg4YpxwXzdXg",
    );
  });
});
