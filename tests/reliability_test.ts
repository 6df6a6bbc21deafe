/**
 * Reliability under hurried and hostile clients (issue #10): frames of one socket take effect in the order sent,
 * several sockets of one visitor or agent never lose or duplicate anything, one bad message never fails another,
 * ended sessions close their sockets, and one client cannot grow the store without bound.
 *
 * Every case runs the real command as a subprocess (an in-process client shares the server's event loop and
 * hides races), on both stores: SQLite, and PostgreSQL (a throwaway server) when it is installed.
 */
import assert from "node:assert/strict";
import { delay, get, type ServerProcess, spawnServer, TestClient } from "./helpers.ts";
import { createDatabase, hasServices, startPostgres } from "./services.ts";
import { loginAgent, openAgent, openVisitor, runAgentCli, write } from "./support_helpers.ts";

type Frame = Record<string, unknown>;
/** The real server as a subprocess, with its store: a data dir, or a PostgreSQL database. */
type Server = ServerProcess & { storeArgs: string[] };
type Open = (flags?: string[], storeArgs?: string[]) => Promise<Server>;
const AGENTS = ["--demo-agent", "alice:alice-pass-1", "--demo-agent", "bob:bob-pass-22"];

/** Sends a profile frame and waits for its answer: everything the server sent this socket before has arrived. */
async function barrier(client: TestClient): Promise<void> {
  client.send({ type: "profile" });
  await client.nextType("profile");
}

/** Messages of a frame list with a given type. */
const ofType = (frames: unknown[], type: string) =>
  frames.filter((f) => (f as Frame).type === type) as Frame[];

async function cases(t: Deno.TestContext, open: Open) {
  await t.step("a new visitor's back-to-back messages are all stored, in order, with no error", async () => {
    await using server = await open(AGENTS);
    // Right after connecting, before the session frame: the widget's offline buffer flushes like this.
    const client = await TestClient.open(server.ws("/ws/support/visitor"));
    for (let i = 0; i < 5; i++) client.send({ type: "message", text: `m${i}`, clientMsgId: `c${i}` });
    const own: Frame[] = [];
    for (let i = 0; i < 5; i++) {
      own.push(await client.next((f) => f.type === "message" || f.type === "error"));
    }
    assert.deepEqual(own.map((f) => f.type === "message" ? f.text : `error:${f.code}`), [
      "m0",
      "m1",
      "m2",
      "m3",
      "m4",
    ]);
    assert.deepEqual(own.map((f) => Number(f.id)), [1, 2, 3, 4, 5]);
    const alice = await openAgent(server, "alice", "alice-pass-1");
    assert.equal((alice.state.queue as unknown[]).length, 1, "one conversation");
    await alice.client.close();
    await client.close();
  });

  await t.step(
    "a chat burst alternating with and without clientMsgId is stored in the order sent",
    async () => {
      await using server = await open(["--rate-limit", "0"]);
      const a = await TestClient.open(server.ws("/ws/chat/order?name=ann"));
      await a.nextType("welcome");
      for (let i = 0; i < 40; i++) {
        a.send(
          i % 2
            ? { type: "message", text: `t${i}` }
            : { type: "message", text: `t${i}`, clientMsgId: `k${i}` },
        );
      }
      const got: Frame[] = [];
      for (let i = 0; i < 40; i++) got.push(await a.nextType("message"));
      const expected = Array.from({ length: 40 }, (_, i) => `t${i}`);
      assert.deepEqual(got.map((m) => m.text), expected, "delivered in the order sent");
      assert.deepEqual(
        got.map((m) => Number(m.id)),
        expected.map((_, i) => i + 1),
        "numbered in the order sent",
      );
      const page = JSON.parse((await get(server.http("/api/rooms/order/messages?limit=100"))).text);
      assert.deepEqual(page.messages.map((m: Frame) => m.text), expected, "stored in the order sent");
      await a.close();
    },
  );

  await t.step("an agent's message followed at once by close takes effect before the close", async () => {
    await using server = await open(AGENTS);
    const alice = await openAgent(server, "alice", "alice-pass-1");
    const v = await openVisitor(server);
    await write(v, "hello");
    alice.client.send({ type: "accept", conversationId: v.conversationId });
    await alice.client.nextType("accepted");
    for (let round = 0; round < 3; round++) {
      alice.client.send({ type: "message", conversationId: v.conversationId, text: `bye ${round}` });
    }
    alice.client.send({ type: "close", conversationId: v.conversationId });
    const seen: string[] = [];
    while (true) {
      const f = await v.client.next((f) => f.type === "message" || f.type === "closed");
      seen.push(f.type === "closed" ? "closed" : String(f.text));
      if (f.type === "closed") break;
    }
    assert.deepEqual(seen, ["bye 0", "bye 1", "bye 2", "closed"]);
    assert.deepEqual(ofType(alice.client.received, "error"), [], "no frame failed");
    await alice.client.close();
    await v.client.close();
  });

  await t.step(
    "a profile then a message take effect in order; an agent's two sockets lose nothing",
    async () => {
      await using server = await open(AGENTS);
      const v = await openVisitor(server);
      await write(v, "first");
      v.client.send({ type: "profile", name: "Wang Fang" });
      v.client.send({ type: "message", text: "named now", clientMsgId: "named" });
      assert.equal(((await v.client.next((f) => f.clientMsgId === "named")).from as Frame).name, "Wang Fang");
      v.client.send({ type: "profile", name: "nul\u0000name" });
      assert.equal((await v.client.nextType("error")).code, "bad_message");
      const one = await openAgent(server, "alice", "alice-pass-1");
      const two = await openAgent(server, "alice", "alice-pass-1");
      one.client.send({ type: "accept", conversationId: v.conversationId });
      await one.client.nextType("accepted");
      for (let i = 0; i < 10; i++) {
        one.client.send({ type: "message", conversationId: v.conversationId, text: `one ${i}` });
        two.client.send({ type: "message", conversationId: v.conversationId, text: `two ${i}` });
      }
      const texts: string[] = [];
      for (let i = 0; i < 20; i++) {
        const f = await v.client.next((f) => f.type === "message" && (f.from as Frame).role === "agent");
        texts.push(String(f.text));
      }
      for (const socket of ["one", "two"]) {
        assert.deepEqual(
          texts.filter((x) => x.startsWith(socket)),
          Array.from({ length: 10 }, (_, i) => `${socket} ${i}`),
          `every message of socket ${socket}, in its order`,
        );
      }
      assert.deepEqual(
        [...ofType(one.client.received, "error"), ...ofType(two.client.received, "error")],
        [],
      );
      await Promise.all([one.client.close(), two.client.close(), v.client.close()]);
    },
  );

  await t.step(
    "two tabs of one visitor share one conversation and both get the agent's replies",
    async () => {
      await using server = await open(AGENTS);
      const alice = await openAgent(server, "alice", "alice-pass-1");
      // The first tab gets a token; the second opens with it before anything is stored.
      const tab1 = await openVisitor(server);
      const tab2 = await openVisitor(server, tab1.token);
      assert.equal(tab2.token, tab1.token, "the second tab keeps the first tab's identity");
      tab1.client.send({ type: "message", text: "from tab 1", clientMsgId: "t1" });
      tab2.client.send({ type: "message", text: "from tab 2", clientMsgId: "t2" });
      const own1 = await tab1.client.next((f) => f.clientMsgId === "t1");
      const own2 = await tab2.client.next((f) => f.clientMsgId === "t2");
      assert.equal(own1.conversationId, own2.conversationId, "one conversation for both tabs");
      // Each tab sees the other tab's message too.
      await tab1.client.next((f) => f.clientMsgId === "t2");
      await tab2.client.next((f) => f.clientMsgId === "t1");
      const id = own1.conversationId as string;
      alice.client.send({ type: "accept", conversationId: id });
      await alice.client.nextType("accepted");
      alice.client.send({ type: "message", conversationId: id, text: "hi both" });
      for (const tab of [tab1, tab2]) {
        assert.equal(
          (await tab.client.next((f) => f.text === "hi both")).conversationId,
          id,
        );
      }
      // Closed, then both tabs write at once: one new conversation, and both tabs switch to it.
      alice.client.send({ type: "close", conversationId: id });
      await tab1.client.nextType("closed");
      await tab2.client.nextType("closed");
      tab1.client.send({ type: "message", text: "again 1", clientMsgId: "a1" });
      tab2.client.send({ type: "message", text: "again 2", clientMsgId: "a2" });
      const next1 = await tab1.client.next((f) => f.clientMsgId === "a1");
      const next2 = await tab2.client.next((f) => f.clientMsgId === "a2");
      assert.notEqual(next1.conversationId, id);
      assert.equal(next1.conversationId, next2.conversationId, "one new conversation");
      // Both tabs are told of the new conversation (a tab that did not write learns it only from this).
      for (const tab of [tab1, tab2]) {
        await tab.client.next((f) => f.type === "session" && f.conversationId === next1.conversationId);
      }
      const queued = JSON.parse(
        (await get(server.http("/api/support/conversations?status=queued"), {
          headers: { authorization: `Bearer ${alice.token}` },
        })).text,
      );
      assert.equal(queued.conversations.length, 1, "exactly one open conversation");
      await Promise.all([alice.client.close(), tab1.client.close(), tab2.client.close()]);
    },
  );

  await t.step(
    "U+0000 and lone surrogates are refused the same way, and neighbours are unaffected",
    async () => {
      await using server = await open(["--rate-limit", "0"]);
      const bad = await TestClient.open(server.ws("/ws/chat/nul?name=mallory"));
      const good = await TestClient.open(server.ws("/ws/chat/nul2?name=ann"));
      await bad.nextType("welcome");
      await good.nextType("welcome");
      // In the same turn: the bad frames and good ones from another member of another room.
      bad.send({ type: "message", text: "a\u0000b", clientMsgId: "n1" });
      bad.send(`{"type":"message","text":"half \\ud800 pair","clientMsgId":"n2"}`);
      bad.send({ type: "message", text: "fine", clientMsgId: "bad\u0000id" });
      for (let i = 0; i < 5; i++) good.send({ type: "message", text: `ok ${i}` });
      const errors = [];
      for (let i = 0; i < 3; i++) errors.push(await bad.nextType("error"));
      assert.deepEqual(errors.map((e) => e.code), ["bad_message", "bad_message", "bad_message"]);
      assert.deepEqual(errors.map((e) => e.clientMsgId), ["n1", "n2", "bad\u0000id"]);
      for (let i = 0; i < 5; i++) assert.equal((await good.nextType("message")).text, `ok ${i}`);
      bad.send({ type: "message", text: "after" });
      assert.equal((await bad.nextType("message")).text, "after", "the sender carries on");
      const refused = await get(server.ws("/ws/chat/nul?name=a%00b").replace("ws:", "http:"), {
        headers: { upgrade: "websocket" },
      });
      assert.equal(refused.status, 400, refused.text);
      await Promise.all([bad.close(), good.close()]);
    },
  );

  await t.step("logout, a password change and removal close the agent's open sockets with 4001", async () => {
    await using server = await open(AGENTS);
    const first = await openAgent(server, "alice", "alice-pass-1");
    const second = await openAgent(server, "alice", "alice-pass-1");
    const res = await get(server.http("/api/agent/logout"), {
      method: "POST",
      headers: { authorization: `Bearer ${first.token}` },
    });
    assert.equal(res.status, 200);
    const closed = await first.client.closedWithin(8000);
    assert.equal(closed.code, 4001, `closed with ${closed.code} ${closed.reason}`);
    assert.equal(second.client.ws.readyState, WebSocket.OPEN, "another session of the agent stays");
    // A password change from the CLI (another process on the same store) ends every session.
    const passwd = await runAgentCli(["passwd", "alice", ...server.storeArgs], "alice-pass-NEW\n");
    assert.equal(passwd.code, 0, passwd.stderr);
    assert.equal((await second.client.closedWithin(8000)).code, 4001);
    assert.equal((await loginAgent(server, "alice", "alice-pass-1")).status, 401, "the old password is gone");
    const bob = await openAgent(server, "bob", "bob-pass-22");
    const removed = await runAgentCli(["remove", "bob", ...server.storeArgs]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal((await bob.client.closedWithin(8000)).code, 4001);
    const refused = await get(server.http(`/api/agent/me`), {
      headers: { authorization: `Bearer ${bob.token}` },
    });
    assert.equal(refused.status, 401);
  });

  await t.step(
    "a new queued conversation sends one position update, not one to the whole queue",
    async () => {
      await using server = await open();
      const visitors = [];
      for (let i = 0; i < 4; i++) {
        const v = await openVisitor(server);
        await write(v, `q${i}`);
        assert.equal((await v.client.nextType("queued")).position, i + 1);
        visitors.push(v);
      }
      for (const v of visitors) await barrier(v.client);
      assert.deepEqual(
        visitors.map((v) => ofType(v.client.received, "queued").length),
        [0, 0, 0, 0],
        "nobody was told its unchanged position again",
      );
      await Promise.all(visitors.map((v) => v.client.close()));
    },
  );

  await t.step("one IP may start only so many conversations and rooms a minute", async () => {
    await using server = await open(["--new-conversations-per-ip", "2", "--new-rooms-per-ip", "2"]);
    const codes = [];
    for (let i = 0; i < 3; i++) {
      const v = await openVisitor(server);
      v.client.send({ type: "message", text: "spam", clientMsgId: "s" });
      codes.push((await v.client.next((f) => f.type === "error" || f.clientMsgId === "s")).code ?? "ok");
      await v.client.close();
    }
    assert.deepEqual(codes, ["ok", "ok", "rate_limited"]);
    const rooms = [];
    for (let i = 0; i < 3; i++) {
      const c = await TestClient.open(server.ws(`/ws/chat/fresh-${i}?name=spam`));
      await c.nextType("welcome");
      c.send({ type: "message", text: "first", clientMsgId: "f" });
      rooms.push((await c.next((f) => f.type === "error" || f.clientMsgId === "f")).code ?? "ok");
      if (i === 0) {
        // An existing room takes messages whatever the limit.
        c.send({ type: "message", text: "more", clientMsgId: "m" });
        assert.equal((await c.next((f) => f.type === "error" || f.clientMsgId === "m")).text, "more");
      }
      await c.close();
    }
    assert.deepEqual(rooms, ["ok", "ok", "rate_limited"]);
  });

  await t.step("--room-history-max prunes each room to its newest messages", async () => {
    const flags = ["--room-history-max", "3", "--rate-limit", "0"];
    let storeArgs: string[];
    {
      await using server = await open(flags);
      storeArgs = server.storeArgs;
      const c = await TestClient.open(server.ws("/ws/chat/capped?name=ann"));
      await c.nextType("welcome");
      for (let i = 0; i < 5; i++) c.send({ type: "message", text: `h${i}` });
      for (let i = 0; i < 5; i++) await c.nextType("message");
      await c.close();
    }
    // Retention runs a second after start, and then every ten minutes.
    await using again = await open(flags, storeArgs);
    let texts: string[] = [];
    for (let i = 0; i < 50 && texts.length !== 3; i++) {
      await delay(100);
      texts = JSON.parse((await get(again.http("/api/rooms/capped/messages?limit=10"))).text).messages
        .map((m: Frame) => m.text);
    }
    assert.deepEqual(texts, ["h2", "h3", "h4"]);
  });
}

/** Starts the real command on its own store (or on `storeArgs`, to restart on the same one). */
async function spawnOn(flags: string[], storeArgs: string[], cleanup?: string): Promise<Server> {
  const server = await spawnServer([...flags, ...storeArgs, "--log-level", "warn"]);
  return {
    ...server,
    storeArgs,
    async [Symbol.asyncDispose]() {
      await server[Symbol.asyncDispose]();
      if (cleanup) await Deno.remove(cleanup, { recursive: true }).catch(() => {});
    },
  };
}

Deno.test("reliability on the SQLite store", async (t) => {
  const dirs: string[] = [];
  try {
    await cases(t, async (flags = [], storeArgs) => {
      if (storeArgs) return await spawnOn(flags, storeArgs);
      const dir = await Deno.makeTempDir({ prefix: "sb-rel-" });
      dirs.push(dir);
      return await spawnOn(flags, ["--data-dir", dir]);
    });
  } finally {
    for (const dir of dirs) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test({
  name: "reliability on the PostgreSQL store",
  ignore: !hasServices,
  async fn(t) {
    await using pg = await startPostgres();
    let n = 0;
    await cases(t, async (flags = [], storeArgs) => {
      const dir = await Deno.makeTempDir({ prefix: "sb-rel-" });
      const args = storeArgs ?? ["--database", await createDatabase(pg, `rel${++n}`)];
      return await spawnOn(flags, [...args, "--data-dir", dir], dir);
    });
  },
});
