import assert from "node:assert/strict";
import { get, startTestServer } from "./helpers.ts";

const KEY = "sse-key";

/** Reads SSE events from a response body. */
class SseReader {
  #reader: ReadableStreamDefaultReader<string>;
  #buf = "";
  constructor(res: Response) {
    this.#reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  }
  async next(): Promise<{ id?: string; event?: string; data?: string }> {
    while (true) {
      const end = this.#buf.indexOf("\n\n");
      if (end !== -1) {
        const block = this.#buf.slice(0, end);
        this.#buf = this.#buf.slice(end + 2);
        const ev: Record<string, string> = {};
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue;
          const i = line.indexOf(": ");
          if (i > 0) ev[line.slice(0, i)] = line.slice(i + 2);
        }
        if (ev.event || ev.data) return ev;
        continue;
      }
      const { value, done } = await this.#reader.read();
      if (done) throw new Error("stream ended");
      this.#buf += value;
    }
  }
  async cancel() {
    await this.#reader.cancel();
  }
}

const publish = (url: string, topic: string, data: unknown) =>
  get(url, {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ topic, data }),
  });

Deno.test("SSE delivers publications and resumes from Last-Event-ID", async () => {
  await using server = await startTestServer({ apiKeys: [KEY], topicHistory: 50 });
  const res = await fetch(server.http("/sse/push?topics=a,b"));
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
  const sse = new SseReader(res);
  // Subscribed once the publish counts it.
  let delivered = 0;
  for (let i = 0; i < 50 && delivered === 0; i++) {
    delivered = JSON.parse((await publish(server.http("/api/publish"), "a", { n: 1 })).text).delivered;
  }
  const e1 = await sse.next();
  assert.equal(e1.event, "publication");
  const frame = JSON.parse(e1.data!);
  assert.equal(frame.topic, "a");
  await publish(server.http("/api/publish"), "b", "bee");
  const e2 = await sse.next();
  assert.equal(JSON.parse(e2.data!).data, "bee");
  assert.match(e2.id!, /a:\d+,b:1/);
  await sse.cancel();
  // Missed while away, then resumed with the last id.
  await publish(server.http("/api/publish"), "a", "missed-a");
  await publish(server.http("/api/publish"), "b", "missed-b");
  const again = await fetch(server.http("/sse/push?topics=a,b"), { headers: { "last-event-id": e2.id! } });
  const sse2 = new SseReader(again);
  const r1 = JSON.parse((await sse2.next()).data!);
  const r2 = JSON.parse((await sse2.next()).data!);
  assert.deepEqual([r1.data, r2.data].sort(), ["missed-a", "missed-b"]);
  await sse2.cancel();
});

Deno.test("SSE refuses a missing or bad topic list with 400", async () => {
  await using server = await startTestServer();
  assert.equal((await get(server.http("/sse/push"))).status, 400);
  assert.equal((await get(server.http("/sse/push?topics=bad%20topic"))).status, 400);
});
