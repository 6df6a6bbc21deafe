/**
 * Structured logging: one JSON line per event on stdout.
 *
 * Message bodies are never logged, and `token`-like values are redacted wherever they appear.
 *
 * @module
 */
import { LOG_LEVELS, type LogLevel } from "./config.ts";

const SECRET_KEYS = /token|password|authorization|cookie|api_?key|secret/i;

/** Replaces secret query values (`token=…`) in a URL or path with `***`. */
export function redactUrl(url: string): string {
  return url.replace(/([?&](?:token|jwt|key|api_key|password)=)[^&#]*/gi, "$1***");
}

/** A logger bound to a minimum level. */
export class Logger {
  #min: number;
  #write: (line: string) => void;

  constructor(level: LogLevel, write: (line: string) => void = (line) => console.log(line)) {
    this.#min = LOG_LEVELS.indexOf(level);
    this.#write = write;
  }

  /** Whether `level` lines are written. */
  enabled(level: Exclude<LogLevel, "silent">): boolean {
    return LOG_LEVELS.indexOf(level) >= this.#min;
  }

  /** Writes one line `{"ts","level","event",...fields}`; secret-looking fields are redacted. */
  log(level: Exclude<LogLevel, "silent">, event: string, fields: Record<string, unknown> = {}): void {
    if (this.enabled(level)) this.#write(this.#format(level, event, fields));
  }

  #format(level: string, event: string, fields: Record<string, unknown>): string {
    const record: Record<string, unknown> = { ts: new Date().toISOString(), level, event };
    for (const [k, v] of Object.entries(fields)) {
      if (SECRET_KEYS.test(k)) record[k] = "***";
      else if (typeof v === "string" && (k === "url" || k === "path")) record[k] = redactUrl(v);
      else record[k] = v;
    }
    return JSON.stringify(record);
  }

  /** Lifecycle lines (start, stop) that every level but `silent` shows: they tell where the server listens. */
  always(event: string, fields: Record<string, unknown> = {}): void {
    if (this.#min < LOG_LEVELS.indexOf("silent")) this.#write(this.#format("info", event, fields));
  }

  debug(event: string, fields?: Record<string, unknown>): void {
    this.log("debug", event, fields);
  }
  info(event: string, fields?: Record<string, unknown>): void {
    this.log("info", event, fields);
  }
  warn(event: string, fields?: Record<string, unknown>): void {
    this.log("warn", event, fields);
  }
  error(event: string, fields?: Record<string, unknown>): void {
    this.log("error", event, fields);
  }
}
