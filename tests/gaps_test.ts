/**
 * Stream positions and gaps: a frame that never arrives resyncs its channel; frames that only arrive out of order
 * (two instances publishing at once) do not.
 */
import assert from "node:assert/strict";
import { GAP_GRACE_MS, GapWatch } from "../lib/realtime/gaps.ts";
import { MAX_IN_FLIGHT } from "../lib/realtime/admission.ts";
import { startTestServer, TestClient } from "./helpers.ts";

const at = (seq: number) => ({ stream: "room:r", seq });

Deno.test("GapWatch forgives frames that arrive out of order within the grace time", () => {
  const gaps: string[] = [];
  const watch = new GapWatch((channel, stream, seq) => gaps.push(`${channel}:${stream}:${seq}`));
  watch.observe("chat:r", at(5), 0);
  watch.observe("chat:r", at(7), 10);
  assert.equal(watch.pending, 1, "6 is missing");
  watch.observe("chat:r", at(6), 20);
  assert.equal(watch.pending, 0);
  watch.check(10 + GAP_GRACE_MS + 1);
  assert.deepEqual(gaps, []);
});

Deno.test("GapWatch reports a seq still missing after the grace time, once, and then starts over", () => {
  const gaps: string[] = [];
  const watch = new GapWatch((channel, stream, seq) => gaps.push(`${channel}:${stream}:${seq}`));
  watch.observe("chat:r", at(1), 0);
  watch.observe("chat:r", at(3), 0);
  watch.check(GAP_GRACE_MS - 1);
  assert.deepEqual(gaps, [], "not before the grace time");
  watch.check(GAP_GRACE_MS + 1);
  assert.deepEqual(gaps, ["chat:r:room:r:2"]);
  assert.equal(watch.pending, 0, "the channel is forgotten once reported");
  watch.observe("chat:r", at(9), GAP_GRACE_MS + 2);
  watch.check(10 * GAP_GRACE_MS);
  assert.deepEqual(gaps, ["chat:r:room:r:2"], "tracking starts again from the next frame seen");
});

Deno.test("GapWatch waits out a jump as large as other instances' unpublished messages", () => {
  const gaps: string[] = [];
  const watch = new GapWatch((channel, _stream, seq) => gaps.push(`${channel}:${seq}`));
  watch.observe("chat:a", at(1), 0);
  // Two other instances each hold a full intake of numbered messages they have not published yet.
  const last = 2 + 2 * MAX_IN_FLIGHT;
  watch.observe("chat:a", at(last), 0);
  for (let seq = 2; seq < last; seq++) watch.observe("chat:a", at(seq), 1);
  watch.check(10 * GAP_GRACE_MS);
  assert.deepEqual(gaps, []);
  assert.equal(watch.pending, 0);
});

Deno.test("GapWatch reports a huge jump at once and forgets channels that are left", () => {
  const gaps: string[] = [];
  const watch = new GapWatch((channel, _stream, seq) => gaps.push(`${channel}:${seq}`));
  watch.observe("chat:a", at(1), 0);
  watch.observe("chat:a", at(100_000), 0);
  assert.deepEqual(gaps, ["chat:a:2"]);
  watch.observe("chat:b", at(1), 0);
  watch.observe("chat:b", at(3), 0);
  watch.forget("chat:b");
  assert.equal(watch.pending, 0);
  watch.check(10 * GAP_GRACE_MS);
  assert.deepEqual(gaps, ["chat:a:2"]);
});

Deno.test("a room member whose channel lost a publication is resynced with 1012 and recovers with since", async () => {
  await using server = await startTestServer();
  const member = await TestClient.open(server.ws("/ws/chat/gappy?name=ann"));
  await member.nextType("welcome");
  member.send({ type: "message", text: "one", clientMsgId: "1" });
  const first = await member.nextType("message");
  // A message is stored, but its publication is lost (as when a publish fails after the commit).
  const { store, broker } = server.running.app.ctx;
  const lost = await store.append("room:gappy", { from: { id: "x", name: "bob" }, text: "lost" });
  const third = await store.append("room:gappy", { from: { id: "x", name: "bob" }, text: "three" });
  await broker.publish(
    "chat:gappy",
    JSON.stringify({ type: "message", id: String(third.seq), text: "three" }),
    {
      at: { stream: "room:gappy", seq: third.seq },
    },
  );
  assert.equal((await member.nextType("message")).text, "three");
  const closed = await member.closedWithin(3 * GAP_GRACE_MS);
  assert.equal(closed.code, 1012, `closed with ${closed.code} ${closed.reason}`);
  const again = await TestClient.open(server.ws(`/ws/chat/gappy?name=ann&since=${first.id}`));
  const welcome = await again.nextType("welcome");
  assert.deepEqual((welcome.history as { text: string }[]).map((m) => m.text), ["lost", "three"]);
  assert.equal(lost.seq, Number(first.id) + 1);
  await again.close();
});
