/**
 * One accepted socket and its outgoing queue.
 *
 * Deno's `send()` never blocks (see shared DENO_NOTES), so each socket's writes are gated on `bufferedAmount`:
 * past {@linkcode HIGH_WATER} frames wait in our queue, and a socket whose queue and native buffer together pass
 * `maxBufferedBytes` is closed with 1013 as a slow consumer. A `Conn` talks to its hub only through the small
 * {@linkcode ConnHost} interface, and to the network only through {@linkcode Transport} (a WebSocket), so it can be
 * tested alone.
 *
 * @module
 */
import type { Identity } from "../auth/identity.ts";
import type { Position } from "../broker/broker.ts";
import { CloseCode, closeReason } from "./close_codes.ts";

/** Bytes in Deno's native socket buffer above which frames wait in our queue instead. */
export const HIGH_WATER = 256 * 1024;
/**
 * Size of a batch frame (`?batch=1`): a batch ends with the frame that reaches it (so it can pass it by one frame),
 * and a backed-up socket gets several of these rather than one huge array.
 */
export const MAX_BATCH_FRAME = 32 * 1024;
/** Most frames one socket writes per drain pass, so one socket never holds the event loop for long. */
const MAX_WRITES_PER_PASS = 2048;
/** A backed-up socket whose native buffer has not moved for this long is cut as a slow consumer. */
export const STALL_MS = 5000;

let nextConnId = 0;
const idPrefix = crypto.randomUUID().slice(0, 8);

/** This process's id: the prefix of every connection id it hands out, so an id names the instance holding it. */
export const INSTANCE_ID: string = idPrefix;

/** The instance that holds a connection, from its id. */
export function instanceOf(connId: string): string {
  return connId.split("-")[0];
}

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
  /** True once `close()` was called, until the close event removes it (a socket's close handshake). */
  readonly closing?: boolean;
  /** Sends an encoded frame; `at` is its stream position when the channel carries one. */
  send(frame: string, at?: Position): void;
  /** Ends the socket or stream (its close path then removes it from the hub). */
  close(code?: number, reason?: string): void;
}

/**
 * Live frames held back while a welcome with history or a recovery is being prepared, so nothing published
 * meanwhile is lost or sent before it. Sockets and SSE streams share it.
 */
export class Holdback {
  #held: { frame: string; at: Position | undefined }[] | undefined;

  /** Starts holding (idempotent). */
  hold(): void {
    this.#held ??= [];
  }

  /** Keeps a frame while holding; false when not holding (the caller sends it now). */
  keep(frame: string, at: Position | undefined): boolean {
    if (!this.#held) return false;
    this.#held.push({ frame, at });
    return true;
  }

  /** Stops holding and returns the held frames that `keep` accepts by their stream position, in order. */
  release(): { frame: string; at: Position | undefined }[] {
    const held = this.#held ?? [];
    this.#held = undefined;
    return held;
  }
}

/** What a socket needs from the network: the part of `WebSocket` a {@linkcode Conn} uses. */
export interface Transport {
  send(data: string | ArrayBufferLike | ArrayBufferView): void;
  close(code?: number, reason?: string): void;
  readonly readyState: number;
  readonly bufferedAmount: number;
  /**
   * Stop and start reading the peer (the own transport; Deno's `WebSocket` cannot). While paused, what the peer
   * sends waits in the kernel's buffers and then its own, not in our memory.
   */
  pause?(): void;
  resume?(): void;
  /** Sends the text frame `[part,part,…]` without building it as a string (the own transport). */
  sendArray?(parts: readonly string[]): void;
}

/** What a socket needs from its hub: flush scheduling, the shared queue budget, and counters. */
export interface ConnHost {
  /** Per-socket bound on queued bytes (0 = none). */
  readonly maxBufferedBytes: number;
  /** Flush this batching socket at the end of the turn. */
  scheduleFlush(conn: Conn): void;
  /** The native buffer is full: re-check this socket until it drains. */
  markBackedUp(conn: Conn): void;
  /** Bytes entered (positive) or left (negative) this socket's queue. */
  adjustQueued(delta: number): void;
  /** This socket is being cut as a slow consumer. */
  slowConsumer(conn: Conn): void;
  /** One frame went out. */
  countOut(endpoint: string): void;
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

  #ws: Transport;
  #hub: ConnHost;
  /** Frames waiting for the native buffer; `#head` is the next one to send (a read index: O(1) dequeues). */
  #queue: (string | ArrayBuffer | undefined)[] = [];
  #head = 0;
  #queuedBytes = 0;
  #batchPending = false;
  #holdback = new Holdback();
  /** Per stream, the last seq a recovery sent (see {@linkcode release}). */
  #floors: Map<string, number> | undefined;
  #closing = false;
  #expiry: ReturnType<typeof setTimeout> | undefined;
  /** The verified user of this socket, if it came with a token (refreshed by `refresh` frames). */
  identity: Identity | undefined;
  #lastBuffered = 0;
  #lastProgress = 0;

  constructor(hub: ConnHost, ws: Transport, endpoint: string, ip: string, batch: boolean, state: S) {
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
    this.#holdback.hold();
  }

  /**
   * Sends `first` (welcome, recovered history), then the held frames, and stops holding. With `floor` (the stream
   * and last seq that `first` covers), frames of that stream up to it are dropped, whether held or arriving later.
   */
  release(first: string[], floor?: Position): void {
    if (floor) (this.#floors ??= new Map()).set(floor.stream, floor.seq);
    const held = this.#holdback.release();
    for (const frame of first) this.send(frame);
    for (const h of held) this.send(h.frame, h.at);
  }

  /**
   * Whether a frame of a stream is at or below the position a recovery sent up to (see {@linkcode release}): it
   * was sent already. A frame can come after the release that took its place (a cluster broker, or a fan-out
   * that runs after the publisher's answer), so the floor stays until a newer frame of that stream passes.
   */
  #sentAlready(at: Position): boolean {
    const floor = this.#floors!.get(at.stream);
    if (floor === undefined) return false;
    if (at.seq <= floor) return true;
    this.#floors!.delete(at.stream);
    if (this.#floors!.size === 0) this.#floors = undefined;
    return false;
  }

  /** Sends one encoded JSON message (batched when the socket asked for it). */
  send(frame: string, at?: Position): void {
    if (this.closed || this.#closing || this.#holdback.keep(frame, at)) return;
    if (at && this.#floors && this.#sentAlready(at)) return;
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
    if (this.closed || this.#closing) return;
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

  get closing(): boolean {
    return this.#closing;
  }

  /** Stops reading the peer while its earlier frames are being handled (where the transport can). */
  pauseReading(): void {
    this.#ws.pause?.();
  }

  resumeReading(): void {
    this.#ws.resume?.();
  }

  /** Closes the socket; safe to call more than once. */
  close(code: number = CloseCode.normal, reason = closeReason(code)): void {
    // Once closing, nothing more is queued: a cut slow consumer must not refill its queue until its close event.
    this.#closing = true;
    this.expireAt(undefined);
    if (this.#ws.readyState === WebSocket.CLOSING || this.#ws.readyState === WebSocket.CLOSED) return;
    this.discard();
    try {
      this.#ws.close(code, reason);
    } catch {
      // already closing
    }
  }

  /**
   * Closes the socket with 4002 at `ms` (a token's expiry), replacing an earlier deadline; undefined clears it.
   */
  expireAt(ms: number | undefined): void {
    clearTimeout(this.#expiry);
    this.#expiry = undefined;
    if (ms === undefined || this.#closing) return;
    // setTimeout takes at most 2^31-1 ms; a later expiry is looked at again then.
    const wait = Math.min(Math.max(0, ms - Date.now()), 2 ** 31 - 1);
    this.#expiry = setTimeout(() => {
      if (Date.now() >= ms) this.close(CloseCode.tokenExpired);
      else this.expireAt(ms);
    }, wait);
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
    this.close(CloseCode.slowConsumer);
  }

  #write(data: string | ArrayBuffer): void {
    try {
      this.#ws.send(data);
      this.#hub.countOut(this.endpoint);
    } catch {
      // The socket closed under us; its close event cleans up.
    }
  }

  /** Writes the JSON array frame of `parts` (encoded into the socket's buffer where the transport can). */
  #writeArray(parts: string[]): void {
    if (!this.#ws.sendArray) return this.#write(`[${parts.join(",")}]`);
    try {
      this.#ws.sendArray(parts);
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
        // What is queued goes out as JSON array frames of about MAX_BATCH_FRAME characters (the frame that
        // reaches the cap ends the batch).
        const parts: string[] = [];
        let size = 0;
        while (this.#head < this.#queue.length && (parts.length === 0 || size < MAX_BATCH_FRAME)) {
          const frame = this.#dequeue() as string;
          parts.push(frame);
          size += frame.length + 1;
        }
        this.#writeArray(parts);
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
