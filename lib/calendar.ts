/**
 * Wall-clock time in a time zone: what day and minute an instant is there, and when a day starts there. Business
 * hours and reports both count in the shop's zone, not the server's.
 *
 * @module
 */

/** Week days as settings name them, in `Date.getUTCDay()` order. */
export const WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const;
/** One of {@linkcode WEEKDAYS}. */
export type Weekday = typeof WEEKDAYS[number];

const formats = new Map<string | undefined, Intl.DateTimeFormat>();

function format(timeZone: string | undefined): Intl.DateTimeFormat {
  let f = formats.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    formats.set(timeZone, f);
  }
  return f;
}

/** Whether `tz` is a time zone this runtime knows. */
export function isTimeZone(tz: unknown): tz is string {
  if (typeof tz !== "string" || tz === "" || tz.length > 64) return false;
  try {
    format(tz);
    return true;
  } catch {
    return false;
  }
}

/** A calendar date `YYYY-MM-DD` that exists. */
export function isDate(s: unknown): s is string {
  if (typeof s !== "string" || !/^\d{4}-\d{2}-\d{2}$/.test(s)) return false;
  const d = new Date(`${s}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === s;
}

/** The two-digit fields (`year` has four) of instant `ms` on the wall clock of `timeZone` (default: local). */
export function wallParts(
  ms: number,
  timeZone?: string,
): Record<"year" | "month" | "day" | "hour" | "minute" | "second", string> {
  const p: Record<string, string> = {};
  for (const part of format(timeZone).formatToParts(ms)) p[part.type] = part.value;
  return p as Record<"year" | "month" | "day" | "hour" | "minute" | "second", string>;
}

/** What the clock on the wall says at instant `ms` in `timeZone`. */
export function wallClock(ms: number, timeZone: string): { date: string; weekday: Weekday; minute: number } {
  const p = wallParts(ms, timeZone);
  const date = `${p.year}-${p.month}-${p.day}`;
  return {
    date,
    weekday: WEEKDAYS[new Date(`${date}T00:00:00Z`).getUTCDay()],
    minute: Number(p.hour) * 60 + Number(p.minute),
  };
}

/** The offset of `timeZone` from UTC at instant `ms`, in ms (east positive). */
function offset(ms: number, timeZone: string): number {
  const p = wallParts(ms, timeZone);
  const asUtc = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
  return asUtc - Math.floor(ms / 1000) * 1000;
}

/** The instant day `date` (`YYYY-MM-DD`) begins in `timeZone` (its first wall-clock minute, also on DST days). */
export function dayStart(date: string, timeZone: string): number {
  const utc = Date.parse(`${date}T00:00:00Z`);
  // Two rounds settle the offset, also when midnight itself is skipped or repeated by a DST change.
  let guess = utc - offset(utc, timeZone);
  guess = utc - offset(guess, timeZone);
  return guess;
}

/** The day after `date`. */
export function nextDate(date: string): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
}
