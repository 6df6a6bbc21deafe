/**
 * The admin console's API (issue #14): only admins (or an API key) may use it; it lists live connections, rooms
 * and topics; it disconnects a connection and kicks a room member, on another instance too (through Redis); and
 * every admin action lands in the audit log with its actor and target.
 */
import assert from "node:assert/strict";
import { delay, get, spawnServer, startTestServer, TestClient } from "./helpers.ts";
import { loginAgent, runAgentCli } from "./support_helpers.ts";
import { clusterArgs, createDatabase, hasServices, startPostgres, startRedis } from "./services.ts";
import { saveAgent } from "../lib/support/agents.ts";

type Frame = Record<string, unknown>;

/** A JSON request with an agent's session token (or none). */
function call(
  server: { http(p: string): string },
  token: string | undefined,
  method: string,
  path: string,
  body?: unknown,
) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  return get(server.http(path), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** Every admin API, with a body where it takes one. */
const ADMIN_APIS: [string, string, unknown?][] = [
  ["GET", "/api/admin/connections"],
  ["GET", "/api/admin/connections/00000000-1"],
  ["POST", "/api/admin/connections/00000000-1/disconnect"],
  ["GET", "/api/admin/rooms"],
  ["POST", "/api/admin/rooms/lobby/kick", { member: "x" }],
  ["GET", "/api/admin/topics"],
  ["GET", "/api/admin/support"],
  ["POST", "/api/admin/publish", { topic: "t", data: 1 }],
  ["GET", "/api/admin/audit"],
  ["GET", "/api/schedules"],
  ["POST", "/api/schedules", { topic: "t", data: 1, every: 60_000 }],
  ["DELETE", "/api/schedules/x"],
  ["GET", "/api/webhooks/deliveries"],
  ["POST", "/api/webhooks/deliveries/x/retry"],
  ["GET", "/api/agents"],
  ["POST", "/api/agents", { username: "eve", password: "eve-pass-123" }],
  ["PATCH", "/api/agents/alice", { name: "A" }],
];

Deno.test("admin API: agents who are not admins get 403 everywhere, strangers 401", async () => {
  await using server = await startTestServer({ demoAgents: ["alice:alice-pass-1"] });
  const alice = await loginAgent(server, "alice", "alice-pass-1");
  for (const [method, path, body] of ADMIN_APIS) {
    const res = await call(server, alice.body.token, method, path, body);
    assert.equal(res.status, 403, `${method} ${path} as an agent: ${res.text}`);
    assert.equal(JSON.parse(res.text).error, "forbidden");
    const anonymous = await call(server, undefined, method, path, body);
    assert.equal(anonymous.status, 401, `${method} ${path} without credentials: ${anonymous.text}`);
  }
});

Deno.test("admin API: lists, disconnects, kicks, publishes, and audits each action", async () => {
  await using server = await startTestServer({ apiKeys: ["k"] });
  await saveAgent(server.running.app.ctx.store, "root", "root-pass-123", "Root", "admin");
  const root = (await loginAgent(server, "root", "root-pass-123")).body.token as string;

  // A chat room with two members and a push subscriber.
  await using ann = await TestClient.open(server.ws("/ws/chat/lobby?name=ann"));
  await ann.nextType("welcome");
  await using ben = await TestClient.open(server.ws("/ws/chat/lobby?name=ben"));
  const welcome = await ben.nextType("welcome");
  const annMember = (welcome.members as Frame[]).find((m) => m.name === "ann")!;
  await using sub = await TestClient.open(server.ws("/ws/push?time=0&topics=news"));
  await sub.nextType("subscribed");

  const conns = JSON.parse((await call(server, root, "GET", "/api/admin/connections")).text);
  assert.equal(conns.partial, false);
  assert.equal(conns.instances.length, 1);
  const listed = conns.instances[0].connections as Frame[];
  const annConn = listed.find((c) => c.endpoint === "chat" && (c.state as Frame)?.name === "ann");
  assert.ok(annConn, `ann's socket is listed: ${JSON.stringify(listed)}`);
  assert.deepEqual((annConn.state as Frame).room, "lobby");
  assert.ok(
    listed.some((c) => c.endpoint === "push" && ((c.state as Frame)?.topics as string[])?.includes("news")),
  );
  assert.equal(JSON.stringify(listed).includes("token"), false, "no tokens in the views");

  const one = await call(server, root, "GET", `/api/admin/connections/${annConn.id}`);
  assert.equal(JSON.parse(one.text).connection.id, annConn.id);
  assert.equal((await call(server, root, "GET", "/api/admin/connections/not-an-id")).status, 400);
  assert.equal((await call(server, root, "GET", "/api/admin/connections/00000000-zz")).status, 404);

  const rooms = JSON.parse((await call(server, root, "GET", "/api/admin/rooms")).text).rooms as Frame[];
  const lobby = rooms.find((r) => r.room === "lobby")!;
  assert.deepEqual((lobby.members as Frame[]).map((m) => m.name).sort(), ["ann", "ben"]);
  const topics = JSON.parse((await call(server, root, "GET", "/api/admin/topics")).text).topics as Frame[];
  assert.equal((topics.find((t) => t.topic === "news")!.subscribers as Frame[]).length, 1);

  // A test publication reaches the subscriber.
  const pub = await call(server, root, "POST", "/api/admin/publish", { topic: "news", data: { hello: 1 } });
  assert.equal(pub.status, 200, pub.text);
  assert.equal(JSON.parse(pub.text).delivered, 1);
  assert.deepEqual((await sub.nextType("publication")).data, { hello: 1 });
  assert.equal(
    (await call(server, root, "POST", "/api/admin/publish", { topic: "bad topic", data: 1 })).status,
    400,
  );

  // Kick: ann's socket closes with 4005 and ben sees her leave.
  assert.equal((await call(server, root, "POST", "/api/admin/rooms/lobby/kick", {})).status, 400);
  assert.equal(
    (await call(server, root, "POST", "/api/admin/rooms/lobby/kick", { member: "nobody" })).status,
    404,
  );
  const kick = await call(server, root, "POST", "/api/admin/rooms/lobby/kick", { member: annMember.id });
  assert.equal(kick.status, 200, kick.text);
  assert.equal((await ann.closedWithin(5000)).code, 4005);
  assert.equal(((await ben.nextType("leave")).member as Frame).name, "ann");

  // Disconnect: the subscriber sees the close.
  const subConn = listed.find((c) => c.endpoint === "push")!;
  const dis = await call(server, root, "POST", `/api/admin/connections/${subConn.id}/disconnect`);
  assert.equal(dis.status, 200, dis.text);
  assert.equal((await sub.closedWithin(5000)).code, 4005);
  assert.equal(
    (await call(server, root, "POST", `/api/admin/connections/${subConn.id}/disconnect`)).status,
    404,
  );

  // Schedules, agents and webhook retries through the admin session; the API key acts too.
  const sched = await call(server, root, "POST", "/api/schedules", { topic: "news", data: 2, every: 60_000 });
  assert.equal(sched.status, 201, sched.text);
  const schedId = JSON.parse(sched.text).id;
  assert.equal((await call(server, root, "DELETE", `/api/schedules/${schedId}`)).status, 200);
  const keySched = await call(server, "k", "POST", "/api/schedules", {
    topic: "news",
    data: 3,
    every: 60_000,
  });
  assert.equal(keySched.status, 201);
  const added = await call(server, root, "POST", "/api/agents", {
    username: "eve",
    password: "eve-pass-123",
  });
  assert.equal(added.status, 201, added.text);
  const patched = await call(server, root, "PATCH", "/api/agents/eve", {
    role: "admin",
    password: "eve-pass-456",
  });
  assert.equal(patched.status, 200, patched.text);

  const support = JSON.parse((await call(server, root, "GET", "/api/admin/support")).text);
  assert.deepEqual(support.queue, []);
  assert.deepEqual(support.agents.map((a: Frame) => a.username).sort(), ["eve", "root"]);

  const entries = JSON.parse((await call(server, root, "GET", "/api/admin/audit?limit=50")).text)
    .entries as Frame[];
  const seen = entries.map((e) => `${e.actor} ${e.action} ${e.target}`).reverse();
  assert.deepEqual(seen, [
    "agent:root publish news",
    `agent:root room.kick lobby`,
    `agent:root connection.disconnect ${subConn.id}`,
    `agent:root schedule.create ${schedId}`,
    `agent:root schedule.delete ${schedId}`,
    `api-key schedule.create ${JSON.parse(keySched.text).id}`,
    "agent:root agent.add eve",
    "agent:root agent.update eve",
  ]);
  const kickEntry = entries.find((e) => e.action === "room.kick")!;
  assert.equal((kickEntry.detail as Frame).member, annMember.id);
  assert.equal((kickEntry.detail as Frame).name, "ann");
  assert.deepEqual(entries.find((e) => e.action === "agent.update")!.detail as Frame, {
    role: "admin",
    password: "changed",
  });
  assert.equal(typeof entries[0].instance, "string");
  // Paging: before the newest entry's time, and the bounds of limit and before.
  const older = JSON.parse(
    (await call(
      server,
      root,
      "GET",
      `/api/admin/audit?limit=2&before=${encodeURIComponent(String(entries[0].at))}`,
    ))
      .text,
  ).entries as Frame[];
  assert.ok(
    older.length <= 2 && older.every((e) => Date.parse(e.at as string) < Date.parse(entries[0].at as string)),
  );
  assert.equal((await call(server, root, "GET", "/api/admin/audit?limit=0")).status, 400);
  assert.equal((await call(server, root, "GET", "/api/admin/audit?before=soon")).status, 400);
});

Deno.test("admin API: a webhook retry is audited", async () => {
  const hooks = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response(null, { status: 500 }),
  );
  try {
    await using server = await startTestServer({
      webhookUrls: [`http://127.0.0.1:${hooks.addr.port}/hooks`],
      webhookSecret: `whsec_${btoa("0123456789abcdef0123456789abcdef")}`,
      webhookMaxAttempts: 1,
    });
    await saveAgent(server.running.app.ctx.store, "root", "root-pass-123", "Root", "admin");
    const root = (await loginAgent(server, "root", "root-pass-123")).body.token as string;
    const chat = await TestClient.open(server.ws("/ws/chat/r1?name=ann"));
    await chat.nextType("welcome");
    chat.send({ type: "message", text: "one" });
    let failed: Frame[] = [];
    for (let i = 0; i < 100 && failed.length === 0; i++) {
      failed = JSON.parse((await call(server, root, "GET", "/api/webhooks/deliveries?status=failed")).text)
        .deliveries;
      if (failed.length === 0) await delay(100);
    }
    assert.equal(failed.length, 1);
    const retry = await call(server, root, "POST", `/api/webhooks/deliveries/${failed[0].id}/retry`);
    assert.equal(retry.status, 202, retry.text);
    const entries = JSON.parse((await call(server, root, "GET", "/api/admin/audit")).text).entries as Frame[];
    assert.deepEqual(entries.map((e) => `${e.actor} ${e.action} ${e.target}`), [
      `agent:root webhook.retry ${failed[0].id}`,
    ]);
    await chat.close();
    // Let the retried try finish before the server stops.
    for (let i = 0; i < 50; i++) {
      const d = JSON.parse(
        (await call(server, root, "GET", `/api/webhooks/deliveries/${failed[0].id}`)).text,
      );
      if (d.delivery.status !== "pending") break;
      await delay(100);
    }
  } finally {
    await hooks.shutdown();
  }
});

Deno.test("self-check: the server's clock, and SSE events that arrive spaced in time", async () => {
  await using server = await startTestServer();
  const before = Date.now();
  const time = JSON.parse((await get(server.http("/api/selfcheck/time"))).text);
  assert.ok(time.now >= before - 5 && time.now <= Date.now() + 5, JSON.stringify(time));
  assert.equal(time.proto, "http");
  const viaProxy = JSON.parse(
    (await get(server.http("/api/selfcheck/time"), { headers: { "x-forwarded-proto": "https" } })).text,
  );
  assert.deepEqual([viaProxy.proto, viaProxy.forwarded], ["https", true]);
  assert.equal((await get(server.http("/sse/selfcheck?count=99"))).status, 400);

  const res = await fetch(server.http("/sse/selfcheck?count=3&gap=200"));
  assert.equal(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
  const arrivals: number[] = [];
  let text = "";
  for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
    text += chunk;
    for (const _ of chunk.matchAll(/event: tick/g)) arrivals.push(Date.now());
  }
  assert.equal(arrivals.length, 3, text);
  assert.match(text, /event: done/);
  assert.ok(arrivals[2] - arrivals[0] >= 300, `spaced: ${arrivals.map((a) => a - arrivals[0])}`);
});

Deno.test({
  name: "admin API on two instances (Redis): lists both, disconnects and kicks across instances",
  ignore: !hasServices,
  async fn() {
    await using redis = await startRedis();
    await using pg = await startPostgres();
    const database = await createDatabase(pg, "admin1");
    const added = await runAgentCli(["add", "root", "--admin", "--database", database], "root-pass-123\n");
    assert.equal(added.code, 0, added.stderr);
    const dirs = [await Deno.makeTempDir(), await Deno.makeTempDir()];
    const args = (i: number) => clusterArgs(dirs[i], redis.url, database);
    await using a = await spawnServer(args(0), { direct: true });
    await using b = await spawnServer(args(1), { direct: true });
    try {
      const root = (await loginAgent(a, "root", "root-pass-123")).body.token as string;
      // Ann and ben are on b; the admin talks to a.
      await using ann = await TestClient.open(b.ws("/ws/chat/hall?name=ann"));
      await ann.nextType("welcome");
      await using ben = await TestClient.open(b.ws("/ws/chat/hall?name=ben"));
      await ben.nextType("welcome");
      await using cat = await TestClient.open(a.ws("/ws/chat/hall?name=cat"));
      const welcome = await cat.nextType("welcome");
      const benMember = (welcome.members as Frame[]).find((m) => m.name === "ben")!;

      const conns = JSON.parse((await call(a, root, "GET", "/api/admin/connections")).text);
      assert.equal(conns.partial, false, JSON.stringify(conns));
      assert.equal(conns.instances.length, 2);
      assert.equal(conns.instances[0].instance, conns.instance, "the asked instance first");
      const names = (i: number) =>
        (conns.instances[i].connections as Frame[]).map((c) => (c.state as Frame)?.name).sort();
      assert.deepEqual([names(0), names(1)], [["cat"], ["ann", "ben"]]);
      const annConn = (conns.instances[1].connections as Frame[]).find((c) =>
        (c.state as Frame).name === "ann"
      )!;

      const inspected = await call(a, root, "GET", `/api/admin/connections/${annConn.id}`);
      assert.equal(JSON.parse(inspected.text).connection.instance, conns.instances[1].instance);

      const dis = await call(a, root, "POST", `/api/admin/connections/${annConn.id}/disconnect`);
      assert.equal(dis.status, 200, dis.text);
      assert.equal((await ann.closedWithin(5000)).code, 4005);
      assert.equal(((await cat.nextType("leave")).member as Frame).name, "ann");

      const kick = await call(a, root, "POST", "/api/admin/rooms/hall/kick", { member: benMember.id });
      assert.equal(kick.status, 200, kick.text);
      assert.equal(JSON.parse(kick.text).closed, 1);
      assert.equal((await ben.closedWithin(5000)).code, 4005);
      assert.equal(((await cat.nextType("leave")).member as Frame).name, "ben");

      // Both instances wrote to the one audit log; b lists a's actions.
      const entries = JSON.parse((await call(b, root, "GET", "/api/admin/audit")).text).entries as Frame[];
      assert.deepEqual(entries.map((e) => `${e.actor} ${e.action} ${e.target}`).reverse(), [
        `agent:root connection.disconnect ${annConn.id}`,
        "agent:root room.kick hall",
      ]);
      assert.equal((entries[1].detail as Frame).instance, conns.instances[1].instance);
    } finally {
      for (const d of dirs) await Deno.remove(d, { recursive: true }).catch(() => {});
    }
  },
});
