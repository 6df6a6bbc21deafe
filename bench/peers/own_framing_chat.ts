/**
 * Experiment for issue 15, goal 1: the raw Deno chat server with the WebSocket framing owned by the server.
 * `Deno.listen` accepts TCP, the HTTP/1.1 upgrade is answered by hand, frames are parsed and written here, and
 * every socket's outgoing frames are corked: what is queued while a write is in flight (or within one task)
 * goes out in a single `write()`. A broadcast frame is encoded once and shared by every receiver (server frames
 * are unmasked, so the bytes are the same for all).
 *
 * Same chat as `raw_deno_chat.ts`: one room, every text frame sent to every open socket, sender included.
 * Enough of RFC 6455 for the benchmark and honest clients: masked frames, 7/16/64-bit lengths, fragmentation,
 * ping/pong, close; no extensions, no UTF-8 validation beyond the decoder's replacement.
 *
 * The request head reader, the frame encoder and the accept key are Switchboard's (`lib/http/request_head.ts`,
 * `lib/realtime/websocket.ts`); the socket loop and its cork are this file's, kept minimal.
 *
 * Usage: `deno run --allow-net bench/peers/own_framing_chat.ts [port]`; prints `listening <port>` when ready.
 *
 * @module
 */
import { isUpgrade, readHead, writeAll } from "../../lib/http/request_head.ts";
import { acceptKey, encodeFrame } from "../../lib/realtime/websocket.ts";
const port = Number(Deno.args[0] ?? Deno.env.get("PORT") ?? 8000);
const MAX_MESSAGE = 1 << 20;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

class Socket {
  #conn: Deno.Conn;
  #queued: Uint8Array[] = [];
  #queuedBytes = 0;
  #writing = false;
  open = true;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Queues encoded bytes; they leave with everything else queued before the next write. */
  push(bytes: Uint8Array): void {
    if (!this.open) return;
    this.#queued.push(bytes);
    this.#queuedBytes += bytes.length;
    if (!this.#writing) {
      this.#writing = true;
      queueMicrotask(() => this.#drain());
    }
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queued.length > 0 && this.open) {
        let chunk: Uint8Array;
        if (this.#queued.length === 1) chunk = this.#queued[0];
        else {
          chunk = new Uint8Array(this.#queuedBytes);
          let at = 0;
          for (const b of this.#queued) {
            chunk.set(b, at);
            at += b.length;
          }
        }
        this.#queued = [];
        this.#queuedBytes = 0;
        let off = 0;
        while (off < chunk.length) off += await this.#conn.write(off ? chunk.subarray(off) : chunk);
      }
    } catch {
      this.close();
    } finally {
      this.#writing = false;
    }
  }

  close(): void {
    if (!this.open) return;
    this.open = false;
    sockets.delete(this);
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }
}

const sockets = new Set<Socket>();

function broadcast(text: Uint8Array): void {
  const bytes = encodeFrame(0x1, text);
  for (const s of sockets) s.push(bytes);
}

/** Reads the request head (Switchboard's reader); answers the upgrade; returns the bytes read past the head. */
async function handshake(conn: Deno.Conn): Promise<Uint8Array | null> {
  const head = await readHead(conn);
  if (head === null || head === "bad") return null;
  const key = head.headers.get("sec-websocket-key");
  if (!isUpgrade(head) || !key) {
    await writeAll(
      conn,
      encoder.encode("HTTP/1.1 426 Upgrade Required\r\nupgrade: websocket\r\ncontent-length: 0\r\n\r\n"),
    );
    return null;
  }
  await writeAll(
    conn,
    encoder.encode(
      "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n" +
        `sec-websocket-accept: ${await acceptKey(key)}\r\n\r\n`,
    ),
  );
  return head.rest;
}

async function serve(conn: Deno.Conn): Promise<void> {
  let rest: Uint8Array | null;
  try {
    rest = await handshake(conn);
  } catch {
    rest = null;
  }
  if (rest === null) {
    try {
      conn.close();
    } catch { /* closed */ }
    return;
  }
  const socket = new Socket(conn);
  sockets.add(socket);
  let buf = rest;
  let fragments: Uint8Array[] = [];
  let fragmentBytes = 0;
  let fragmentOpcode = 0;
  let closing = false;
  const chunk = new Uint8Array(64 * 1024);
  try {
    while (socket.open && !closing) {
      // Parse every complete frame in the buffer.
      let at = 0;
      while (true) {
        if (buf.length - at < 2) break;
        const b0 = buf[at], b1 = buf[at + 1];
        let len = b1 & 0x7f;
        let head = 2;
        if (len === 126) {
          if (buf.length - at < 4) break;
          len = (buf[at + 2] << 8) | buf[at + 3];
          head = 4;
        } else if (len === 127) {
          if (buf.length - at < 10) break;
          len = Number(new DataView(buf.buffer, buf.byteOffset + at + 2, 8).getBigUint64(0));
          head = 10;
        }
        if (len > MAX_MESSAGE) throw new Error("too big");
        const masked = (b1 & 0x80) !== 0;
        const maskAt = at + head;
        if (masked) head += 4;
        if (buf.length - at < head + len) break;
        const payload = buf.slice(at + head, at + head + len);
        if (masked) { for (let i = 0; i < len; i++) payload[i] ^= buf[maskAt + (i & 3)]; }
        at += head + len;
        const fin = (b0 & 0x80) !== 0;
        const opcode = b0 & 0x0f;
        if (opcode === 0x8) {
          socket.push(encodeFrame(0x8, payload.subarray(0, 2)));
          closing = true;
          break;
        } else if (opcode === 0x9) socket.push(encodeFrame(0xa, payload));
        else if (opcode === 0xa) continue;
        else if (opcode === 0x0 || opcode === 0x1 || opcode === 0x2) {
          if (opcode !== 0x0) fragmentOpcode = opcode;
          if (!fin || fragments.length > 0) {
            fragments.push(payload);
            fragmentBytes += payload.length;
            if (fragmentBytes > MAX_MESSAGE) throw new Error("too big");
            if (!fin) continue;
          }
          let message = payload;
          if (fragments.length > 0) {
            message = new Uint8Array(fragmentBytes);
            let o = 0;
            for (const f of fragments) {
              message.set(f, o);
              o += f.length;
            }
            fragments = [];
            fragmentBytes = 0;
          }
          // A real app gets a string: decode, as Deno's WebSocket does, then encode once for the fan-out.
          if (fragmentOpcode === 0x1) broadcast(encoder.encode(decoder.decode(message)));
        } else throw new Error("bad opcode");
      }
      buf = at >= buf.length ? new Uint8Array(0) : buf.subarray(at);
      if (!socket.open || closing) break;
      const n = await conn.read(chunk);
      if (n === null) break;
      if (buf.length === 0) buf = chunk.slice(0, n);
      else {
        const next = new Uint8Array(buf.length + n);
        next.set(buf);
        next.set(chunk.subarray(0, n), buf.length);
        buf = next;
      }
    }
  } catch {
    // A protocol error or a reset: drop the connection.
  }
  sockets.delete(socket);
  // Let the close frame (if any) leave before the descriptor closes.
  setTimeout(() => socket.close(), 50);
}

const listener = Deno.listen({ hostname: "127.0.0.1", port });
console.log(`listening ${(listener.addr as Deno.NetAddr).port}`);
for await (const conn of listener) {
  conn.setNoDelay(true);
  serve(conn);
}
