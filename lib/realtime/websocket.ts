/**
 * Our own WebSocket server framing (RFC 6455) over a TCP or TLS connection, for the `own` transport
 * (`--transport own`, see `lib/http/front.ts`).
 *
 * Why (issue #15, goal 1, measured in docs/benchmarks.md): Deno's `WebSocket` writes every `send()` on its own,
 * so a fan-out of small frames is one syscall per frame per socket. Here each socket's outgoing frames are
 * corked: an idle socket writes a frame at once, and whatever is queued while that write is in flight leaves
 * in a single `write()` after it. A frame sent to many sockets is encoded once (server frames are unmasked, so
 * the bytes are the same for every receiver).
 *
 * {@linkcode ServerSocket} has the part of the `WebSocket` interface the hub and the endpoints use (`send`,
 * `close`, `readyState`, `bufferedAmount`, `binaryType` and the four `on…` handlers), so everything above the
 * transport is one code path; {@linkcode upgradeWebSocket} picks the transport a request came through.
 *
 * What the framing enforces (a violation closes with the RFC's code): client frames masked (1002), no reserved
 * bits or opcodes (1002), control frames short and unfragmented (1002), continuations only inside a fragmented
 * message (1002), valid UTF-8 in text messages and close reasons (1007), valid close codes (1002), messages up to
 * the socket's limit (`--max-message-bytes`; 1009 as soon as a frame's header says it would pass it, before
 * its payload is buffered). Pings are answered with pongs (not while a backlog of unsent frames is over
 * {@linkcode PONG_BACKLOG_BYTES}: a peer that pings and never reads gets no growing queue). With an idle timeout, a peer silent for half of it gets a ping, and one silent for all of it is dropped
 * (as `Deno.upgradeWebSocket`'s `idleTimeout`). No extensions (Deno has no permessage-deflate either).
 *
 * @module
 */

/** The GUID of RFC 6455 section 1.3. */
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** Largest message the framing buffers, as Deno's own stack (which resets connections from 64 MiB). */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024 - 1;
/** Above this many unsent bytes, pings go unanswered (the peer is not reading anyway). */
export const PONG_BACKLOG_BYTES = 64 * 1024;
/** Most non-empty fragments of one message (empty ones are skipped). */
const MAX_FRAGMENTS = 4096;
/** How long a close handshake may take before the connection is cut. */
const CLOSE_TIMEOUT_MS = 2000;
/** Read buffer bounds: an idle socket holds the small one; a busy one grows it. */
const READ_MIN = 2048;
const READ_MAX = 256 * 1024;
/** The smallest buffer frames gather in while a write is in flight, and the most an idle socket keeps. */
const MIN_OUT_BUFFER = 4096;
const KEEP_OUT_BUFFER = 4096;
/** A frame this large, sent while a write is in flight, is queued as it is instead of copied. */
const SHARE_MIN = 32 * 1024;

const OP_CONT = 0x0, OP_TEXT = 0x1, OP_BINARY = 0x2, OP_CLOSE = 0x8, OP_PING = 0x9, OP_PONG = 0xa;

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** A protocol violation: the close code and reason it ends the connection with. */
class WireError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** The longest frame header a server writes (no mask). */
const MAX_HEADER = 10;
/** The shared scratch buffer of {@linkcode ServerSocket.sendArray}; one larger than this is not kept. */
const KEEP_SCRATCH = 1024 * 1024;
let scratch = new Uint8Array(64 * 1024);

/** The scratch buffer, at least `n` bytes long (a temporary one above {@linkcode KEEP_SCRATCH}). */
function scratchFor(n: number): Uint8Array {
  if (n <= scratch.length) return scratch;
  if (n > KEEP_SCRATCH) return new Uint8Array(n);
  scratch = new Uint8Array(Math.max(n, scratch.length * 2));
  return scratch;
}

/** A server frame (FIN set, unmasked) of `opcode` around `payload`. */
export function encodeFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const n = payload.length;
  const out = new Uint8Array(headerSize(n) + n);
  out.set(payload, writeHeader(out, 0, opcode, n));
  return out;
}

/** The header length of a frame with an `n`-byte payload. */
function headerSize(n: number): number {
  return n < 126 ? 2 : n < 65536 ? 4 : 10;
}

/** Writes the header of a server frame with an `n`-byte payload at `at`; returns where the payload starts. */
function writeHeader(out: Uint8Array, at: number, opcode: number, n: number): number {
  out[at] = 0x80 | opcode;
  if (n < 126) {
    out[at + 1] = n;
    return at + 2;
  }
  if (n < 65536) {
    out[at + 1] = 126;
    out[at + 2] = n >>> 8;
    out[at + 3] = n & 0xff;
    return at + 4;
  }
  out[at + 1] = 127;
  new DataView(out.buffer, out.byteOffset + at + 2, 8).setBigUint64(0, BigInt(n));
  return at + 10;
}

/** The last text frame encoded, reused while the same string goes to many sockets (a fan-out loop). */
let lastText: string | undefined;
let lastTextFrame: Uint8Array = new Uint8Array(0);

function textFrame(text: string): Uint8Array {
  if (text !== lastText) {
    lastTextFrame = encodeFrame(OP_TEXT, encoder.encode(text));
    lastText = text;
  }
  return lastTextFrame;
}

/** Whether `code` may appear in a close frame (RFC 6455 section 7.4). */
export function validCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

function closePayload(code: number, reason: string): Uint8Array {
  const text = encoder.encode(reason);
  // A close frame's payload is at most 125 bytes: 2 for the code, 123 for the reason.
  const cut = text.length > 123 ? text.subarray(0, 123) : text;
  const out = new Uint8Array(2 + cut.length);
  out[0] = code >>> 8;
  out[1] = code & 0xff;
  out.set(cut, 2);
  return out;
}

/** `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`. */
export async function acceptKey(key: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-1", encoder.encode(key + GUID)));
  return btoa(String.fromCharCode(...digest));
}

/** What a socket's event handlers receive (structurally a subset of the DOM events). */
export interface SocketMessage {
  data: string | ArrayBuffer;
}
export interface SocketClose {
  code: number;
  reason: string;
  wasClean: boolean;
}

/** Sockets of one server, for the idle sweep and for shutdown. */
export class SocketSet {
  readonly sockets = new Set<ServerSocket>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #idleMs: number;

  /** `idleTimeoutS` 0: peers are never pinged nor dropped for silence. */
  constructor(idleTimeoutS: number) {
    this.#idleMs = idleTimeoutS * 1000;
  }

  add(socket: ServerSocket): void {
    this.sockets.add(socket);
    if (this.#idleMs > 0 && this.#timer === undefined) {
      const every = Math.min(5000, Math.max(100, this.#idleMs / 8));
      this.#timer = setInterval(() => this.#sweep(), every);
    }
  }

  delete(socket: ServerSocket): void {
    this.sockets.delete(socket);
    if (this.sockets.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #sweep(): void {
    const now = performance.now();
    for (const s of this.sockets) s.checkIdle(now, this.#idleMs);
  }

  /** Resolves when every socket has closed (or `ms` passed); then cuts the rest. */
  async drained(ms: number): Promise<void> {
    const deadline = performance.now() + ms;
    while (this.sockets.size > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const s of [...this.sockets]) s.destroy(1006, "server stopped", false);
  }
}

/** One upgraded connection with our framing. Starts in `CONNECTING`; {@linkcode start} opens it. */
export class ServerSocket {
  readyState: number = WebSocket.CONNECTING;
  binaryType: BinaryType = "blob";
  readonly protocol: string;
  readonly extensions = "";
  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: SocketMessage) => void) | null = null;
  onclose: ((event: SocketClose) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;

  #conn: Deno.Conn;
  #set: SocketSet;
  /**
   * Frames sent while a write is in flight, copied into one buffer that the next write takes whole; the buffer
   * of the write before is kept as `#spare` for the one after, so a busy socket allocates nothing per frame.
   */
  #out: Uint8Array = EMPTY;
  #outLen = 0;
  #spare: Uint8Array | undefined;
  /** Large frames (not copied: a fan-out shares them) and what was gathered before them, in order, before `#out`. */
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  /** The chunk being written, and the buffer it belongs to when it is one of ours (not a shared frame). */
  #chunk: Uint8Array = EMPTY;
  #chunkBuffer: Uint8Array | undefined;
  #inFlight = 0;
  #writing = false;
  #lastHeard = performance.now();
  #pinged = false;
  /** The peer's close frame arrived (or we answered it): the connection ends once the queue is written. */
  #closeReceived = false;
  #closeSent = false;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  /** Reading stopped by {@linkcode pause}; `#resumed` wakes the read loop. */
  #paused = false;
  #resumed: (() => void) | undefined;
  /** A protocol error: our close is on its way, input is dropped. */
  #failed = false;
  #closeCode = 1005;
  #closeReason = "";
  // A fragmented message being received.
  #fragments: Uint8Array[] = [];
  #fragmentBytes = 0;
  #fragmentOpcode = 0;

  #maxMessage: number;
  #onTooLarge: (() => void) | undefined;

  /** `maxMessageBytes`: the largest message taken; `onTooLarge` hears of a peer that passed it (then 1009). */
  constructor(
    conn: Deno.Conn,
    set: SocketSet,
    { protocol = "", maxMessageBytes = MAX_MESSAGE_BYTES, onTooLarge }: UpgradeOptions = {},
  ) {
    this.#conn = conn;
    this.#set = set;
    this.protocol = protocol;
    this.#maxMessage = Math.min(maxMessageBytes, MAX_MESSAGE_BYTES);
    this.#onTooLarge = onTooLarge;
  }

  #tooLarge(): WireError {
    if (this.#onTooLarge) this.#fire(this.#onTooLarge);
    return new WireError(1009, `message over ${this.#maxMessage} bytes`);
  }

  /** Bytes given to `send()` and not yet written to the connection. */
  get bufferedAmount(): number {
    return this.#queuedBytes + this.#outLen + this.#inFlight;
  }

  /** Opens the socket (after the 101 answer was written) and reads, starting with bytes already read. */
  start(rest: Uint8Array): void {
    if (this.readyState !== WebSocket.CONNECTING) return;
    this.readyState = WebSocket.OPEN;
    this.#set.add(this);
    this.#fire(() => this.onopen?.(new Event("open")));
    this.#read(rest);
  }

  send(data: string | ArrayBufferLike | ArrayBufferView): void {
    if (this.readyState === WebSocket.CONNECTING) throw new DOMException("not open yet", "InvalidStateError");
    if (this.readyState !== WebSocket.OPEN) return;
    if (typeof data === "string") this.#push(textFrame(data));
    else {
      const bytes = ArrayBuffer.isView(data)
        ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
        : new Uint8Array(data);
      this.#push(encodeFrame(OP_BINARY, bytes));
    }
  }

  close(code = 1000, reason = ""): void {
    if (this.readyState === WebSocket.CLOSING || this.readyState === WebSocket.CLOSED) return;
    // Before the 101 is written there is no WebSocket to send a close frame on: the connection just ends.
    if (this.readyState === WebSocket.CONNECTING) return this.destroy(code, reason, false);
    this.#startClose(code, reason);
  }

  /** Ends the connection now and reports the close once. */
  destroy(code: number, reason: string, wasClean: boolean): void {
    if (this.readyState === WebSocket.CLOSED) return;
    this.readyState = WebSocket.CLOSED;
    clearTimeout(this.#closeTimer);
    // A paused read loop wakes up to see the end.
    this.#paused = false;
    this.#resumed?.();
    this.#out = EMPTY;
    this.#outLen = 0;
    this.#spare = undefined;
    this.#chunkBuffer = undefined;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#set.delete(this);
    try {
      this.#conn.close();
    } catch { /* already closed */ }
    this.#fire(() => this.onclose?.({ code, reason, wasClean }));
  }

  /** Stops reading until {@linkcode resume}: the peer's frames wait in the kernel's buffers. */
  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    // The silence was ours.
    this.#lastHeard = performance.now();
    const wake = this.#resumed;
    this.#resumed = undefined;
    wake?.();
  }

  /** The idle sweep: a ping at half the timeout, the end at all of it (not while we are not reading). */
  checkIdle(now: number, idleMs: number): void {
    if (this.#paused) return;
    const silent = now - this.#lastHeard;
    if (silent >= idleMs) this.destroy(1001, "idle timeout", false);
    else if (silent >= idleMs / 2 && !this.#pinged && this.readyState === WebSocket.OPEN) {
      this.#pinged = true;
      this.#push(encodeFrame(OP_PING, new Uint8Array(0)));
    }
  }

  #fire(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      // A handler's failure must not end the read loop; report it as Deno reports uncaught errors.
      reportError(err);
    }
  }

  #startClose(code: number, reason: string): void {
    this.readyState = WebSocket.CLOSING;
    this.#closeCode = code;
    this.#closeReason = reason;
    this.#closeSent = true;
    this.#push(encodeFrame(OP_CLOSE, code === 1005 ? new Uint8Array(0) : closePayload(code, reason)));
    this.#closeTimer = setTimeout(
      () => this.destroy(this.#closeCode, this.#closeReason, false),
      CLOSE_TIMEOUT_MS,
    );
  }

  #push(bytes: Uint8Array): void {
    if (this.#writing) {
      if (bytes.length >= SHARE_MIN) {
        // A large frame waits as it is, after what was gathered so far.
        if (this.#outLen > 0) {
          this.#queue.push(this.#out.subarray(0, this.#outLen));
          this.#queuedBytes += this.#outLen;
          this.#out = EMPTY;
          this.#outLen = 0;
        }
        this.#queue.push(bytes);
        this.#queuedBytes += bytes.length;
        return;
      }
      // A write is in flight: frames gather in one buffer and leave together in the next write.
      const at = this.#reserve(bytes.length);
      this.#out.set(bytes, at);
      this.#outLen = at + bytes.length;
      return;
    }
    // An idle socket writes at once (no flush delay), the frame as it is (it may be shared by a fan-out).
    this.#writing = true;
    this.#write(bytes, undefined);
  }

  /** Makes room for `n` more bytes in `#out`; returns where they go. */
  #reserve(n: number): number {
    const need = this.#outLen + n;
    if (need > this.#out.length) {
      const spare = this.#spare;
      let next: Uint8Array;
      if (this.#outLen === 0 && spare && spare.length >= need) {
        next = spare;
        this.#spare = undefined;
      } else {
        next = new Uint8Array(Math.max(need, this.#out.length * 2, MIN_OUT_BUFFER));
        next.set(this.#out.subarray(0, this.#outLen));
      }
      this.#out = next;
    }
    return this.#outLen;
  }

  /**
   * Sends the text frame `[part,part,…]` (a batch of JSON frames) as `send("[" + parts.join(",") + "]")` would,
   * without building the string's bytes and a framed copy of them: it is encoded into a scratch buffer shared by
   * every socket (sized for the worst case, 3 bytes per UTF-16 unit) and copied once, at its exact size, to where
   * this socket's bytes go. Reserving the worst case in each socket's own buffer made busy sockets allocate
   * (zeroed) three times what they sent.
   */
  sendArray(parts: readonly string[]): void {
    if (this.readyState === WebSocket.CONNECTING) throw new DOMException("not open yet", "InvalidStateError");
    if (this.readyState !== WebSocket.OPEN) return;
    let chars = 1 + parts.length;
    for (const p of parts) chars += p.length;
    const out = scratchFor(MAX_HEADER + 3 * chars);
    let at = MAX_HEADER;
    out[at++] = 0x5b; // [
    // One join and one encode call: cheaper than an encode call per part.
    at += encoder.encodeInto(parts.length === 1 ? parts[0] : parts.join(","), out.subarray(at)).written;
    out[at++] = 0x5d; // ]
    const n = at - MAX_HEADER;
    const start = MAX_HEADER - headerSize(n);
    writeHeader(out, start, OP_TEXT, n);
    const frame = out.subarray(start, at);
    // A large frame gets its own copy (written at once, or queued as it is); a small one joins the gathered bytes.
    if (frame.length >= SHARE_MIN) return this.#push(frame.slice());
    const idle = !this.#writing;
    const to = this.#reserve(frame.length);
    this.#out.set(frame, to);
    this.#outLen = to + frame.length;
    if (idle) {
      // Nothing in flight: this buffer goes out now, and frames sent meanwhile gather in the spare one.
      this.#writing = true;
      this.#writeGathered();
    }
  }

  /** Writes what `#out` gathered; the spare buffer takes its place for what comes meanwhile. */
  #writeGathered(): void {
    const full = this.#out;
    const len = this.#outLen;
    this.#out = this.#spare ?? EMPTY;
    this.#spare = undefined;
    this.#outLen = 0;
    this.#write(full.subarray(0, len), full);
  }

  #write(chunk: Uint8Array, buffer: Uint8Array | undefined): void {
    this.#chunk = chunk;
    this.#chunkBuffer = buffer;
    this.#inFlight = chunk.length;
    this.#conn.write(chunk).then(this.#onWritten, this.#onFailed);
  }

  // One pair of callbacks per socket, not two closures per write.
  #onWritten = (n: number): void => {
    if (this.readyState === WebSocket.CLOSED) return;
    const chunk = this.#chunk;
    if (n < chunk.length) return this.#write(chunk.subarray(n), this.#chunkBuffer);
    this.#inFlight = 0;
    // The written buffer is free again: the next one to fill.
    const done = this.#chunkBuffer;
    this.#chunkBuffer = undefined;
    if (done && (!this.#spare || this.#spare.length < done.length)) this.#spare = done;
    if (this.#queue.length > 0) {
      const next = this.#queue.shift()!;
      this.#queuedBytes -= next.length;
      return this.#write(next, undefined);
    }
    if (this.#outLen > 0) return this.#writeGathered();
    this.#writing = false;
    this.#chunk = EMPTY;
    // An idle socket keeps at most a small buffer (many idle sockets must stay cheap).
    if (this.#out.length > KEEP_OUT_BUFFER) this.#out = EMPTY;
    if (this.#spare && (this.#spare.length > KEEP_OUT_BUFFER || this.#out.length > 0)) {
      this.#spare = undefined;
    }
    // Both close frames are through: the server ends the TCP connection (RFC 6455 section 7.1.1).
    if (this.#closeSent && this.#closeReceived) this.destroy(this.#closeCode, this.#closeReason, true);
    else if (this.#failed) this.#endWriting();
  };

  #onFailed = (): void => {
    this.#inFlight = 0;
    this.#writing = false;
    this.destroy(1006, "", false);
  };

  async #read(first: Uint8Array): Promise<void> {
    let pending: Uint8Array = first;
    let buf = new Uint8Array(READ_MIN);
    try {
      while (this.readyState === WebSocket.OPEN || this.readyState === WebSocket.CLOSING) {
        if (pending.length > 0 && !this.#failed) {
          pending = this.#take(pending, pending !== first);
          if (this.#closeReceived) return;
        }
        if (this.#paused) {
          await new Promise<void>((resolve) => this.#resumed = resolve);
          continue;
        }
        const n = await this.#conn.read(buf);
        if (n === null) break;
        this.#lastHeard = performance.now();
        this.#pinged = false;
        // After a protocol error, input is read and dropped until the peer ends the connection (or the close
        // timer does): closing a socket with unread input would send a reset, and the peer would lose our close
        // frame with its code.
        if (this.#failed) continue;
        const got = buf.subarray(0, n);
        if (pending.length === 0) pending = got;
        else {
          const joined = new Uint8Array(pending.length + n);
          joined.set(pending);
          joined.set(got, pending.length);
          pending = joined;
        }
        // The parse consumes `got` before the next read reuses `buf`; a remainder is copied.
        pending = this.#take(pending, pending !== got);
        if (this.#closeReceived) return;
        if (n === buf.length && buf.length < READ_MAX) buf = new Uint8Array(buf.length * 4);
        else if (n < buf.length / 8 && buf.length > READ_MIN) buf = new Uint8Array(READ_MIN);
      }
    } catch {
      // A reset, or the connection closed under the read.
    }
    // The peer went away (without a close frame, or after our close for its protocol error).
    if (this.#failed) this.destroy(this.#closeCode, this.#closeReason, false);
    else this.destroy(1006, "", false);
  }

  /**
   * Parses what it can of `bytes` (all of it, or up to a pause); returns the unparsed rest, a copy unless `bytes`
   * is already ours alone (`owned`), or nothing.
   */
  #take(bytes: Uint8Array, owned: boolean): Uint8Array {
    let used: number;
    try {
      used = this.#parse(bytes);
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      this.#fail(err.code, err.message);
      return EMPTY;
    }
    return used === bytes.length ? EMPTY : owned ? bytes.subarray(used) : bytes.slice(used);
  }

  /** The peer broke the protocol: our close frame with `code` goes out, then our side of the stream ends. */
  #fail(code: number, reason: string): void {
    this.#failed = true;
    if (this.readyState === WebSocket.OPEN) this.#startClose(code, reason);
    if (!this.#writing) this.#endWriting();
  }

  #endWriting(): void {
    this.#conn.closeWrite().catch(() => {});
  }

  /**
   * Parses the complete frames at the start of `bytes` until a handler pauses reading (the rest then waits as
   * bytes, not as messages in our memory); returns how many bytes it consumed.
   */
  #parse(bytes: Uint8Array): number {
    let at = 0;
    while (
      bytes.length - at >= 2 && !this.#paused && !this.#closeReceived && this.readyState !== WebSocket.CLOSED
    ) {
      const b0 = bytes[at], b1 = bytes[at + 1];
      let len = b1 & 0x7f;
      let head = 2;
      if (len === 126) {
        if (bytes.length - at < 4) break;
        len = (bytes[at + 2] << 8) | bytes[at + 3];
        head = 4;
      } else if (len === 127) {
        if (bytes.length - at < 10) break;
        const big = new DataView(bytes.buffer, bytes.byteOffset + at + 2, 8).getBigUint64(0);
        if (big > BigInt(this.#maxMessage)) throw this.#tooLarge();
        len = Number(big);
        head = 10;
      }
      if ((b1 & 0x80) === 0) throw new WireError(1002, "client frames must be masked");
      if ((b0 & 0x70) !== 0) throw new WireError(1002, "reserved bits set");
      const opcode = b0 & 0x0f;
      const fin = (b0 & 0x80) !== 0;
      if (opcode >= 0x8) {
        if (!fin || len > 125) throw new WireError(1002, "bad control frame");
      } else if (len + this.#fragmentBytes > this.#maxMessage) throw this.#tooLarge();
      if (bytes.length - at < head + 4 + len) break;
      const maskAt = at + head;
      const payload = bytes.slice(maskAt + 4, maskAt + 4 + len);
      const m0 = bytes[maskAt], m1 = bytes[maskAt + 1], m2 = bytes[maskAt + 2], m3 = bytes[maskAt + 3];
      let i = 0;
      for (; i + 3 < len; i += 4) {
        payload[i] ^= m0;
        payload[i + 1] ^= m1;
        payload[i + 2] ^= m2;
        payload[i + 3] ^= m3;
      }
      for (; i < len; i++) payload[i] ^= bytes[maskAt + (i & 3)];
      at = maskAt + 4 + len;
      this.#frame(opcode, fin, payload);
    }
    return at;
  }

  #frame(opcode: number, fin: boolean, payload: Uint8Array): void {
    switch (opcode) {
      case OP_PING:
        if (this.readyState === WebSocket.OPEN && this.#queuedBytes + this.#outLen < PONG_BACKLOG_BYTES) {
          this.#push(encodeFrame(OP_PONG, payload));
        }
        return;
      case OP_PONG:
        return;
      case OP_CLOSE:
        return this.#peerClose(payload);
      case OP_TEXT:
      case OP_BINARY:
        if (this.#fragmentOpcode !== 0) throw new WireError(1002, "a new message inside a fragmented one");
        if (fin) return this.#message(opcode, payload);
        this.#fragmentOpcode = opcode;
        this.#fragments.push(payload);
        this.#fragmentBytes = payload.length;
        return;
      case OP_CONT: {
        if (this.#fragmentOpcode === 0) throw new WireError(1002, "continuation without a message");
        if (payload.length > 0) {
          if (this.#fragments.length >= MAX_FRAGMENTS) throw this.#tooLarge();
          this.#fragments.push(payload);
          this.#fragmentBytes += payload.length;
        }
        if (!fin) return;
        const whole = new Uint8Array(this.#fragmentBytes);
        let o = 0;
        for (const f of this.#fragments) {
          whole.set(f, o);
          o += f.length;
        }
        const op = this.#fragmentOpcode;
        this.#fragments = [];
        this.#fragmentBytes = 0;
        this.#fragmentOpcode = 0;
        return this.#message(op, whole);
      }
      default:
        throw new WireError(1002, `unknown opcode ${opcode}`);
    }
  }

  #message(opcode: number, payload: Uint8Array): void {
    if (this.readyState !== WebSocket.OPEN) return;
    let data: string | ArrayBuffer;
    if (opcode === OP_TEXT) {
      try {
        data = strictDecoder.decode(payload);
      } catch {
        throw new WireError(1007, "invalid UTF-8");
      }
    } else data = payload.buffer as ArrayBuffer;
    this.#fire(() => this.onmessage?.({ data }));
  }

  #peerClose(payload: Uint8Array): void {
    let code = 1005, reason = "";
    if (payload.length === 1) throw new WireError(1002, "close frame of one byte");
    if (payload.length >= 2) {
      code = (payload[0] << 8) | payload[1];
      if (!validCloseCode(code)) throw new WireError(1002, `invalid close code ${code}`);
      try {
        reason = strictDecoder.decode(payload.subarray(2));
      } catch {
        throw new WireError(1007, "invalid UTF-8 in the close reason");
      }
    }
    this.#closeReceived = true;
    if (this.#closeSent) {
      // Our close is answered: report the code we sent, end once our frames are out.
      if (!this.#writing) this.destroy(this.#closeCode, this.#closeReason, true);
      return;
    }
    // The peer closes: echo its code, then end.
    this.readyState = WebSocket.CLOSING;
    this.#closeCode = code;
    this.#closeReason = reason;
    this.#closeSent = true;
    this.#push(encodeFrame(OP_CLOSE, code === 1005 ? new Uint8Array(0) : closePayload(code, "")));
    this.#closeTimer = setTimeout(() => this.destroy(code, reason, false), CLOSE_TIMEOUT_MS);
  }
}

/** What an upgrade may ask for (the own transport uses all of it; Deno's, `idleTimeout` and `protocol`). */
export interface UpgradeOptions {
  idleTimeout?: number;
  protocol?: string;
  maxMessageBytes?: number;
  onTooLarge?: () => void;
}

/** The hook a request that came through the own transport's front carries (see {@linkcode upgradeWebSocket}). */
export interface FrontUpgrade {
  upgrade(options: UpgradeOptions): { socket: ServerSocket; response: Response };
}

/** Requests that arrived through `lib/http/front.ts`, with their upgrade hook. */
export const frontRequests = new WeakMap<Request, FrontUpgrade>();

/** The part of a WebSocket {@linkcode Conn} and `acceptSocket` use, from either transport. */
export type UpgradedSocket = WebSocket | ServerSocket;

/**
 * Upgrades `req` on the transport it came through: our framing for requests of the own transport's front,
 * `Deno.upgradeWebSocket` otherwise. Throws (before anything is written) when the handshake is invalid.
 */
export function upgradeWebSocket(
  req: Request,
  options: UpgradeOptions,
): { socket: UpgradedSocket; response: Response } {
  const front = frontRequests.get(req);
  if (front) return front.upgrade(options);
  return Deno.upgradeWebSocket(req, { idleTimeout: options.idleTimeout, protocol: options.protocol });
}
