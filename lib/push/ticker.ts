/**
 * The one shared time ticker behind `/ws/push`: a single timer for every push socket (the seed ran a sleep loop per
 * socket), aligned to the wall clock, running only while someone listens.
 *
 * @module
 */
import { wallParts } from "../calendar.ts";

/** Formats a date as the seed did (`%Y.%m.%d %H:%M:%S`), in `tz` or the server's local zone. */
export function seedTimeFormatter(tz?: string): (date: Date) => string {
  return (date) => {
    const p = wallParts(date.getTime(), tz);
    return `${p.year}.${p.month}.${p.day} ${p.hour}:${p.minute}:${p.second}`;
  };
}

/** Something that takes encoded frames (a socket). */
export interface FrameSink {
  send(frame: string): void;
}

/** Sends `{"time": …}` to every listener on each wall-clock-aligned tick. */
export class Ticker {
  #listeners = new Set<FrameSink>();
  #intervalMs: number;
  #format: (date: Date) => string;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(intervalMs: number, tz?: string) {
    this.#intervalMs = intervalMs;
    this.#format = seedTimeFormatter(tz);
  }

  /** The frame for the current time. */
  frame(now = new Date()): string {
    return JSON.stringify({ time: this.#format(now) });
  }

  /** Number of listeners. */
  get size(): number {
    return this.#listeners.size;
  }

  /** Whether the timer is running (for tests and metrics). */
  get running(): boolean {
    return this.#timer !== undefined;
  }

  /** Adds a listener and sends it the time at once; starts the timer for the first one. */
  add(sink: FrameSink): void {
    this.#listeners.add(sink);
    sink.send(this.frame());
    if (this.#timer === undefined) this.#schedule();
  }

  /** Removes a listener; the timer stops with the last one. */
  remove(sink: FrameSink): void {
    this.#listeners.delete(sink);
    if (this.#listeners.size === 0) this.stop();
  }

  /** Stops the timer (shutdown). */
  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    // Aim just past the next boundary so the formatted second is the new one.
    const delay = this.#intervalMs - (Date.now() % this.#intervalMs) + 2;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const frame = this.frame();
      for (const sink of this.#listeners) sink.send(frame);
      if (this.#listeners.size > 0) this.#schedule();
    }, delay);
  }
}
