/**
 * Business hours, the welcome message and when the widget offers the leave-a-message form instead of a chat.
 *
 * Settings live in the store (`support.settings`), so every instance reads the same; each instance keeps them
 * for {@linkcode SETTINGS_TTL_MS} and drops its copy at once when it saves them.
 *
 * @module
 */
import { HttpError } from "../http/http.ts";
import type { Store } from "../store/store.ts";
import { isDate, isTimeZone, wallClock, type Weekday, WEEKDAYS } from "../calendar.ts";

/** Weekly hours in a time zone, and dates closed all day. */
export interface BusinessHours {
  /** Off: always open (when agents are, see `offlineWhenNoAgents`). */
  enabled: boolean;
  timeZone: string;
  /** Opening ranges per day, `["09:00", "18:00"]`; a day without ranges is closed. */
  days: Record<Weekday, [string, string][]>;
  closedDates: string[];
}

/** What an admin sets for the support desk. */
export interface SupportSettings {
  hours: BusinessHours;
  /** The greeting the widget shows first, per language; empty for none. */
  welcome: { en: string; zh: string };
  /** Also offer the form when no agent is online, inside hours. */
  offlineWhenNoAgents: boolean;
}

/** Whether visitors can chat now, and if not why. */
export interface Availability {
  open: boolean;
  reason: null | "closed" | "no_agents";
}

const SETTINGS_KEY = "support.settings";
/** How long an instance keeps the settings it read. */
export const SETTINGS_TTL_MS = 5_000;
const MAX_RANGES = 4;
const MAX_CLOSED_DATES = 366;
const MAX_WELCOME = 500;

/** The settings of a new install: hours off (always open), Monday to Friday 9–18 ready to switch on. */
export function defaultSettings(timeZone = "UTC"): SupportSettings {
  const work: [string, string][] = [["09:00", "18:00"]];
  return {
    hours: {
      enabled: false,
      timeZone,
      days: { sun: [], mon: work, tue: work, wed: work, thu: work, fri: work, sat: [] },
      closedDates: [],
    },
    welcome: { en: "", zh: "" },
    offlineWhenNoAgents: false,
  };
}

const bad = (message: string) => new HttpError(400, "bad_settings", message);

/** Minutes since midnight of `HH:MM` (`24:00` is the end of the day), or NaN. */
function minuteOf(s: unknown, end: boolean): number {
  if (typeof s !== "string") return NaN;
  const m = /^([01]\d|2[0-4]):([0-5]\d)$/.exec(s);
  if (!m) return NaN;
  const v = Number(m[1]) * 60 + Number(m[2]);
  return v > 24 * 60 || (v === 24 * 60 && !end) ? NaN : v;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Checks settings from an admin; fields left out keep their `current` value.
 *
 * @throws {HttpError} 400 `bad_settings` naming the first bad field.
 */
export function parseSettings(body: unknown, current: SupportSettings): SupportSettings {
  if (!isObject(body)) throw bad("Send the settings as a JSON object");
  const next: SupportSettings = structuredClone(current);
  if (body.hours !== undefined) {
    const h = body.hours;
    if (!isObject(h)) throw bad('"hours" must be an object');
    if (h.enabled !== undefined) {
      if (typeof h.enabled !== "boolean") throw bad('"hours.enabled" must be true or false');
      next.hours.enabled = h.enabled;
    }
    if (h.timeZone !== undefined) {
      if (!isTimeZone(h.timeZone)) throw bad(`"hours.timeZone" is not a time zone: ${String(h.timeZone)}`);
      next.hours.timeZone = h.timeZone;
    }
    if (h.days !== undefined) {
      if (!isObject(h.days)) throw bad('"hours.days" must map mon…sun to lists of ["HH:MM", "HH:MM"]');
      for (const key of Object.keys(h.days)) {
        if (!(WEEKDAYS as readonly string[]).includes(key)) {
          throw bad(`"hours.days.${key}" is not a day (mon…sun)`);
        }
      }
      for (const day of WEEKDAYS) {
        const ranges = h.days[day] ?? [];
        if (!Array.isArray(ranges) || ranges.length > MAX_RANGES) {
          throw bad(`"hours.days.${day}" must be a list of at most ${MAX_RANGES} ranges`);
        }
        next.hours.days[day] = ranges.map((r) => {
          const [from, to] = Array.isArray(r) && r.length === 2 ? r : [];
          const a = minuteOf(from, false), b = minuteOf(to, true);
          if (Number.isNaN(a) || Number.isNaN(b) || a >= b) {
            throw bad(`"hours.days.${day}" has a bad range: give ["HH:MM", "HH:MM"] with the start first`);
          }
          return [from as string, to as string];
        });
      }
    }
    if (h.closedDates !== undefined) {
      if (!Array.isArray(h.closedDates) || h.closedDates.length > MAX_CLOSED_DATES) {
        throw bad(`"hours.closedDates" must be a list of at most ${MAX_CLOSED_DATES} dates`);
      }
      for (const d of h.closedDates) {
        if (!isDate(d)) throw bad(`"hours.closedDates" has a bad date: ${String(d)}`);
      }
      next.hours.closedDates = [...new Set(h.closedDates as string[])].sort();
    }
  }
  if (body.welcome !== undefined) {
    if (!isObject(body.welcome)) throw bad('"welcome" must be {"en": "…", "zh": "…"}');
    for (const lang of ["en", "zh"] as const) {
      const v = body.welcome[lang];
      if (v === undefined) continue;
      if (typeof v !== "string" || [...v].length > MAX_WELCOME) {
        throw bad(`"welcome.${lang}" must be text of at most ${MAX_WELCOME} characters`);
      }
      next.welcome[lang] = v.trim();
    }
  }
  if (body.offlineWhenNoAgents !== undefined) {
    if (typeof body.offlineWhenNoAgents !== "boolean") {
      throw bad('"offlineWhenNoAgents" must be true or false');
    }
    next.offlineWhenNoAgents = body.offlineWhenNoAgents;
  }
  return next;
}

/** Whether the hours have the desk open at instant `ms`. */
export function withinHours(hours: BusinessHours, ms: number): boolean {
  if (!hours.enabled) return true;
  const now = wallClock(ms, hours.timeZone);
  if (hours.closedDates.includes(now.date)) return false;
  return hours.days[now.weekday].some(([from, to]) =>
    minuteOf(from, false) <= now.minute && now.minute < minuteOf(to, true)
  );
}

/** Whether visitors can chat at `ms`, given how many agents are online. */
export function availability(settings: SupportSettings, ms: number, agentsOnline: number): Availability {
  if (!withinHours(settings.hours, ms)) return { open: false, reason: "closed" };
  if (settings.offlineWhenNoAgents && agentsOnline === 0) return { open: false, reason: "no_agents" };
  return { open: true, reason: null };
}

/** The settings as the store has them, cached per instance. */
export class SettingsCache {
  #store: Store;
  #defaults: SupportSettings;
  #cached: { at: number; value: Promise<SupportSettings> } | undefined;

  constructor(store: Store, timeZone: string | undefined) {
    this.#store = store;
    this.#defaults = defaultSettings(timeZone ?? "UTC");
  }

  /** The current settings (the defaults until an admin saves some). */
  get(): Promise<SupportSettings> {
    const now = Date.now();
    if (!this.#cached || now - this.#cached.at > SETTINGS_TTL_MS) {
      const value = this.#store.setting(SETTINGS_KEY).then((v) =>
        v === undefined ? this.#defaults : parseSettings(v, this.#defaults)
      );
      value.catch(() => (this.#cached = undefined));
      this.#cached = { at: now, value };
    }
    return this.#cached.value;
  }

  /** Checks and stores a change; fields left out stay. */
  async save(body: unknown): Promise<SupportSettings> {
    const next = parseSettings(body, await this.get());
    await this.#store.saveSetting(SETTINGS_KEY, next);
    this.#cached = { at: Date.now(), value: Promise.resolve(next) };
    return next;
  }
}
