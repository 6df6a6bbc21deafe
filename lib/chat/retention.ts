/**
 * Retention of chat room history: `--history-retention-days` (age) and `--room-history-max` (messages per
 * room). One pass deletes what either rule allows, for every room at once; it runs at start and then every
 * {@linkcode PRUNE_INTERVAL_MS}. Deletes are idempotent, so every instance of a cluster may run it.
 *
 * @module
 */
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import type { Store } from "../store/store.ts";

/** How often retention runs. */
export const PRUNE_INTERVAL_MS = 10 * 60_000;

/** Runs room-history retention on a timer. */
export class Retention {
  #store: Store;
  #config: Pick<Config, "historyRetentionDays" | "roomHistoryMax">;
  #log: Logger;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<number> | undefined;

  constructor(store: Store, config: Pick<Config, "historyRetentionDays" | "roomHistoryMax">, log: Logger) {
    this.#store = store;
    this.#config = config;
    this.#log = log;
  }

  /** Whether any rule is on. */
  get enabled(): boolean {
    return this.#config.historyRetentionDays > 0 || this.#config.roomHistoryMax > 0;
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

  /** One pass: returns how many messages were deleted. Concurrent calls share the pass. */
  run(): Promise<number> {
    this.#running ??= (async () => {
      try {
        const { historyRetentionDays: days, roomHistoryMax: keep } = this.#config;
        const deleted = await this.#store.prune("room:", {
          before: days > 0 ? Date.now() - days * 86_400_000 : undefined,
          keep: keep > 0 ? keep : undefined,
        });
        if (deleted > 0) this.#log.info("retention", { deleted });
        return deleted;
      } finally {
        this.#running = undefined;
      }
    })();
    return this.#running;
  }
}
