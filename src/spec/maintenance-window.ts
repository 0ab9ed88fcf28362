// When a maintenance window is open, and when it next opens. Slots are weekly and written in the
// window's IANA time zone, so a slot's start is found on the local calendar (daylight-saving
// changes move it in UTC, as they move it for the people working in it). Pure.
//
// Daylight-saving time, as RFC 5545 §3.3.5 reads a local time (and as Temporal's "compatible"
// disambiguation does):
// - a start that occurs twice (01:30 on the Sunday clocks fall back in America/New_York) is its
//   first occurrence, 01:30 EDT;
// - a start that does not occur (02:30 on the Sunday clocks spring forward) is read with the
//   offset before the gap: 02:30 EST, which is 03:30 EDT;
// - durationMinutes are elapsed minutes: a slot keeps its length across a change and its end
//   moves on the wall clock instead (a 180-minute slot from 00:30 on spring-forward Sunday ends at
//   04:30 EDT; on fall-back Sunday at 02:30 EST).
import type { TEnvironmentSpec, TWeekday } from "./spec-schema.js";

type TWindow = NonNullable<TEnvironmentSpec["maintenanceWindow"]>;
export type TSlotTime = { readonly start: Date; readonly end: Date };

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;
const WEEKDAY_OF_UTC_DAY: readonly TWeekday[] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/** The wall-clock parts of `at` in `timeZone`. */
function wallClock(at: Date, timeZone: string) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone,
    hourCycle: "h23",
    year: "numeric",
    month: "numeric",
    day: "numeric",
    hour: "numeric",
    minute: "numeric",
  })
    .formatToParts(at)
    .reduce<Record<string, string>>((found, part) => ({ ...found, [part.type]: part.value }), {});
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    hour: Number(parts.hour),
    minute: Number(parts.minute),
  };
}

/** How far the wall clock of `timeZone` is ahead of UTC at `instant`, in ms. */
function offsetAt(instant: number, timeZone: string): number {
  const seen = wallClock(new Date(instant), timeZone);
  return (
    Date.UTC(seen.year, seen.month - 1, seen.day, seen.hour, seen.minute) - Math.floor(instant / MINUTE_MS) * MINUTE_MS
  );
}

/** The instant at which the local wall time year-month-day hh:mm occurs in `timeZone` (see the header for DST). */
function instantOf(year: number, month: number, day: number, hour: number, minute: number, timeZone: string): Date {
  const wall = Date.UTC(year, month - 1, day, hour, minute);
  // The offsets a day either side hold on both sides of any change near this time.
  const before = offsetAt(wall - DAY_MS, timeZone);
  const after = offsetAt(wall + DAY_MS, timeZone);
  const occurs = [wall - before, wall - after].filter(
    (candidate) => candidate + offsetAt(candidate, timeZone) === wall,
  );
  // Twice: the first occurrence. Never (a gap): the offset before it, which lands past the gap.
  return new Date(occurs.length > 0 ? Math.min(...occurs) : wall - before);
}

/** The local calendar day `offset` days from the one `at` falls on, with its weekday. */
function localDay(at: Date, timeZone: string, offset: number) {
  const today = wallClock(at, timeZone);
  // Calendar arithmetic in UTC, where every day has 24 hours: a 23- or 25-hour local day is never skipped.
  const date = new Date(Date.UTC(today.year, today.month - 1, today.day + offset));
  return {
    year: date.getUTCFullYear(),
    month: date.getUTCMonth() + 1,
    day: date.getUTCDate(),
    weekday: WEEKDAY_OF_UTC_DAY[date.getUTCDay()]!,
  };
}

/** Every slot that starts on the local days `from`..`to` days away from `at`, in order of start. */
function slotsAround(window: TWindow, at: Date, from: number, to: number): TSlotTime[] {
  const slots: TSlotTime[] = [];
  for (let offset = from; offset <= to; offset += 1) {
    const local = localDay(at, window.timeZone, offset);
    for (const slot of window.slots) {
      if (slot.day !== local.weekday) continue;
      const [hour, minute] = slot.start.split(":").map(Number) as [number, number];
      const start = instantOf(local.year, local.month, local.day, hour, minute, window.timeZone);
      slots.push({ start, end: new Date(start.getTime() + slot.durationMinutes * MINUTE_MS) });
    }
  }
  return slots.sort((a, b) => a.start.getTime() - b.start.getTime());
}

/** The slot `at` falls in, with its start and end, or undefined outside the window. */
export function activeSlot(window: TWindow, at: Date): TSlotTime | undefined {
  // A slot may last up to a week, so look for starts on each of the eight local days up to `at`.
  return slotsAround(window, at, -8, 0).find((slot) => slot.start <= at && at < slot.end);
}

/** The first slot that starts at or after `at` (every window has a slot each week). */
export function nextSlotStart(window: TWindow, at: Date): TSlotTime {
  const next = slotsAround(window, at, 0, 8).find((slot) => slot.start >= at);
  // Unreachable for a parsed spec: a window has at least one slot, and each recurs within 8 days.
  if (next === undefined) throw new Error(`maintenance window in ${window.timeZone} has no slot`);
  return next;
}
