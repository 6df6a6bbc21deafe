import assert from "node:assert/strict";
import { get, startTestServer, TestClient } from "./helpers.ts";
import { loginAgent, openAgent, openVisitor, runAgentCli, write } from "./support_helpers.ts";

type Frame = Record<string, unknown>;
const AGENTS = ["alice:alice-pass-1", "bob:bob-pass-22"];

Deno.test("visitor → queue → accept → both ways → transfer → close → rating", async () => {
  await using server = await startTestServer({ demoAgents: AGENTS });
  const alice = await openAgent(server, "alice", "alice-pass-1");
  const bob = await openAgent(server, "bob", "bob-pass-22");
  assert.deepEqual(alice.state.queue, []);
  const v = await openVisitor(server);
  assert.match(v.token, /^v_/);
  assert.deepEqual(v.history.messages, []);
  v.client.send({ type: "profile", name: "Wang Fang", email: "wf@example.com" });
  await v.client.nextType("profile");
  assert.equal(v.conversationId, null, "nothing is stored before the visitor writes");
  const own = await write(v, "我的订单在哪里? Where is my order?");
  assert.equal((own.from as Frame).role, "visitor");
  assert.equal((await v.client.nextType("session")).conversationId, v.conversationId);
  assert.equal((await v.client.nextType("queued")).position, 1);
  // Agents see it arrive in the queue.
  const update = await alice.client.next((f) =>
    f.type === "conversation" && (f.conversation as Frame).lastMessage !== null
  );
  const conv = update.conversation as Frame;
  assert.equal(conv.status, "queued");
  assert.equal((conv.visitor as Frame).name, "Wang Fang");
  assert.equal(conv.unread, 1);
  // Alice accepts.
  alice.client.send({ type: "accept", conversationId: v.conversationId });
  const accepted = await alice.client.nextType("accepted");
  assert.equal((accepted.conversation as Frame).status, "assigned");
  assert.equal((accepted.messages as Frame[])[0].text, "我的订单在哪里? Where is my order?");
  assert.equal(((await v.client.nextType("assigned")).agent as Frame).name, "alice");
  // Both ways.
  alice.client.send({
    type: "message",
    conversationId: v.conversationId,
    text: "Let me check.",
    clientMsgId: "a1",
  });
  const reply = await v.client.nextType("message");
  assert.equal(reply.text, "Let me check.");
  assert.equal((reply.from as Frame).role, "agent");
  await alice.client.nextType("message"); // her own, confirmed
  v.client.send({ type: "message", text: "Thanks" });
  assert.equal(
    (await alice.client.next((f) => f.type === "message" && f.text === "Thanks")).conversationId,
    v.conversationId,
  );
  // A barrier: bob's own status answer comes after anything published to him before.
  bob.client.send({ type: "status", status: "online" });
  await bob.client.nextType("status");
  assert.ok(
    !bob.client.received.some((f) => (f as Frame).type === "message"),
    "bob sees no messages of alice's chat",
  );
  // Typing and read receipts.
  v.client.send({ type: "typing" });
  assert.equal((await alice.client.nextType("typing")).conversationId, v.conversationId);
  alice.client.send({ type: "read", conversationId: v.conversationId, upTo: reply.id });
  assert.equal((await v.client.nextType("read")).upTo, reply.id);
  // Transfer to bob.
  alice.client.send({ type: "transfer", conversationId: v.conversationId, toAgent: "bob" });
  const transferred = await bob.client.nextType("accepted");
  assert.equal((transferred.transferredFrom as Frame).username, "alice");
  assert.equal((transferred.messages as Frame[]).length, 3);
  assert.equal(((await v.client.nextType("assigned")).agent as Frame).name, "bob");
  alice.client.send({ type: "message", conversationId: v.conversationId, text: "still mine?" });
  assert.equal((await alice.client.nextType("error")).code, "forbidden");
  bob.client.send({ type: "message", conversationId: v.conversationId, text: "Bob here." });
  const fromBob = (await v.client.next((f) => f.type === "message" && f.text === "Bob here.")).from as Frame;
  assert.equal(fromBob.role, "agent");
  assert.equal(fromBob.name, "bob", "the visitor sees who answers after the transfer");
  // Close and rate.
  v.client.send({ type: "rate", score: 5 });
  assert.equal((await v.client.nextType("error")).code, "forbidden", "no rating before close");
  bob.client.send({ type: "close", conversationId: v.conversationId });
  await v.client.nextType("closed");
  v.client.send({ type: "rate", score: 9 });
  assert.equal((await v.client.nextType("error")).code, "bad_message");
  v.client.send({ type: "rate", score: 4, comment: "fast" });
  assert.equal((await v.client.nextType("rated")).score, 4);
  // The transcript has it all.
  const t = await get(server.http(`/api/support/conversations/${v.conversationId}/transcript?format=text`), {
    headers: { authorization: `Bearer ${bob.token}` },
  });
  assert.equal(t.status, 200);
  for (
    const line of ["Where is my order?", "alice (agent): Let me check.", "Bob here.", "Rating: 4/5 — fast"]
  ) {
    assert.ok(t.text.includes(line), `transcript has "${line}"`);
  }
  const tj = JSON.parse(
    (await get(server.http(`/api/support/conversations/${v.conversationId}/transcript`), {
      headers: { authorization: `Bearer ${bob.token}` },
    })).text,
  );
  assert.equal(tj.messages.length, 4);
  assert.equal(tj.conversation.status, "closed");
  // Writing again starts a new conversation.
  v.client.send({ type: "message", text: "one more question" });
  const next = await v.client.nextType("session");
  assert.notEqual(next.conversationId, v.conversationId);
  await Promise.all([v.client.close(), alice.client.close(), bob.client.close()]);
});

Deno.test("two agents race to accept: exactly one wins, the other gets taken", async () => {
  await using server = await startTestServer({ demoAgents: AGENTS });
  const alice = await openAgent(server, "alice", "alice-pass-1");
  const bob = await openAgent(server, "bob", "bob-pass-22");
  for (let round = 0; round < 5; round++) {
    const v = await openVisitor(server);
    await write(v, `race ${round}`);
    await v.client.nextType("queued");
    alice.client.send({ type: "accept", conversationId: v.conversationId });
    bob.client.send({ type: "accept", conversationId: v.conversationId });
    const outcomes = await Promise.all(
      [alice.client, bob.client].map((c) =>
        c.next((f) => f.type === "accepted" || (f.type === "error" && f.code === "taken"))
      ),
    );
    assert.equal(outcomes.filter((o) => o.type === "accepted").length, 1, `round ${round}: one winner`);
    assert.equal(outcomes.filter((o) => o.type === "error").length, 1, `round ${round}: one taken`);
    await v.client.close();
  }
  await Promise.all([alice.client.close(), bob.client.close()]);
});

Deno.test("a visitor who reconnects with its token resumes the same conversation", async () => {
  await using server = await startTestServer({ demoAgents: AGENTS });
  const v = await openVisitor(server);
  await write(v, "first");
  await v.client.close();
  const again = await openVisitor(server, v.token);
  assert.equal(again.conversationId, v.conversationId);
  assert.deepEqual((again.history.messages as Frame[]).map((m) => m.text), ["first"]);
  assert.equal((await again.client.nextType("queued")).position, 1);
  // An unknown token starts afresh.
  const stranger = await openVisitor(server, "v_not-a-real-token");
  assert.notEqual(stranger.conversationId, v.conversationId);
  assert.notEqual(stranger.token, "v_not-a-real-token");
  await Promise.all([again.client.close(), stranger.client.close()]);
});

Deno.test("with no agent online a visitor is told so, and an agent logging in later sees everything", async () => {
  await using server = await startTestServer({ demoAgents: AGENTS });
  const v = await openVisitor(server);
  assert.equal((await v.client.nextType("notice")).code, "no_agent_online", "told at once");
  await write(v, "anyone there?");
  await write(v, "I'll wait");
  const notice = await v.client.nextType("notice");
  assert.equal(notice.code, "no_agent_online");
  await v.client.close();
  const alice = await openAgent(server, "alice", "alice-pass-1");
  const queued = alice.state.queue as Frame[];
  assert.equal(queued.length, 1);
  assert.equal((queued[0].lastMessage as Frame).text, "I'll wait");
  assert.equal(queued[0].unread, 2);
  alice.client.send({ type: "accept", conversationId: v.conversationId });
  const accepted = await alice.client.nextType("accepted");
  assert.deepEqual((accepted.messages as Frame[]).map((m) => m.text), ["anyone there?", "I'll wait"]);
  await alice.client.close();
});

Deno.test("authorization: visitors stay in their conversation, agents need a session", async () => {
  await using server = await startTestServer({ demoAgents: AGENTS });
  const v1 = await openVisitor(server);
  const v2 = await openVisitor(server);
  await write(v1, "v1 secret");
  await write(v2, "v2 first");
  // A visitor naming another conversation still writes only to its own.
  v2.client.send({ type: "message", text: "v2 text", conversationId: v1.conversationId });
  assert.equal(
    (await v2.client.next((f) => f.type === "message" && f.text === "v2 text")).conversationId,
    v2.conversationId,
  );
  v2.client.send({ type: "accept", conversationId: v1.conversationId });
  assert.equal((await v2.client.nextType("error")).code, "unknown_type");
  // A barrier: v1's own profile answer comes after anything published to it before.
  v1.client.send({ type: "profile" });
  await v1.client.nextType("profile");
  assert.ok(!v1.client.received.some((f) => (f as Frame).text === "v2 text"));
  // The agent socket refuses no session, a visitor token, and a made-up token with 401 before the upgrade.
  for (const q of ["", `?token=${v1.token}`, "?token=a_forged"]) {
    const res = await get(server.http(`/ws/support/agent${q}`), { headers: { upgrade: "websocket" } });
    assert.equal(res.status, 401, `agent socket ${q || "without a session"} → 401`);
  }
  // The API without a session.
  for (
    const path of ["/api/support/conversations", `/api/support/conversations/${v1.conversationId}/transcript`]
  ) {
    assert.equal((await get(server.http(path))).status, 401);
    assert.equal(
      (await get(server.http(path), { headers: { authorization: `Bearer ${v1.token}` } })).status,
      401,
    );
  }
  // With a session (cookie), it works.
  const login = await loginAgent(server, "alice", "alice-pass-1");
  assert.match(login.cookie, /sb_agent=a_[^;]+; Path=\/; HttpOnly; SameSite=Strict/);
  const cookie = login.cookie.split(";")[0];
  const list = await get(server.http("/api/support/conversations?status=queued"), { headers: { cookie } });
  assert.equal(list.status, 200);
  assert.equal(JSON.parse(list.text).conversations.length, 2);
  const ws = await TestClient.open(server.ws("/ws/support/agent"), { headers: { cookie } });
  assert.equal((await ws.nextType("state")).type, "state");
  // Logout ends the session.
  await get(server.http("/api/agent/logout"), { method: "POST", headers: { cookie } });
  assert.equal((await get(server.http("/api/agent/me"), { headers: { cookie } })).status, 401);
  await Promise.all([v1.client.close(), v2.client.close(), ws.close()]);
});

Deno.test("wrong passwords get 401 with one body for both cases, then 429", async () => {
  await using server = await startTestServer({ demoAgents: AGENTS });
  const unknown = await loginAgent(server, "mallory", "whatever-123");
  const wrong = await loginAgent(server, "alice", "not-her-pass");
  assert.equal(unknown.status, 401);
  assert.equal(wrong.status, 401);
  assert.deepEqual(unknown.body, wrong.body);
  for (let i = 0; i < 4; i++) assert.equal((await loginAgent(server, "alice", `nope-${i}-xx`)).status, 401);
  const limited = await loginAgent(server, "alice", "alice-pass-1");
  assert.equal(limited.status, 429, "even the right password waits once the username is rate limited");
  assert.match(limited.body.message, /try again/);
  assert.equal(
    (await loginAgent(server, "bob", "bob-pass-22")).status,
    200,
    "other users are not locked out",
  );
});

Deno.test("bad frames on support sockets get error frames and nothing breaks", async () => {
  await using server = await startTestServer({ demoAgents: AGENTS });
  const alice = await openAgent(server, "alice", "alice-pass-1");
  const v = await openVisitor(server);
  await write(v, "hello");
  const cases: [TestClient, unknown, string][] = [
    [v.client, "{", "bad_json"],
    [v.client, { type: "message", text: "" }, "bad_message"],
    [v.client, { type: "profile", email: "not-an-email" }, "bad_message"],
    [v.client, { type: "read", upTo: "x" }, "bad_message"],
    [alice.client, { type: "accept", conversationId: "nope" }, "not_found"],
    [alice.client, { type: "accept" }, "bad_message"],
    [alice.client, { type: "message", conversationId: v.conversationId, text: "hi" }, "forbidden"],
    [alice.client, { type: "transfer", conversationId: "nope", toAgent: "bob" }, "not_found"],
    [alice.client, { type: "status", status: "sleeping" }, "bad_message"],
    [alice.client, { type: "fly" }, "unknown_type"],
  ];
  for (const [client, frame, code] of cases) {
    client.send(frame);
    assert.equal((await client.nextType("error")).code, code, `${JSON.stringify(frame)} → ${code}`);
  }
  v.client.send({ type: "message", text: "still works" });
  assert.equal((await v.client.nextType("message")).text, "still works");
  await Promise.all([alice.client.close(), v.client.close()]);
});

Deno.test("auto assignment prefers the least-loaded online agent and re-queues when no answer comes", async () => {
  await using server = await startTestServer({
    demoAgents: AGENTS,
    supportAssign: "auto",
    supportAnswerTimeoutS: 1,
  });
  const alice = await openAgent(server, "alice", "alice-pass-1");
  const bob = await openAgent(server, "bob", "bob-pass-22");
  const v1 = await openVisitor(server);
  await write(v1, "need help 1");
  const a1 = await v1.client.nextType("assigned");
  const v2 = await openVisitor(server);
  await write(v2, "need help 2");
  const a2 = await v2.client.nextType("assigned");
  assert.notEqual((a1.agent as Frame).id, (a2.agent as Frame).id, "spread over both agents");
  // v1's agent answers; v2's does not and the conversation goes to the other agent.
  const holder1 = (a1.agent as Frame).name === "alice" ? alice : bob;
  holder1.client.send({ type: "message", conversationId: v1.conversationId, text: "hello 1" });
  await v1.client.nextType("message");
  const reassigned = await v2.client.nextType("assigned", 5000);
  assert.notEqual((reassigned.agent as Frame).id, (a2.agent as Frame).id, "re-queued to the other agent");
  await Promise.all([alice.client.close(), bob.client.close(), v1.client.close(), v2.client.close()]);
});

Deno.test("an agent who disconnects loses its conversations to the queue after the grace period", async () => {
  await using server = await startTestServer({ demoAgents: AGENTS, supportGraceS: 1 });
  const alice = await openAgent(server, "alice", "alice-pass-1");
  const v = await openVisitor(server);
  await write(v, "help");
  await v.client.nextType("queued");
  alice.client.send({ type: "accept", conversationId: v.conversationId });
  await v.client.nextType("assigned");
  await alice.client.close();
  assert.equal((await v.client.nextType("queued", 4000)).position, 1);
  await v.client.close();
});

Deno.test("transcripts survive a restart", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    let id: string;
    {
      await using server = await startTestServer({ demoAgents: AGENTS, dataDir });
      const v = await openVisitor(server);
      await write(v, "kept across restarts");
      id = v.conversationId;
      await v.client.close();
    }
    await using again = await startTestServer({ demoAgents: AGENTS, dataDir });
    const { body } = await loginAgent(again, "alice", "alice-pass-1");
    const t = await get(again.http(`/api/support/conversations/${id}/transcript`), {
      headers: { authorization: `Bearer ${body.token}` },
    });
    assert.equal(JSON.parse(t.text).messages[0].text, "kept across restarts");
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("deno task agent add creates an agent who can log in; list, passwd and remove work", async () => {
  const dataDir = await Deno.makeTempDir();
  const run = (args: string[], stdin = "") => runAgentCli([...args, "--data-dir", dataDir], stdin);
  try {
    const add = await run(["add", "carol", "--name", "Carol C."], "carol-pass-123\n");
    assert.equal(add.code, 0, add.stderr);
    assert.match((await run(["list"])).stdout, /carol\tCarol C\./);
    assert.equal((await run(["add", "dave"], "short\n")).code, 2, "too-short passwords are refused");
    {
      await using server = await startTestServer({ dataDir });
      assert.equal((await loginAgent(server, "carol", "carol-pass-123")).status, 200);
    }
    assert.equal((await run(["passwd", "carol"], "new-pass-4567\n")).code, 0);
    {
      await using server = await startTestServer({ dataDir });
      assert.equal((await loginAgent(server, "carol", "carol-pass-123")).status, 401);
      assert.equal((await loginAgent(server, "carol", "new-pass-4567")).status, 200);
    }
    assert.equal((await run(["remove", "carol"])).code, 0);
    assert.doesNotMatch((await run(["list"])).stdout, /carol/);
    assert.equal((await run(["frobnicate"])).code, 2);
    // The stored hash is PBKDF2, never the password.
    const db = await Deno.readFile(`${dataDir}/switchboard.db`);
    assert.ok(!new TextDecoder().decode(db).includes("new-pass-4567"));
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("page views that never write store nothing, and refused handshakes never touch the store", async () => {
  await using server = await startTestServer({ demoAgents: AGENTS });
  for (let i = 0; i < 5; i++) {
    const v = await openVisitor(server);
    assert.equal(v.conversationId, null);
    await v.client.close();
  }
  for (let i = 0; i < 5; i++) {
    const res = await get(server.http("/ws/support/visitor"), {
      headers: { upgrade: "websocket", origin: "https://evil.example" },
    });
    assert.equal(res.status, 403);
  }
  const { body } = await loginAgent(server, "alice", "alice-pass-1");
  const list = await get(server.http("/api/support/conversations"), {
    headers: { authorization: `Bearer ${body.token}` },
  });
  assert.deepEqual(JSON.parse(list.text).conversations, []);
});
