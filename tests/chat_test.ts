import assert from "node:assert/strict";
import { get, spawnServer, startTestServer, TestClient } from "./helpers.ts";

type Frame = Record<string, unknown>;
type Msg = {
  type: "message";
  id: string;
  room: string;
  from: { id: string; name: string };
  text: string;
  ts: number;
};

async function join(server: { ws(p: string): string }, room: string, name: string, query = ""): Promise<
  { client: TestClient; welcome: Frame }
> {
  const client = await TestClient.open(
    server.ws(`/ws/chat/${room}?name=${encodeURIComponent(name)}${query}`),
  );
  const welcome = await client.nextType("welcome");
  return { client, welcome };
}

async function say(client: TestClient, text: string): Promise<Msg> {
  const clientMsgId = crypto.randomUUID();
  client.send({ type: "message", text, clientMsgId });
  return await client.next<Msg>((f) => f.type === "message" && f.clientMsgId === clientMsgId);
}

Deno.test("three members see every message in one order, with presence and join/leave", async () => {
  await using server = await startTestServer();
  const a = await join(server, "lobby", "alice");
  assert.deepEqual((a.welcome.you as Frame).name, "alice");
  assert.equal((a.welcome.members as Frame[]).length, 1);
  const b = await join(server, "lobby", "bob");
  assert.deepEqual((b.welcome.members as Frame[]).map((m) => m.name).sort(), ["alice", "bob"]);
  const joined = await a.client.nextType("join");
  assert.equal((joined.member as Frame).name, "bob");
  const c = await join(server, "lobby", "carol");
  assert.equal((c.welcome.members as Frame[]).length, 3);
  await a.client.nextType("join");
  await b.client.nextType("join");
  // Everyone writes at once.
  for (let i = 0; i < 10; i++) {
    a.client.send({ type: "message", text: `a${i}` });
    b.client.send({ type: "message", text: `b${i}` });
    c.client.send({ type: "message", text: `c${i}` });
  }
  const seen: string[][] = [];
  for (const m of [a, b, c]) {
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) {
      const msg = await m.client.nextType<Msg>("message");
      ids.push(`${msg.id}:${msg.text}`);
    }
    seen.push(ids);
  }
  assert.deepEqual(seen[1], seen[0], "bob sees alice's order");
  assert.deepEqual(seen[2], seen[0], "carol sees alice's order");
  const ids = seen[0].map((s) => Number(s.split(":")[0]));
  assert.deepEqual(ids, [...ids].sort((x, y) => x - y), "ids increase in delivery order");
  assert.equal(new Set(ids).size, 30);
  await c.client.close();
  const left = await a.client.nextType("leave");
  assert.equal((left.member as Frame).name, "carol");
  await b.client.nextType("leave");
  // Nobody gets their own join notice.
  assert.ok(
    !a.client.received.some((f) =>
      (f as Frame).type === "join" && ((f as Frame).member as Frame).name === "alice"
    ),
  );
  await a.client.close();
  await b.client.close();
});

Deno.test("rooms are isolated", async () => {
  await using server = await startTestServer();
  const a = await join(server, "room-a", "alice");
  const b = await join(server, "room-b", "bob");
  await say(a.client, "only for room-a");
  await say(b.client, "only for room-b");
  // Barriers: each member's own next message comes after anything published to its room before.
  await say(a.client, "sentinel a");
  await say(b.client, "sentinel b");
  assert.ok(!a.client.received.some((f) => (f as Frame).text === "only for room-b"));
  assert.ok(!b.client.received.some((f) => (f as Frame).text === "only for room-a"));
  assert.equal((b.welcome.members as Frame[]).length, 1, "bob is alone in room-b");
  await a.client.close();
  await b.client.close();
});

Deno.test("a new member gets the room's last --history-size messages, oldest first", async () => {
  await using server = await startTestServer({ historySize: 5 });
  const a = await join(server, "hist", "alice");
  for (let i = 1; i <= 8; i++) await say(a.client, `m${i}`);
  const b = await join(server, "hist", "bob");
  const history = b.welcome.history as Msg[];
  assert.deepEqual(history.map((m) => m.text), ["m4", "m5", "m6", "m7", "m8"]);
  assert.equal(history[0].from.name, "alice");
  assert.equal(typeof history[0].ts, "number");
  await a.client.close();
  await b.client.close();
});

Deno.test("a member who reconnects with since= gets exactly what it missed", async () => {
  await using server = await startTestServer();
  const a = await join(server, "recover", "alice");
  const b = await join(server, "recover", "bob");
  await say(a.client, "before the drop");
  const last = await b.client.next<Msg>((f) => f.type === "message" && f.text === "before the drop");
  await b.client.close();
  for (let i = 0; i < 7; i++) await say(a.client, `missed ${i}`);
  const back = await join(server, "recover", "bob", `&since=${last.id}`);
  const history = back.welcome.history as Msg[];
  assert.deepEqual(history.map((m) => m.text), Array.from({ length: 7 }, (_, i) => `missed ${i}`));
  assert.equal(back.welcome.truncated, undefined);
  // Live messages continue after the recovered ones, without duplicates.
  await say(a.client, "after the return");
  const live = await back.client.nextType<Msg>("message");
  assert.equal(live.text, "after the return");
  assert.ok(Number(live.id) > Number(history[6].id));
  await a.client.close();
  await back.client.close();
});

Deno.test("recovery past --history-size says truncated and the rest is fetched over HTTP", async () => {
  await using server = await startTestServer({ historySize: 3 });
  const a = await join(server, "trunc", "alice");
  const first = await say(a.client, "seen");
  for (let i = 0; i < 5; i++) await say(a.client, `gap ${i}`);
  const b = await join(server, "trunc", "bob", `&since=${first.id}`);
  assert.equal(b.welcome.truncated, true);
  const history = b.welcome.history as Msg[];
  assert.deepEqual(history.map((m) => m.text), ["gap 0", "gap 1", "gap 2"]);
  const rest = JSON.parse(
    (await get(server.http(`/api/rooms/trunc/messages?after=${history[2].id}&limit=10`))).text,
  );
  assert.deepEqual(rest.messages.map((m: Msg) => m.text), ["gap 3", "gap 4"]);
  assert.equal(rest.hasMore, false);
  await a.client.close();
  await b.client.close();
});

Deno.test("scroll-back pages history with before= and lists rooms with online counts", async () => {
  await using server = await startTestServer();
  const a = await join(server, "scroll", "alice");
  const ids: string[] = [];
  for (let i = 0; i < 12; i++) ids.push((await say(a.client, `s${i}`)).id);
  const page1 = JSON.parse((await get(server.http(`/api/rooms/scroll/messages?limit=5`))).text);
  assert.deepEqual(page1.messages.map((m: Msg) => m.text), ["s7", "s8", "s9", "s10", "s11"]);
  assert.equal(page1.hasMore, true);
  const page2 = JSON.parse(
    (await get(server.http(`/api/rooms/scroll/messages?before=${page1.messages[0].id}&limit=5`))).text,
  );
  assert.deepEqual(page2.messages.map((m: Msg) => m.text), ["s2", "s3", "s4", "s5", "s6"]);
  const rooms = JSON.parse((await get(server.http("/api/rooms"))).text).rooms;
  assert.deepEqual(rooms.find((r: Frame) => r.room === "scroll"), {
    room: "scroll",
    online: 1,
    lastId: ids[11],
  });
  const bad = await get(server.http("/api/rooms/scroll/messages?before=abc"));
  assert.equal(bad.status, 400);
  await a.client.close();
});

Deno.test("bad rooms, names and cursors are refused with 400 before the upgrade", async () => {
  await using server = await startTestServer();
  for (
    const path of [
      "/ws/chat/bad%20room?name=a",
      `/ws/chat/${"x".repeat(65)}?name=a`,
      "/ws/chat/lobby",
      "/ws/chat/lobby?name=%20%20",
      `/ws/chat/lobby?name=${"n".repeat(33)}`,
      "/ws/chat/lobby?name=a&since=-1",
      "/ws/chat/lobby?name=a&since=x",
    ]
  ) {
    const res = await get(server.http(path), { headers: { upgrade: "websocket" } });
    assert.equal(res.status, 400, `${path} → 400, got ${res.status} ${res.text}`);
    assert.ok(JSON.parse(res.text).message.length > 10);
  }
});

Deno.test("each bad frame gets its error code and the sender and others carry on", async () => {
  await using server = await startTestServer();
  const a = await join(server, "errors", "alice");
  const b = await join(server, "errors", "bob");
  const cases: [unknown, string][] = [
    ["not json", "bad_json"],
    ["[1,2]", "bad_json"],
    [{ type: "dance" }, "unknown_type"],
    [{ type: "message" }, "bad_message"],
    [{ type: "message", text: "   " }, "bad_message"],
    [{ type: "message", text: 42 }, "bad_message"],
    [{ type: "message", text: "x".repeat(4001) }, "too_large"],
    [{ type: "message", text: "ok", clientMsgId: 7 }, "bad_message"],
    [{ noType: true }, "bad_message"],
  ];
  for (const [frame, code] of cases) {
    a.client.send(frame);
    const err = await a.client.nextType("error");
    assert.equal(err.code, code, `${JSON.stringify(frame).slice(0, 40)} → ${code}`);
    assert.equal(typeof err.message, "string");
  }
  const ok = await say(a.client, "x".repeat(4000));
  assert.equal(ok.text.length, 4000);
  const atB = await b.client.nextType<Msg>("message");
  assert.equal(atB.id, ok.id);
  assert.ok(!b.client.received.some((f) => (f as Frame).type === "error"), "others see no errors");
  await a.client.close();
  await b.client.close();
});

Deno.test("a flood is answered with rate_limited, and sustained abuse is closed with 1008", async () => {
  await using server = await startTestServer({ rateLimit: 20, rateBurst: 40 });
  const a = await join(server, "flood", "alice");
  const b = await join(server, "flood", "bob");
  for (let i = 0; i < 60; i++) a.client.send({ type: "message", text: `f${i}` });
  const err = await a.client.nextType("error");
  assert.equal(err.code, "rate_limited");
  // Bob is unaffected and can still talk.
  await say(b.client, "bob is fine");
  // Keep flooding: the connection is closed as abusive. Each frame waits for the server's answer, so the client
  // never writes after the server's close frame (which would turn a clean 1008 into an abrupt close).
  let open = true;
  a.client.closed.then(() => open = false);
  a.client.received.length = 0;
  for (let i = 0; i < 2000 && open; i++) {
    a.client.send({ type: "message", text: `g${i}` });
    // Whatever comes back (an error, or the message when a token had refilled), then the next one.
    await Promise.race([
      a.client.next((f) => f.type === "error" || f.type === "message").catch(() => {}),
      a.client.closed,
    ]);
  }
  const closed = await a.client.closed;
  assert.equal(
    closed.code,
    1008,
    `closed with 1008, got ${closed.code} ${closed.reason} clean=${closed.wasClean}`,
  );
  await say(b.client, "bob is still fine");
  await b.client.close();
});

Deno.test("typing notices reach the others only, throttled", async () => {
  await using server = await startTestServer();
  const a = await join(server, "typing", "alice");
  const b = await join(server, "typing", "bob");
  a.client.send({ type: "typing" });
  a.client.send({ type: "typing" });
  const t = await b.client.nextType("typing");
  assert.equal((t.from as Frame).name, "alice");
  // A barrier: alice's next message reaches bob after any typing notice she caused before it.
  a.client.send({ type: "message", text: "sentinel" });
  await b.client.next((f) => f.text === "sentinel");
  assert.equal(
    b.client.received.filter((f) => (f as Frame).type === "typing").length,
    0,
    "second one throttled",
  );
  assert.ok(!a.client.received.some((f) => (f as Frame).type === "typing"), "the typist gets no notice");
  await a.client.close();
  await b.client.close();
});

Deno.test("batch=1 delivers JSON arrays holding the same messages", async () => {
  await using server = await startTestServer({ rateLimit: 0 });
  const a = await join(server, "batch", "alice");
  const raw = await TestClient.open(server.ws("/ws/chat/batch?name=batcher&batch=1"));
  const first = await raw.next();
  assert.ok(Array.isArray(first), "frames are arrays");
  assert.equal((first as unknown as Frame[])[0].type, "welcome");
  for (let i = 0; i < 50; i++) a.client.send({ type: "message", text: `b${i}` });
  const texts: string[] = [];
  let frames = 0;
  while (texts.length < 50) {
    const frame = await raw.next() as unknown as Frame[];
    assert.ok(Array.isArray(frame));
    frames++;
    for (const m of frame) if (m.type === "message") texts.push(m.text as string);
  }
  assert.deepEqual(texts, Array.from({ length: 50 }, (_, i) => `b${i}`));
  assert.ok(frames < 50, `messages stored in one turn share a frame (${frames} frames for 50)`);
  await a.client.close();
  await raw.close();
});

Deno.test("200 members × 10 messages: every member gets every message exactly once", async () => {
  await using server = await startTestServer({ rateLimit: 0 });
  const members: TestClient[] = [];
  for (let i = 0; i < 200; i++) {
    const c = new TestClient(server.ws(`/ws/chat/crowd?name=m${i}&batch=1`), { unpackArrays: true });
    members.push(c);
  }
  await Promise.all(members.map((c) => c.opened));
  await Promise.all(members.map((c) => c.nextType("welcome", 15_000)));
  for (let i = 0; i < 10; i++) members[i * 20].send({ type: "message", text: `crowd ${i}` });
  await Promise.all(members.map(async (c) => {
    const got: string[] = [];
    for (let i = 0; i < 10; i++) got.push((await c.nextType<Msg>("message", 15_000)).text);
    assert.deepEqual(got.sort(), Array.from({ length: 10 }, (_, i) => `crowd ${i}`).sort());
  }));
  // A barrier: one more message reaches every member after any duplicate of the earlier ones would have.
  members[0].send({ type: "message", text: "sentinel" });
  await Promise.all(members.map((c) => c.next((f) => f.text === "sentinel", 15_000)));
  for (const c of members) {
    assert.ok(!c.received.some((f) => (f as Frame).type === "message"), "no duplicates");
  }
  await Promise.all(members.map((c) => c.close()));
});

Deno.test("history survives a restart with the same data dir", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    {
      await using server = await startTestServer({ dataDir });
      const a = await join(server, "durable", "alice");
      for (let i = 0; i < 5; i++) await say(a.client, `kept ${i}`);
      await a.client.close();
    }
    await using again = await startTestServer({ dataDir });
    const b = await join(again, "durable", "bob");
    assert.deepEqual(
      (b.welcome.history as Msg[]).map((m) => m.text),
      [0, 1, 2, 3, 4].map((i) => `kept ${i}`),
    );
    const next = await say(b.client, "after restart");
    assert.equal(next.id, "6", "ids keep increasing across restarts");
    await b.client.close();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("kill -9 loses no acknowledged message", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    const acknowledged: string[] = [];
    {
      await using server = await spawnServer(["--data-dir", dataDir, "--rate-limit", "0"], { direct: true });
      const a = await join(server, "crash", "alice");
      for (let i = 0; i < 300; i++) a.client.send({ type: "message", text: `c${i}` });
      // Kill as soon as some acknowledgements have arrived, while the rest are in flight.
      while (acknowledged.length < 100) {
        const m = await a.client.nextType<Msg>("message");
        acknowledged.push(m.text);
      }
      await server.stop("SIGKILL");
      await a.client.closed;
      for (const f of a.client.received) {
        if ((f as Frame).type === "message") acknowledged.push((f as Msg).text);
      }
    }
    await using again = await spawnServer(["--data-dir", dataDir, "--history-size", "1000"]);
    const b = await join(again, "crash", "bob");
    const stored = (b.welcome.history as Msg[]).map((m) => m.text);
    for (const text of acknowledged) {
      assert.ok(stored.includes(text), `acknowledged "${text}" survived kill -9`);
    }
    assert.deepEqual(
      stored.slice(0, acknowledged.length),
      acknowledged,
      "in the order they were acknowledged",
    );
    await b.client.close();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a message resent with the same clientMsgId is acknowledged again but stored once", async () => {
  await using server = await startTestServer();
  const a = await join(server, "resend", "alice");
  const b = await join(server, "resend", "bob");
  a.client.send({ type: "message", text: "once", clientMsgId: "cm-1" });
  const first = await a.client.nextType<Msg>("message");
  await b.client.nextType<Msg>("message");
  await a.client.close();
  const again = await join(server, "resend", "alice", `&since=${first.id}`);
  again.client.send({ type: "message", text: "once", clientMsgId: "cm-1" });
  const ack = await again.client.nextType<Msg>("message");
  assert.equal(ack.id, first.id);
  // A barrier: bob gets the next message only after a second copy of the first would have arrived.
  again.client.send({ type: "message", text: "sentinel", clientMsgId: "cm-s" });
  await b.client.next((f) => f.text === "sentinel");
  assert.ok(!b.client.received.some((f) => (f as Frame).type === "message"), "others do not see it twice");
  const page = JSON.parse((await get(server.http("/api/rooms/resend/messages"))).text);
  assert.deepEqual(page.messages.map((m: Msg) => m.text), ["once", "sentinel"], "the resend is stored once");
  // Errors about a frame name its clientMsgId.
  again.client.send({ type: "message", text: " ", clientMsgId: "cm-2" });
  assert.equal((await again.client.nextType("error")).clientMsgId, "cm-2");
  await again.client.close();
  await b.client.close();
});

Deno.test("a flood within the rate limits is delivered whole: intake waits for output instead of cutting members", async () => {
  // 16 members each send 500 messages at once: 128,000 deliveries, far more than the per-socket bound holds at once.
  await using server = await startTestServer({ rateLimit: 0, maxBufferedBytes: 256 * 1024 });
  const members = await Promise.all(
    Array.from(
      { length: 16 },
      (_, i) => TestClient.open(server.ws(`/ws/chat/burst?name=m${i}&batch=1`), { unpackArrays: true }),
    ),
  );
  await Promise.all(members.map((c) => c.nextType("welcome")));
  const payload = "x".repeat(100);
  members.forEach((c, i) => {
    for (let k = 0; k < 500; k++) c.send({ type: "message", text: `${i}:${k}:${payload}` });
  });
  await Promise.all(members.map(async (c) => {
    let last = 0;
    const next = new Map<string, number>();
    for (let n = 0; n < 8000; n++) {
      const m = await c.nextType<Msg>("message", 30_000);
      assert.ok(Number(m.id) > last, "ids increase");
      last = Number(m.id);
      const [sender, k] = m.text.split(":");
      assert.equal(Number(k), next.get(sender) ?? 0, "each sender's messages arrive in order");
      next.set(sender, Number(k) + 1);
    }
  }));
  const metrics = (await get(server.http("/metrics"))).text;
  assert.doesNotMatch(metrics, /switchboard_slow_consumer_disconnects_total/, "nobody was cut as slow");
  await Promise.all(members.map((c) => c.close()));
});
