import assert from "node:assert/strict";
import { startTestServer, TestClient } from "./helpers.ts";

const TIME_RE = /^\d{4}\.\d{2}\.\d{2} \d{2}:\d{2}:\d{2}$/;

Deno.test("push socket sends the seed's time frame at once and then about every second", async () => {
  await using server = await startTestServer();
  await using client = await TestClient.open(server.ws("/ws/push"));
  const first = await client.next();
  assert.deepEqual(Object.keys(first), ["time"]);
  assert.match(first.time as string, TIME_RE);
  const t1 = performance.now();
  const a = await client.next(() => true, 2500);
  const t2 = performance.now();
  const b = await client.next(() => true, 2500);
  const t3 = performance.now();
  assert.match(a.time as string, TIME_RE);
  assert.notEqual(a.time, b.time, "two ticks carry different seconds");
  assert.ok(t3 - t2 > 800 && t3 - t2 < 1200, `ticks about 1 s apart, got ${Math.round(t3 - t2)} ms`);
  assert.ok(
    t2 - t1 < 1100,
    `the first tick lands on the next wall-clock second, got ${Math.round(t2 - t1)} ms`,
  );
});

Deno.test("push ticks are aligned to the wall-clock second", async () => {
  await using server = await startTestServer();
  await using client = await TestClient.open(server.ws("/ws/push"));
  await client.next();
  await client.next(() => true, 2500);
  const ms = Date.now() % 1000;
  assert.ok(ms < 250, `tick arrived ${ms} ms after the second`);
});

Deno.test("push uses --tz for the time it sends", async () => {
  await using server = await startTestServer({ tz: "Asia/Shanghai" });
  await using client = await TestClient.open(server.ws("/ws/push"));
  const frame = await client.next();
  const now = new Date();
  const shanghai = new Date(now.getTime() + 8 * 3600_000);
  const hh = String(shanghai.getUTCHours()).padStart(2, "0");
  assert.equal((frame.time as string).slice(11, 13), hh, `hour in Asia/Shanghai is ${hh}: ${frame.time}`);
});

Deno.test("one shared ticker serves every push socket and stops with the last one", async () => {
  await using server = await startTestServer({ pushIntervalMs: 200 });
  const ticker = server.running.app.ctx.ticker;
  const clients = await Promise.all(
    Array.from({ length: 5 }, () => TestClient.open(server.ws("/ws/push"))),
  );
  for (const c of clients) await c.next();
  assert.equal(ticker.size, 5);
  assert.ok(ticker.running);
  for (const c of clients) await c.next(() => true, 1000);
  for (const c of clients) await c.close();
  // The server sees the closes shortly after the clients do.
  for (let i = 0; i < 50 && ticker.running; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(ticker.size, 0);
  assert.equal(ticker.running, false, "the ticker stops when the last push socket closes");
});

Deno.test("every seed push alias pushes the time", async () => {
  await using server = await startTestServer();
  for (const path of ["/md_admin/test_websocket", "/test_websocket"]) {
    await using client = await TestClient.open(server.ws(path));
    assert.match((await client.next()).time as string, TIME_RE);
  }
});
