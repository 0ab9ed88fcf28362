import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { longestCronGapMinutes, nextCronRun, parseCron } from "./cron.js";
import type { TCronSchedule } from "./cron.js";

function schedule(expression: string): TCronSchedule {
  const parsed = parseCron(expression);
  assert.ok(parsed.ok, `expected ${expression} to parse: ${parsed.ok ? "" : parsed.error}`);
  return parsed.schedule;
}

const next = (expression: string, after: string) => nextCronRun(schedule(expression), new Date(after))?.toISOString();

void describe("parseCron", () => {
  void it("expands *, lists, ranges and steps", () => {
    const parsed = schedule("*/15 8-10,22 1,15 * *");
    assert.deepEqual(parsed.minutes, [0, 15, 30, 45]);
    assert.deepEqual(parsed.hours, [8, 9, 10, 22]);
    assert.deepEqual(
      [...parsed.daysOfMonth].sort((a, b) => a - b),
      [1, 15],
    );
    assert.equal(parsed.months.size, 12);
    assert.deepEqual(schedule("5-20/5 * * * *").minutes, [5, 10, 15, 20]);
    assert.deepEqual(schedule("10/20 * * * *").minutes, [10, 30, 50]);
  });

  void it("accepts day and month names in any case, and 7 as Sunday", () => {
    const parsed = schedule("0 0 * JAN-mar,Dec mon-FRI");
    assert.deepEqual(
      [...parsed.months].sort((a, b) => a - b),
      [1, 2, 3, 12],
    );
    assert.deepEqual([...parsed.daysOfWeek].sort(), [1, 2, 3, 4, 5]);
    assert.deepEqual([...schedule("0 0 * * 7").daysOfWeek], [0]);
    assert.deepEqual([...schedule("0 0 * * sat-7").daysOfWeek].sort(), [0, 6]);
  });

  void it("expands macros", () => {
    assert.deepEqual(schedule("@hourly").minutes, [0]);
    assert.equal(schedule("@daily").hours.length, 1);
    assert.deepEqual([...schedule("@weekly").daysOfWeek], [0]);
  });

  void it("rejects malformed expressions with the reason", () => {
    const cases: Record<string, RegExp> = {
      "0 6 * *": /expected 5 fields.*found 4/,
      "0 6 * * * *": /found 6/,
      "60 * * * *": /minute value 60 is out of range 0-59/,
      "0 24 * * *": /hour value 24/,
      "0 0 0 * *": /dayOfMonth value 0/,
      "0 0 * 13 *": /month value 13/,
      "0 0 * * 8": /dayOfWeek value 8/,
      "0 0 * * mon-sot": /"sot" is not a number or name/,
      "*/0 * * * *": /step "0" must be a positive integer/,
      "10-5 * * * *": /runs backwards/,
      "1,,2 * * * *": /malformed/,
      "@reboot": /unknown macro/,
      "0 0 30 2 *": /never fires/,
      "0 0 31 apr,jun *": /never fires/,
    };
    for (const [expression, reason] of Object.entries(cases)) {
      const parsed = parseCron(expression);
      assert.equal(parsed.ok, false, expression);
      assert.match(parsed.ok ? "" : parsed.error, reason, expression);
    }
  });

  void it("accepts 29 February, and 31st with a weekday (which fires on the weekday)", () => {
    assert.ok(parseCron("0 0 29 2 *").ok);
    assert.ok(parseCron("0 0 31 2 mon").ok);
  });
});

void describe("nextCronRun", () => {
  void it("finds the next run strictly after the given time, in UTC", () => {
    assert.equal(next("0 * * * *", "2025-03-01T10:00:00Z"), "2025-03-01T11:00:00.000Z");
    assert.equal(next("0 * * * *", "2025-03-01T10:00:30Z"), "2025-03-01T11:00:00.000Z");
    assert.equal(next("30 6 * * sun", "2025-03-01T10:00:00Z"), "2025-03-02T06:30:00.000Z");
    assert.equal(next("0 0 1 * *", "2025-12-15T00:00:00Z"), "2026-01-01T00:00:00.000Z");
    assert.equal(next("0 0 29 2 *", "2025-03-01T00:00:00Z"), "2028-02-29T00:00:00.000Z");
  });

  void it("ORs day-of-month and day-of-week when both are restricted (Vixie cron)", () => {
    // 2025-03-03 is a Monday; the 13th is a Thursday.
    assert.equal(next("0 0 13 * mon", "2025-03-01T00:00:00Z"), "2025-03-03T00:00:00.000Z");
    assert.equal(next("0 0 13 * mon", "2025-03-10T00:00:00Z"), "2025-03-13T00:00:00.000Z");
    // With one of them "*", both must match.
    assert.equal(next("0 0 */2 * mon", "2025-03-01T00:00:00Z"), "2025-03-03T00:00:00.000Z");
    assert.equal(next("0 0 */2 * mon", "2025-03-04T00:00:00Z"), "2025-03-17T00:00:00.000Z");
  });
});

void describe("longestCronGapMinutes", () => {
  void it("measures one schedule", () => {
    assert.equal(longestCronGapMinutes([schedule("0 * * * *")]), 60);
    assert.equal(longestCronGapMinutes([schedule("30 7 * * *")]), 24 * 60);
    assert.equal(longestCronGapMinutes([schedule("0 6 * * sun")]), 7 * 24 * 60);
    assert.equal(longestCronGapMinutes([schedule("0 9,17 * * mon-fri")]), (7 + 24 + 24 + 9) * 60); // Friday 17:00 to Monday 09:00
    // January to February 1st is 31 days, the longest month.
    assert.equal(longestCronGapMinutes([schedule("0 0 1 * *")]), 31 * 24 * 60);
  });

  void it("takes the schedules together", () => {
    const weekly = schedule("0 6 * * sun");
    const daily = schedule("0 6 * * mon-sat");
    const hourly = schedule("0 * * * *");
    assert.equal(longestCronGapMinutes([weekly, daily]), 24 * 60);
    assert.equal(longestCronGapMinutes([weekly, daily, hourly]), 60);
    assert.equal(longestCronGapMinutes([schedule("0 2 * * *"), schedule("0 14 * * *")]), 12 * 60);
  });

  void it("is Infinity without any schedule", () => {
    assert.equal(longestCronGapMinutes([]), Infinity);
  });
});
