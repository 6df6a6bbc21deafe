/**
 * Cluster mode with real services: two instances as subprocesses on one Redis and one PostgreSQL.
 */
import assert from "node:assert/strict";
import { delay, get, spawnServer, TestClient } from "./helpers.ts";
import { clusterArgs, createDatabase, hasServices, startPostgres, startRedis } from "./services.ts";
import { loginAgent, openAgent, openVisitor, write } from "./support_helpers.ts";

type Frame = Record<string, unknown>;
type Msg = { type: string; id: string; text: string; from: { id: string; name: string } };

Deno.test({
  name: "two instances on Redis and PostgreSQL behave as one server",
  ignore: !hasServices,
  async fn(t) {
    await using redis = await startRedis();
    await using pg = await startPostgres();
    const database = await createDatabase(pg, "cluster1");
    const dirs = [await Deno.makeTempDir(), await Deno.makeTempDir()];
    const args = (i: number) =>
      clusterArgs(
        dirs[i],
        redis.url,
        database,
        ...["--api-key", "k", "--demo-agent", "alice:alice-pass-1", "--demo-agent", "bob:bob-pass-22"],
        ...["--support-grace", "1"],
      );
    const a = await spawnServer(args(0), { direct: true });
    const b = await spawnServer(args(1), { direct: true });
    try {
      await t.step("both instances are ready", async () => {
        for (const s of [a, b]) {
          const res = await get(s.http("/readyz"));
          assert.equal(res.status, 200, res.text);
        }
      });

      await t.step("chat across instances: one order for all, presence, join and leave", async () => {
        const c1 = await TestClient.open(a.ws("/ws/chat/global?name=ann"));
        await c1.nextType("welcome");
        const c2 = await TestClient.open(b.ws("/ws/chat/global?name=ben"));
        const welcome2 = await c2.nextType("welcome");
        assert.deepEqual((welcome2.members as Frame[]).map((m) => m.name).sort(), ["ann", "ben"]);
        assert.equal(((await c1.nextType("join")).member as Frame).name, "ben");
        const c3 = await TestClient.open(b.ws("/ws/chat/global?name=cat"));
        await c3.nextType("welcome");
        for (let i = 0; i < 10; i++) {
          c1.send({ type: "message", text: `a${i}` });
          c2.send({ type: "message", text: `b${i}` });
        }
        const seen = await Promise.all([c1, c2, c3].map(async (c) => {
          const out: string[] = [];
          for (let i = 0; i < 20; i++) {
            const m = await c.nextType<Msg>("message", 10_000);
            out.push(`${m.id}:${m.text}`);
          }
          return out;
        }));
        assert.deepEqual(seen[1], seen[0], "ben sees ann's order");
        assert.deepEqual(seen[2], seen[0], "cat sees ann's order");
        assert.equal(
          new Set(seen[0].map((s) => s.split(":")[0])).size,
          20,
          "ids are unique across instances",
        );
        const rooms = JSON.parse((await get(a.http("/api/rooms"))).text).rooms;
        assert.equal(rooms.find((r: Frame) => r.room === "global").online, 3);
        await c3.close();
        assert.equal(((await c1.nextType("leave")).member as Frame).name, "cat");
        await Promise.all([c1.close(), c2.close()]);
      });

      await t.step("a publish on one instance reaches subscribers on both, exactly once", async () => {
        const s1 = await TestClient.open(a.ws("/ws/push?time=0&topics=orders"));
        const s2 = await TestClient.open(b.ws("/ws/push?time=0&topics=orders"));
        await s1.nextType("subscribed");
        await s2.nextType("subscribed");
        const res = await get(b.http("/api/publish"), {
          method: "POST",
          headers: { authorization: "Bearer k", "content-type": "application/json" },
          body: JSON.stringify({ topic: "orders", data: { n: 1 } }),
        });
        assert.equal(JSON.parse(res.text).delivered, 2);
        for (const s of [s1, s2]) assert.deepEqual((await s.nextType("publication")).data, { n: 1 });
        // A barrier: a second publication arrives after any duplicate of the first would have.
        await get(b.http("/api/publish"), {
          method: "POST",
          headers: { authorization: "Bearer k", "content-type": "application/json" },
          body: JSON.stringify({ topic: "orders", data: { n: 2 } }),
        });
        for (const s of [s1, s2]) assert.deepEqual((await s.nextType("publication")).data, { n: 2 });
        for (const s of [s1, s2]) assert.ok(!s.received.some((f) => (f as Frame).type === "publication"));
        await Promise.all([s1.close(), s2.close()]);
      });

      await t.step(
        "support across instances: the accept race has one winner and messages cross",
        async () => {
          const alice = await openAgent(a, "alice", "alice-pass-1");
          const bob = await openAgent(b, "bob", "bob-pass-22");
          for (let round = 0; round < 3; round++) {
            const v = await openVisitor(round % 2 ? b : a);
            await write(v, `cross ${round}`);
            await v.client.nextType("queued", 10_000);
            alice.client.send({ type: "accept", conversationId: v.conversationId });
            bob.client.send({ type: "accept", conversationId: v.conversationId });
            const outcomes = await Promise.all(
              [alice.client, bob.client].map((c) =>
                c.next((f) => f.type === "accepted" || (f.type === "error" && f.code === "taken"), 10_000)
              ),
            );
            assert.equal(
              outcomes.filter((o) => o.type === "accepted").length,
              1,
              `round ${round}: one winner`,
            );
            const winner = outcomes[0].type === "accepted" ? alice : bob;
            winner.client.send({
              type: "message",
              conversationId: v.conversationId,
              text: `answer ${round}`,
            });
            assert.equal(
              (await v.client.next((f) => f.type === "message" && (f.from as Frame).role === "agent")).text,
              `answer ${round}`,
            );
            await v.client.close();
          }
          await Promise.all([alice.client.close(), bob.client.close()]);
          assert.equal(
            (await loginAgent(b, "alice", "alice-pass-1")).status,
            200,
            "sessions live in PostgreSQL",
          );
        },
      );

      await t.step(
        "one visitor on both instances: tabs writing at once share a conversation and both get replies",
        async () => {
          const alice = await openAgent(a, "alice", "alice-pass-1");
          const tab1 = await openVisitor(a);
          const tab2 = await openVisitor(b, tab1.token);
          assert.equal(tab2.token, tab1.token);
          tab1.client.send({ type: "message", text: "tab one", clientMsgId: "x1" });
          tab2.client.send({ type: "message", text: "tab two", clientMsgId: "x2" });
          const own1 = await tab1.client.next((f) => f.clientMsgId === "x1", 10_000);
          const own2 = await tab2.client.next((f) => f.clientMsgId === "x2", 10_000);
          assert.equal(own1.conversationId, own2.conversationId, "one conversation across instances");
          const id = own1.conversationId as string;
          alice.client.send({ type: "accept", conversationId: id });
          await alice.client.nextType("accepted", 10_000);
          alice.client.send({ type: "message", conversationId: id, text: "to both tabs" });
          for (const tab of [tab1, tab2]) {
            assert.equal(
              (await tab.client.next((f) => f.text === "to both tabs", 10_000)).conversationId,
              id,
            );
          }
          // An attachment uploaded on one instance is served by the other (the bytes are in PostgreSQL).
          const up = await get(b.http("/api/uploads?name=receipt.txt"), {
            method: "POST",
            headers: { authorization: `Bearer ${tab1.token}` },
            body: "订单 1234 的收据",
          });
          assert.equal(up.status, 201, up.text);
          const file = JSON.parse(up.text).upload;
          tab2.client.send({ type: "message", attachments: [file.id], clientMsgId: "x3" });
          const got = await alice.client.next((f) => f.clientMsgId === "x3", 10_000);
          assert.equal((got.attachments as Frame[])[0].name, "receipt.txt");
          const fetched = await get(a.http(file.url), {
            headers: { authorization: `Bearer ${alice.token}` },
          });
          assert.deepEqual([fetched.status, fetched.text], [200, "订单 1234 的收据"]);
          alice.client.send({ type: "close", conversationId: id });
          await Promise.all([alice.client.close(), tab1.client.close(), tab2.client.close()]);
        },
      );

      await t.step(
        "logging out on one instance closes that session's socket on the other with 4001",
        async () => {
          const agent = await openAgent(b, "bob", "bob-pass-22");
          const res = await get(a.http("/api/agent/logout"), {
            method: "POST",
            headers: { authorization: `Bearer ${agent.token}` },
          });
          assert.equal(res.status, 200);
          const closed = await agent.client.closedWithin(8000);
          assert.equal(closed.code, 4001, `closed with ${closed.code} ${closed.reason}`);
        },
      );

      await t.step(
        "kill -9 one instance: its members leave presence within 15 s and clients recover on the other",
        async () => {
          const onA = await TestClient.open(a.ws("/ws/chat/failover?name=victim"));
          await onA.nextType("welcome");
          const onB = await TestClient.open(b.ws("/ws/chat/failover?name=witness"));
          await onB.nextType("welcome");
          onA.send({ type: "message", text: "before the crash" });
          const last = await onA.nextType<Msg>("message");
          await onB.nextType("message");
          await a.stop("SIGKILL");
          const killedAt = Date.now();
          await onA.closed;
          // The witness keeps writing while the victim is away.
          for (let i = 0; i < 3; i++) onB.send({ type: "message", text: `during ${i}` });
          const left = await onB.next((f) => f.type === "leave", 20_000);
          const waited = Date.now() - killedAt;
          assert.equal((left.member as Frame).name, "victim");
          assert.ok(waited <= 15_500, `left presence after ${waited} ms`);
          const back = await TestClient.open(b.ws(`/ws/chat/failover?name=victim&since=${last.id}`));
          const welcome = await back.nextType("welcome");
          assert.deepEqual((welcome.history as Msg[]).map((m) => m.text), [
            "during 0",
            "during 1",
            "during 2",
          ]);
          assert.deepEqual((welcome.members as Frame[]).map((m) => m.name).sort(), ["victim", "witness"]);
          await Promise.all([back.close(), onB.close()]);
        },
      );

      await t.step("Redis restarts: readiness drops, then instances recover and deliver again", async () => {
        const c = await TestClient.open(b.ws("/ws/chat/after-redis?name=x"));
        await c.nextType("welcome");
        await redis.stop();
        let status = 0;
        for (let i = 0; i < 50 && status !== 503; i++) {
          status = (await get(b.http("/readyz"))).status;
          if (status !== 503) await delay(100);
        }
        assert.equal(status, 503, "/readyz reports the broker down");
        const refused = await get(b.http("/ws/chat/after-redis?name=late"), {
          headers: { upgrade: "websocket" },
        });
        assert.equal(
          refused.status,
          503,
          "new sockets are refused before the upgrade while the broker is down",
        );
        const echo = await TestClient.open(b.ws("/ws/echo"));
        echo.send("echo needs no broker");
        assert.equal(await echo.next(), "echo needs no broker");
        await echo.close();
        c.send({ type: "message", text: "while redis is down" });
        const err = await c.nextType("error", 10_000);
        assert.equal(err.code, "unavailable", "the sender is told it did not go out live");
        await redis.start();
        for (let i = 0; i < 100 && status !== 200; i++) {
          status = (await get(b.http("/readyz"))).status;
          if (status !== 200) await delay(100);
        }
        assert.equal(status, 200, "/readyz recovers");
        // The socket is asked to resync (1012); reconnecting with since finds the stored message.
        const closed = await c.closed;
        assert.equal(closed.code, 1012);
        const again = await TestClient.open(b.ws("/ws/chat/after-redis?name=x&since=0"));
        const w = await again.nextType("welcome");
        assert.deepEqual((w.history as Msg[]).map((m) => m.text), ["while redis is down"]);
        again.send({ type: "message", text: "after redis" });
        assert.equal((await again.nextType<Msg>("message", 10_000)).text, "after redis");
        await again.close();
      });
      await t.step(
        "PostgreSQL restarts: messages are refused, never lost, and the instances recover",
        async () => {
          const c = await TestClient.open(b.ws("/ws/chat/after-pg?name=y"));
          await c.nextType("welcome");
          await pg.stop();
          let status = 0;
          for (let i = 0; i < 50 && status !== 503; i++) {
            status = (await get(b.http("/readyz"))).status;
            if (status !== 503) await delay(100);
          }
          assert.equal(status, 503, "/readyz reports the store down");
          c.send({ type: "message", text: "while postgres is down", clientMsgId: "pg-1" });
          const err = await c.nextType("error", 15_000);
          assert.equal(err.code, "unavailable", "not acknowledged when it could not be stored");
          assert.equal(err.clientMsgId, "pg-1");
          await pg.start();
          for (let i = 0; i < 100 && status !== 200; i++) {
            status = (await get(b.http("/readyz"))).status;
            if (status !== 200) await delay(100);
          }
          assert.equal(status, 200, "/readyz recovers without a restart");
          c.send({ type: "message", text: "after postgres", clientMsgId: "pg-2" });
          assert.equal((await c.nextType<Msg>("message", 10_000)).text, "after postgres");
          const page = JSON.parse((await get(b.http("/api/rooms/after-pg/messages"))).text);
          assert.deepEqual(
            page.messages.map((m: Msg) => m.text),
            ["after postgres"],
            "the refused one was not stored",
          );
          await c.close();
        },
      );
    } finally {
      await a[Symbol.asyncDispose]();
      await b[Symbol.asyncDispose]();
      for (const d of dirs) await Deno.remove(d, { recursive: true });
    }
  },
});
