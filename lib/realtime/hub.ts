/**
 * The hub: this process's sockets and streams, and the channels they listen to.
 *
 * Every publication takes one path, publish → broker → hub, even on one node. The hub subscribes to a broker channel
 * when its first local socket joins it and unsubscribes when the last one leaves, so cluster mode changes nothing
 * above the broker. A broadcast arrives as one encoded string and the same string is written to every socket
 * (`conn.ts` queues and writes it; `admission.ts` holds input back while output queues are full).
 *
 * @module
 */
import type { Broker, FrameMeta, Subscription } from "../broker/broker.ts";
import type { Logger } from "../log.ts";
import { Metrics } from "../metrics.ts";
import { Admission } from "./admission.ts";
import { Conn, type ConnHost, type Subscriber } from "./conn.ts";

import { CloseCode, closeReason } from "./close_codes.ts";
import { GapWatch } from "./gaps.ts";

export { CloseCode } from "./close_codes.ts";
export { Conn, INSTANCE_ID, instanceOf, newConnId, type Subscriber } from "./conn.ts";

/** How often backed-up sockets are re-checked, in ms. */
const DRAIN_INTERVAL_MS = 4;

/** This process's sockets and their channel memberships. */
export class Hub implements ConnHost {
  #conns = new Map<string, Subscriber>();
  #channels = new Map<string, Set<Subscriber>>();
  #subscriptions = new Map<string, Subscription>();
  #gaps: GapWatch;
  #broker: Broker;
  #dirty = new Set<Conn>();
  #flushQueued = false;
  #later: (() => void | Promise<void>)[] = [];
  #laterTimer: ReturnType<typeof setTimeout> | undefined;
  #laterRunning: Promise<void> | undefined;
  #backedUp = new Set<Conn>();
  #drainTimer: ReturnType<typeof setInterval> | undefined;
  #metrics: Metrics;
  #log: Logger;
  #outCounters = new Map<string, { inc(by?: number): void }>();
  readonly maxBufferedBytes: number;
  /** Input backpressure for every socket and publication of this process. */
  readonly admission: Admission;

  constructor(broker: Broker, metrics: Metrics, log: Logger, maxBufferedBytes: number) {
    this.#broker = broker;
    this.#metrics = metrics;
    this.#log = log;
    this.maxBufferedBytes = maxBufferedBytes;
    this.#gaps = new GapWatch((channel, stream, seq) => this.#resync(channel, stream, seq));
    // With no per-socket bound (0) a stuck peer is never cut, so intake must not wait on the queues either.
    this.admission = new Admission(
      maxBufferedBytes > 0 ? Math.max(16 * 1024 * 1024, 4 * maxBufferedBytes) : Infinity,
    );
    metrics.gauge("switchboard_connections", "Open sockets by endpoint", () => {
      const counts = new Map<string, number>();
      for (const conn of this.#conns.values()) {
        const key = Metrics.labels({ endpoint: conn.endpoint });
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      return counts;
    });
  }

  /** Tracks bytes queued in sockets' own queues (for {@linkcode admission}). */
  adjustQueued(delta: number): void {
    this.admission.adjustQueued(delta);
  }

  /** Number of open sockets in this process. */
  get size(): number {
    return this.#conns.size;
  }

  /** All open sockets and streams. */
  conns(): IterableIterator<Subscriber> {
    return this.#conns.values();
  }

  /** The open socket or stream with this id, if this process holds it. */
  get(id: string): Subscriber | undefined {
    return this.#conns.get(id);
  }

  /** Registers a new socket or stream. */
  add(conn: Subscriber): void {
    this.#conns.set(conn.id, conn);
  }

  /** Forgets a socket and leaves its channels; idempotent (close can fire twice). */
  remove(conn: Subscriber): boolean {
    if (conn.closed) return false;
    conn.closed = true;
    this.#conns.delete(conn.id);
    for (const channel of [...conn.channels]) this.leave(conn, channel);
    if (conn instanceof Conn) {
      conn.discard();
      this.#dirty.delete(conn);
      this.#backedUp.delete(conn);
    }
    this.#stopDrainIfIdle();
    return true;
  }

  /**
   * Adds a socket to a channel, subscribing this process to it on first use. Resolves once the subscription is
   * live, so a join that reads history afterwards misses nothing published after the read.
   */
  join(conn: Subscriber, channel: string): Promise<void> {
    if (conn.closed) return Promise.resolve();
    let members = this.#channels.get(channel);
    let subscription = this.#subscriptions.get(channel);
    if (!members || !subscription) {
      members = new Set();
      this.#channels.set(channel, members);
      subscription = this.#broker.subscribe(channel, (frame, meta) => this.deliver(channel, frame, meta));
      this.#subscriptions.set(channel, subscription);
    }
    members.add(conn);
    conn.channels.add(channel);
    return subscription.ready;
  }

  /** Removes a socket from a channel; an empty channel is dropped and unsubscribed. */
  leave(conn: Subscriber, channel: string): void {
    conn.channels.delete(channel);
    const members = this.#channels.get(channel);
    if (!members) return;
    members.delete(conn);
    if (members.size === 0) {
      this.#channels.delete(channel);
      this.#subscriptions.get(channel)?.unsubscribe();
      this.#subscriptions.delete(channel);
      this.#gaps.forget(channel);
    }
  }

  /** Local channel names with a prefix. */
  channelNames(prefix: string): string[] {
    return [...this.#channels.keys()].filter((c) => c.startsWith(prefix));
  }

  /** Writes one encoded frame to every local socket in `channel` but `meta.except`; returns how many got it. */
  deliver(channel: string, frame: string, meta: FrameMeta = {}): number {
    const members = this.#channels.get(channel);
    if (!members) return 0;
    const { except, at, close } = meta;
    if (close !== undefined) {
      const closing = [...members].filter((c) => c.id !== except);
      for (const conn of closing) conn.close(close);
      return closing.length;
    }
    if (at) this.#gaps.observe(channel, at);
    let n = 0;
    for (const conn of members) {
      if (conn.id === except) continue;
      conn.send(frame, at);
      n++;
    }
    return n;
  }

  /** A frame of `stream` never reached `channel`: its sockets reconnect and recover what they missed. */
  #resync(channel: string, stream: string, seq: number): void {
    const members = this.#channels.get(channel);
    this.#metrics.inc("switchboard_stream_gaps_total");
    this.#log.warn("stream_gap", { channel, stream, seq, sockets: members?.size ?? 0 });
    for (const conn of [...members ?? []]) conn.close(CloseCode.resync);
  }

  /** Called by a batching socket: flush it at the end of this turn. */
  scheduleFlush(conn: Conn): void {
    this.#dirty.add(conn);
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => {
      this.#flushQueued = false;
      const dirty = [...this.#dirty];
      this.#dirty.clear();
      for (const c of dirty) if (!c.flush()) this.markBackedUp(c);
    });
  }

  /**
   * Runs `fn` in a later event-loop turn, after the HTTP answers of this turn are handed to the runtime (so they
   * are written before the socket frames `fn` sends). Calls run one at a time, in call order, an async one to
   * its end before the next.
   */
  later(fn: () => void | Promise<void>): void {
    this.#later.push(fn);
    if (this.#laterRunning === undefined) this.#laterTimer ??= setTimeout(() => void this.runLater(), 0);
  }

  /** Runs what {@linkcode later} holds, now (its timer, and shutdown: nothing queued is dropped). */
  runLater(): Promise<void> {
    clearTimeout(this.#laterTimer);
    this.#laterTimer = undefined;
    this.#laterRunning ??= (async () => {
      try {
        for (let fn = this.#later.shift(); fn; fn = this.#later.shift()) {
          try {
            await fn();
          } catch (err) {
            this.#log.error("later_failed", { error: String(err) });
          }
        }
      } finally {
        this.#laterRunning = undefined;
      }
    })();
    return this.#laterRunning;
  }

  /** Called when a socket's native buffer is full: re-check it until it drains. */
  markBackedUp(conn: Conn): void {
    if (conn.closed) return;
    this.#backedUp.add(conn);
    if (this.#drainTimer !== undefined) return;
    this.#drainTimer = setInterval(() => {
      for (const c of this.#backedUp) if (c.closed || c.flush()) this.#backedUp.delete(c);
      this.#stopDrainIfIdle();
    }, DRAIN_INTERVAL_MS);
  }

  #stopDrainIfIdle(): void {
    if (this.#backedUp.size === 0 && this.#drainTimer !== undefined) {
      clearInterval(this.#drainTimer);
      this.#drainTimer = undefined;
    }
  }

  /** Counts an outgoing frame. */
  countOut(endpoint: string): void {
    let counter = this.#outCounters.get(endpoint);
    if (!counter) {
      counter = this.#metrics.counter("switchboard_messages_out_total", { endpoint });
      this.#outCounters.set(endpoint, counter);
    }
    counter.inc();
  }

  /** Records a slow-consumer disconnect. */
  slowConsumer(conn: Subscriber & { pendingBytes: number }): void {
    this.#metrics.inc("switchboard_slow_consumer_disconnects_total", { endpoint: conn.endpoint });
    this.#log.warn("slow_consumer", {
      conn: conn.id,
      endpoint: conn.endpoint,
      pendingBytes: conn.pendingBytes,
    });
  }

  /** Closes every socket (shutdown). */
  closeAll(code: number, reason = closeReason(code)): void {
    for (const conn of [...this.#conns.values()]) conn.close(code, reason);
  }
}
