/**
 * Unit tests of the hub (`lib/realtime/hub.ts`) with the real {@linkcode MemoryBroker}, {@linkcode Metrics} and
 * {@linkcode Logger}: no server, no network; sockets are {@linkcode FakeTransport}s.
 */
import assert from "node:assert/strict";
import { MemoryBroker } from "../lib/broker/memory.ts";
import { Logger } from "../lib/log.ts";
import { Metrics } from "../lib/metrics.ts";
import { CloseCode } from "../lib/realtime/close_codes.ts";
import { Conn, HIGH_WATER } from "../lib/realtime/conn.ts";
import { Hub } from "../lib/realtime/hub.ts";
import { FakeTransport } from "./fake_transport.ts";

const MiB = 1024 * 1024;

/** A hub and a way to open sockets on it; disposing removes every socket, which stops the drain timer. */
function setup(maxBufferedBytes = 4 * MiB) {
  const broker = new MemoryBroker();
  const metrics = new Metrics();
  const hub = new Hub(broker, metrics, new Logger("silent"), maxBufferedBytes);
  return {
    broker,
    metrics,
    hub,
    /** An open socket registered in the hub (what `acceptSocket` does on open). */
    connect(options: { endpoint?: string; batch?: boolean } = {}) {
      const ws = new FakeTransport();
      const conn = new Conn(hub, ws, options.endpoint ?? "chat", "127.0.0.1", options.batch ?? false, {});
      hub.add(conn);
      return { conn, ws };
    },
    [Symbol.dispose]() {
      for (const conn of [...hub.conns()]) hub.remove(conn);
    },
  };
}

/** One sample of the Prometheus text, or undefined when the series is absent. */
function sample(metrics: Metrics, series: string): number | undefined {
  const line = metrics.render().split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("Hub.deliver writes a frame to every member of the channel but except, and returns how many got it", () => {
  using t = setup();
  const [a, b, c] = [t.connect(), t.connect(), t.connect()];
  const outsider = t.connect();
  for (const { conn } of [a, b, c]) t.hub.join(conn, "room:x");
  t.hub.join(outsider.conn, "room:y");
  assert.equal(t.hub.deliver("room:x", "f1", { except: b.conn.id }), 2);
  assert.equal(t.hub.deliver("room:x", "f2"), 3);
  assert.equal(t.hub.deliver("room:none", "f3"), 0);
  assert.deepEqual(a.ws.sent, ["f1", "f2"]);
  assert.deepEqual(b.ws.sent, ["f2"], "except skips that socket only");
  assert.deepEqual(c.ws.sent, ["f1", "f2"]);
  assert.deepEqual(outsider.ws.sent, [], "other channels get nothing");
  assert.equal(sample(t.metrics, 'switchboard_messages_out_total{endpoint="chat"}'), 5);
});

Deno.test("Hub subscribes to a broker channel on the first join only and unsubscribes when the last member leaves", async () => {
  using t = setup();
  const a = t.connect();
  const b = t.connect();
  await t.hub.join(a.conn, "room:x");
  await t.hub.join(b.conn, "room:x");
  await t.broker.publish("room:x", "one", { except: a.conn.id });
  await t.broker.publish("room:x", "two");
  // A second broker subscription would deliver every frame twice.
  assert.deepEqual(a.ws.sent, ["two"]);
  assert.deepEqual(b.ws.sent, ["one", "two"]);
  assert.deepEqual(t.hub.channelNames("room:"), ["room:x"]);
  t.hub.leave(a.conn, "room:x");
  assert.deepEqual([...a.conn.channels], []);
  await t.broker.publish("room:x", "three");
  assert.deepEqual(a.ws.sent, ["two"], "a left");
  assert.deepEqual(b.ws.sent, ["one", "two", "three"], "the channel stays while b is in it");
  t.hub.leave(b.conn, "room:x");
  assert.deepEqual(t.hub.channelNames("room:"), []);
  await t.broker.publish("room:x", "four");
  assert.deepEqual(b.ws.sent, ["one", "two", "three"]);
  // Joining again subscribes afresh.
  await t.hub.join(a.conn, "room:x");
  await t.broker.publish("room:x", "five");
  assert.deepEqual(a.ws.sent, ["two", "five"]);
  assert.deepEqual(b.ws.sent, ["one", "two", "three"]);
});

Deno.test("Hub.remove is idempotent: it forgets the socket once and leaves all its channels", async () => {
  using t = setup();
  const a = t.connect({ endpoint: "chat" });
  const b = t.connect({ endpoint: "push" });
  await t.hub.join(a.conn, "room:x");
  await t.hub.join(a.conn, "topic:y");
  await t.hub.join(b.conn, "topic:y");
  assert.equal(sample(t.metrics, 'switchboard_connections{endpoint="chat"}'), 1);
  assert.equal(t.hub.remove(a.conn), true);
  assert.equal(t.hub.remove(a.conn), false, "the second close event is a no-op");
  assert.equal(a.conn.closed, true);
  assert.equal(t.hub.size, 1);
  assert.deepEqual([...t.hub.conns()], [b.conn]);
  assert.deepEqual([...a.conn.channels], []);
  assert.deepEqual(t.hub.channelNames(""), ["topic:y"], "room:x had no one else and is dropped");
  assert.equal(sample(t.metrics, 'switchboard_connections{endpoint="chat"}'), undefined);
  assert.equal(sample(t.metrics, 'switchboard_connections{endpoint="push"}'), 1);
  await t.broker.publish("room:x", "r");
  await t.broker.publish("topic:y", "t");
  assert.deepEqual(a.ws.sent, []);
  assert.deepEqual(b.ws.sent, ["t"]);
  await t.hub.join(a.conn, "room:x");
  assert.deepEqual(t.hub.channelNames("room:"), [], "a removed socket joins nothing");
});

Deno.test("Hub flushes every batching socket at the end of the turn, one array frame each", async () => {
  using t = setup();
  const a = t.connect({ batch: true });
  const b = t.connect({ batch: true });
  for (const { conn } of [a, b]) await t.hub.join(conn, "room:x");
  for (let n = 1; n <= 3; n++) t.hub.deliver("room:x", `{"n":${n}}`);
  assert.deepEqual(a.ws.sent, [], "nothing goes out within the turn");
  await delay(0);
  assert.deepEqual(a.ws.sent, ['[{"n":1},{"n":2},{"n":3}]']);
  assert.deepEqual(b.ws.sent, ['[{"n":1},{"n":2},{"n":3}]']);
});

Deno.test("Hub re-checks a backed-up socket on its timer until it drained, then stops the timer by itself", async () => {
  // No cleanup here on purpose: the test fails on the timer sanitizer if the drain interval outlives the drain.
  const t = setup();
  const slow = t.connect();
  const fast = t.connect();
  await t.hub.join(slow.conn, "room:x");
  await t.hub.join(fast.conn, "room:x");
  slow.ws.bufferedAmount = HIGH_WATER;
  t.hub.deliver("room:x", "f1");
  t.hub.deliver("room:x", "f2");
  assert.deepEqual(fast.ws.sent, ["f1", "f2"], "one backed-up socket holds up no other");
  await delay(20);
  assert.deepEqual(slow.ws.sent, [], "still backed up");
  slow.ws.bufferedAmount = 0;
  for (let i = 0; i < 50 && slow.ws.sent.length < 2; i++) await delay(4);
  assert.deepEqual(slow.ws.sent, ["f1", "f2"]);
  await delay(20);
});

Deno.test("Hub cuts a slow consumer with 1013, counts it, and keeps serving the others", async () => {
  using t = setup(512 * 1024);
  const slow = t.connect();
  const healthy = t.connect();
  await t.hub.join(slow.conn, "room:x");
  await t.hub.join(healthy.conn, "room:x");
  slow.ws.bufferedAmount = HIGH_WATER;
  const frame = "z".repeat(10_000);
  let n = 0;
  while (slow.ws.closes.length === 0 && n < 1000) {
    t.hub.deliver("room:x", frame);
    n++;
  }
  assert.deepEqual(slow.ws.closes, [{ code: CloseCode.slowConsumer, reason: "slow consumer" }]);
  assert.equal(sample(t.metrics, 'switchboard_slow_consumer_disconnects_total{endpoint="chat"}'), 1);
  assert.equal(healthy.ws.sent.length, n, "the healthy member got every frame");
  // The socket's close event.
  t.hub.remove(slow.conn);
  assert.equal(t.hub.deliver("room:x", "after"), 1);
});

Deno.test("Hub holds intake back while the sockets' queues pass the budget and lets it go when a queue is dropped", async () => {
  using t = setup(4 * MiB);
  assert.equal(t.hub.admission.budget, 16 * MiB);
  const members = Array.from({ length: 5 }, () => t.connect());
  for (const { conn, ws } of members) {
    await t.hub.join(conn, "room:x");
    ws.bufferedAmount = HIGH_WATER;
  }
  // 5 × 3.5 MB queued is past the 16 MiB budget, and each socket stays under its own 4 MiB bound.
  const frame = "q".repeat(500_000);
  for (let i = 0; i < 7; i++) t.hub.deliver("room:x", frame);
  assert.ok(members.every(({ ws }) => ws.closes.length === 0), "nobody was cut");
  const waiting = t.hub.admission.admit();
  assert.ok(waiting instanceof Promise, "a new message waits for the queues");
  assert.equal(t.hub.admission.counts.waiting, 1);
  let admitted = false;
  waiting.then(() => admitted = true);
  // The socket's close event: its queue leaves the budget, and the waiter goes in the same turn.
  t.hub.remove(members[0].conn);
  await delay(0);
  assert.ok(admitted, "the waiter was let in once the dropped queue left the budget");
  t.hub.admission.resumed();
  assert.deepEqual(t.hub.admission.counts, { inFlight: 1, waiting: 0 });
  t.hub.admission.done();
});

Deno.test("Hub with maxBufferedBytes 0 never holds intake back on queued bytes", () => {
  using t = setup(0);
  assert.equal(t.hub.admission.budget, Infinity);
});

Deno.test("Hub.closeAll closes every socket with the code and its reason", () => {
  using t = setup();
  const a = t.connect();
  const b = t.connect({ endpoint: "push" });
  t.hub.closeAll(CloseCode.goingAway);
  for (const { ws } of [a, b]) {
    assert.deepEqual(ws.closes, [{ code: CloseCode.goingAway, reason: "Server shutting down" }]);
  }
});

Deno.test("Hub.later() runs in a later turn, in call order, an async call to its end before the next", async () => {
  using t = setup();
  const ran: string[] = [];
  const mark = (what: string) => () => void ran.push(what);
  t.hub.later(async () => {
    ran.push("a start");
    await new Promise((resolve) => setTimeout(resolve, 5));
    ran.push("a end");
  });
  t.hub.later(mark("b"));
  assert.equal(ran.length, 0, "nothing runs in the caller's turn");
  await new Promise((resolve) => setTimeout(resolve, 1));
  t.hub.later(mark("c"));
  assert.deepEqual([...ran], ["a start"]);
  // A throw is logged, and what comes after still runs; runLater() (shutdown) waits for all of it.
  t.hub.later(() => {
    throw new Error("boom");
  });
  t.hub.later(mark("d"));
  await t.hub.runLater();
  assert.deepEqual(ran, ["a start", "a end", "b", "c", "d"]);
});
