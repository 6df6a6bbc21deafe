/**
 * Identity from the host application (issue #12): real tokens signed here with `jose` (HS256, RS256 and ES256 keys
 * made in the test, a JWKS served on port 0), real sockets, and two instances on Redis for what crosses them.
 */
import assert from "node:assert/strict";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from "jose";
import { get, spawnServer, startTestServer, TestClient } from "./helpers.ts";
import { clusterArgs, hasServices, startRedis } from "./services.ts";
import { openAgent, openVisitor, write } from "./support_helpers.ts";

type Frame = Record<string, unknown>;
const SECRET = "a-test-secret-of-at-least-32-bytes!!";
const OTHER_SECRET = "another-secret-of-at-least-32-bytes!";
const KEY = "api-key";

/** An HS256 token for `sub`, valid for `ttl` seconds (negative: expired). */
function hs(sub: string, claims: Record<string, unknown> = {}, ttl = 600, secret = SECRET): Promise<string> {
  return new SignJWT({ name: sub.toUpperCase(), ...claims })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttl)
    .sign(new TextEncoder().encode(secret));
}

const b64url = (v: unknown) =>
  btoa(JSON.stringify(v)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

/** Answers the upgrade without a browser: the status and JSON error of a refused handshake, or 101. */
async function handshake(
  server: { http(p: string): string },
  path: string,
  headers: Record<string, string> = {},
) {
  const res = await get(server.http(path), {
    headers: {
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
      ...headers,
    },
  });
  return { status: res.status, body: res.text ? JSON.parse(res.text) : undefined };
}

function post(server: { http(p: string): string }, path: string, body: unknown) {
  return get(server.http(path), {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

Deno.test("bad, forged, expired and alg:none tokens get 401 before the upgrade on every socket and SSE", async () => {
  await using server = await startTestServer({ jwtSecrets: [SECRET] });
  const none = `${b64url({ alg: "none", typ: "JWT" })}.${b64url({ sub: "eve" })}.`;
  const cases: [string, string][] = [
    ["forged", await hs("eve", {}, 600, OTHER_SECRET)],
    ["expired", await hs("eve", {}, -10)],
    ["alg none", none],
    ["bad sub", await hs("eve has spaces")],
    ["garbage", "eyJhbGciOiJIUzI1NiJ9.e30.not-a-signature"],
  ];
  for (const [what, token] of cases) {
    for (const path of ["/ws/chat/lobby", "/ws/push?topics=news&", "/sse/push?topics=news&"]) {
      const url = `${path}${path.includes("?") ? "" : "?"}token=${token}`;
      const res = path.startsWith("/sse")
        ? await get(server.http(url)).then((r) => ({ status: r.status, body: JSON.parse(r.text) }))
        : await handshake(server, url);
      assert.equal(res.status, 401, `${what} on ${path}`);
      assert.equal(res.body.error, "unauthorized");
    }
  }
  // A token in the Authorization header is read too.
  const header = await handshake(server, "/ws/chat/lobby", { authorization: `Bearer ${cases[0][1]}` });
  assert.equal(header.status, 401);
});

Deno.test("an HS token is never verified with a public key (algorithm confusion); RS256 keys from a PEM file", async () => {
  const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
  const pem = await exportSPKI(publicKey);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/rsa.pem`, pem);
    await using server = await startTestServer({ jwtPublicKeys: [`${dir}/rsa.pem`] });
    const good = await new SignJWT({ name: "Ann" }).setProtectedHeader({ alg: "RS256" }).setSubject("ann")
      .setExpirationTime("10m").sign(privateKey);
    const ok = await TestClient.open(server.ws(`/ws/chat/lobby?token=${good}`));
    const auth = await ok.nextType("auth");
    assert.deepEqual(auth.user, { id: "ann", name: "Ann", verified: true });
    await ok.close();
    // The classic confusion: the public key's PEM text used as an HMAC secret.
    const confused = await hs("ann", {}, 600, pem);
    assert.equal((await handshake(server, `/ws/chat/lobby?token=${confused}`)).status, 401);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ES256 keys come from a JWKS by kid, and cached keys keep working while the JWKS is down", async () => {
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
  const jwk = { ...await exportJWK(publicKey), kid: "k1", alg: "ES256", use: "sig" };
  let fetches = 0;
  const jwks = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    fetches++;
    return Response.json({ keys: [jwk] });
  });
  await using server = await startTestServer({ jwksUrl: `http://127.0.0.1:${jwks.addr.port}/jwks.json` });
  const token = await new SignJWT({}).setProtectedHeader({ alg: "ES256", kid: "k1" }).setSubject("bo")
    .setExpirationTime("10m").sign(privateKey);
  const first = await TestClient.open(server.ws(`/ws/push?time=0&token=${token}`));
  assert.equal(((await first.nextType("auth")).user as Frame).id, "bo");
  await first.close();
  await jwks.shutdown();
  const again = await TestClient.open(server.ws(`/ws/push?time=0&token=${token}`));
  assert.equal(((await again.nextType("auth")).user as Frame).id, "bo", "the cached key still verifies");
  await again.close();
  assert.equal(fetches, 1, "the JWKS was fetched once");
});

Deno.test("a verified chat member is its token's user: ?name= is ignored and all its sockets are one member", async () => {
  await using server = await startTestServer({ jwtSecrets: [SECRET] });
  const watcher = await TestClient.open(server.ws("/ws/chat/lobby?name=watcher"));
  await watcher.nextType("welcome");
  const token = await hs("u42", { name: "Alice", info: { plan: "gold" } });
  const tab1 = await TestClient.open(server.ws(`/ws/chat/lobby?name=mallory&token=${token}`));
  const welcome = await tab1.nextType("welcome");
  assert.deepEqual(welcome.you, { id: "u42", name: "Alice", verified: true, info: { plan: "gold" } });
  const tab2 = await TestClient.open(server.ws(`/ws/chat/lobby?token=${token}`));
  const welcome2 = await tab2.nextType("welcome");
  assert.deepEqual((welcome2.members as Frame[]).map((m) => m.id).filter((id) => id === "u42"), ["u42"]);
  tab1.send({ type: "message", text: "hello", clientMsgId: "h" });
  const seen = await watcher.next((f) => f.type === "message");
  assert.deepEqual(seen.from, { id: "u42", name: "Alice", verified: true });
  // One join for two sockets, and a leave only with the last one.
  await tab1.close();
  tab2.send({ type: "message", text: "still here", clientMsgId: "s" });
  await watcher.next((f) => f.text === "still here");
  await tab2.close();
  const leave = await watcher.nextType("leave");
  assert.equal((leave.member as Frame).id, "u42");
  const joins = watcher.received.filter((f) => (f as Frame).type === "join" || (f as Frame).type === "leave");
  assert.deepEqual(joins.map((f) => (f as Frame).type), ["join"], "one join, then the leave taken above");
  // An anonymous member is told apart: no `verified`.
  watcher.send({ type: "message", text: "anon", clientMsgId: "a" });
  assert.equal(((await watcher.next((f) => f.text === "anon")).from as Frame).verified, undefined);
  await watcher.close();
});

Deno.test("protected topics and rooms: user:<sub> only for that user, private-… by channels; 403 or forbidden", async () => {
  await using server = await startTestServer({ jwtSecrets: [SECRET], apiKeys: [KEY] });
  const plain = await hs("u1");
  const granted = await hs("u2", { channels: ["private-team*", "private-exact"] });
  assert.equal((await handshake(server, `/ws/chat/private-team-a?token=${plain}`)).status, 403);
  assert.equal((await handshake(server, "/ws/chat/private-team-a?name=x")).status, 403);
  assert.equal((await handshake(server, `/ws/push?topics=user:u2&token=${plain}`)).status, 403);
  assert.equal((await handshake(server, `/ws/push?topics=private-exactly&token=${granted}`)).status, 403);
  assert.equal((await get(server.http(`/sse/push?topics=user:u2&token=${plain}`))).status, 403);
  const member = await TestClient.open(server.ws(`/ws/chat/private-team-a?token=${granted}`));
  await member.nextType("welcome");
  member.send({ type: "message", text: "secret plan", clientMsgId: "p" });
  await member.next((f) => f.clientMsgId === "p");
  const push = await TestClient.open(server.ws(`/ws/push?time=0&topics=private-exact&token=${granted}`));
  assert.equal((await push.nextType("auth")).type, "auth");
  push.send({ type: "subscribe", topic: "user:u1" });
  assert.equal((await push.nextType("error")).code, "forbidden");
  // The history API and the room list follow the same rule.
  const history = (token?: string) =>
    get(server.http("/api/rooms/private-team-a/messages"), {
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
  assert.equal((await history()).status, 401);
  assert.equal((await history(plain)).status, 403);
  const ok = await history(granted);
  assert.equal(JSON.parse(ok.text).messages[0].text, "secret plan");
  const rooms = JSON.parse((await get(server.http("/api/rooms"))).text).rooms as Frame[];
  assert.ok(!rooms.some((r) => String(r.room).startsWith("private-")), JSON.stringify(rooms));
  await Promise.all([member.close(), push.close()]);
});

Deno.test("--require-auth refuses anonymous chat, topic push and SSE; echo and the time push stay open", async () => {
  await using server = await startTestServer({ jwtSecrets: [SECRET], requireAuth: true });
  assert.equal((await handshake(server, "/ws/chat/lobby?name=anon")).status, 401);
  assert.equal((await handshake(server, "/ws/push?topics=news")).status, 401);
  assert.equal((await get(server.http("/sse/push?topics=news"))).status, 401);
  assert.equal((await get(server.http("/api/rooms/lobby/messages"))).status, 401);
  const time = await TestClient.open(server.ws("/ws/push"));
  assert.ok((await time.next((f) => "time" in f)).time);
  time.send({ type: "subscribe", topic: "news" });
  assert.equal((await time.nextType("error")).code, "forbidden");
  const echo = await TestClient.open(server.ws("/ws/echo"));
  echo.send("ping");
  assert.equal(await echo.next(), "ping");
  const member = await TestClient.open(server.ws(`/ws/chat/lobby?token=${await hs("u9")}`));
  await member.nextType("welcome");
  await Promise.all([time.close(), echo.close(), member.close()]);
});

Deno.test("every socket with a token follows user:<sub>; {user} publishes reach that user only; disconnect closes all", async () => {
  await using server = await startTestServer({ jwtSecrets: [SECRET], apiKeys: [KEY] });
  const a1 = await TestClient.open(server.ws(`/ws/push?time=0&token=${await hs("alice")}`));
  const a2 = await TestClient.open(server.ws(`/ws/chat/lobby?token=${await hs("alice")}`));
  const b = await TestClient.open(server.ws(`/ws/push?time=0&token=${await hs("bob")}`));
  assert.equal((await a1.nextType("auth")).type, "auth", "the first frame says who");
  assert.deepEqual(await a1.nextType("subscribed"), { type: "subscribed", topic: "user:alice" });
  await a2.nextType("welcome");
  await b.nextType("subscribed");
  const res = await post(server, "/api/publish", { user: "alice", data: { order: 42, status: "paid" } });
  assert.equal(res.status, 200, res.text);
  assert.equal(JSON.parse(res.text).delivered, 2);
  for (const c of [a1, a2]) {
    const p = await c.nextType("publication");
    assert.deepEqual([p.topic, p.data], ["user:alice", { order: 42, status: "paid" }]);
  }
  // A barrier for bob: his own publication comes after any of alice's would have.
  await post(server, "/api/publish", { user: "bob", data: "yours" });
  assert.equal((await b.nextType("publication")).data, "yours");
  assert.equal((await post(server, "/api/publish", { user: "no spaces allowed", data: 1 })).status, 400);
  const dis = await post(server, "/api/users/alice/disconnect", {});
  assert.deepEqual(JSON.parse(dis.text), { closed: 2 });
  for (const c of [a1, a2]) assert.equal((await c.closedWithin(3000)).code, 4003);
  assert.equal(b.ws.readyState, WebSocket.OPEN, "bob stays");
  await b.close();
});

Deno.test("a socket closes with 4002 at its token's exp unless refreshed; a refresh for another user closes 4004", async () => {
  await using server = await startTestServer({ jwtSecrets: [SECRET] });
  const expiring = await TestClient.open(server.ws(`/ws/push?time=0&token=${await hs("u1", {}, 2)}`));
  const auth = await expiring.nextType("auth");
  assert.ok(Math.abs((auth.expiresAt as number) - (Date.now() + 2000)) < 1500, "the first frame says when");
  const started = Date.now();
  const closed = await expiring.closedWithin(5000);
  assert.equal(closed.code, 4002);
  assert.ok(Date.now() - started < 3500, "closed within a second of exp");

  const refreshed = await TestClient.open(server.ws(`/ws/push?time=0&token=${await hs("u1", {}, 2)}`));
  await refreshed.nextType("auth");
  refreshed.send({ type: "refresh", token: await hs("u1", {}, 600) });
  const answer = await refreshed.nextType("refreshed");
  assert.ok((answer.expiresAt as number) > Date.now() + 500_000);
  refreshed.send({ type: "refresh", token: await hs("u1", {}, -5) });
  assert.equal((await refreshed.nextType("error")).code, "unauthorized", "an expired token is refused");
  await new Promise((r) => setTimeout(r, 2500));
  assert.equal(refreshed.ws.readyState, WebSocket.OPEN, "still open past the first exp");
  refreshed.send({ type: "refresh", token: await hs("mallory", {}, 600) });
  assert.equal((await refreshed.closedWithin(3000)).code, 4004);
});

Deno.test({
  name: "two instances on Redis: one member per user across them, {user} publishes and disconnect reach both",
  ignore: !hasServices,
  async fn() {
    await using redis = await startRedis();
    const dirs = [await Deno.makeTempDir(), await Deno.makeTempDir()];
    const args = (i: number) =>
      clusterArgs(dirs[i], redis.url, undefined, "--jwt-secret", SECRET, "--api-key", KEY);
    const a = await spawnServer(args(0), { direct: true });
    const b = await spawnServer(args(1), { direct: true });
    try {
      const token = await hs("carol");
      const watcher = await TestClient.open(a.ws("/ws/chat/global?name=watcher"));
      await watcher.nextType("welcome");
      const onA = await TestClient.open(a.ws(`/ws/chat/global?token=${token}`));
      await onA.nextType("welcome");
      const onB = await TestClient.open(b.ws(`/ws/chat/global?token=${token}`));
      const welcome = await onB.nextType("welcome", 10_000);
      assert.equal((welcome.members as Frame[]).filter((m) => m.id === "carol").length, 1, "one member");
      await watcher.next((f) => f.type === "join");
      const res = await post(b, "/api/publish", { user: "carol", data: "to both" });
      assert.equal(JSON.parse(res.text).delivered, 2);
      for (const c of [onA, onB]) assert.equal((await c.nextType("publication", 10_000)).data, "to both");
      const dis = await post(a, "/api/users/carol/disconnect", {});
      assert.deepEqual(JSON.parse(dis.text), { closed: 2 });
      for (const c of [onA, onB]) assert.equal((await c.closedWithin(5000)).code, 4003);
      const leave = await watcher.nextType("leave", 10_000);
      assert.equal((leave.member as Frame).id, "carol");
      assert.ok(!watcher.received.some((f) => (f as Frame).type === "join"), "one join for two sockets");
      await watcher.close();
    } finally {
      await a[Symbol.asyncDispose]();
      await b[Symbol.asyncDispose]();
      for (const d of dirs) await Deno.remove(d, { recursive: true });
    }
  },
});

Deno.test("an identified widget visitor is keyed by sub: same conversation on two devices, verified for agents", async () => {
  await using server = await startTestServer({
    jwtSecrets: [SECRET],
    demoAgents: ["alice:alice-pass-1"],
    newConversationsPerIp: 0,
  });
  const alice = await openAgent(server, "alice", "alice-pass-1");
  // An anonymous visitor writes first, then logs in on the shop: it keeps its conversation.
  const anon = await openVisitor(server);
  await write(anon, "before login");
  await anon.client.close();
  const jwt = await hs("cust-7", {
    name: "Wang Fang",
    email: "wf@example.com",
    attributes: { plan: "gold" },
  });
  const phone = await TestClient.open(server.ws(`/ws/support/visitor?token=${anon.token}&jwt=${jwt}`));
  const session = await phone.nextType("session");
  assert.equal(
    session.conversationId,
    anon.conversationId,
    "the conversation moved to the identified visitor",
  );
  assert.equal(session.token, anon.token, "the anonymous token is kept, the user token never sent back");
  const history = await phone.nextType("history");
  assert.deepEqual((history.messages as Frame[]).map((m) => m.text), ["before login"]);
  // Another device of the same customer, with no visitor token at all, resumes the same conversation.
  const laptop = await TestClient.open(server.ws(`/ws/support/visitor?jwt=${jwt}`));
  assert.equal((await laptop.nextType("session")).conversationId, anon.conversationId);
  laptop.send({ type: "message", text: "from the laptop", clientMsgId: "l1" });
  await phone.next((f) => f.clientMsgId === "l1");
  const update = await alice.client.next((f) =>
    f.type === "conversation" && ((f.conversation as Frame).visitor as Frame).verified === true
  );
  assert.deepEqual((update.conversation as Frame).visitor, {
    id: ((update.conversation as Frame).visitor as Frame).id,
    name: "Wang Fang",
    email: "wf@example.com",
    verified: true,
    attributes: { plan: "gold" },
  });
  laptop.send({ type: "profile", name: "Someone Else" });
  assert.equal((await laptop.nextType("error")).code, "forbidden", "a verified name is the site's");
  // A forged or expired visitor token never reaches anyone's conversation.
  for (const bad of [await hs("cust-7", {}, 600, OTHER_SECRET), await hs("cust-7", {}, -5)]) {
    assert.equal((await handshake(server, `/ws/support/visitor?jwt=${bad}`)).status, 401);
  }
  await Promise.all([alice.client.close(), phone.close(), laptop.close()]);
});

Deno.test("identified visitors and SSE streams are the user's connections too: auth first, disconnect, expiry", async () => {
  await using server = await startTestServer({ jwtSecrets: [SECRET], apiKeys: [KEY] });
  const visitor = await TestClient.open(server.ws(`/ws/support/visitor?jwt=${await hs("dora")}`));
  assert.equal((await visitor.next()).type, "auth", "the first frame says who");
  await visitor.nextType("session");
  const dis = await post(server, "/api/users/dora/disconnect", {});
  assert.deepEqual(JSON.parse(dis.text), { closed: 1 });
  assert.equal((await visitor.closedWithin(3000)).code, 4003);
  // An SSE stream ends at its token's exp with an `expired` event.
  const res = await fetch(server.http(`/sse/push?topics=news&token=${await hs("dora", {}, 1)}`));
  const text = await res.text();
  assert.match(text, /event: expired/);
});
