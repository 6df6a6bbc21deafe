/**
 * Unit tests of one socket's outgoing queue (`lib/realtime/conn.ts`): no server, no network. The socket is a
 * {@linkcode FakeTransport}, the hub a {@linkcode RecordingHost} that records what the conn asks of it.
 */
import assert from "node:assert/strict";
import { CloseCode } from "../lib/realtime/close_codes.ts";
import { Conn, type ConnHost, HIGH_WATER, MAX_BATCH_FRAME } from "../lib/realtime/conn.ts";
import { FakeTransport } from "./fake_transport.ts";

/** A {@linkcode ConnHost} that records every call; flushing at the end of a turn is left to the test. */
class RecordingHost implements ConnHost {
  /** Bytes in the conns' queues, as reported through `adjustQueued`. */
  queued = 0;
  readonly flushRequests: Conn[] = [];
  readonly backedUp: Conn[] = [];
  readonly slow: Conn[] = [];
  readonly out: string[] = [];
  constructor(readonly maxBufferedBytes = 0) {}
  scheduleFlush(conn: Conn): void {
    this.flushRequests.push(conn);
  }
  markBackedUp(conn: Conn): void {
    this.backedUp.push(conn);
  }
  adjustQueued(delta: number): void {
    this.queued += delta;
  }
  slowConsumer(conn: Conn): void {
    this.slow.push(conn);
  }
  countOut(endpoint: string): void {
    this.out.push(endpoint);
  }
}

function setup(options: { batch?: boolean; maxBufferedBytes?: number } = {}) {
  const host = new RecordingHost(options.maxBufferedBytes ?? 0);
  const ws = new FakeTransport();
  const conn = new Conn(host, ws, "chat", "127.0.0.1", options.batch ?? false, {});
  return { host, ws, conn };
}

const frame = (n: number) => JSON.stringify({ type: "message", n });

Deno.test("Conn sends frames in order and counts each one out", () => {
  const { host, ws, conn } = setup();
  const bytes = new Uint8Array([1, 2, 3]).buffer;
  conn.send(frame(1));
  conn.sendRaw(bytes);
  conn.sendJson({ type: "message", n: 3 });
  assert.deepEqual(ws.sent, [frame(1), bytes, frame(3)]);
  assert.deepEqual(host.out, ["chat", "chat", "chat"]);
  assert.equal(host.queued, 0, "nothing waited in the queue");
});

Deno.test("Conn ids are unique", () => {
  const { conn: a } = setup();
  const { conn: b } = setup();
  assert.notEqual(a.id, b.id);
});

Deno.test("Conn with batch on sends the frames of one turn as one JSON array frame", () => {
  const { host, ws, conn } = setup({ batch: true });
  for (let n = 1; n <= 3; n++) conn.send(frame(n));
  assert.deepEqual(ws.sent, [], "nothing goes out before the end of the turn");
  assert.equal(host.flushRequests.length, 1, "one flush is asked for the whole turn");
  assert.equal(conn.flush(), true, "the queue is empty after the flush");
  assert.deepEqual(ws.sent, [`[${frame(1)},${frame(2)},${frame(3)}]`]);
  assert.deepEqual(JSON.parse(ws.texts[0]).map((m: { n: number }) => m.n), [1, 2, 3]);
  assert.equal(host.queued, 0);
  // The next turn asks for a flush again.
  conn.send(frame(4));
  assert.equal(host.flushRequests.length, 2);
  conn.flush();
  assert.deepEqual(ws.sent.at(-1), `[${frame(4)}]`);
});

Deno.test("Conn splits a long batch into array frames of about MAX_BATCH_FRAME characters, in order", () => {
  const { ws, conn } = setup({ batch: true });
  const frames = Array.from({ length: 200 }, (_, n) => JSON.stringify({ n, text: "x".repeat(990) }));
  for (const f of frames) conn.send(f);
  conn.flush();
  const longest = Math.max(...frames.map((f) => f.length));
  assert.ok(ws.sent.length > 1, `a backed-up batch goes out as several frames, got ${ws.sent.length}`);
  for (const [i, sent] of ws.texts.entries()) {
    // A batch takes frames until it reaches the cap, so it can pass the cap by its last frame and no more.
    assert.ok(
      sent.length <= MAX_BATCH_FRAME + longest + 2,
      `batch ${i} has ${sent.length} characters, cap ${MAX_BATCH_FRAME} + one frame of ${longest}`,
    );
    if (i < ws.sent.length - 1) {
      assert.ok(sent.length >= MAX_BATCH_FRAME, `batch ${i} is full before the next starts: ${sent.length}`);
    }
  }
  assert.deepEqual(ws.texts.flatMap((s) => JSON.parse(s)), frames.map((f) => JSON.parse(f)));
});

Deno.test("Conn never splits a frame: one that passes MAX_BATCH_FRAME ends its batch", () => {
  const { ws, conn } = setup({ batch: true });
  const big = JSON.stringify({ text: "y".repeat(MAX_BATCH_FRAME * 2) });
  conn.send(big);
  conn.send(frame(1));
  conn.send(big);
  conn.send(frame(2));
  conn.flush();
  assert.deepEqual(ws.sent, [`[${big}]`, `[${frame(1)},${big}]`, `[${frame(2)}]`]);
});

Deno.test("Conn keeps frames in its queue above HIGH_WATER and writes them when flush() runs after the buffer drains", () => {
  const { host, ws, conn } = setup();
  ws.bufferedAmount = HIGH_WATER;
  conn.send(frame(1));
  conn.send(frame(2));
  assert.deepEqual(ws.sent, [], "nothing is written while the native buffer is full");
  assert.equal(host.backedUp.length, 2, "the hub is asked to re-check the socket");
  assert.equal(host.queued, frame(1).length + frame(2).length);
  assert.equal(conn.pendingBytes, host.queued + HIGH_WATER);
  assert.equal(conn.flush(), false, "still backed up");
  assert.deepEqual(ws.sent, []);
  ws.bufferedAmount = 0;
  // A frame sent while older ones wait must not overtake them, even though the buffer has room now.
  conn.send(frame(3));
  assert.deepEqual(ws.sent, []);
  assert.equal(conn.flush(), true, "the queue drained");
  assert.deepEqual(ws.sent, [frame(1), frame(2), frame(3)]);
  assert.equal(host.queued, 0, "the bytes left the queue budget");
  assert.equal(conn.pendingBytes, 0);
  assert.deepEqual(host.slow, []);
});

Deno.test("Conn.flush() stops writing once the native buffer reaches HIGH_WATER again", () => {
  const { ws, conn } = setup();
  ws.bufferedAmount = HIGH_WATER;
  for (let n = 1; n <= 3; n++) conn.send(frame(n));
  ws.bufferedAmount = HIGH_WATER - 1;
  // The peer reads slowly: the first write fills the buffer again.
  const send = ws.send.bind(ws);
  ws.send = (data) => {
    send(data);
    ws.bufferedAmount = HIGH_WATER;
  };
  assert.equal(conn.flush(), false, "frames are left");
  assert.deepEqual(ws.sent, [frame(1)]);
  ws.bufferedAmount = 0;
  ws.send = send;
  assert.equal(conn.flush(), true);
  assert.deepEqual(ws.sent, [frame(1), frame(2), frame(3)]);
});

Deno.test("Conn cuts a socket whose queue passes maxBufferedBytes as a slow consumer", () => {
  const limit = 512 * 1024;
  const { host, ws, conn } = setup({ maxBufferedBytes: limit });
  ws.bufferedAmount = HIGH_WATER;
  const big = "z".repeat(10_000);
  let sends = 0;
  while (ws.closes.length === 0 && sends < 1000) {
    assert.ok(conn.pendingBytes <= limit, `not cut while ${conn.pendingBytes} bytes ≤ ${limit} are pending`);
    conn.send(big);
    sends++;
  }
  // Cut on the first frame that took the pending bytes (queue + native buffer) past the limit.
  assert.equal(sends, Math.floor((limit - HIGH_WATER) / big.length) + 1);
  assert.deepEqual(ws.closes, [{ code: CloseCode.slowConsumer, reason: "slow consumer" }]);
  assert.deepEqual(host.slow, [conn]);
  assert.equal(host.queued, 0, "the cut socket's queue is dropped");
  assert.deepEqual(ws.sent, []);
  // Until its close event comes, a cut socket queues nothing more and is not cut (or counted) again.
  for (let i = 0; i < 200; i++) conn.send(big);
  assert.equal(host.queued, 0, "nothing is queued after the cut");
  assert.deepEqual(host.slow, [conn], "counted once");
});

Deno.test("Conn never cuts a slow socket when maxBufferedBytes is 0", () => {
  const { host, ws, conn } = setup({ maxBufferedBytes: 0 });
  ws.bufferedAmount = HIGH_WATER;
  const big = "z".repeat(100_000);
  for (let i = 0; i < 100; i++) conn.send(big);
  assert.deepEqual(ws.closes, []);
  assert.deepEqual(host.slow, []);
  assert.equal(host.queued, 100 * big.length);
  conn.discard();
});

Deno.test("Conn.hold() keeps frames until release(first, floor) sends first, then the held frames past the floor", () => {
  const { ws, conn } = setup();
  conn.hold();
  const join = JSON.stringify({ type: "join" });
  for (let n = 1; n <= 4; n++) conn.send(frame(n), { stream: "room:a", seq: n });
  conn.send(join);
  assert.deepEqual(ws.sent, [], "held frames wait");
  // The recovery sent seqs up to 2: those are dropped, frames without a position are kept, in order.
  conn.release(["welcome", "history"], { stream: "room:a", seq: 2 });
  assert.deepEqual(ws.sent, ["welcome", "history", frame(3), frame(4), join]);
  conn.send(frame(5));
  assert.deepEqual(ws.sent.at(-1), frame(5), "after release frames go straight out");
});

Deno.test("Conn.release() with a floor drops that stream's frames up to it, held or arriving late, once", () => {
  const { ws, conn } = setup();
  conn.hold();
  conn.send(frame(2), { stream: "topic:a", seq: 2 });
  conn.send(frame(9), { stream: "topic:b", seq: 9 });
  // The recovery sent topic:a up to 3.
  conn.release(["subscribed", "r1", "r2", "r3"], { stream: "topic:a", seq: 3 });
  assert.deepEqual(
    ws.sent,
    ["subscribed", "r1", "r2", "r3", frame(9)],
    "held 2 dropped, another stream kept",
  );
  // Seq 3's live copy comes after the release (a fan-out after the publisher's answer, or Redis): dropped.
  conn.send(frame(3), { stream: "topic:a", seq: 3 });
  conn.send(frame(4), { stream: "topic:a", seq: 4 });
  conn.send(frame(8), { stream: "topic:b", seq: 8 });
  assert.deepEqual(ws.sent.slice(5), [frame(4), frame(8)]);
  // Past the floor, it is gone: the stream's later frames are not looked at again.
  conn.send(frame(1), { stream: "topic:a", seq: 1 });
  assert.deepEqual(ws.sent.at(-1), frame(1));
});

Deno.test("Conn.release() without hold() sends first only, and keeps all held frames by default", () => {
  const { ws, conn } = setup();
  conn.release(["welcome"]);
  assert.deepEqual(ws.sent, ["welcome"]);
  conn.hold();
  conn.hold(); // a second hold keeps what the first one held
  conn.send(frame(1));
  conn.hold();
  conn.send(frame(2));
  conn.release([]);
  assert.deepEqual(ws.sent, ["welcome", frame(1), frame(2)]);
});

Deno.test("Conn.close() twice closes the socket once, with the code's reason", () => {
  const { ws, conn } = setup();
  conn.close(CloseCode.goingAway);
  conn.close(CloseCode.internal);
  assert.deepEqual(ws.closes, [{ code: CloseCode.goingAway, reason: "Server shutting down" }]);
  const other = setup();
  other.conn.close();
  assert.deepEqual(other.ws.closes, [{ code: CloseCode.normal, reason: "" }]);
});

Deno.test("Conn.close() drops the queue and gives its bytes back to the host", () => {
  const { host, ws, conn } = setup();
  ws.bufferedAmount = HIGH_WATER;
  conn.send(frame(1));
  assert.equal(host.queued, frame(1).length);
  conn.close();
  assert.equal(host.queued, 0);
  assert.equal(ws.closes.length, 1);
});

Deno.test("Conn.discard() returns the queued bytes to the host and nothing queued goes out after", () => {
  const { host, ws, conn } = setup();
  ws.bufferedAmount = HIGH_WATER;
  conn.send("a".repeat(10));
  conn.sendRaw(new Uint8Array(20).buffer);
  assert.equal(host.queued, 30, "string length and byteLength are counted");
  assert.equal(conn.pendingBytes, 30 + HIGH_WATER);
  conn.discard();
  assert.equal(host.queued, 0);
  assert.equal(conn.pendingBytes, HIGH_WATER);
  ws.bufferedAmount = 0;
  assert.equal(conn.flush(), true);
  assert.deepEqual(ws.sent, []);
});

Deno.test("Conn sends nothing once closed, and flush() on a closing socket writes nothing", () => {
  const { ws, conn } = setup({ batch: true });
  conn.send(frame(1));
  ws.readyState = WebSocket.CLOSING;
  assert.equal(conn.flush(), true, "nothing more to do for a closing socket");
  assert.deepEqual(ws.sent, []);
  conn.closed = true;
  conn.send(frame(2));
  conn.sendRaw(frame(3));
  assert.deepEqual(ws.sent, []);
});
