import assert from "node:assert/strict";
import { get, startTestServer, TestClient } from "./helpers.ts";

type Frame = Record<string, unknown>;
const KEY = "test-key-0123456789";

function post(url: string, body: unknown, key: string | null = KEY, raw?: string) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (key !== null) headers.authorization = `Bearer ${key}`;
  return get(url, { method: "POST", headers, body: raw ?? JSON.stringify(body) });
}

async function subscriber(server: { ws(p: string): string }, query: string): Promise<TestClient> {
  const c = await TestClient.open(server.ws(`/ws/push?time=0&${query}`));
  return c;
}

Deno.test("a publish reaches only that topic's subscribers, exactly once", async () => {
  await using server = await startTestServer({ apiKeys: [KEY] });
  const a = await subscriber(server, "topics=orders");
  const b = await subscriber(server, "topics=orders,prices");
  const c = await subscriber(server, "topics=prices");
  await a.nextType("subscribed");
  await b.nextType("subscribed");
  await b.nextType("subscribed");
  await c.nextType("subscribed");
  const res = await post(server.http("/api/publish"), {
    topic: "orders",
    data: { order: 42, status: "paid" },
  });
  assert.equal(res.status, 200, res.text);
  const body = JSON.parse(res.text);
  assert.equal(body.delivered, 2);
  for (const client of [a, b]) {
    const p = await client.nextType("publication");
    assert.equal(p.topic, "orders");
    assert.deepEqual(p.data, { order: 42, status: "paid" });
    assert.equal(p.id, body.id);
    assert.equal(typeof p.ts, "number");
  }
  // A barrier: a later publication on prices reaches b and c after any duplicate of the first would have, and a
  // later one on orders reaches a.
  await post(server.http("/api/publish"), { topic: "prices", data: "sentinel" });
  await post(server.http("/api/publish"), { topic: "orders", data: "sentinel" });
  for (const client of [a, b, c]) await client.next((f) => f.data === "sentinel");
  await b.next((f) => f.data === "sentinel");
  for (const client of [a, b, c]) {
    assert.ok(
      !client.received.some((f) => (f as Frame).type === "publication"),
      "nothing more, no duplicates",
    );
  }
  await Promise.all([a.close(), b.close(), c.close()]);
});

Deno.test("a batch publish keeps order and ids increase per topic", async () => {
  await using server = await startTestServer({ apiKeys: [KEY] });
  const s = await subscriber(server, "topics=t1,t2");
  await s.nextType("subscribed");
  await s.nextType("subscribed");
  const res = await post(server.http("/api/publish"), {
    messages: [
      { topic: "t1", data: 1 },
      { topic: "t2", data: "x" },
      { topic: "t1", data: [2] },
      { topic: "t1", data: null },
    ],
  });
  assert.equal(res.status, 200, res.text);
  const body = JSON.parse(res.text);
  assert.equal(body.delivered, 4);
  assert.deepEqual(body.results.map((r: Frame) => `${r.topic}:${r.id}`), ["t1:1", "t2:1", "t1:2", "t1:3"]);
  const got = [];
  for (let i = 0; i < 4; i++) {
    const p = await s.nextType("publication");
    got.push(`${p.topic}:${p.id}:${JSON.stringify(p.data)}`);
  }
  assert.deepEqual(got, ["t1:1:1", 't2:1:"x"', "t1:2:[2]", "t1:3:null"]);

  // A full batch of 1,000 over three topics: every id in batch order, every frame in that order, and the
  // topic history (kept with --topic-history) holds them all.
  const big = Array.from({ length: 1000 }, (_, i) => ({ topic: ["t1", "t2", "t3"][i % 3], data: i }));
  const many = await post(server.http("/api/publish"), { messages: big });
  assert.equal(many.status, 200, many.text);
  const next = { t1: 4, t2: 2, t3: 1 } as Record<string, number>;
  assert.deepEqual(
    JSON.parse(many.text).results.map((r: Frame) => `${r.topic}:${r.id}`),
    big.map((b) => `${b.topic}:${next[b.topic]++}`),
  );
  const seen: number[] = [];
  while (seen.length < 667) {
    const p = await s.nextType("publication");
    seen.push(p.data as number);
  }
  assert.deepEqual(
    seen,
    big.filter((b) => b.topic !== "t3").map((b) => b.data),
    "t1 and t2 frames in batch order",
  );
  await s.close();
});

Deno.test("subscribe and unsubscribe frames change what a push socket gets", async () => {
  await using server = await startTestServer({ apiKeys: [KEY] });
  const s = await subscriber(server, "");
  s.send({ type: "subscribe", topic: "news" });
  assert.deepEqual(await s.nextType("subscribed"), { type: "subscribed", topic: "news" });
  await post(server.http("/api/publish"), { topic: "news", data: "hello" });
  assert.equal((await s.nextType("publication")).data, "hello");
  s.send({ type: "unsubscribe", topic: "news" });
  await s.nextType("unsubscribed");
  const res = JSON.parse((await post(server.http("/api/publish"), { topic: "news", data: "gone" })).text);
  assert.equal(res.delivered, 0);
  s.send({ type: "subscribe", topic: "bad topic!" });
  // The error answer is a barrier: it comes after anything the earlier publish could have delivered.
  assert.equal((await s.nextType("error")).code, "bad_topic");
  assert.ok(!s.received.some((f) => (f as Frame).type === "publication"));
  await s.close();
});

Deno.test("time ticks come with topics unless time=0", async () => {
  await using server = await startTestServer({ apiKeys: [KEY] });
  const withTime = await TestClient.open(server.ws("/ws/push?topics=a"));
  const first = await withTime.next((f) => "time" in f);
  assert.ok(first.time);
  const noTime = await subscriber(server, "topics=a");
  await noTime.nextType("subscribed");
  // A barrier: once withTime has had its next tick and noTime has answered a later frame, a tick for noTime
  // would have arrived.
  await withTime.next((f) => "time" in f, 3000);
  noTime.send({ type: "subscribe", topic: "b" });
  await noTime.nextType("subscribed");
  assert.ok(!noTime.received.some((f) => "time" in (f as Frame)));
  await Promise.all([withTime.close(), noTime.close()]);
});

Deno.test("the publish API refuses bad keys and bodies with JSON errors", async () => {
  await using server = await startTestServer({ apiKeys: [KEY, "second-key"], maxPublishBytes: 1024 });
  const url = server.http("/api/publish");
  const cases: [Promise<{ status: number; text: string }>, number, string][] = [
    [post(url, { topic: "a", data: 1 }, null), 401, "unauthorized"],
    [post(url, { topic: "a", data: 1 }, "wrong"), 401, "unauthorized"],
    [post(url, { topic: "a", data: 1 }, KEY + "x"), 401, "unauthorized"],
    [post(url, null, KEY, "{not json"), 400, "bad_json"],
    [post(url, { topic: "bad topic", data: 1 }), 400, "bad_topic"],
    [post(url, { topic: "", data: 1 }), 400, "bad_topic"],
    [post(url, { topic: "a" }), 400, "bad_request"],
    [post(url, { messages: [] }), 400, "bad_request"],
    [post(url, { messages: [{ topic: "ok", data: 1 }, { topic: "no good", data: 1 }] }), 400, "bad_topic"],
    [post(url, { topic: "a", data: "x".repeat(2000) }), 413, "too_large"],
    [post(url, [1, 2]), 400, "bad_request"],
  ];
  for (const [pending, status, code] of cases) {
    const res = await pending;
    assert.equal(res.status, status, res.text);
    const body = JSON.parse(res.text);
    assert.equal(body.error, code);
    assert.equal(typeof body.message, "string");
  }
  assert.equal((await post(url, { topic: "a", data: 1 }, "second-key")).status, 200);
  assert.equal((await get(url)).status, 405);
});

Deno.test("with no API key configured the publish API is closed", async () => {
  await using server = await startTestServer();
  const res = await post(server.http("/api/publish"), { topic: "a", data: 1 }, "anything");
  assert.equal(res.status, 401);
  assert.match(JSON.parse(res.text).message, /--api-key/);
});

Deno.test("with --topic-history a subscriber recovers missed publications with since", async () => {
  await using server = await startTestServer({ apiKeys: [KEY], topicHistory: 5 });
  for (let i = 1; i <= 3; i++) await post(server.http("/api/publish"), { topic: "feed", data: i });
  const s = await subscriber(server, "topics=feed&since=1");
  const sub = await s.nextType("subscribed");
  assert.equal(sub.lastId, "3");
  assert.equal(sub.truncated, undefined);
  assert.deepEqual([(await s.nextType("publication")).data, (await s.nextType("publication")).data], [2, 3]);
  await post(server.http("/api/publish"), { topic: "feed", data: 4 });
  assert.equal((await s.nextType("publication")).data, 4);
  // More missed than kept: truncated, and the kept ones arrive.
  for (let i = 5; i <= 20; i++) await post(server.http("/api/publish"), { topic: "feed", data: i });
  const late = await subscriber(server, "");
  late.send({ type: "subscribe", topic: "feed", since: 2 });
  const lateSub = await late.nextType("subscribed");
  assert.equal(lateSub.truncated, true);
  const recovered = [];
  for (let i = 0; i < 5; i++) recovered.push((await late.nextType("publication")).data);
  assert.deepEqual(recovered, [16, 17, 18, 19, 20], "the newest kept publications, up to the last one");
  await Promise.all([s.close(), late.close()]);
});
