/**
 * Signed webhooks (issue #14): a receiver on port 0 checks every delivery with independent implementations of
 * the Standard Webhooks signature (node:crypto, and Python's hmac through `examples/webhooks/verify.py`); tries
 * are repeated after 5xx and timeouts with the same `webhook-id`; nothing is lost across a kill -9 of the
 * sender; two instances deliver each event once.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { Buffer } from "node:buffer";
import { delay, get, ROOT, spawnServer, startTestServer, TestClient } from "./helpers.ts";
import { openAgent, openVisitor, write } from "./support_helpers.ts";
import { clusterArgs, createDatabase, hasServices, startPostgres, startRedis } from "./services.ts";
import { type Received, receiver, SECRET } from "./webhook_receiver.ts";

type Frame = Record<string, unknown>;

/** The signature check, written apart from the server's (node:crypto, not WebCrypto). */
function validSignature(r: Received): boolean {
  const key = Buffer.from(SECRET.slice("whsec_".length), "base64");
  const expected = createHmac("sha256", key).update(`${r.id}.${r.timestamp}.${r.body}`).digest("base64");
  return r.signature === `v1,${expected}`;
}

/** A sender's flags: its data dir, one receiver, the test secret, a 1 s timeout, errors only in the log. */
const senderArgs = (dataDir: string, url: string): string[] => [
  "--data-dir",
  dataDir,
  "--webhook-url",
  url,
  "--webhook-secret",
  SECRET,
  "--webhook-timeout",
  "1",
  "--log-level",
  "error",
];

/** The Python verifier users copy from docs/webhooks.md. */
async function pythonVerifies(r: Received, secret = SECRET): Promise<string> {
  const child = new Deno.Command("/usr/bin/python3", {
    args: [`${ROOT}examples/webhooks/verify.py`, secret, r.id, r.timestamp, r.signature],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(r.body));
  await w.close();
  return new TextDecoder().decode((await child.output()).stdout).trim();
}

Deno.test("webhooks: every event, signed, retried after 5xx and timeouts with the same id", async () => {
  // Each event's first try gets 500, its second no answer in time, its third 204.
  const hooks = receiver((_r, n) => n === 1 ? 500 : n === 2 ? "hang" : 204);
  const dataDir = await Deno.makeTempDir();
  try {
    await using server = await spawnServer([
      ...senderArgs(dataDir, hooks.url),
      "--demo-agent",
      "alice:alice-pass-1",
      "--api-key",
      "k",
    ], { direct: true });
    const alice = await openAgent(server, "alice", "alice-pass-1");
    const v = await openVisitor(server);
    await write(v, "where is my order?");
    alice.client.send({ type: "accept", conversationId: v.conversationId });
    await alice.client.nextType("accepted");
    await v.client.close();
    // The visitor left: the host learns it is offline, so it can send an email instead.
    alice.client.send({ type: "message", conversationId: v.conversationId, text: "It ships today" });
    await alice.client.next((f) => f.text === "It ships today");
    alice.client.send({ type: "close", conversationId: v.conversationId });
    const back = await openVisitor(server, v.token);
    await back.client.nextType("closed");
    back.client.send({ type: "rate", score: 5, comment: "快" });
    await back.client.nextType("rated");
    const chat = await TestClient.open(server.ws("/ws/chat/lobby?name=ann"));
    await chat.nextType("welcome");
    chat.send({ type: "message", text: "hello room" });
    await chat.nextType("message");
    const types = [
      "conversation.created",
      "message.created",
      "conversation.assigned",
      "conversation.closed",
      "conversation.rated",
      "chat.message.created",
    ];
    await hooks.until((rs) => rs.filter((r) => r.verdict === 204).length === 7);
    assert.deepEqual([...new Set(hooks.requests.map((r) => r.event.type))].sort(), [...types].sort());

    for (const r of hooks.requests) assert.ok(validSignature(r), `signature of ${r.id}`);
    assert.equal(await pythonVerifies(hooks.requests[0]), "ok");
    assert.match(
      await pythonVerifies(hooks.requests[0], `whsec_${btoa("another key, 24 bytes lon")}`),
      /^bad/,
    );
    // Three tries of each event, all with one id; one event per change.
    const ids = [...new Set(hooks.requests.map((r) => r.id))];
    assert.equal(ids.length, 7, JSON.stringify(hooks.requests.map((r) => r.event.type)));
    for (const id of ids) {
      const bodies = new Set(hooks.requests.filter((r) => r.id === id).map((r) => r.body));
      assert.equal(bodies.size, 1, "the same body on every try");
    }
    const data = (type: string, i = 0) =>
      hooks.requests.filter((r) => r.event.type === type)[i].event.data as Frame;
    const messages = [
      ...new Set(hooks.requests.filter((r) => r.event.type === "message.created").map((r) => r.body)),
    ]
      .map((b) => JSON.parse(b).data as Frame)
      .sort((x, y) => Number((x.message as Frame).id) - Number((y.message as Frame).id));
    assert.deepEqual(
      messages.map((m) => [(m.message as Frame).text, (m.visitor as Frame).online]),
      [["where is my order?", true], ["It ships today", false]],
    );
    assert.equal((data("conversation.created").conversation as Frame).id, v.conversationId);
    assert.equal((data("conversation.assigned").agent as Frame).username, "alice");
    assert.deepEqual([data("conversation.rated").rating, data("conversation.rated").comment], [5, "快"]);
    assert.equal(data("chat.message.created").room, "lobby");

    // The deliveries API lists every try.
    const list = JSON.parse(
      (await get(server.http("/api/webhooks/deliveries?status=delivered"), {
        headers: { authorization: "Bearer k" },
      })).text,
    ).deliveries as Frame[];
    assert.equal(list.length, 7);
    const one = JSON.parse(
      (await get(server.http(`/api/webhooks/deliveries/${list[0].id}`), {
        headers: { authorization: "Bearer k" },
      })).text,
    );
    assert.deepEqual(one.attempts.map((a: Frame) => a.status), [500, null, 204]);
    assert.match(one.attempts[1].error, /no answer within 1 s/);
    assert.equal((await get(server.http("/api/webhooks/deliveries"))).status, 401);
    await Promise.all([alice.client.close(), back.client.close(), chat.close()]);
  } finally {
    await hooks.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("webhooks: a failed delivery is retried through the API; bad webhook flags exit 2", async () => {
  let up = false;
  const hooks = receiver(() => up ? 204 : 503);
  try {
    await using server = await startTestServer({
      webhookUrls: [hooks.url],
      webhookSecret: SECRET,
      webhookMaxAttempts: 1,
      apiKeys: ["k"],
    });
    const chat = await TestClient.open(server.ws("/ws/chat/r1?name=ann"));
    await chat.nextType("welcome");
    chat.send({ type: "message", text: "one" });
    await hooks.until((rs) => rs.length === 1);
    const as = { headers: { authorization: "Bearer k" } };
    let failed: Frame[] = [];
    for (let i = 0; i < 50 && failed.length === 0; i++) {
      failed =
        JSON.parse((await get(server.http("/api/webhooks/deliveries?status=failed"), as)).text).deliveries;
      if (failed.length === 0) await delay(100);
    }
    assert.deepEqual([failed.length, failed[0].lastStatus, failed[0].attempts], [1, 503, 1]);
    up = true;
    const retry = await get(server.http(`/api/webhooks/deliveries/${failed[0].id}/retry`), {
      method: "POST",
      ...as,
    });
    assert.equal(retry.status, 202, retry.text);
    await hooks.until((rs) => rs.length === 2);
    assert.equal(hooks.requests[1].id, failed[0].id, "the same webhook-id");
    const again = await get(server.http(`/api/webhooks/deliveries/${failed[0].id}/retry`), {
      method: "POST",
      ...as,
    });
    for (let i = 0; i < 50; i++) {
      const d = JSON.parse((await get(server.http(`/api/webhooks/deliveries/${failed[0].id}`), as)).text);
      if (d.delivery.status === "delivered") break;
      await delay(100);
    }
    assert.ok([202, 409].includes(again.status));
    await chat.close();
  } finally {
    await hooks.close();
  }
  for (
    const args of [
      ["--webhook-url", "http://127.0.0.1:9/x"],
      ["--webhook-url", "ftp://x", "--webhook-secret", SECRET],
      ["--webhook-url", "http://127.0.0.1:9/x", "--webhook-secret", "whsec_short"],
    ]
  ) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}main.ts`, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 2, args.join(" "));
    assert.equal(new TextDecoder().decode(out.stderr).trim().split("\n").length, 1);
  }
});

Deno.test("webhooks: no event is lost across a kill -9 of the sender", async () => {
  let up = false;
  const hooks = receiver(() => up ? 204 : "hang");
  const dataDir = await Deno.makeTempDir();
  const args = senderArgs(dataDir, hooks.url);
  try {
    const first = await spawnServer(args, { direct: true });
    const chat = await TestClient.open(first.ws("/ws/chat/k9?name=ann"));
    await chat.nextType("welcome");
    for (let i = 0; i < 5; i++) chat.send({ type: "message", text: `m${i}`, clientMsgId: `c${i}` });
    for (let i = 0; i < 5; i++) await chat.next((f) => f.clientMsgId === `c${i}`);
    await hooks.until((rs) => rs.length >= 1); // a try is in flight
    await first.stop("SIGKILL");
    await chat.closed;
    const sentBefore = new Set(hooks.requests.map((r) => r.id));
    up = true;
    await using second = await spawnServer(args, { direct: true });
    const text = (r: Received) => ((r.event.data as Frame).message as Frame).text as string;
    await hooks.until((rs) => new Set(rs.filter((r) => r.verdict === 204).map(text)).size === 5, 30_000);
    const texts = new Set(hooks.requests.filter((r) => r.verdict === 204).map(text));
    assert.deepEqual([...texts].sort(), ["m0", "m1", "m2", "m3", "m4"]);
    for (const id of sentBefore) {
      assert.ok(hooks.tries.get(id)! >= 2, "the try cut by the kill is made again, with the same id");
    }
    await second.stop();
  } finally {
    await hooks.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test({
  name: "webhooks: two instances deliver each event once",
  ignore: !hasServices,
  async fn() {
    await using redis = await startRedis();
    await using pg = await startPostgres();
    const database = await createDatabase(pg, "hooks2");
    const hooks = receiver(() => 204);
    const dirs = [await Deno.makeTempDir(), await Deno.makeTempDir()];
    const args = (i: number) =>
      clusterArgs(
        dirs[i],
        redis.url,
        database,
        "--webhook-url",
        hooks.url,
        "--webhook-secret",
        SECRET,
        "--log-level",
        "error",
      );
    try {
      await using a = await spawnServer(args(0), { direct: true });
      await using b = await spawnServer(args(1), { direct: true });
      const ca = await TestClient.open(a.ws("/ws/chat/both?name=ann"));
      const cb = await TestClient.open(b.ws("/ws/chat/both?name=ben"));
      await Promise.all([ca.nextType("welcome"), cb.nextType("welcome")]);
      for (let i = 0; i < 20; i++) {
        (i % 2 ? cb : ca).send({ type: "message", text: `x${i}`, clientMsgId: `k${i}` });
      }
      for (let i = 0; i < 20; i++) await (i % 2 ? cb : ca).next((f) => f.clientMsgId === `k${i}`);
      await hooks.until((rs) => rs.length >= 20);
      await delay(1500); // both dispatchers poll again: any second delivery would arrive now
      assert.equal(hooks.requests.length, 20, "one request per event");
      assert.equal(new Set(hooks.requests.map((r) => r.id)).size, 20);
      await Promise.all([ca.close(), cb.close()]);
    } finally {
      await hooks.close();
      for (const d of dirs) await Deno.remove(d, { recursive: true });
    }
  },
});
