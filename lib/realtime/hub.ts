/**
 * The hub: this process's sockets, the channels they listen to, and the outgoing queue of each.
 *
 * Every publication takes one path, publish → broker → hub, even on one node. The hub subscribes to a broker channel
 * when its first local socket joins it and unsubscribes when the last one leaves, so cluster mode changes nothing
 * above the broker. A broadcast arrives as one encoded string and the same string is written to every socket.
 *
 * Deno's `send()` never blocks (see shared DENO_NOTES), so each socket's writes are gated on `bufferedAmount`:
 * past {@linkcode HIGH_WATER} frames wait in our queue, and a socket whose queue and native buffer together pass
 * `maxBufferedBytes` is closed with 1013 as a slow consumer.
 *
 * @module
 */
import type { Broker } from "../broker/broker.ts";
import type { Logger } from "../log.ts";
import { Metrics } from "../metrics.ts";

/** Bytes in Deno's native socket buffer above which frames wait in our queue instead. */
export const HIGH_WATER = 256 * 1024;
/** How often backed-up sockets are re-checked, in ms. */
const DRAIN_INTERVAL_MS = 4;
/** Largest batch frame (`?batch=1`): a backed-up socket gets several of these rather than one huge array. */
export const MAX_BATCH_FRAME = 32 * 1024;
/** Most frames one socket writes per drain pass, so one socket never holds the event loop for long. */
const MAX_WRITES_PER_PASS = 2048;
/** Most incoming messages between admission and publication (see {@linkcode Hub.admit}). */
export const MAX_IN_FLIGHT = 1024;
/** A backed-up socket whose native buffer has not moved for this long is cut as a slow consumer. */
export const STALL_MS = 5000;

/** Close codes we send; see docs/protocol.md. */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  policy: 1008,
  tooLarge: 1009,
  internal: 1011,
  resync: 1012,
  slowConsumer: 1013,
  /** 4000–4099 are final: the client module does not reconnect. The agent's session ended (logout, password). */
  sessionEnded: 4001,
} as const;

let nextConnId = 0;
const idPrefix = crypto.randomUUID().slice(0, 8);

/** A new id, unique across instances: an instance prefix and a counter. */
export function newConnId(): string {
  return `${idPrefix}-${(++nextConnId).toString(36)}`;
}

/** Anything the hub can fan out to: a WebSocket ({@linkcode Conn}) or an SSE stream. */
export interface Subscriber {
  readonly id: string;
  readonly endpoint: string;
  /** Channels this subscriber listens to (mirrors the hub's channel → subscribers map). */
  readonly channels: Set<string>;
  closed: boolean;
  send(frame: string): void;
  /** Ends the socket or stream (its close path then calls {@linkcode Hub.remove}). */
  close(code?: number, reason?: string): void;
}

/** One accepted socket. Its `state` (of type `S`, filled at upgrade) holds what the endpoint knows about it. */
export class Conn<S = unknown> implements Subscriber {
  /** Unique across instances: an instance prefix and a counter. */
  readonly id: string;
  readonly endpoint: string;
  readonly ip: string;
  /** Whether JSON frames queued in one turn go out as one array frame (`?batch=1`). */
  readonly batch: boolean;
  /** Channels this socket listens to (mirrors the hub's channel → sockets map). */
  readonly channels: Set<string> = new Set();
  /** Endpoint-specific data filled at upgrade. */
  state: S;
  closed = false;
  readonly openedAt = Date.now();
  /** The last incoming frame in this socket's line, and how many are in it (see `jsonMessages`). */
  inbound: Promise<void> | undefined = undefined;
  inboundCount = 0;

  #ws: WebSocket;
  #hub: Hub;
  /** Frames waiting for the native buffer; `#head` is the next one to send (a read index: O(1) dequeues). */
  #queue: (string | ArrayBuffer | undefined)[] = [];
  #head = 0;
  #queuedBytes = 0;
  #batchPending = false;
  #held: string[] | undefined;
  #lastBuffered = 0;
  #lastProgress = 0;

  constructor(hub: Hub, ws: WebSocket, endpoint: string, ip: string, batch: boolean, state: S) {
    this.id = newConnId();
    this.state = state;
    this.#hub = hub;
    this.#ws = ws;
    this.endpoint = endpoint;
    this.ip = ip;
    this.batch = batch;
  }

  /** Bytes waiting in our queue plus Deno's native buffer. */
  get pendingBytes(): number {
    return this.#queuedBytes + this.#ws.bufferedAmount;
  }

  /**
   * Holds live frames back until {@linkcode release}: used while a welcome with history is being prepared, so
   * nothing published meanwhile is lost or sent before it.
   */
  hold(): void {
    this.#held ??= [];
  }

  /** Sends `first` (welcome, recovered history), then the held frames that `keep` accepts, and stops holding. */
  release(first: string[], keep: (frame: string) => boolean = () => true): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const frame of first) this.send(frame);
    for (const frame of held) if (keep(frame)) this.send(frame);
  }

  /** Sends one encoded JSON message (batched when the socket asked for it). */
  send(frame: string): void {
    if (this.closed) return;
    if (this.#held) {
      this.#held.push(frame);
      return;
    }
    if (this.batch) {
      this.#enqueue(frame);
      if (!this.#batchPending) {
        this.#batchPending = true;
        this.#hub.scheduleFlush(this);
      }
      return;
    }
    this.sendRaw(frame);
  }

  /** Sends a frame as it is, never batched (the echo path). */
  sendRaw(data: string | ArrayBuffer): void {
    if (this.closed) return;
    if (this.#head === this.#queue.length && this.#ws.bufferedAmount < HIGH_WATER) {
      this.#write(data);
      return;
    }
    this.#enqueue(data);
    this.#hub.markBackedUp(this);
  }

  /** Encodes and sends one message object. */
  sendJson(message: unknown): void {
    this.send(JSON.stringify(message));
  }

  /** Closes the socket; safe to call more than once. */
  close(code: number = CloseCode.normal, reason = ""): void {
    if (this.#ws.readyState === WebSocket.CLOSING || this.#ws.readyState === WebSocket.CLOSED) return;
    this.discard();
    try {
      this.#ws.close(code, reason);
    } catch {
      // already closing
    }
  }

  /** Drops everything queued (closing). */
  discard(): void {
    this.#hub.adjustQueued(-this.#queuedBytes);
    this.#queue = [];
    this.#head = 0;
    this.#queuedBytes = 0;
  }

  #enqueue(data: string | ArrayBuffer): void {
    this.#queue.push(data);
    // String length underestimates UTF-8 bytes by at most 3×; good enough for a memory bound.
    const size = typeof data === "string" ? data.length : data.byteLength;
    this.#queuedBytes += size;
    this.#hub.adjustQueued(size);
    // Reading bufferedAmount is an op call: only when the queue alone is near the limit. The native buffer holds
    // at most HIGH_WATER plus one frame, because we only write below HIGH_WATER.
    const limit = this.#hub.maxBufferedBytes;
    if (limit > 0 && this.#queuedBytes > limit - HIGH_WATER - MAX_BATCH_FRAME) this.#checkSlow();
  }

  #dequeue(): string | ArrayBuffer {
    const data = this.#queue[this.#head]!;
    this.#queue[this.#head++] = undefined;
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 4096 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    const size = typeof data === "string" ? data.length : data.byteLength;
    this.#queuedBytes -= size;
    this.#hub.adjustQueued(-size);
    return data;
  }

  #checkSlow(): boolean {
    const limit = this.#hub.maxBufferedBytes;
    if (limit > 0 && this.pendingBytes > limit) {
      this.#cutSlow();
      return true;
    }
    return false;
  }

  #cutSlow(): void {
    this.#hub.slowConsumer(this);
    this.close(CloseCode.slowConsumer, "slow consumer");
  }

  #write(data: string | ArrayBuffer): void {
    try {
      this.#ws.send(data);
      this.#hub.countOut(this.endpoint);
    } catch {
      // The socket closed under us; its close event cleans up.
    }
  }

  /** Writes what the native buffer can take now; returns true when the queue is empty. */
  flush(): boolean {
    this.#batchPending = false;
    if (this.closed || this.#ws.readyState !== WebSocket.OPEN) return true;
    if (this.#head === this.#queue.length) return true;
    const buffered = this.#ws.bufferedAmount;
    const now = performance.now();
    if (buffered < this.#lastBuffered || this.#lastProgress === 0) this.#lastProgress = now;
    this.#lastBuffered = buffered;
    if (buffered >= HIGH_WATER) {
      // A peer that reads nothing for STALL_MS is cut even below the byte limit: it would hold its queue forever
      // (and with it the intake of every room it is in). `--max-buffered-bytes 0` turns both checks off.
      if (this.#hub.maxBufferedBytes > 0 && now - this.#lastProgress > STALL_MS) this.#cutSlow();
      else this.#checkSlow();
      return this.closed;
    }
    let writes = 0;
    while (
      this.#head < this.#queue.length && writes < MAX_WRITES_PER_PASS && this.#ws.bufferedAmount < HIGH_WATER
    ) {
      if (this.batch) {
        // What is queued goes out as JSON array frames of up to MAX_BATCH_FRAME characters.
        const parts: string[] = [];
        let size = 0;
        while (this.#head < this.#queue.length && (parts.length === 0 || size < MAX_BATCH_FRAME)) {
          const frame = this.#dequeue() as string;
          parts.push(frame);
          size += frame.length + 1;
        }
        this.#write(`[${parts.join(",")}]`);
      } else {
        this.#write(this.#dequeue());
      }
      writes++;
    }
    this.#lastProgress = now;
    this.#lastBuffered = this.#ws.bufferedAmount;
    return this.#head === this.#queue.length;
  }
}

/** This process's sockets and their channel memberships. */
export class Hub {
  #conns = new Map<string, Subscriber>();
  #channels = new Map<string, Set<Subscriber>>();
  #unsubscribe = new Map<string, () => void>();
  #broker: Broker;
  #dirty = new Set<Conn>();
  #flushQueued = false;
  #backedUp = new Set<Conn>();
  #drainTimer: ReturnType<typeof setInterval> | undefined;
  #metrics: Metrics;
  #log: Logger;
  #queuedTotal = 0;
  #outCounters = new Map<string, { inc(by?: number): void }>();
  #inFlight = 0;
  #resuming = 0;
  #waiters: ((() => void) | undefined)[] = [];
  #waitHead = 0;
  readonly maxBufferedBytes: number;
  /** Bytes queued across all sockets above which new input waits ({@linkcode admit}). */
  readonly intakeBudget: number;

  constructor(broker: Broker, metrics: Metrics, log: Logger, maxBufferedBytes: number) {
    this.#broker = broker;
    this.#metrics = metrics;
    this.#log = log;
    this.maxBufferedBytes = maxBufferedBytes;
    // With no per-socket bound (0) a stuck peer is never cut, so intake must not wait on the queues either.
    this.intakeBudget = maxBufferedBytes > 0 ? Math.max(16 * 1024 * 1024, 4 * maxBufferedBytes) : Infinity;
    metrics.gauge("switchboard_connections", "Open sockets by endpoint", () => {
      const counts = new Map<string, number>();
      for (const conn of this.#conns.values()) {
        const key = Metrics.labels({ endpoint: conn.endpoint });
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      return counts;
    });
  }

  /** Tracks bytes queued in sockets' own queues (not Deno's native buffers). */
  adjustQueued(delta: number): void {
    this.#queuedTotal += delta;
    if (delta < 0 && this.#waiters.length > this.#waitHead) this.#release();
  }

  /**
   * Input backpressure. One chat message becomes a frame for every member, so a handler asks to be admitted
   * before it stores and publishes a message, and calls {@linkcode done} after. Admission waits (in arrival
   * order) while {@linkcode MAX_IN_FLIGHT} messages are between admission and publication, or while the output
   * queues hold more than {@linkcode intakeBudget}. Deno cannot stop reading a socket, but an unprocessed
   * incoming message is small next to its fan-out.
   */
  admit(): Promise<void> | undefined {
    // Only when nobody waits and every released waiter has resumed: otherwise a frame that arrives in the same
    // turn as a release could overtake frames of its own socket that were admitted before it.
    if (this.#waiters.length === this.#waitHead && this.#resuming === 0 && this.#canAdmit()) {
      this.#inFlight++;
      return undefined;
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Called by a waiter of {@linkcode admit} as soon as it resumes. */
  resumed(): void {
    this.#resuming--;
  }

  /** Ends an admission (see {@linkcode admit}). */
  done(): void {
    this.#inFlight--;
    if (this.#waiters.length > this.#waitHead) this.#release();
  }

  #canAdmit(): boolean {
    return this.#inFlight < MAX_IN_FLIGHT && this.#queuedTotal < this.intakeBudget;
  }

  #release(): void {
    while (this.#waitHead < this.#waiters.length && this.#canAdmit()) {
      this.#inFlight++;
      this.#resuming++;
      const resolve = this.#waiters[this.#waitHead];
      this.#waiters[this.#waitHead++] = undefined;
      resolve!();
    }
    if (this.#waitHead === this.#waiters.length) {
      this.#waiters = [];
      this.#waitHead = 0;
    }
  }

  /** Number of open sockets in this process. */
  get size(): number {
    return this.#conns.size;
  }

  /** All open sockets and streams. */
  conns(): IterableIterator<Subscriber> {
    return this.#conns.values();
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

  /** Adds a socket to a channel, subscribing this process to it on first use. */
  join(conn: Subscriber, channel: string): void {
    if (conn.closed) return;
    let members = this.#channels.get(channel);
    if (!members) {
      members = new Set();
      this.#channels.set(channel, members);
      this.#unsubscribe.set(
        channel,
        this.#broker.subscribe(channel, (frame, except) => this.deliver(channel, frame, except)),
      );
    }
    members.add(conn);
    conn.channels.add(channel);
  }

  /** Removes a socket from a channel; an empty channel is dropped and unsubscribed. */
  leave(conn: Subscriber, channel: string): void {
    conn.channels.delete(channel);
    const members = this.#channels.get(channel);
    if (!members) return;
    members.delete(conn);
    if (members.size === 0) {
      this.#channels.delete(channel);
      this.#unsubscribe.get(channel)?.();
      this.#unsubscribe.delete(channel);
    }
  }

  /** Local channel names with a prefix. */
  channelNames(prefix: string): string[] {
    return [...this.#channels.keys()].filter((c) => c.startsWith(prefix));
  }

  /** Writes one encoded frame to every local socket in `channel` but `except`; returns how many got it. */
  deliver(channel: string, frame: string, except?: string): number {
    const members = this.#channels.get(channel);
    if (!members) return 0;
    let n = 0;
    for (const conn of members) {
      if (conn.id === except) continue;
      conn.send(frame);
      n++;
    }
    return n;
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
  closeAll(code: number, reason: string): void {
    for (const conn of [...this.#conns.values()]) conn.close(code, reason);
  }
}
