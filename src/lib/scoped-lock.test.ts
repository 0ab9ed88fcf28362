import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { scopedLocks } from "./scoped-lock.js";

const gate = () => {
  let open: () => void = () => undefined;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
};

void describe("scoped locks", () => {
  void it("lets another part run beside a hung one, and queues the whole scope behind both", async () => {
    const locks = scopedLocks();
    const order: string[] = [];
    const prodRestore = gate();
    const restore = locks.parts("northwind", ["prod"], async () => {
      order.push("prod restore started");
      await prodRestore.opened;
      order.push("prod restore ended");
    });
    const prodBackup = locks.parts("northwind", ["prod"], async () => void order.push("prod backup"));
    const stagingBackup = locks.parts("northwind", ["shared"], async () => void order.push("staging backup"));
    await stagingBackup;
    assert.deepEqual(order, ["prod restore started", "staging backup"]);
    assert.equal(locks.partBusy("northwind", "prod"), true);
    assert.equal(locks.partBusy("northwind", "shared"), false);

    const reconcile = locks.whole("northwind", async () => void order.push("reconcile"));
    const afterReconcile = locks.parts("northwind", ["shared"], async () => void order.push("staging after"));
    const otherOrganization = locks.parts("lakeside", ["prod"], async () => void order.push("lakeside prod"));
    await otherOrganization;
    assert.deepEqual(order, ["prod restore started", "staging backup", "lakeside prod"]);
    prodRestore.open();
    await Promise.all([restore, prodBackup, reconcile, afterReconcile]);
    assert.deepEqual(order, [
      "prod restore started",
      "staging backup",
      "lakeside prod",
      "prod restore ended",
      "prod backup",
      "reconcile",
      "staging after",
    ]);
    assert.equal(locks.partBusy("northwind", "prod"), false);
  });

  void it("takes several parts at once without deadlock, whatever order callers name them in", async () => {
    const locks = scopedLocks();
    const order: string[] = [];
    const first = gate();
    const a = locks.parts("org", ["prod", "shared"], async () => {
      await first.opened;
      order.push("prod+shared");
    });
    const b = locks.parts("org", ["shared", "prod"], async () => void order.push("shared+prod"));
    const c = locks.parts("org", ["prod"], async () => void order.push("prod"));
    first.open();
    await Promise.all([a, b, c]);
    assert.deepEqual(order, ["prod+shared", "shared+prod", "prod"]);
  });

  void it("goes on after a failed action", async () => {
    const locks = scopedLocks();
    await assert.rejects(locks.parts("org", ["prod"], () => Promise.reject(new Error("pgBackRest failed"))));
    assert.equal(await locks.parts("org", ["prod"], async () => "next"), "next");
    assert.equal(await locks.whole("org", async () => "whole"), "whole");
  });
});
