/**
 * One contract for every {@linkcode Store}: the same cases run on SQLite and on PostgreSQL.
 */
import assert from "node:assert/strict";
import type { Store } from "../lib/store.ts";
import { PostgresStore } from "../lib/store_postgres.ts";
import { SqliteStore } from "../lib/store_sqlite.ts";
import { createDatabase, hasServices, startPostgres } from "./services.ts";

const from = { id: "u1", name: "Ann", role: "member" as const };

async function contract(t: Deno.TestContext, open: (name: string) => Promise<Store>) {
  let n = 0;
  const step = (name: string, fn: (s: Store) => Promise<void>) =>
    t.step(name, async () => {
      const store = await open(`c${++n}`);
      try {
        await fn(store);
      } finally {
        await store.close();
      }
    });

  await step("append() numbers each stream from 1, in call order, within one commit", async (s) => {
    const all = await Promise.all([
      s.append("room:a", { from, text: "a1" }),
      s.append("room:b", { from, text: "b1" }),
      s.append("room:a", { from, text: "a2", clientMsgId: "c-2" }),
    ]);
    assert.deepEqual(all.map((m) => `${m.stream}:${m.seq}:${m.text}`), [
      "room:a:1:a1",
      "room:b:1:b1",
      "room:a:2:a2",
    ]);
    assert.equal(await s.lastSeq("room:a"), 2);
    assert.equal(await s.lastSeq("room:none"), 0);
    assert.equal((await s.findByClientMsgId("room:a", "c-2"))?.seq, 2);
    assert.equal(await s.findByClientMsgId("room:b", "c-2"), undefined);
    assert.equal(await s.nextSeq("topic:x"), 1);
    assert.equal(await s.nextSeq("topic:x"), 2);
    assert.deepEqual(await s.history("topic:x", { limit: 10 }), [], "nextSeq stores nothing");
  });

  await step("history() pages newest-last with before/after/limit; trim keeps the newest", async (s) => {
    for (let i = 1; i <= 10; i++) {
      await s.append("room:h", { from, text: `m${i}`, data: i === 3 ? '{"x":1}' : undefined });
    }
    const texts = (q: Parameters<Store["history"]>[1]) =>
      s.history("room:h", q).then((r) => r.map((m) => m.text));
    assert.deepEqual(await texts({ limit: 3 }), ["m8", "m9", "m10"]);
    assert.deepEqual(await texts({ before: 4, limit: 5 }), ["m1", "m2", "m3"]);
    assert.deepEqual(await texts({ after: 7, limit: 5 }), ["m8", "m9", "m10"]);
    assert.deepEqual(await texts({ after: 2, limit: 2 }), ["m3", "m4"]);
    const third = (await s.history("room:h", { after: 2, limit: 1 }))[0];
    assert.equal(third.data, '{"x":1}');
    assert.deepEqual(third.from, from);
    assert.equal(await s.countAfter("room:h", 5, "member"), 5);
    await s.trim("room:h", 4);
    assert.deepEqual(await texts({ after: 0, limit: 100 }), ["m7", "m8", "m9", "m10"]);
    const list = await s.streams("room:", 10);
    assert.deepEqual(list.map((x) => [x.stream, x.lastSeq]), [["room:h", 10]]);
  });

  await step("agents, sessions and visitors", async (s) => {
    const a = await s.upsertAgent({ username: "ann", name: "Ann", passwordHash: "h1" });
    const again = await s.upsertAgent({ username: "ann", name: "Ann B", passwordHash: "h2" });
    assert.equal(again.id, a.id);
    assert.equal((await s.agentByUsername("ann"))?.passwordHash, "h2");
    assert.equal((await s.agentById(a.id))?.name, "Ann B");
    await s.createSession("tok", a.id, Date.now() + 1000);
    assert.equal(await s.sessionAgent("tok", Date.now()), a.id);
    assert.equal(await s.sessionAgent("tok", Date.now() + 2000), undefined, "expired");
    await s.deleteSession("tok");
    assert.equal(await s.sessionAgent("tok", Date.now()), undefined);
    assert.equal((await s.listAgents()).length, 1);
    assert.equal(await s.removeAgent("ann"), true);
    assert.equal(await s.removeAgent("ann"), false);
    const v = await s.createVisitor("vt");
    await s.updateVisitor(v.id, { name: "Vic", email: "v@x.io" });
    assert.equal((await s.visitorByToken("vt"))?.name, "Vic");
    assert.equal((await s.visitorById(v.id))?.email, "v@x.io");
  });

  await step("conversations: one winner per accept, transfer, requeue, close, read marks", async (s) => {
    const c = await s.createConversation("v1", null);
    assert.equal(c.status, "queued");
    const results = await Promise.all(
      ["x", "y", "z"].map((agent) => s.assignConversation(c.id, agent, { status: "queued" })),
    );
    assert.equal(results.filter(Boolean).length, 1, "exactly one accept wins");
    const holder = results.find(Boolean)!.agentId!;
    assert.equal(await s.assignConversation(c.id, "w", { status: "assigned", agentId: "nobody" }), undefined);
    const moved = await s.assignConversation(c.id, "w", { status: "assigned", agentId: holder });
    assert.equal(moved?.agentId, "w");
    assert.equal(await s.requeueConversation(c.id, holder), undefined, "only the holder's requeue counts");
    assert.equal((await s.requeueConversation(c.id, "w"))?.status, "queued");
    assert.equal((await s.conversations({ status: "queued", limit: 10 })).length, 1);
    await s.markRead(c.id, "agent", 5);
    await s.markRead(c.id, "agent", 3);
    assert.equal((await s.conversation(c.id))?.agentReadSeq, 5, "read marks never go back");
    assert.equal((await s.openConversationOf("v1"))?.id, c.id);
    assert.equal((await s.closeConversation(c.id))?.status, "closed");
    assert.equal(await s.closeConversation(c.id), undefined);
    await s.rateConversation(c.id, 5, "great");
    const closed = await s.conversation(c.id);
    assert.equal(closed?.rating, 5);
    assert.equal(await s.openConversationOf("v1"), undefined);
    assert.equal((await s.latestConversationOf("v1"))?.id, c.id);
  });

  await step("schedules: due, claimed once, deleted", async (s) => {
    const sch = await s.createSchedule({ topic: "t", data: "1", nextAt: 1000, everyMs: 500, cron: null });
    assert.deepEqual((await s.dueSchedules(999)).length, 0);
    assert.deepEqual((await s.dueSchedules(1000)).map((x) => x.id), [sch.id]);
    const claims = await Promise.all([1, 2, 3].map(() => s.claimSchedule(sch.id, 1000, 1500, 1001)));
    assert.equal(claims.filter(Boolean).length, 1, "one claim wins");
    assert.equal((await s.listSchedules())[0].nextAt, 1500);
    assert.equal(await s.deleteSchedule(sch.id), true);
    assert.equal(await s.deleteSchedule(sch.id), false);
    assert.equal(await s.ready(), true);
  });
}

Deno.test("SqliteStore passes the store contract", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await contract(t, (name) => Promise.resolve(SqliteStore.open(`${dir}/${name}.db`)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "PostgresStore passes the store contract",
  ignore: !hasServices,
  async fn(t) {
    await using pg = await startPostgres();
    await contract(t, async (name) => await PostgresStore.open(await createDatabase(pg, name)));
  },
});
