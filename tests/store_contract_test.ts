/**
 * One contract for every {@linkcode Store}: the same cases run on SQLite and on PostgreSQL.
 */
import assert from "node:assert/strict";
import type { Store } from "../lib/store/store.ts";
import { PostgresStore } from "../lib/store/postgres.ts";
import { SqliteStore } from "../lib/store/sqlite.ts";
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
    const opened = await s.openConversation("v1", null);
    assert.equal(opened.created, true);
    const c = opened.conversation;
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

  await step(
    "append() stores a resent clientMsgId once, also within one commit and across calls",
    async (s) => {
      const first = await Promise.all([
        s.append("room:d", { from, text: "one", clientMsgId: "k1" }),
        s.append("room:d", { from, text: "one again", clientMsgId: "k1" }),
        s.append("room:d", { from, text: "two" }),
      ]);
      assert.deepEqual(first.map((m) => [m.seq, m.text, m.duplicate ?? false]), [
        [1, "one", false],
        [1, "one", true],
        [2, "two", false],
      ]);
      const later = await s.append("room:d", { from, text: "one, later", clientMsgId: "k1" });
      assert.deepEqual([later.seq, later.text, later.duplicate], [1, "one", true]);
      assert.equal(await s.lastSeq("room:d"), 2, "a resend takes no seq");
      assert.deepEqual((await s.history("room:d", { limit: 10 })).map((m) => m.text), ["one", "two"]);
    },
  );

  await step(
    "a message the database refuses fails alone; its neighbours in the commit are stored",
    async (s) => {
      const results = await Promise.allSettled([
        s.append("room:n", { from, text: "before" }),
        s.append("room:o", { from, text: "nul \u0000 inside" }),
        // NOT NULL violation on both databases: only the retry row by row can save the others.
        s.append("room:n", { from: { id: null as unknown as string, name: "x" }, text: "bad row" }),
        s.append("room:p", { from, text: "after", clientMsgId: "p1" }),
      ]);
      assert.deepEqual(results.map((r) => r.status), ["fulfilled", "rejected", "rejected", "fulfilled"]);
      assert.match(String((results[1] as PromiseRejectedResult).reason), /U\+0000/);
      assert.deepEqual((await s.history("room:n", { limit: 10 })).map((m) => [m.seq, m.text]), [[
        1,
        "before",
      ]]);
      assert.deepEqual((await s.history("room:p", { limit: 10 })).map((m) => m.text), ["after"]);
      assert.equal(
        (await s.append("room:n", { from, text: "next" })).seq,
        2,
        "no seq was lost to the bad row",
      );
    },
  );

  await step("visitors and open conversations are created once under concurrency", async (s) => {
    const visitors = await Promise.all([1, 2, 3, 4].map(() => s.createVisitor("same-token")));
    assert.equal(new Set(visitors.map((v) => v.id)).size, 1, "one visitor per token");
    const opened = await Promise.all([1, 2, 3, 4].map(() => s.openConversation(visitors[0].id, null)));
    assert.equal(new Set(opened.map((o) => o.conversation.id)).size, 1, "one open conversation");
    assert.equal(opened.filter((o) => o.created).length, 1, "exactly one call created it");
    await s.closeConversation(opened[0].conversation.id);
    const next = await s.openConversation(visitors[0].id, "agent-1");
    assert.equal(next.created, true, "after a close a new one starts");
    assert.notEqual(next.conversation.id, opened[0].conversation.id);
    assert.equal(next.conversation.lastAgentId, "agent-1");
  });

  await step("the queue lists queued conversations with messages, in one query", async (s) => {
    const a = (await s.openConversation("va", null)).conversation;
    const b = (await s.openConversation("vb", null)).conversation;
    const c = (await s.openConversation("vc", null)).conversation;
    await s.append(`conv:${c.id}`, { from, text: "hi" });
    await s.append(`conv:${a.id}`, { from, text: "hello" });
    assert.deepEqual((await s.queuedConversations(10)).map((x) => x.id), [a.id, c.id], "b has no message");
    await s.assignConversation(a.id, "x", { status: "queued" });
    assert.deepEqual((await s.queuedConversations(10)).map((x) => x.id), [c.id]);
    // b is left out for having no message, not for its status.
    assert.equal(b.status, "queued");
  });

  await step(
    "views in bulk: visitors, agents, last messages, unread counts and loads, one query each",
    async (s) => {
      const ann = await s.upsertAgent({ username: "ann", name: "Ann", passwordHash: "h" });
      const bo = await s.upsertAgent({ username: "bo", name: "Bo", passwordHash: "h" });
      const agents = await s.agentsByIds([ann.id, bo.id, ann.id, "nobody"]);
      assert.deepEqual([...agents.keys()].sort(), [ann.id, bo.id].sort());
      assert.equal(agents.get(bo.id)?.username, "bo");
      const [v1, v2] = [await s.createVisitor("t1"), await s.createVisitor("t2")];
      await s.updateVisitor(v2.id, { name: "Wang" });
      const visitors = await s.visitorsByIds([v1.id, v2.id, "nobody"]);
      assert.deepEqual([visitors.size, visitors.get(v2.id)?.name], [2, "Wang"]);
      const c1 = (await s.openConversation(v1.id, null)).conversation;
      const c2 = (await s.openConversation(v2.id, null)).conversation;
      const c3 = (await s.openConversation((await s.createVisitor("t3")).id, null)).conversation;
      const visitor = { id: v1.id, name: "V", role: "visitor" as const };
      for (const text of ["one", "two", "three"]) await s.append(`conv:${c1.id}`, { from: visitor, text });
      await s.append(`conv:${c1.id}`, { from: { id: ann.id, name: "Ann", role: "agent" }, text: "answer" });
      await s.append(`conv:${c2.id}`, { from: { ...visitor, id: v2.id }, text: "你好" });
      await s.markRead(c1.id, "agent", 2);
      const last = await s.lastMessages([`conv:${c1.id}`, `conv:${c2.id}`, `conv:${c3.id}`]);
      assert.deepEqual([last.get(`conv:${c1.id}`)?.text, last.get(`conv:${c2.id}`)?.text], [
        "answer",
        "你好",
      ]);
      assert.equal(last.has(`conv:${c3.id}`), false, "no message yet");
      const unread = await s.unreadCounts([c1.id, c2.id, c3.id]);
      assert.deepEqual([unread.get(c1.id), unread.get(c2.id), unread.get(c3.id)], [1, 1, undefined]);
      await s.assignConversation(c1.id, ann.id, { status: "queued" });
      await s.assignConversation(c2.id, ann.id, { status: "queued" });
      await s.assignConversation(c3.id, bo.id, { status: "queued" });
      await s.closeConversation(c3.id);
      const held = await s.assignedCounts();
      assert.deepEqual([held.get(ann.id), held.get(bo.id)], [2, undefined], "a closed one is not held");
      // Lists longer than one IN list still come back whole.
      const many = await s.visitorsByIds([...Array.from({ length: 600 }, (_, i) => `missing-${i}`), v1.id]);
      assert.deepEqual([...many.keys()], [v1.id]);
    },
  );

  await step("sessions: live lookup in bulk, all of an agent's ended at once", async (s) => {
    const now = Date.now();
    await s.createSession("s1", "ag1", now + 10_000);
    await s.createSession("s2", "ag1", now + 10_000);
    await s.createSession("s3", "ag2", now + 10_000);
    await s.createSession("s4", "ag2", now - 1);
    assert.deepEqual([...await s.liveSessions(["s1", "s2", "s3", "s4", "nope"], now)].sort(), [
      "s1",
      "s2",
      "s3",
    ]);
    await s.deleteAgentSessions("ag1");
    assert.deepEqual([...await s.liveSessions(["s1", "s2", "s3"], now)], ["s3"]);
    assert.deepEqual([...await s.liveSessions([], now)], []);
  });

  await step("prune() applies age and per-stream caps to one prefix only", async (s) => {
    for (let i = 1; i <= 6; i++) await s.append("room:big", { from, text: `b${i}` });
    await s.append("room:small", { from, text: "s1" });
    await s.append("topic:keep", { from, text: "t1" });
    assert.equal(await s.prune("room:", { keep: 3 }), 3);
    assert.deepEqual((await s.history("room:big", { limit: 10 })).map((m) => m.text), ["b4", "b5", "b6"]);
    assert.equal(await s.prune("room:", { before: Date.now() + 1 }), 4);
    assert.deepEqual(await s.history("room:small", { limit: 10 }), []);
    assert.equal((await s.history("topic:keep", { limit: 10 })).length, 1, "other prefixes are untouched");
    assert.equal((await s.append("room:big", { from, text: "b7" })).seq, 7, "seqs keep counting");
  });

  await step("secret() is made once and the same for every caller", async (s) => {
    const values = await Promise.all([1, 2, 3].map(() => s.secret("visitor-tokens")));
    assert.equal(new Set(values).size, 1);
    assert.match(values[0], /^[0-9a-f]{64}$/);
    assert.notEqual(await s.secret("other"), values[0]);
  });

  await step("roles: an admin, a disabled agent, and who held a conversation", async (s) => {
    const admin = await s.upsertAgent({ username: "root", name: "Root", passwordHash: "h", role: "admin" });
    assert.equal(admin.role, "admin");
    const ann = await s.upsertAgent({ username: "ann", name: "Ann", passwordHash: "h" });
    assert.deepEqual([ann.role, ann.disabled], ["agent", false]);
    assert.equal(
      (await s.upsertAgent({ username: "root", name: "Root", passwordHash: "h2" })).role,
      "admin",
      "kept",
    );
    assert.equal((await s.updateAgent("ann", { disabled: true }))?.disabled, true);
    assert.equal(await s.updateAgent("nobody", { disabled: true }), undefined);
    const mine = (await s.openConversation("v-roles", null)).conversation;
    const other = (await s.openConversation("v-other", null)).conversation;
    await s.assignConversation(other.id, "someone", { status: "queued" });
    assert.equal(await s.heldBy(mine.id, ann.id), false);
    await s.assignConversation(mine.id, ann.id, { status: "queued" });
    await s.assignConversation(mine.id, admin.id, { status: "assigned", agentId: ann.id });
    assert.equal(await s.heldBy(mine.id, ann.id), true, "held before counts");
    const visible = (await s.conversations({ visibleTo: ann.id, limit: 10 })).map((c) => c.id);
    assert.deepEqual(visible, [mine.id], "not the conversation someone else holds");
    assert.equal((await s.conversations({ limit: 10 })).length, 2);
  });

  await step("search finds conversations by message text in any script, visitor name or email", async (s) => {
    const v1 = await s.createVisitor("search-v1");
    await s.updateVisitor(v1.id, { name: "Wang Fang", email: "wf@example.com" });
    const v2 = await s.createVisitor("search-v2");
    const c1 = (await s.openConversation(v1.id, null)).conversation;
    const c2 = (await s.openConversation(v2.id, null)).conversation;
    await s.append(`conv:${c1.id}`, { from, text: "我的订单还没到" });
    await s.append(`conv:${c2.id}`, { from, text: "Where is my ORDER? 100% late_ish" });
    const ids = async (q: string, visibleTo?: string) =>
      (await s.searchConversations(q, { visibleTo, limit: 10 })).map((c) => c.id);
    assert.deepEqual(await ids("订单"), [c1.id], "two Chinese characters inside a sentence");
    assert.deepEqual(await ids("单订"), [], "in that order");
    assert.deepEqual(await ids("order"), [c2.id], "case-insensitive");
    assert.deepEqual(await ids("ORD"), [c2.id], "a word's start");
    assert.deepEqual(await ids("late where"), [c2.id], "every word, in any order");
    assert.deepEqual(await ids("late 订单"), [], "every word");
    assert.deepEqual(await ids("ｏｒｄｅｒ"), [c2.id], "full-width letters fold");
    assert.deepEqual(await ids("wang"), [c1.id], "visitor name");
    assert.deepEqual(await ids("wf@example"), [c1.id], "visitor email");
    assert.deepEqual(await ids("100%"), [c2.id], "% is not a wildcard");
    assert.deepEqual(await ids("%"), [], "nor is a query of no words one");
    assert.deepEqual(await ids('"or*)'), [c2.id], "query syntax is only text: or, a prefix of order");
    assert.deepEqual(await ids("nothing like this"), []);
    await s.assignConversation(c1.id, "someone", { status: "queued" });
    assert.deepEqual(await ids("订单", "another-agent"), [], "visibleTo applies");
  });

  await step("uploads: bytes kept exactly, attached all or none, unsent ones pruned", async (s) => {
    const data = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 7) % 256); // every byte value, NUL too
    const file = { owner: "visitor:v1", name: "a.png", type: "image/png", size: data.length, data };
    const a = await s.saveUpload({ ...file, id: crypto.randomUUID() });
    const b = await s.saveUpload({ ...file, id: crypto.randomUUID(), owner: "visitor:v2" });
    const got = await s.upload(a.id);
    assert.deepEqual([got?.owner, got?.stream, got?.size], ["visitor:v1", null, data.length]);
    assert.deepEqual(got?.data, data);
    assert.equal(await s.attachUploads([a.id, b.id], "visitor:v1", "conv:1"), undefined, "b is not v1's");
    assert.equal((await s.upload(a.id))?.stream, null, "nothing was marked");
    assert.deepEqual(await s.attachUploads([a.id], "visitor:v1", "conv:1"), [
      { id: a.id, name: "a.png", type: "image/png", size: data.length },
    ]);
    assert.ok(await s.attachUploads([a.id], "visitor:v1", "conv:1"), "a resend to the same stream");
    assert.equal(await s.attachUploads([a.id], "visitor:v1", "conv:2"), undefined, "sent elsewhere already");
    const m = await s.append("conv:1", {
      from,
      text: "",
      attachments: [{ id: a.id, name: "a.png", type: "image/png", size: 3 }],
    });
    assert.deepEqual((await s.history("conv:1", { limit: 1 }))[0].attachments, m.attachments);
    assert.equal(await s.pruneUploads(Date.now() - 60_000), 0, "too young");
    assert.equal(await s.pruneUploads(Date.now() + 1), 1, "only the unsent one");
    assert.equal(await s.upload(b.id), undefined);
    assert.ok(await s.upload(a.id));
  });

  await step(
    "webhook outbox: events commit with their cause, are claimed once, retried, recorded",
    async (s) => {
      const ev = (event: string) => (r: { id?: string; seq?: number }) => [{
        id: `msg_${crypto.randomUUID()}`,
        url: "http://127.0.0.1:9/hook",
        event,
        body: JSON.stringify({ type: event, ref: r.id ?? r.seq }),
        createdAt: Date.now() - 10,
      }];
      const m = await s.append("conv:w1", { from, text: "hi", clientMsgId: "w-1" }, ev("message.created"));
      await s.append("conv:w1", { from, text: "hi", clientMsgId: "w-1" }, ev("message.created"));
      const { conversation } = await s.openConversation("v-webhooks", null, ev("conversation.created"));
      await s.openConversation("v-webhooks", null, ev("conversation.created")); // not created: no event
      await s.closeConversation(conversation.id, ev("conversation.closed"));
      await s.closeConversation(conversation.id, ev("conversation.closed")); // closed already: no event
      await s.rateConversation(conversation.id, 5, null, ev("conversation.rated"));
      const all = await s.deliveries({ limit: 10 });
      assert.deepEqual(all.map((d) => d.event).sort(), [
        "conversation.closed",
        "conversation.created",
        "conversation.rated",
        "message.created",
      ], "one per change, none for a resend or a no-op");
      assert.equal(JSON.parse(all.find((d) => d.event === "message.created")!.body).ref, m.seq);
      const now = Date.now();
      const claims = await Promise.all([1, 2, 3].map(() => s.claimDeliveries(now, 30_000, 10)));
      assert.equal(claims.flat().length, 4, "each delivery is claimed once");
      assert.deepEqual(await s.claimDeliveries(now, 30_000, 10), [], "locked");
      const d = all[0];
      await s.recordAttempt(d.id, { attempt: 1, at: now, status: 500, error: "HTTP 500", durationMs: 3 }, {
        nextAt: now + 1000,
      });
      assert.deepEqual(await s.claimDeliveries(now + 999, 30_000, 10), [], "not due yet");
      assert.deepEqual((await s.claimDeliveries(now + 1000, 30_000, 10)).map((x) => x.id), [d.id]);
      await s.recordAttempt(d.id, { attempt: 2, at: now, status: null, error: "timeout", durationMs: 9 }, {
        failed: true,
      });
      assert.equal((await s.delivery(d.id))?.status, "failed");
      assert.deepEqual((await s.deliveryAttempts(d.id)).map((a) => [a.attempt, a.status]), [[1, 500], [
        2,
        null,
      ]]);
      assert.equal(await s.retryDelivery(d.id, now + 2000), true);
      assert.deepEqual((await s.claimDeliveries(now + 2000, 30_000, 10)).map((x) => x.id), [d.id]);
      await s.recordAttempt(d.id, { attempt: 3, at: now, status: 204, error: null, durationMs: 1 }, {
        delivered: true,
      });
      const done = await s.delivery(d.id);
      assert.deepEqual([done?.status, done?.attempts, done?.lastStatus], ["delivered", 3, 204]);
      assert.equal(await s.retryDelivery(d.id, now), false, "a delivered one stays delivered");
      assert.equal((await s.deliveries({ status: "delivered", limit: 10 })).length, 1);
    },
  );

  await step("report rows: each conversation with its first agent reply and its agent", async (s) => {
    const before = Date.now() - 1;
    const c = (await s.openConversation("v-report", null)).conversation;
    const quiet = (await s.openConversation("v-report-2", null)).conversation;
    await s.append(`conv:${c.id}`, { from: { id: "v-report", name: "V", role: "visitor" }, text: "hello" });
    const reply = await s.append(`conv:${c.id}`, {
      from: { id: "ag1", name: "A", role: "agent" },
      text: "hi",
    });
    await s.append(`conv:${c.id}`, { from: { id: "ag2", name: "B", role: "agent" }, text: "later" });
    await s.assignConversation(c.id, "ag2", { status: "queued" });
    const rows = await s.reportRows(before, Date.now() + 1);
    const mine = rows.find((r) => r.id === c.id);
    assert.deepEqual(
      [mine?.firstReplyAt, mine?.firstReplyBy, mine?.agentId, mine?.source],
      [reply.ts, "ag1", "ag2", "chat"],
    );
    const none = rows.find((r) => r.id === quiet.id);
    assert.deepEqual([none?.firstReplyAt, none?.firstReplyBy, none?.agentId], [null, null, null]);
    assert.equal((await s.reportRows(0, before)).some((r) => r.id === c.id), false);
  });

  await step("deleting a visitor or purging closed conversations leaves none of their content", async (s) => {
    const gone = await s.createVisitor("del-v1");
    const kept = await s.createVisitor("del-v2");
    const hook = (conversationId: string) => () => [{
      id: `msg_${crypto.randomUUID()}`,
      url: "http://127.0.0.1:9/hook",
      event: "message.created",
      body: JSON.stringify({ conversationId }),
      createdAt: Date.now(),
    }];
    const seedConv = async (visitorId: string, words: string) => {
      const c = (await s.openConversation(visitorId, null)).conversation;
      await s.append(
        `conv:${c.id}`,
        { from: { id: visitorId, name: "V", role: "visitor" }, text: words },
        hook(c.id),
      );
      await s.append(`notes:${c.id}`, { from, text: `note ${words}` });
      const up = await s.saveUpload({
        id: crypto.randomUUID(),
        owner: `visitor:${visitorId}`,
        name: "a.txt",
        type: "text/plain",
        size: 1,
        data: new Uint8Array([65]),
      });
      await s.attachUploads([up.id], `visitor:${visitorId}`, `conv:${c.id}`);
      return { c, up };
    };
    const g = await seedConv(gone.id, "platypusgone");
    const k = await seedConv(kept.id, "echidnakept");
    const exported = await s.visitorExport(gone.id);
    assert.deepEqual(exported?.conversations[0].messages.map((m) => m.text), ["platypusgone"]);
    assert.deepEqual([exported?.uploads.length, exported?.uploads[0].data], [1, new Uint8Array([65])]);

    assert.deepEqual(await s.deleteVisitor(gone.id), {
      conversations: 1,
      messages: 2,
      uploads: 1,
      visitors: 1,
    });
    assert.equal(await s.deleteVisitor(gone.id), undefined);
    assert.equal(await s.visitorById(gone.id), undefined);
    assert.equal(await s.conversation(g.c.id), undefined);
    assert.deepEqual(await s.history(`conv:${g.c.id}`, { limit: 10 }), []);
    assert.deepEqual(await s.history(`notes:${g.c.id}`, { limit: 10 }), []);
    assert.equal(await s.upload(g.up.id), undefined);
    assert.deepEqual(await s.searchConversations("platypusgone", { limit: 10 }), []);
    const bodies = (await s.deliveries({ limit: 100 })).map((d) => d.body).join();
    assert.equal(bodies.includes(g.c.id), false, "its webhook deliveries go too");
    assert.equal(bodies.includes(k.c.id), true);
    assert.equal((await s.searchConversations("echidnakept", { limit: 10 })).length, 1, "the other stays");

    // Retention: only closed conversations closed before the cutoff.
    await s.closeConversation(k.c.id);
    assert.equal(
      (await s.purgeClosedConversations(Date.now() - 60_000)).conversations,
      0,
      "closed too recently",
    );
    const purged = await s.purgeClosedConversations(Date.now() + 1);
    assert.deepEqual([purged.conversations, purged.messages, purged.uploads], [1, 2, 1]);
    assert.equal(await s.conversation(k.c.id), undefined);
    assert.equal(await s.upload(k.up.id), undefined);
    assert.equal(await s.visitorById(kept.id), undefined, "a visitor left with nothing goes too");
  });

  await step("settings are JSON kept per key; the audit log pages newest first", async (s) => {
    assert.equal(await s.setting("support.hours"), undefined);
    await s.saveSetting("support.hours", { timeZone: "Asia/Shanghai", days: { mon: [["09:00", "18:00"]] } });
    await s.saveSetting("support.hours", { timeZone: "Europe/Paris", welcome: { zh: "您好" } });
    assert.deepEqual(await s.setting("support.hours"), { timeZone: "Europe/Paris", welcome: { zh: "您好" } });
    const entries = [];
    for (const action of ["agent.add", "connection.close", "room.kick"]) {
      entries.push(
        await s.appendAudit({ actor: "agent:root", action, target: "x", detail: { n: 1 }, instance: "i1" }),
      );
      await new Promise((r) => setTimeout(r, 2));
    }
    const all = await s.auditLog({ limit: 10 });
    assert.deepEqual(all.map((e) => e.action), ["room.kick", "connection.close", "agent.add"]);
    assert.deepEqual(all[0].detail, { n: 1 });
    const older = await s.auditLog({ before: all[0].at, limit: 1 });
    assert.deepEqual(older.map((e) => e.action), ["connection.close"]);
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

Deno.test("a database from before the word index gets its stored support messages indexed at start", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/old.db`;
    const s = await SqliteStore.open(path);
    const v = await s.createVisitor("old-v");
    const c = (await s.openConversation(v.id, null)).conversation;
    await s.append(`conv:${c.id}`, { from, text: "退货流程是什么" });
    await s.append("room:lobby", { from, text: "退货 in a room is not indexed" });
    await s.close();
    // Back to schema 8: no index, as an older release left it.
    const { DatabaseSync } = await import("node:sqlite");
    const db = new DatabaseSync(path);
    db.exec("DROP TABLE message_search; DELETE FROM schema_migrations WHERE version = 9");
    db.close();
    const reopened = await SqliteStore.open(path);
    try {
      assert.deepEqual((await reopened.searchConversations("退货", { limit: 10 })).map((x) => x.id), [c.id]);
    } finally {
      await reopened.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
