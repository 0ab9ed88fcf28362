import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { dumpArguments, loadArguments, parallelJobs, swapNamesOf } from "./postgres-database-move.js";
import type { TAdminAccess } from "./postgres-database-move.js";

const access: TAdminAccess = {
  cluster: {
    name: "shared",
    directory: "/srv/carehost/runtime/acme/postgres/shared",
    port: 54321,
    version: 15,
    owner: undefined,
  },
  adminPassword: "s3cret-admin-password",
  caPem: "-----BEGIN CERTIFICATE-----",
  caPath: "/srv/carehost/runtime/acme/ca.crt",
};

void describe("database move: pg_dump and pg_restore arguments", () => {
  void it("keeps the admin password out of argv and passes every value as one argument", () => {
    const hostile = "odoo_x; DROP DATABASE prod --";
    const dump = dumpArguments(access, "staging", "/tmp/dump dir", 2);
    const load = loadArguments(access, "staging__restoring", hostile, "/tmp/dump dir", 2);
    for (const args of [dump, load]) assert.ok(!args.some((arg) => arg.includes(access.adminPassword)), args.join(" "));
    assert.ok(
      dump.includes("--file=/tmp/dump dir") &&
        dump.includes("--dbname=staging") &&
        dump.includes("--format=directory") &&
        dump.includes("--jobs=2"),
    );
    assert.ok(load.includes(`--role=${hostile}`), "the role is one argument, never split or interpreted");
    assert.equal(load.at(-1), "/tmp/dump dir");
    for (const flag of ["--no-owner", "--no-acl", "--exit-on-error", "--dbname=staging__restoring"])
      assert.ok(load.includes(flag), flag);
  });

  void it("works in parallel up to the host's cores, at least one job and at most eight", () => {
    assert.deepEqual(
      [0, 1, 2, 64].map((cores) => parallelJobs(cores)),
      [1, 1, 2, 8],
    );
  });

  void it("names the incoming and set-aside databases within PostgreSQL's 63 bytes for the longest environment name", () => {
    const longest = "a".repeat(40);
    const { incoming, outgoing } = swapNamesOf(longest);
    assert.deepEqual([incoming, outgoing], [`${longest}__restoring`, `${longest}__replaced`]);
    assert.ok(Math.max(incoming.length, outgoing.length) <= 63);
  });
});
