/**
 * Scheduled pushes: stored in the database, polled by one timer per instance, and claimed with a compare-and-set on
 * `next_at`, so each due time fires once even with several instances.
 *
 * Late firings (the server was down at the due time): a one-shot fires once, late. A recurring schedule fires once
 * for everything it missed, then continues at its next future slot (missed slots are coalesced, never replayed).
 *
 * @module
 */
import type { Services } from "../services.ts";
import { nextCronTime, parseCron } from "./cron.ts";
import type { ScheduleRecord } from "../store/store.ts";
import { publish } from "./topics.ts";

const POLL_MS = 250;

/** The next due time after a firing at `now`, or null when the schedule is done. */
export function nextDue(s: Pick<ScheduleRecord, "nextAt" | "everyMs" | "cron">, now: number): number | null {
  if (s.cron) return nextCronTime(parseCron(s.cron), now);
  if (s.everyMs && s.nextAt !== null) {
    const missed = Math.floor((now - s.nextAt) / s.everyMs) + 1;
    return s.nextAt + Math.max(1, missed) * s.everyMs;
  }
  return null;
}

/** Polls for due schedules and publishes them. */
export class Scheduler {
  #app: Services;
  #timer: ReturnType<typeof setInterval> | undefined;
  #busy = false;

  constructor(app: Services) {
    this.#app = app;
  }

  start(): void {
    this.#timer ??= setInterval(() => this.tick(), POLL_MS);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Fires everything due now; one pass at a time. */
  async tick(now = Date.now()): Promise<number> {
    if (this.#busy) return 0;
    this.#busy = true;
    let fired = 0;
    try {
      for (const s of await this.#app.store.dueSchedules(now)) {
        const next = nextDue(s, now);
        if (!(await this.#app.store.claimSchedule(s.id, s.nextAt!, next, now))) continue;
        const late = now - s.nextAt!;
        await publish(this.#app, s.topic, s.data);
        fired++;
        this.#app.log.info("schedule_fired", { id: s.id, topic: s.topic, lateMs: late, next });
      }
    } catch (err) {
      this.#app.log.error("scheduler_failed", { error: String(err) });
    } finally {
      this.#busy = false;
    }
    return fired;
  }
}
