/**
 * Retention: chat room history by `--history-retention-days` (age) and `--room-history-max` (messages per room),
 * and closed support conversations by `--retention-days` (with their messages, notes, uploads and search rows,
 * and then the visitors left with none). One pass deletes what the rules allow; it runs at start and then every
 * {@linkcode PRUNE_INTERVAL_MS}. Deletes are idempotent, so every instance of a cluster may run it.
 *
 * @module
 */
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import type { Store } from "./store.ts";

type RetentionConfig = Pick<Config, "historyRetentionDays" | "roomHistoryMax" | "retentionDays">;
const DAY_MS = 86_400_000;

/** How often retention runs. */
export const PRUNE_INTERVAL_MS = 10 * 60_000;

/** Runs room-history retention on a timer. */
export class Retention {
  #store: Store;
  #config: RetentionConfig;
  #log: Logger;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<number> | undefined;

  constructor(store: Store, config: RetentionConfig, log: Logger) {
    this.#store = store;
    this.#config = config;
    this.#log = log;
  }

  /** Whether any rule is on. */
  get enabled(): boolean {
    const c = this.#config;
    return c.historyRetentionDays > 0 || c.roomHistoryMax > 0 || c.retentionDays > 0;
  }

  /** Runs one pass now (soon after start), then one every interval. */
  start(): void {
    if (!this.enabled) return;
    const tick = (ms: number) => {
      this.#timer = setTimeout(async () => {
        await this.run().catch((err) => this.#log.error("retention_failed", { error: String(err) }));
        if (this.#timer !== undefined) tick(PRUNE_INTERVAL_MS);
      }, ms);
    };
    tick(1000);
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** One pass: returns how many room and conversation messages were deleted. Concurrent calls share the pass. */
  run(): Promise<number> {
    this.#running ??= (async () => {
      try {
        const { historyRetentionDays: days, roomHistoryMax: keep, retentionDays } = this.#config;
        let deleted = 0;
        if (days > 0 || keep > 0) {
          deleted = await this.#store.prune("room:", {
            before: days > 0 ? Date.now() - days * DAY_MS : undefined,
            keep: keep > 0 ? keep : undefined,
          });
          if (deleted > 0) this.#log.info("retention", { deleted });
        }
        if (retentionDays > 0) {
          const purged = await this.#store.purgeClosedConversations(Date.now() - retentionDays * DAY_MS);
          if (purged.conversations > 0 || purged.visitors > 0) {
            this.#log.info("support_retention", { ...purged });
          }
          deleted += purged.messages;
        }
        return deleted;
      } finally {
        this.#running = undefined;
      }
    })();
    return this.#running;
  }
}
