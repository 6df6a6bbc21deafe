/**
 * Roles (issue #13, first part): agents see the queue and the conversations they hold or held; admins see all and
 * manage agents. The conversation and transcript APIs enforce the same rule.
 */
import assert from "node:assert/strict";
import { get, startTestServer } from "./helpers.ts";
import { loginAgent, openAgent, openVisitor, runAgentCli, write } from "./support_helpers.ts";

type Frame = Record<string, unknown>;

Deno.test("agents read only what they hold or held; admins read everything and manage agents", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    const added = await runAgentCli(["add", "root", "--admin", "--data-dir", dataDir], "root-pass-123\n");
    assert.equal(added.code, 0, added.stderr);
    assert.match((await runAgentCli(["list", "--data-dir", dataDir])).stdout, /root\troot\tadmin/);
    await using server = await startTestServer({
      dataDir,
      demoAgents: ["alice:alice-pass-1", "bob:bob-pass-22"],
    });
    const alice = await openAgent(server, "alice", "alice-pass-1");
    const bob = await openAgent(server, "bob", "bob-pass-22");
    const root = await loginAgent(server, "root", "root-pass-123");
    assert.equal(root.body.agent.role, "admin");
    const v = await openVisitor(server);
    await write(v, "my order is late");
    alice.client.send({ type: "accept", conversationId: v.conversationId });
    await alice.client.nextType("accepted");
    // Live frames keep the same rule: bob learns only that it left the queue; an admin socket sees it all.
    const rootSocket = await openAgent(server, "root", "root-pass-123");
    v.client.send({ type: "profile", name: "Ann 12345" });
    await v.client.nextType("profile");
    const full = (f: Frame) =>
      f.type === "conversation" && (f.conversation as Frame).id === v.conversationId &&
      (f.conversation as Frame).visitor !== undefined;
    const seen = await rootSocket.client.next((f) =>
      full(f) && ((f.conversation as Frame).visitor as Frame).name === "Ann 12345"
    );
    assert.equal((seen.conversation as Frame).status, "assigned");
    await alice.client.next((f) => full(f) && (f.conversation as Frame).status === "assigned");
    // A barrier: bob's own status answer comes after any frame published before it.
    bob.client.send({ type: "status", status: "online" });
    await bob.client.nextType("status");
    const bobs = bob.client.received.filter((f) =>
      (f as Frame).type === "conversation" && ((f as Frame).conversation as Frame).id === v.conversationId
    ) as Frame[];
    assert.ok(
      bobs.some((f) => (f.conversation as Frame).status === "assigned"),
      "bob drops it from his queue",
    );
    assert.ok(
      bobs.filter((f) => (f.conversation as Frame).status !== "queued").every((f) =>
        JSON.stringify(Object.keys(f.conversation as Frame).sort()) === '["agentId","id","status"]'
      ),
      JSON.stringify(bobs),
    );
    assert.ok(!JSON.stringify(bob.client.received).includes("12345"), "no content of alice's conversation");
    await rootSocket.client.close();
    const as = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
    const transcript = `/api/support/conversations/${v.conversationId}/transcript`;
    assert.equal((await get(server.http(transcript), as(bob.token))).status, 403, "bob never held it");
    assert.equal((await get(server.http(transcript), as(alice.token))).status, 200);
    assert.equal((await get(server.http(transcript), as(root.body.token))).status, 200, "admins read all");
    const listed = async (token: string) =>
      (JSON.parse((await get(server.http("/api/support/conversations"), as(token))).text)
        .conversations as Frame[])
        .map((c) => c.id);
    assert.deepEqual(await listed(bob.token), [], "not bob's");
    assert.deepEqual(await listed(root.body.token), [v.conversationId]);
    // After a transfer both may read it: alice held it, bob holds it.
    alice.client.send({ type: "transfer", conversationId: v.conversationId, toAgent: "bob" });
    await bob.client.nextType("accepted");
    for (const who of [alice, bob]) {
      assert.equal((await get(server.http(transcript), as(who.token))).status, 200);
    }

    // Managing agents is for admins only.
    const api = (method: string, path: string, token: string, body?: unknown) =>
      get(server.http(path), {
        method,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    assert.equal((await api("GET", "/api/agents", bob.token)).status, 403);
    const list = JSON.parse((await api("GET", "/api/agents", root.body.token)).text).agents as Frame[];
    assert.deepEqual(list.map((a) => `${a.username}:${a.role}`), ["alice:agent", "bob:agent", "root:admin"]);
    const created = await api("POST", "/api/agents", root.body.token, {
      username: "carol",
      password: "carol-pass-1",
      name: "Carol",
    });
    assert.equal(created.status, 201, created.text);
    const carol = await openAgent(server, "carol", "carol-pass-1");
    assert.equal((await api("PATCH", "/api/agents/carol", bob.token, { disabled: true })).status, 403);
    const disabled = await api("PATCH", "/api/agents/carol", root.body.token, { disabled: true });
    assert.equal(JSON.parse(disabled.text).agent.disabled, true);
    assert.equal((await carol.client.closedWithin(8000)).code, 4001, "a disabled agent's socket closes");
    const refused = await loginAgent(server, "carol", "carol-pass-1");
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    assert.equal((await api("PATCH", "/api/agents/root", root.body.token, { role: "agent" })).status, 400);
    const renamed = await api("PATCH", "/api/agents/bob", root.body.token, { name: "Bob Li" });
    assert.equal(JSON.parse(renamed.text).agent.name, "Bob Li", "a name alone can change");
    assert.equal((await api("PATCH", "/api/agents/bob", root.body.token, { name: "" })).status, 400);
    const promoted = await api("PATCH", "/api/agents/bob", root.body.token, { role: "admin" });
    assert.equal(JSON.parse(promoted.text).agent.role, "admin");
    await Promise.all([alice.client.close(), bob.client.close(), v.client.close()]);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a private note reaches the holder and mentioned agents only: never the visitor, its history or socket", async () => {
  await using server = await startTestServer({
    demoAgents: ["alice:alice-pass-1", "bob:bob-pass-22", "carol:carol-pass-3"],
  });
  const alice = await openAgent(server, "alice", "alice-pass-1");
  const bob = await openAgent(server, "bob", "bob-pass-22");
  const carol = await openAgent(server, "carol", "carol-pass-3");
  const v = await openVisitor(server);
  await write(v, "refund please, 我要退款");
  alice.client.send({ type: "accept", conversationId: v.conversationId });
  await alice.client.nextType("accepted");
  alice.client.send({
    type: "note",
    conversationId: v.conversationId,
    text: "Gold customer, can you check the refund? Ask @bob.",
    clientMsgId: "n1",
  });
  const own = await alice.client.nextType("note");
  assert.deepEqual([own.private, own.mentions, own.text], [
    true,
    ["bob"],
    "Gold customer, can you check the refund? Ask @bob.",
  ]);
  const mention = await bob.client.nextType("note");
  assert.equal(mention.conversationId, v.conversationId, "a mention notifies bob");
  // Barriers: a reply reaches the visitor after any note would have; carol's own status answer likewise.
  alice.client.send({ type: "message", conversationId: v.conversationId, text: "Checking now." });
  await v.client.next((f) => f.text === "Checking now.");
  assert.ok(
    !v.client.received.some((f) =>
      (f as Frame).type === "note" || String((f as Frame).text).includes("Gold")
    ),
  );
  carol.client.send({ type: "status", status: "online" });
  await carol.client.nextType("status");
  assert.ok(
    !carol.client.received.some((f) => (f as Frame).type === "note"),
    "carol is neither holder nor mentioned",
  );
  // Not in the visitor's history on reconnect, but in the agents' transcript, marked private.
  const again = await openVisitor(server, v.token);
  assert.ok(!(again.history.messages as Frame[]).some((m) => String(m.text).includes("Gold")));
  const as = { headers: { authorization: `Bearer ${alice.token}` } };
  const json = JSON.parse(
    (await get(server.http(`/api/support/conversations/${v.conversationId}/transcript`), as)).text,
  );
  assert.deepEqual(json.notes.map((n: Frame) => [n.private, n.text]), [[true, own.text]]);
  assert.ok(!json.messages.some((m: Frame) => String(m.text).includes("Gold")));
  const text =
    (await get(server.http(`/api/support/conversations/${v.conversationId}/transcript?format=text`), as))
      .text;
  assert.match(text, /alice \(private note\): Gold customer/);
  // Search through the API: Chinese text, for agents who may see the conversation.
  const found = JSON.parse(
    (await get(server.http(`/api/support/conversations?q=${encodeURIComponent("退款 REFU")}`), as)).text,
  );
  assert.deepEqual(found.conversations.map((c: Frame) => c.id), [v.conversationId]);
  const hidden = JSON.parse(
    (await get(server.http("/api/support/conversations?q=refund"), {
      headers: { authorization: `Bearer ${carol.token}` },
    }))
      .text,
  );
  assert.deepEqual(hidden.conversations, [], "carol cannot find alice's conversation");
  // Only agents who may read the conversation may write notes on it.
  carol.client.send({ type: "note", conversationId: v.conversationId, text: "sneaky" });
  assert.equal((await carol.client.nextType("error")).code, "forbidden");
  await Promise.all([
    alice.client.close(),
    bob.client.close(),
    carol.client.close(),
    v.client.close(),
    again.client.close(),
  ]);
});

Deno.test("canned replies: team ones by admins, personal ones by anyone, variables filled for a conversation", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    await runAgentCli(["add", "root", "--admin", "--data-dir", dataDir], "root-pass-123\n");
    await using server = await startTestServer({ dataDir, demoAgents: ["alice:alice-pass-1"] });
    const alice = await openAgent(server, "alice", "alice-pass-1");
    const root = (await loginAgent(server, "root", "root-pass-123")).body.token as string;
    const api = (method: string, path: string, token: string, body?: unknown) =>
      get(server.http(path), {
        method,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    const hello = {
      shortcut: "hello",
      text: "Hi {{visitor.name}}, {{agent.name}} here. {{unknown.thing}}",
      team: true,
    };
    assert.equal(
      (await api("POST", "/api/canned", alice.token, hello)).status,
      403,
      "team replies are for admins",
    );
    assert.equal((await api("POST", "/api/canned", root, hello)).status, 201);
    assert.equal((await api("POST", "/api/canned", root, hello)).status, 400, "one shortcut per owner");
    assert.equal(
      (await api("POST", "/api/canned", alice.token, { shortcut: "bye", text: "Bye {{visitor.email}}!" }))
        .status,
      201,
    );
    assert.equal(
      (await api("POST", "/api/canned", alice.token, { shortcut: "bad shortcut", text: "x" })).status,
      400,
    );
    const v = await openVisitor(server);
    v.client.send({ type: "profile", name: "Wang Fang", email: "wf@example.com" });
    await v.client.nextType("profile");
    await write(v, "hello?");
    alice.client.send({ type: "accept", conversationId: v.conversationId });
    await alice.client.nextType("accepted");
    const listed = JSON.parse(
      (await api("GET", `/api/canned?conversationId=${v.conversationId}`, alice.token)).text,
    );
    assert.deepEqual(listed.replies.map((r: Frame) => [r.shortcut, r.team, r.rendered]), [
      ["bye", false, "Bye wf@example.com!"],
      ["hello", true, "Hi Wang Fang, alice here. {{unknown.thing}}"],
    ]);
    const rootList = JSON.parse((await api("GET", "/api/canned", root)).text).replies as Frame[];
    assert.deepEqual(rootList.map((r) => r.shortcut), ["hello"], "personal replies stay personal");
    const team = rootList[0].id as string;
    assert.equal((await api("DELETE", `/api/canned/${team}`, alice.token)).status, 403);
    assert.equal((await api("DELETE", `/api/canned/${team}`, root)).status, 200);
    await Promise.all([alice.client.close(), v.client.close()]);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("visitor context reaches agents live, and a visitor's earlier conversations are listed", async () => {
  await using server = await startTestServer({ demoAgents: ["alice:alice-pass-1"] });
  const alice = await openAgent(server, "alice", "alice-pass-1");
  const v = await openVisitor(server);
  // Reported before the visitor is stored: kept on the socket, saved with the first message.
  v.client.send({
    type: "context",
    url: "https://shop.example/cart",
    title: "Cart",
    language: "zh-CN",
    timeZone: "Asia/Shanghai",
  });
  await write(v, "checkout fails");
  const seen = await alice.client.next((f) =>
    f.type === "conversation" && Boolean(((f.conversation as Frame).visitor as Frame).context)
  );
  assert.deepEqual(((seen.conversation as Frame).visitor as Frame).context, {
    url: "https://shop.example/cart",
    title: "Cart",
    language: "zh-CN",
    timeZone: "Asia/Shanghai",
  });
  v.client.send({ type: "context", url: "https://shop.example/pay", title: "Pay" });
  const moved = await alice.client.next((f) =>
    f.type === "conversation" &&
    (((f.conversation as Frame).visitor as Frame).context as Frame | undefined)?.url ===
      "https://shop.example/pay"
  );
  assert.equal((((moved.conversation as Frame).visitor as Frame).context as Frame).title, "Pay");
  v.client.send({ type: "context", url: "javascript:alert(1)" });
  assert.equal((await v.client.nextType("error")).code, "bad_message");
  // Earlier conversations of this visitor (alice held the first one, so she may list it).
  alice.client.send({ type: "accept", conversationId: v.conversationId });
  await alice.client.nextType("accepted");
  alice.client.send({ type: "close", conversationId: v.conversationId });
  await v.client.nextType("closed");
  await write(v, "another question");
  const visitorId = ((seen.conversation as Frame).visitor as Frame).id;
  const list = JSON.parse(
    (await get(server.http(`/api/support/visitors/${visitorId}/conversations`), {
      headers: { authorization: `Bearer ${alice.token}` },
    })).text,
  ).conversations as Frame[];
  assert.equal(list.length, 2);
  assert.deepEqual(list.map((c) => c.status), ["closed", "queued"]);
  await Promise.all([alice.client.close(), v.client.close()]);
});
