import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { activeSlot } from "./maintenance-window.js";

const window = { timeZone: "America/New_York", slots: [{ day: "tue" as const, start: "22:30", durationMinutes: 180 }] };

void describe("maintenance window", () => {
  void it("finds a slot in its own time zone, across midnight", () => {
    // Tuesday 2026-11-24 22:30 in New York (EST, UTC-5) is 2026-11-25T03:30Z.
    assert.deepEqual(activeSlot(window, new Date("2026-11-25T03:30:00Z"))?.start, new Date("2026-11-25T03:30:00Z"));
    assert.ok(activeSlot(window, new Date("2026-11-25T06:29:00Z")), "01:29 Wednesday is still inside");
    assert.equal(activeSlot(window, new Date("2026-11-25T06:30:00Z")), undefined, "the end is exclusive");
    assert.equal(activeSlot(window, new Date("2026-11-25T03:29:00Z")), undefined);
  });

  void it("follows daylight-saving time: the same local slot moves by an hour in UTC", () => {
    // Tuesday 2026-07-14 22:30 in New York (EDT, UTC-4) is 2026-07-15T02:30Z.
    assert.deepEqual(activeSlot(window, new Date("2026-07-15T02:45:00Z"))?.start, new Date("2026-07-15T02:30:00Z"));
  });
});
