import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { activeSlot, nextSlotStart } from "./maintenance-window.js";

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

const sunday = (start: string, durationMinutes: number) => ({
  timeZone: "America/New_York",
  slots: [{ day: "sun" as const, start, durationMinutes }],
});
const at = (iso: string) => new Date(iso);

// 2026 in America/New_York: clocks spring forward on Sunday 8 March (02:00 EST → 03:00 EDT) and
// fall back on Sunday 1 November (02:00 EDT → 01:00 EST).
void describe("maintenance window across daylight-saving changes in America/New_York", () => {
  void it("a 01:30 slot on fall-back Sunday (01:30 occurs twice) opens at the first 01:30 (EDT) and lasts its 60 elapsed minutes", () => {
    const window = sunday("01:30", 60);
    assert.deepEqual(nextSlotStart(window, at("2026-10-31T12:00:00Z")), {
      start: at("2026-11-01T05:30:00Z"),
      end: at("2026-11-01T06:30:00Z"),
    });
    assert.equal(activeSlot(window, at("2026-11-01T05:29:00Z")), undefined);
    assert.ok(activeSlot(window, at("2026-11-01T06:29:00Z")), "01:29 EST, the repeated hour, is still inside");
    assert.equal(
      activeSlot(window, at("2026-11-01T06:30:00Z")),
      undefined,
      "the second 01:30 (EST) is the slot's end, not a second opening",
    );
  });

  void it("a 02:30 slot on spring-forward Sunday (02:30 does not occur) opens at 03:30 EDT, read with the offset before the gap", () => {
    const window = sunday("02:30", 60);
    assert.deepEqual(nextSlotStart(window, at("2026-03-07T12:00:00Z")), {
      start: at("2026-03-08T07:30:00Z"),
      end: at("2026-03-08T08:30:00Z"),
    });
    assert.equal(activeSlot(window, at("2026-03-08T06:30:00Z")), undefined, "01:30 EST is too early");
    assert.ok(activeSlot(window, at("2026-03-08T07:30:00Z")));
    // The week after, 02:30 EDT exists again.
    assert.deepEqual(nextSlotStart(window, at("2026-03-09T00:00:00Z")).start, at("2026-03-15T06:30:00Z"));
  });

  void it("a slot across a change keeps its elapsed length; its end moves on the wall clock (longer in local hours in spring, shorter in autumn)", () => {
    const window = sunday("00:30", 180);
    // Spring: 00:30 EST → 04:30 EDT, four hours on the clock for three elapsed.
    assert.deepEqual(nextSlotStart(window, at("2026-03-07T12:00:00Z")), {
      start: at("2026-03-08T05:30:00Z"),
      end: at("2026-03-08T08:30:00Z"),
    });
    // Autumn: 00:30 EDT → 02:30 EST, two hours on the clock for three elapsed.
    assert.deepEqual(nextSlotStart(window, at("2026-10-31T12:00:00Z")), {
      start: at("2026-11-01T04:30:00Z"),
      end: at("2026-11-01T07:30:00Z"),
    });
  });

  void it("finds a slot that started on a 23-hour local day (the day after spring-forward is not skipped)", () => {
    // Sunday 23:45 EDT is 03:45Z on Monday; Monday 00:30 EDT is 04:30Z, 24 hours after Saturday 23:30 EST.
    const window = sunday("23:45", 60);
    assert.deepEqual(activeSlot(window, at("2026-03-09T04:30:00Z"))?.start, at("2026-03-09T03:45:00Z"));
  });

  void it("the next start is the slot itself at its first minute, else the next week's", () => {
    const window = sunday("02:00", 240);
    assert.deepEqual(nextSlotStart(window, at("2026-11-08T07:00:00Z")).start, at("2026-11-08T07:00:00Z"));
    assert.deepEqual(nextSlotStart(window, at("2026-11-08T07:01:00Z")).start, at("2026-11-15T07:00:00Z"));
  });
});
