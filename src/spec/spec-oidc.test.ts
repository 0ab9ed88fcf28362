// identity.oidc's group-to-role mappings: what a spec may say, the defaults, and each mistake as
// an error at its value naming what is wrong.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadSpecText } from "./spec-loader.js";
import type { TSpecLoadResult } from "./spec-loader.js";

const specWith = (oidc: string) => `apiVersion: carehost.io/v1
kind: Organization
metadata:
  name: acme
  displayName: Acme Care
entities:
  - name: acme-hospital
    displayName: Acme Hospital
    kind: hospital
identity:
  localUsersAllowed: false
  oidc:
    issuer: https://login.acme.example/realms/staff
    clientId: carehost
    allowedDomains: [acme.example]
${oidc}environments:
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

const brief = (result: TSpecLoadResult) =>
  result.ok ? [] : result.errors.map((error) => `${error.line}:${error.col} ${error.path} ${error.message}`);

void describe("identity.oidc role mappings", () => {
  void it("defaults to the groups claim and no mappings (nobody is admitted until a group is mapped)", () => {
    const result = loadSpecText(specWith(""), "carehost.yaml");
    assert.ok(result.ok, JSON.stringify(brief(result)));
    assert.equal(result.spec.identity.oidc?.groupsClaim, "groups");
    assert.deepEqual(result.spec.identity.oidc?.roleMappings, []);
  });

  void it("takes a claim name and groups mapped to roles, one group to several roles", () => {
    const result = loadSpecText(
      specWith(`    groupsClaim: roles
    roleMappings:
      - { group: carehost-operators, role: operator }
      - { group: carehost-leads, role: operator }
      - { group: carehost-leads, role: approver }
`),
      "carehost.yaml",
    );
    assert.ok(result.ok, JSON.stringify(brief(result)));
    assert.equal(result.spec.identity.oidc?.groupsClaim, "roles");
    assert.equal(result.spec.identity.oidc?.roleMappings.length, 3);
  });

  void it("refuses a role carehost does not have, an empty group and a claim name with spaces, each at its value", () => {
    const result = loadSpecText(
      specWith(`    groupsClaim: "my groups"
    roleMappings:
      - { group: carehost-operators, role: superuser }
      - { group: "", role: viewer }
`),
      "carehost.yaml",
    );
    assert.deepEqual(brief(result), [
      `16:18 identity.oidc.groupsClaim "my groups" is not a claim name (1-100 letters, digits, '_', ':', '.', '/', '-')`,
      '18:44 identity.oidc.roleMappings[0].role "superuser" is not one of platform-admin, operator, approver, auditor, viewer',
      "19:18 identity.oidc.roleMappings[1].group must not be empty",
    ]);
  });

  void it("refuses a group mapped to the same role twice, at the second mapping", () => {
    const result = loadSpecText(
      specWith(`    roleMappings:
      - { group: carehost-auditors, role: auditor }
      - { group: carehost-auditors, role: auditor }
`),
      "carehost.yaml",
    );
    assert.deepEqual(brief(result), [
      '18:9 identity.oidc.roleMappings[1] group "carehost-auditors" is mapped to role auditor twice',
    ]);
  });
});
