import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ForbiddenError } from "../lib/errors.js";
import { roles, systemContext, type TActor, type TRequestContext, type TRole } from "../lib/request-context.js";
import {
  authorize,
  authorizeListing,
  authorizeOrganization,
  can,
  permissions,
  rolePermissions,
  scopeOf,
  type Permission,
} from "./identity-permissions.js";
import type { TAuditAppend } from "./identity-types.js";

const recordingAudit = () => {
  const events: { ctx: TRequestContext; event: Parameters<TAuditAppend>[1] }[] = [];
  const append: TAuditAppend = async (ctx, event) => {
    events.push({ ctx, event });
  };
  return { events, append };
};

const userActor = (role: TRole): TActor => ({
  kind: "user",
  userId: "u-1",
  username: `a-${role}`,
  role,
  bindings: [{ role, organization: "*" }],
});
const contextFor = (actor: TActor): TRequestContext => ({ actor, requestId: "req-1", sourceAddress: "203.0.113.7" });
const allowed = (role: TRole) => permissions.filter((permission) => can(userActor(role), permission));

describe("identity permissions", () => {
  it("gives platform-admin every permission", () => {
    assert.deepEqual(allowed("platform-admin"), [...permissions]);
  });

  it("lets the auditor read, verify and export everything, including the audit log, and change nothing", () => {
    for (const permission of [
      "audit:read",
      "audit:export",
      "audit:verify",
      "evidence:export",
      "user:read",
      "spec:read",
      "status:read",
    ] as const) {
      assert.ok(can(userActor("auditor"), permission), permission);
    }
    const changing = allowed("auditor").filter((permission) => !/:(read|export|verify)$/.test(permission));
    // Its own API tokens are the one write, and they grant nothing beyond the auditor's own reads.
    assert.deepEqual(changing, ["token:manage-own"]);
    assert.equal(can(userActor("auditor"), "spec:apply"), false);
    assert.equal(can(userActor("auditor"), "user:manage"), false);
  });

  it("limits the viewer to status, metrics, environments and specs: no audit log", () => {
    assert.deepEqual(allowed("viewer"), [
      "status:read",
      "metrics:read",
      "environment:read",
      "spec:read",
      "token:manage-own",
    ]);
    assert.equal(can(userActor("viewer"), "audit:read"), false);
  });

  it("keeps approving and applying apart", () => {
    assert.ok(can(userActor("approver"), "change:approve"));
    assert.equal(can(userActor("approver"), "spec:apply"), false);
    assert.ok(can(userActor("operator"), "spec:apply"));
    assert.equal(can(userActor("operator"), "change:approve"), false);
    assert.equal(can(userActor("operator"), "audit:read"), false);
  });

  it("denies anonymous callers everything and lists only known permissions for every role", () => {
    for (const permission of permissions) assert.equal(can({ kind: "anonymous" }, permission), false);
    for (const role of roles) {
      for (const permission of rolePermissions[role])
        assert.ok((permissions as readonly string[]).includes(permission));
    }
  });

  it("refuses with ForbiddenError and records the refusal", async () => {
    const audit = recordingAudit();
    const ctx = contextFor(userActor("viewer"));
    await assert.rejects(authorize(ctx, "audit:read", audit), ForbiddenError);
    assert.equal(audit.events.length, 1);
    const [denied] = audit.events;
    assert.equal(denied!.ctx, ctx);
    assert.deepEqual(denied!.event, {
      type: "access.denied",
      outcome: "denied",
      target: "audit:read",
      payload: { permission: "audit:read" satisfies Permission, role: "viewer", organization: "*" },
    });
  });

  it("records nothing when the action is allowed", async () => {
    const audit = recordingAudit();
    await authorize(contextFor(userActor("auditor")), "audit:read", audit);
    await authorize(systemContext("scheduler"), "spec:apply", audit);
    assert.equal(audit.events.length, 0);
  });

  it("holds a permission only over the organizations a binding names, and platform-wide only over *", async () => {
    const olga: TActor = {
      kind: "user",
      userId: "u-2",
      username: "olga",
      role: "operator",
      bindings: [
        { role: "operator", organization: "alpha" },
        { role: "viewer", organization: "beta" },
      ],
    };
    assert.ok(can(olga, "spec:apply", { organization: "alpha" }));
    assert.equal(can(olga, "spec:apply", { organization: "beta" }), false, "beta binds only viewer");
    assert.ok(can(olga, "spec:read", { organization: "beta" }));
    assert.equal(can(olga, "spec:apply", { organization: "gamma" }), false);
    assert.equal(can(olga, "spec:apply"), false, "no binding over every organization");
    assert.ok(can(olga, "spec:apply", "some-organization"));
    assert.deepEqual(scopeOf(olga, "spec:read"), { all: false, organizations: ["alpha", "beta"] });
    assert.deepEqual(scopeOf(olga, "audit:read"), { all: false, organizations: [] });
    const nobody: TActor = { ...olga, bindings: [] };
    assert.equal(can(nobody, "token:manage-own", "some-organization"), false);
    assert.deepEqual(scopeOf(systemContext("scheduler").actor, "spec:apply"), { all: true });

    const audit = recordingAudit();
    const ctx = contextFor(olga);
    await assert.rejects(
      authorizeOrganization(ctx, "restore:run", "gamma", audit),
      /olga \(operator\) is not allowed restore:run on organization gamma/,
    );
    await assert.rejects(authorizeListing(ctx, "audit:read", audit), ForbiddenError);
    assert.deepEqual(await authorizeListing(ctx, "backup:read", audit), { all: false, organizations: ["alpha"] });
    assert.deepEqual(
      audit.events.map(({ event }) => [event.target, event.payload]),
      [
        ["organization/gamma", { permission: "restore:run", role: "operator", organization: "gamma" }],
        ["audit:read", { permission: "audit:read", role: "operator" }],
      ],
    );
  });
});
