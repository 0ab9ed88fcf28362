// Whether an instant falls inside a maintenance window. Slots are weekly and written in the
// window's IANA time zone, so a slot's start is found on the local calendar (daylight-saving
// changes move it in UTC, as they move it for the people working in it). Pure.
import type { TEnvironmentSpec } from "./spec-schema.js";

type TWindow = NonNullable<TEnvironmentSpec["maintenanceWindow"]>;
const MINUTE_MS = 60_000;

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
    weekday: "short",
  })
    .formatToParts(at)
    .reduce<Record<string, string>>((found, part) => ({ ...found, [part.type]: part.value }), {});
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    hour: Number(parts.hour),
    minute: Number(parts.minute),
    weekday: (parts.weekday ?? "").toLowerCase().slice(0, 3),
  };
}

/** The instant at which the local wall time year-month-day hh:mm occurs in `timeZone`. */
function instantOf(year: number, month: number, day: number, hour: number, minute: number, timeZone: string): Date {
  const asUtc = Date.UTC(year, month - 1, day, hour, minute);
  let guess = asUtc;
  // Two passes settle the offset, including on the day it changes.
  for (let pass = 0; pass < 2; pass += 1) {
    const seen = wallClock(new Date(guess), timeZone);
    guess = asUtc - (Date.UTC(seen.year, seen.month - 1, seen.day, seen.hour, seen.minute) - guess);
  }
  return new Date(guess);
}

/** The slot `at` falls in, with its start and end, or undefined outside the window. */
export function activeSlot(window: TWindow, at: Date): { start: Date; end: Date } | undefined {
  // A slot may last up to a week, so look for starts on each of the eight local days up to `at`.
  for (let back = 0; back <= 7; back += 1) {
    const local = wallClock(new Date(at.getTime() - back * 24 * 60 * MINUTE_MS), window.timeZone);
    for (const slot of window.slots) {
      if (slot.day !== local.weekday) continue;
      const [hour, minute] = slot.start.split(":").map(Number) as [number, number];
      const start = instantOf(local.year, local.month, local.day, hour, minute, window.timeZone);
      const end = new Date(start.getTime() + slot.durationMinutes * MINUTE_MS);
      if (start <= at && at < end) return { start, end };
    }
  }
  return undefined;
}
