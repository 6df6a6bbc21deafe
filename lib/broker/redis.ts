/**
 * The cluster broker on Redis (the `redis` npm client): fan-out through Redis pub/sub with one subscriber
 * connection per instance, and presence in Redis hashes.
 *
 * Presence entries carry the instance that owns the socket. Each instance refreshes a heartbeat key every
 * {@linkcode HEARTBEAT_MS} with a TTL of {@linkcode HEARTBEAT_TTL_S}; every {@linkcode REAP_MS} the instances look
 * for dead peers, and one of them (by a `SET NX` lock) removes the dead instance's entries and reports them through
 * {@linkcode RedisBroker.onExpired}. So a crashed instance's members leave presence within 10 + 5 = 15 s.
 *
 * Keys: `sb:ch:<channel>` (pub/sub), `sb:presence:<channel>` (hash connId → entry), `sb:presence-channels` (set),
 * `sb:inst:<id>` (heartbeat), `sb:instances` (set), `sb:inst-channels:<id>` (set of channels with its entries).
 *
 * @module
 */
import { createClient } from "redis";
import type { Broker, FrameHandler, FrameMeta, PresenceEntry, Subscription } from "./broker.ts";
import type { Logger } from "../log.ts";

export const HEARTBEAT_MS = 3000;
export const HEARTBEAT_TTL_S = 10;
export const REAP_MS = 5000;

type Client = ReturnType<typeof createClient>;

interface StoredEntry extends PresenceEntry {
  inst: string;
  at: number;
}

/** A {@linkcode Broker} shared by every instance connected to one Redis. */
/** Starts a Redis message that holds several records (a record starts with a conn id or a tab, never NUL). */
export const BATCH_MARK = "\u0000";

/** The records of a Redis message: itself, or the records of a batch (`length \n record`…, lengths in UTF-16 units). */
export function parseBatch(message: string): string[] {
  if (!message.startsWith(BATCH_MARK)) return [message];
  const records: string[] = [];
  let at = BATCH_MARK.length;
  while (at < message.length) {
    const nl = message.indexOf("\n", at);
    const length = Number(message.slice(at, nl));
    if (nl < 0 || !Number.isInteger(length) || length < 0) break;
    records.push(message.slice(nl + 1, nl + 1 + length));
    at = nl + 1 + length;
  }
  return records;
}

export class RedisBroker implements Broker {
  /** Publications of this turn by channel, sent together at its end (see {@linkcode publish}). */
  #outbox = new Map<
    string,
    { records: string[]; done: Promise<void>; resolve: () => void; reject: (err: unknown) => void }
  >();
  readonly instanceId = crypto.randomUUID();
  #pub: Client;
  #sub: Client;
  #log: Logger;
  #handlers = new Map<string, { handlers: Set<FrameHandler>; ready: Promise<void> }>();
  /** Unsubscribes still in flight: a new subscription to the channel waits for it, or the reply drops it. */
  #leaving = new Map<string, Promise<void>>();
  #expired: ((channel: string, entries: PresenceEntry[]) => void)[] = [];
  #reconnected: (() => void)[] = [];
  #timers: ReturnType<typeof setInterval>[] = [];
  #liveCache = new Map<string, { alive: boolean; at: number }>();
  #closed = false;

  private constructor(pub: Client, sub: Client, log: Logger) {
    this.#pub = pub;
    this.#sub = sub;
    this.#log = log;
  }

  /** Connects both clients (retrying with backoff), starts heartbeats and reaping. */
  static async connect(url: string, log: Logger): Promise<RedisBroker> {
    const reconnectStrategy = (retries: number) => Math.min(100 * 2 ** retries, 5000);
    // No offline queue: while Redis is away a publish fails at once (the caller answers with an error) instead of
    // waiting in memory for an unknown time.
    const pub = createClient({
      url,
      disableOfflineQueue: true,
      socket: { reconnectStrategy, connectTimeout: 5000 },
    });
    const sub = pub.duplicate();
    const broker = new RedisBroker(pub, sub, log);
    let subReadyOnce = false;
    pub.on(
      "error",
      (err: Error) => log.warn("redis_error", { client: "pub", error: String(err.message ?? err) }),
    );
    sub.on(
      "error",
      (err: Error) => log.warn("redis_error", { client: "sub", error: String(err.message ?? err) }),
    );
    sub.on("ready", () => {
      if (subReadyOnce) {
        log.warn("redis_reconnected", {});
        // Sockets that closed during the outage could not leave presence; every socket is asked to resync (1012)
        // and joins again, so this instance's old entries all go first.
        broker.#removeInstance(broker.instanceId).catch(() => {}).finally(() => {
          for (const fn of broker.#reconnected) fn();
        });
      }
      subReadyOnce = true;
    });
    await pub.connect();
    await sub.connect();
    await broker.#heartbeat();
    broker.#timers.push(setInterval(() => broker.#heartbeat().catch(() => {}), HEARTBEAT_MS));
    broker.#timers.push(setInterval(() => broker.#reap().catch(() => {}), REAP_MS));
    return broker;
  }

  /** Called with the entries of a dead instance once they are removed from a channel's presence. */
  onExpired(fn: (channel: string, entries: PresenceEntry[]) => void): void {
    this.#expired.push(fn);
  }

  /** Called when the subscriber connection came back after a loss (publications may have been missed). */
  onReconnect(fn: () => void): void {
    this.#reconnected.push(fn);
  }

  /**
   * On the wire, one record: `except \t stream \t seq \t close \n frame` (ids and stream names hold no tab or
   * newline). The publications of one channel made in the same turn go as one Redis `PUBLISH`, in order: a
   * batch is {@linkcode BATCH_MARK} and then `length \n record` for each record (see {@linkcode parseBatch}).
   */
  publish(channel: string, frame: string, meta: FrameMeta = {}): Promise<void> {
    const at = meta.at ? `${meta.at.stream}\t${meta.at.seq}` : "\t";
    const record = `${meta.except ?? ""}\t${at}\t${meta.close ?? ""}\n${frame}`;
    let batch = this.#outbox.get(channel);
    if (!batch) {
      let resolve!: () => void, reject!: (err: unknown) => void;
      const done = new Promise<void>((res, rej) => [resolve, reject] = [res, rej]);
      batch = { records: [], done, resolve, reject };
      this.#outbox.set(channel, batch);
      if (this.#outbox.size === 1) queueMicrotask(() => this.#flushOutbox());
    }
    batch.records.push(record);
    return batch.done;
  }

  #flushOutbox(): void {
    const outbox = this.#outbox;
    this.#outbox = new Map();
    for (const [channel, { records, resolve, reject }] of outbox) {
      const payload = records.length === 1
        ? records[0]
        : BATCH_MARK + records.map((r) => `${r.length}\n${r}`).join("");
      this.#pub.publish(`sb:ch:${channel}`, payload).then(() => resolve(), reject);
    }
  }

  subscribe(channel: string, onFrame: FrameHandler): Subscription {
    let entry = this.#handlers.get(channel);
    if (!entry) {
      const handlers = new Set<FrameHandler>();
      const leaving = this.#leaving.get(channel) ?? Promise.resolve();
      const ready = leaving.then(() =>
        this.#sub.subscribe(`sb:ch:${channel}`, (message: string) => {
          for (const record of parseBatch(message)) {
            const nl = record.indexOf("\n");
            const [except, stream, seq, close] = record.slice(0, nl).split("\t");
            const meta: FrameMeta = {};
            if (except) meta.except = except;
            if (stream) meta.at = { stream, seq: Number(seq) };
            if (close) meta.close = Number(close);
            const frame = record.slice(nl + 1);
            for (const fn of handlers) fn(frame, meta);
          }
        })
      ) as Promise<void>;
      ready.catch((err: Error) => this.#log.error("redis_subscribe_failed", { channel, error: String(err) }));
      entry = { handlers, ready };
      this.#handlers.set(channel, entry);
    }
    const current = entry;
    current.handlers.add(onFrame);
    return {
      ready: current.ready,
      unsubscribe: () => {
        current.handlers.delete(onFrame);
        if (current.handlers.size === 0 && this.#handlers.get(channel) === current) {
          this.#handlers.delete(channel);
          if (this.#closed) return;
          const done: Promise<void> = this.#sub.unsubscribe(`sb:ch:${channel}`).catch(() => {}).then(() => {
            if (this.#leaving.get(channel) === done) this.#leaving.delete(channel);
          });
          this.#leaving.set(channel, done);
        }
      },
    };
  }

  async presenceAdd(channel: string, entry: PresenceEntry): Promise<void> {
    const stored: StoredEntry = { ...entry, inst: this.instanceId, at: Date.now() };
    await Promise.all([
      this.#pub.hSet(`sb:presence:${channel}`, entry.connId, JSON.stringify(stored)),
      this.#pub.sAdd("sb:presence-channels", channel),
      this.#pub.sAdd(`sb:inst-channels:${this.instanceId}`, channel),
    ]);
  }

  async presenceRemove(channel: string, connId: string): Promise<void> {
    await this.#pub.hDel(`sb:presence:${channel}`, connId);
    if ((await this.#pub.hLen(`sb:presence:${channel}`)) === 0) {
      await this.#pub.sRem("sb:presence-channels", channel);
    }
  }

  async #alive(inst: string): Promise<boolean> {
    if (inst === this.instanceId) return true;
    const cached = this.#liveCache.get(inst);
    if (cached && Date.now() - cached.at < 1000) return cached.alive;
    const alive = (await this.#pub.exists(`sb:inst:${inst}`)) === 1;
    this.#liveCache.set(inst, { alive, at: Date.now() });
    return alive;
  }

  async presence(channel: string): Promise<PresenceEntry[]> {
    const all = await this.#pub.hGetAll(`sb:presence:${channel}`);
    const entries = Object.values(all).map((v) => JSON.parse(v) as StoredEntry);
    const alive = await Promise.all(entries.map((e) => this.#alive(e.inst)));
    return entries.filter((_, i) => alive[i]).sort((a, b) => a.at - b.at).map(({ connId, id, name }) => ({
      connId,
      id,
      name,
    }));
  }

  async presenceCount(channel: string): Promise<number> {
    return await this.#pub.hLen(`sb:presence:${channel}`);
  }

  async presenceCounts(prefix: string): Promise<Map<string, number>> {
    const channels = (await this.#pub.sMembers("sb:presence-channels")).filter((c) => c.startsWith(prefix));
    const counts = await Promise.all(channels.map((c) => this.#pub.hLen(`sb:presence:${c}`)));
    const out = new Map<string, number>();
    channels.forEach((c, i) => counts[i] > 0 && out.set(c, counts[i]));
    return out;
  }

  async #heartbeat(): Promise<void> {
    await this.#pub.set(`sb:inst:${this.instanceId}`, String(Date.now()), { EX: HEARTBEAT_TTL_S });
    await this.#pub.sAdd("sb:instances", this.instanceId);
  }

  /** Removes the presence of instances whose heartbeat expired; one instance does each. */
  async #reap(): Promise<void> {
    for (const inst of await this.#pub.sMembers("sb:instances")) {
      if (inst === this.instanceId || (await this.#pub.exists(`sb:inst:${inst}`)) === 1) continue;
      const lock = await this.#pub.set(`sb:reap:${inst}`, this.instanceId, { NX: true, EX: 30 });
      if (lock !== "OK") continue;
      const removed = await this.#removeInstance(inst);
      this.#log.warn("instance_expired", { instance: inst, entries: removed });
    }
  }

  async #removeInstance(inst: string): Promise<number> {
    let removed = 0;
    for (const channel of await this.#pub.sMembers(`sb:inst-channels:${inst}`)) {
      const all = await this.#pub.hGetAll(`sb:presence:${channel}`);
      const gone = Object.values(all).map((v) => JSON.parse(v) as StoredEntry).filter((e) => e.inst === inst);
      if (gone.length === 0) continue;
      await this.#pub.hDel(`sb:presence:${channel}`, gone.map((e) => e.connId));
      removed += gone.length;
      const entries = gone.map(({ connId, id, name }) => ({ connId, id, name }));
      if (inst !== this.instanceId) { for (const fn of this.#expired) fn(channel, entries); }
    }
    await this.#pub.del(`sb:inst-channels:${inst}`);
    if (inst !== this.instanceId) await this.#pub.sRem("sb:instances", inst);
    return removed;
  }

  connected(): boolean {
    return this.#pub.isReady && this.#sub.isReady;
  }

  async ready(): Promise<boolean> {
    if (!this.#pub.isReady || !this.#sub.isReady) return false;
    try {
      return (await this.#pub.ping()) === "PONG";
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    try {
      // Leave without waiting for the reaper: drop our own entries and heartbeat.
      if (this.#pub.isReady) {
        await this.#removeInstance(this.instanceId);
        await this.#pub.del(`sb:inst:${this.instanceId}`);
        await this.#pub.sRem("sb:instances", this.instanceId);
      }
    } catch (err) {
      this.#log.warn("redis_close_failed", { error: String(err) });
    }
    await Promise.allSettled([this.#sub.close(), this.#pub.close()]);
  }
}
