import assert from "node:assert/strict";
import { nextCronTime, parseCron } from "../lib/push/cron.ts";
import { nextDue } from "../lib/push/scheduler.ts";
import { delay, get, startTestServer, TestClient } from "./helpers.ts";

const KEY = "sched-key";
const api = (method: string, url: string, body?: unknown) =>
  get(url, {
    method,
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

Deno.test("a scheduled push fires at its time, once", async () => {
  await using server = await startTestServer({ apiKeys: [KEY] });
  const sub = await TestClient.open(server.ws("/ws/push?time=0&topics=alarm"));
  await sub.nextType("subscribed");
  const at = new Date(Date.now() + 1200).toISOString();
  const res = await api("POST", server.http("/api/schedules"), { topic: "alarm", data: { wake: true }, at });
  assert.equal(res.status, 201, res.text);
  const created = JSON.parse(res.text);
  assert.equal(created.nextAt, at);
  const p = await sub.nextType("publication", 4000);
  const firedAt = Date.now();
  assert.deepEqual(p.data, { wake: true });
  assert.ok(firedAt >= Date.parse(at), "not early");
  assert.ok(firedAt - Date.parse(at) < 1000, `late by ${firedAt - Date.parse(at)} ms`);
  await delay(600);
  assert.ok(!sub.received.some((f) => (f as Record<string, unknown>).type === "publication"), "fired once");
  const list = JSON.parse((await api("GET", server.http("/api/schedules"))).text).schedules;
  assert.equal(list[0].done, true);
  await sub.close();
});

Deno.test("a schedule survives a restart and fires late once, then it can be deleted", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    let id: string;
    {
      await using server = await startTestServer({ apiKeys: [KEY], dataDir });
      const res = await api("POST", server.http("/api/schedules"), {
        topic: "later",
        data: "while down",
        at: new Date(Date.now() + 300).toISOString(),
      });
      const rec = await api("POST", server.http("/api/schedules"), { topic: "tick", data: 1, every: 60_000 });
      id = JSON.parse(rec.text).id;
      assert.equal(res.status, 201);
    }
    await delay(500);
    await using again = await startTestServer({ apiKeys: [KEY], dataDir });
    const list = JSON.parse((await api("GET", again.http("/api/schedules"))).text).schedules;
    assert.equal(list.length, 2, "both schedules were kept");
    // The one-shot was due while the server was down: it fires once after start.
    for (let i = 0; i < 40; i++) {
      const s = JSON.parse((await api("GET", again.http("/api/schedules"))).text).schedules;
      if (s.find((x: Record<string, unknown>) => x.topic === "later").done) break;
      await delay(50);
    }
    const after = JSON.parse((await api("GET", again.http("/api/schedules"))).text).schedules;
    assert.equal(after.find((x: Record<string, unknown>) => x.topic === "later").done, true);
    const del = await api("DELETE", again.http(`/api/schedules/${id}`));
    assert.equal(del.status, 200);
    assert.equal((await api("DELETE", again.http(`/api/schedules/${id}`))).status, 404);
    const left = JSON.parse((await api("GET", again.http("/api/schedules"))).text).schedules;
    assert.deepEqual(left.map((s: Record<string, unknown>) => s.topic), ["later"]);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("the schedule API refuses bad input and missing keys", async () => {
  await using server = await startTestServer({ apiKeys: [KEY] });
  const url = server.http("/api/schedules");
  for (
    const body of [
      { topic: "a", data: 1 },
      { topic: "a", data: 1, at: "tomorrow-ish" },
      { topic: "a", data: 1, every: 10 },
      { topic: "a", data: 1, every: "61 * * * *" },
      { topic: "a", data: 1, every: "* * *" },
      { topic: "no way", data: 1, every: 5000 },
    ]
  ) {
    const res = await api("POST", url, body);
    assert.equal(res.status, 400, `${JSON.stringify(body)}: ${res.text}`);
  }
  assert.equal((await get(url)).status, 401);
  const cron = await api("POST", url, { topic: "a", data: 1, every: "*/5 * * * *" });
  assert.equal(cron.status, 201);
  assert.equal(new Date(JSON.parse(cron.text).nextAt).getUTCMinutes() % 5, 0);
});

Deno.test("parseCron() and nextCronTime() follow cron's rules in UTC", () => {
  const at = Date.UTC(2026, 10, 25, 10, 7, 30);
  assert.equal(nextCronTime(parseCron("*/15 * * * *"), at), Date.UTC(2026, 10, 25, 10, 15));
  assert.equal(nextCronTime(parseCron("0 9 * * *"), at), Date.UTC(2026, 10, 26, 9, 0));
  assert.equal(nextCronTime(parseCron("30 8 1 1 *"), at), Date.UTC(2027, 0, 1, 8, 30));
  // 2026-11-25 is a Wednesday; Monday 06:00 is 2026-11-30.
  assert.equal(nextCronTime(parseCron("0 6 * * 1"), at), Date.UTC(2026, 10, 30, 6, 0));
  assert.throws(() => parseCron("0 25 * * *"), /hour/);
});

Deno.test("nextDue() coalesces missed intervals into the next future slot", () => {
  assert.equal(nextDue({ nextAt: 1000, everyMs: 100, cron: null }, 1000), 1100);
  assert.equal(nextDue({ nextAt: 1000, everyMs: 100, cron: null }, 1550), 1600);
  assert.equal(nextDue({ nextAt: 1000, everyMs: null, cron: null }, 5000), null);
});
