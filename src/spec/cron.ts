// A small 5-field cron parser and run calculator. The spec needs more than "is this string
// cron-shaped": it needs to know when a schedule fires, to check a declared RPO against the gaps
// between backups. Semantics follow Vixie cron (what pgBackRest timers, Kubernetes CronJobs and
// most operators expect): day-of-month and day-of-week are OR-ed when both are restricted.
//
// All calculations are in UTC. Backup schedules are compared against each other and against
// durations, and a DST shift would only move runs by an hour; UTC keeps the result stable.

type TCronField = "minute" | "hour" | "dayOfMonth" | "month" | "dayOfWeek";

type TFieldSpec = {
  readonly field: TCronField;
  readonly min: number;
  readonly max: number;
  readonly names?: readonly string[];
};

const FIELDS: readonly TFieldSpec[] = [
  { field: "minute", min: 0, max: 59 },
  { field: "hour", min: 0, max: 23 },
  { field: "dayOfMonth", min: 1, max: 31 },
  {
    field: "month",
    min: 1,
    max: 12,
    names: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
  },
  // 7 is accepted as Sunday, as in Vixie cron and systemd.
  { field: "dayOfWeek", min: 0, max: 7, names: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] },
];

const MACROS: Readonly<Record<string, string>> = {
  "@yearly": "0 0 1 1 *",
  "@annually": "0 0 1 1 *",
  "@monthly": "0 0 1 * *",
  "@weekly": "0 0 * * 0",
  "@daily": "0 0 * * *",
  "@midnight": "0 0 * * *",
  "@hourly": "0 * * * *",
};

export type TCronSchedule = {
  readonly expression: string;
  readonly minutes: readonly number[];
  readonly hours: readonly number[];
  readonly daysOfMonth: ReadonlySet<number>;
  readonly months: ReadonlySet<number>;
  readonly daysOfWeek: ReadonlySet<number>;
  /** Vixie cron: a field starting with "*" is unrestricted; when both day fields are restricted they are OR-ed. */
  readonly dayOfMonthRestricted: boolean;
  readonly dayOfWeekRestricted: boolean;
};

export type TCronParseResult = { ok: true; schedule: TCronSchedule } | { ok: false; error: string };

const MINUTES_PER_DAY = 24 * 60;
const MS_PER_MINUTE = 60_000;
const MS_PER_DAY = MINUTES_PER_DAY * MS_PER_MINUTE;
// Days per month in a leap year: used only to reject dates that never occur (30 February).
const MAX_DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function parseValue(text: string, spec: TFieldSpec): number | string {
  const byName = spec.names?.indexOf(text.toLowerCase()) ?? -1;
  if (byName >= 0) return spec.field === "month" ? byName + 1 : byName;
  if (!/^\d+$/.test(text)) return `${spec.field} value "${text}" is not a number${spec.names ? " or name" : ""}`;
  const value = Number(text);
  if (value < spec.min || value > spec.max)
    return `${spec.field} value ${value} is out of range ${spec.min}-${spec.max}`;
  return value;
}

function parseField(text: string, spec: TFieldSpec): Set<number> | string {
  const values = new Set<number>();
  for (const part of text.split(",")) {
    const [rangeText = "", stepText, ...extra] = part.split("/");
    if (extra.length > 0 || rangeText === "") return `${spec.field} element "${part}" is malformed`;
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) === 0)
        return `${spec.field} step "${stepText}" must be a positive integer`;
      step = Number(stepText);
    }
    let low: number;
    let high: number;
    if (rangeText === "*") {
      low = spec.min;
      high = spec.max;
    } else {
      const [lowText = "", highText, ...more] = rangeText.split("-");
      if (more.length > 0) return `${spec.field} range "${rangeText}" is malformed`;
      const lowValue = parseValue(lowText, spec);
      if (typeof lowValue === "string") return lowValue;
      low = lowValue;
      if (highText !== undefined) {
        const highValue = parseValue(highText, spec);
        if (typeof highValue === "string") return highValue;
        high = highValue;
        if (high < low) return `${spec.field} range "${rangeText}" runs backwards`;
      } else {
        // "5/15" means "from 5 to the end, every 15", as in Vixie cron.
        high = stepText !== undefined ? spec.max : low;
      }
    }
    for (let value = low; value <= high; value += step)
      values.add(spec.field === "dayOfWeek" && value === 7 ? 0 : value);
  }
  return values;
}

/** Parses a 5-field cron expression (or an @hourly/@daily/@weekly/@monthly/@yearly macro). */
export function parseCron(expression: string): TCronParseResult {
  const trimmed = expression.trim();
  const expanded = MACROS[trimmed.toLowerCase()] ?? trimmed;
  if (expanded.startsWith("@")) return { ok: false, error: `unknown macro "${trimmed}"` };
  const parts = expanded.split(/\s+/);
  if (parts.length !== 5)
    return {
      ok: false,
      error: `expected 5 fields (minute hour day-of-month month day-of-week), found ${parts.length}`,
    };
  const sets: Set<number>[] = [];
  for (const [index, spec] of FIELDS.entries()) {
    const parsed = parseField(parts[index] ?? "", spec);
    if (typeof parsed === "string") return { ok: false, error: parsed };
    sets.push(parsed);
  }
  const [minutes, hours, daysOfMonth, months, daysOfWeek] = sets as [
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
  ];
  const schedule: TCronSchedule = {
    expression: trimmed,
    minutes: [...minutes].sort((a, b) => a - b),
    hours: [...hours].sort((a, b) => a - b),
    daysOfMonth,
    months,
    daysOfWeek,
    dayOfMonthRestricted: !(parts[2] ?? "").startsWith("*"),
    dayOfWeekRestricted: !(parts[4] ?? "").startsWith("*"),
  };
  // "0 0 30 2 *" parses but never fires; a backup schedule like that is a silent outage.
  const dateOnly = schedule.dayOfMonthRestricted && !schedule.dayOfWeekRestricted;
  if (
    dateOnly &&
    ![...months].some((month) => [...daysOfMonth].some((day) => day <= (MAX_DAYS_IN_MONTH[month - 1] ?? 0)))
  ) {
    return { ok: false, error: "never fires: none of the listed days occurs in the listed months" };
  }
  return { ok: true, schedule };
}

function matchesDay(schedule: TCronSchedule, dayStart: Date): boolean {
  if (!schedule.months.has(dayStart.getUTCMonth() + 1)) return false;
  const domMatch = schedule.daysOfMonth.has(dayStart.getUTCDate());
  const dowMatch = schedule.daysOfWeek.has(dayStart.getUTCDay());
  if (schedule.dayOfMonthRestricted && schedule.dayOfWeekRestricted) return domMatch || dowMatch;
  return domMatch && dowMatch;
}

function minutesOfDay(schedule: TCronSchedule): number[] {
  return schedule.hours.flatMap((hour) => schedule.minutes.map((minute) => hour * 60 + minute));
}

/** The first run strictly after `after` (UTC), or undefined if none within eight years. */
export function nextCronRun(schedule: TCronSchedule, after: Date): Date | undefined {
  const startMinute = Math.floor(after.getTime() / MS_PER_MINUTE) + 1;
  const times = minutesOfDay(schedule);
  const firstDay = Math.floor(startMinute / MINUTES_PER_DAY);
  for (let day = firstDay; day < firstDay + 8 * 366; day += 1) {
    if (!matchesDay(schedule, new Date(day * MS_PER_DAY))) continue;
    const floor = day === firstDay ? startMinute - day * MINUTES_PER_DAY : 0;
    const time = times.find((minute) => minute >= floor);
    if (time !== undefined) return new Date((day * MINUTES_PER_DAY + time) * MS_PER_MINUTE);
  }
  return undefined;
}

// A fixed four-year window starting on a leap year covers every month length and weekday
// alignment that matters; runs up to four more years later count as successors, so that even a
// 29-February schedule has a finite gap.
const GAP_WINDOW_START_DAY = Date.UTC(2024, 0, 1) / MS_PER_DAY;
const GAP_WINDOW_DAYS = 4 * 365 + 1;
const GAP_LOOKAHEAD_DAYS = 4 * 366;

/**
 * The longest time, in minutes, between one run and the next run of any of the schedules taken
 * together. Infinity when they never fire.
 */
export function longestCronGapMinutes(schedules: readonly TCronSchedule[]): number {
  const dayTimes = schedules.map(minutesOfDay);
  // Days on which the same subset of schedules fires share one merged list; cache by subset.
  const merged = new Map<string, { first: number; last: number; innerGap: number }>();
  const windowEnd = GAP_WINDOW_DAYS * MINUTES_PER_DAY;
  let previous: number | undefined;
  let longest = 0;
  for (let day = 0; day < GAP_WINDOW_DAYS + GAP_LOOKAHEAD_DAYS; day += 1) {
    const dayStart = new Date((GAP_WINDOW_START_DAY + day) * MS_PER_DAY);
    const firing = schedules
      .map((schedule, index) => (matchesDay(schedule, dayStart) ? index : -1))
      .filter((index) => index >= 0);
    if (firing.length === 0) continue;
    const key = firing.join(",");
    let summary = merged.get(key);
    if (!summary) {
      const times = [...new Set(firing.flatMap((index) => dayTimes[index] ?? []))].sort((a, b) => a - b);
      let innerGap = 0;
      for (let i = 1; i < times.length; i += 1) innerGap = Math.max(innerGap, (times[i] ?? 0) - (times[i - 1] ?? 0));
      summary = { first: times[0] ?? 0, last: times[times.length - 1] ?? 0, innerGap };
      merged.set(key, summary);
    }
    const offset = day * MINUTES_PER_DAY;
    if (previous !== undefined) longest = Math.max(longest, offset + summary.first - previous);
    if (offset >= windowEnd) return previous === undefined ? Infinity : longest;
    longest = Math.max(longest, summary.innerGap);
    previous = offset + summary.last;
  }
  return Infinity;
}
