/**
 * One contract for every {@linkcode Broker}: the same cases run on the memory broker and on Redis.
 */
import assert from "node:assert/strict";
import type { Broker, FrameMeta } from "../lib/broker/broker.ts";
import { MemoryBroker } from "../lib/broker/memory.ts";
import { RedisBroker } from "../lib/broker/redis.ts";
import { Logger } from "../lib/log.ts";
import { delay } from "./helpers.ts";
import { hasServices, startRedis } from "./services.ts";

async function until(check: () => boolean, ms = 2000) {
  for (let i = 0; i < ms / 10 && !check(); i++) await delay(10);
}

async function contract(t: Deno.TestContext, open: () => Promise<Broker>) {
  await t.step(
    "publish reaches every subscriber of the channel once, with its meta, and stops after unsubscribe",
    async () => {
      const broker = await open();
      try {
        const got: string[] = [];
        const meta = (m: FrameMeta) => `${m.except ?? "-"}:${m.at ? `${m.at.stream}@${m.at.seq}` : "-"}`;
        const s1 = broker.subscribe("c1", (f, m) => got.push(`s1:${f}:${meta(m)}`));
        const s2 = broker.subscribe("c1", (f) => got.push(`s2:${f}`));
        const other = broker.subscribe("c2", (f) => got.push(`other:${f}`));
        // Subscriptions can be awaited: once ready, nothing published afterwards is missed.
        await Promise.all([s1.ready, s2.ready, other.ready]);
        await broker.publish("c1", '{"n":1}');
        await broker.publish("c1", '{"n":2}', { except: "conn-9" });
        await broker.publish("c1", '{"n":3}', { at: { stream: "room:r", seq: 42 } });
        await until(() => got.length >= 6);
        assert.deepEqual(got.sort(), [
          's1:{"n":1}:-:-',
          's1:{"n":2}:conn-9:-',
          's1:{"n":3}:-:room:r@42',
          's2:{"n":1}',
          's2:{"n":2}',
          's2:{"n":3}',
        ]);
        s1.unsubscribe();
        s2.unsubscribe();
        // A barrier: a subscriber that stays gets a later publication only after any late copy for the others.
        const after = broker.subscribe("c1", (f) => got.push(`after:${f}`));
        await after.ready;
        await broker.publish("c1", '{"n":4}');
        await until(() => got.includes('after:{"n":4}'));
        assert.deepEqual(
          got.filter((g) => g.includes('"n":4')),
          ['after:{"n":4}'],
          "unsubscribed handlers get nothing",
        );
        after.unsubscribe();
        other.unsubscribe();
      } finally {
        await broker.close();
      }
    },
  );

  await t.step(
    "publications of one turn arrive in order, with their meta, whatever their text holds",
    async () => {
      const broker = await open();
      try {
        const got: string[] = [];
        const sub = broker.subscribe(
          "burst",
          (f, m) => got.push(`${f}|${m.except ?? ""}|${m.at?.seq ?? ""}`),
        );
        const other = broker.subscribe("burst-2", (f) => got.push(`other:${f}`));
        await Promise.all([sub.ready, other.ready]);
        // Tabs, newlines, NUL and digits at the start: the wire format must not split on any of them.
        const texts = Array.from(
          { length: 500 },
          (_, i) => i % 7 === 0 ? `\u0000${i}\n\t12\nx` : `{"n":${i}}`,
        );
        // All in one turn (Redis sends them as batches), across two channels.
        await Promise.all([
          ...texts.map((text, i) =>
            broker.publish("burst", text, i % 2 ? { except: `c${i}` } : { at: { stream: "s", seq: i } })
          ),
          broker.publish("burst-2", "second channel"),
        ]);
        await until(() => got.length >= 501);
        assert.deepEqual(
          got.filter((g) => !g.startsWith("other:")),
          texts.map((text, i) => i % 2 ? `${text}|c${i}|` : `${text}||${i}`),
        );
        assert.ok(got.includes("other:second channel"));
        sub.unsubscribe();
        other.unsubscribe();
      } finally {
        await broker.close();
      }
    },
  );

  await t.step("presence adds, lists in join order, counts and removes", async () => {
    const broker = await open();
    try {
      await broker.presenceAdd("chat:x", { connId: "c1", id: "u1", name: "Ann" });
      await delay(2);
      await broker.presenceAdd("chat:x", { connId: "c2", id: "u2", name: "Ben" });
      await broker.presenceAdd("chat:y", { connId: "c3", id: "u3", name: "Cat" });
      assert.deepEqual((await broker.presence("chat:x")).map((e) => e.name), ["Ann", "Ben"]);
      assert.equal(await broker.presenceCount("chat:x"), 2);
      assert.deepEqual([...(await broker.presenceCounts("chat:"))].sort(), [["chat:x", 2], ["chat:y", 1]]);
      await broker.presenceRemove("chat:x", "c1");
      await broker.presenceRemove("chat:y", "c3");
      assert.deepEqual((await broker.presence("chat:x")).map((e) => e.connId), ["c2"]);
      assert.deepEqual([...(await broker.presenceCounts("chat:"))], [["chat:x", 1]]);
      assert.equal(await broker.ready(), true);
    } finally {
      await broker.close();
    }
  });
}

Deno.test("MemoryBroker passes the broker contract", (t) =>
  contract(t, () => Promise.resolve(new MemoryBroker())));

Deno.test({
  name: "RedisBroker passes the broker contract",
  ignore: !hasServices,
  async fn(t) {
    await using redis = await startRedis();
    await contract(t, () => RedisBroker.connect(redis.url, new Logger("silent")));
  },
});
