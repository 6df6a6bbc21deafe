/**
 * Topics: publications from the HTTP API and the scheduler to `/ws/push` and `/sse/push` subscribers.
 *
 * A publication gets an id that increases per topic (the store's stream seq, across instances). With
 * `--topic-history N` the last N are kept, so a subscriber can recover with `since`. Subscribers are counted in the
 * broker's presence, so `delivered` is right in cluster mode too.
 *
 * @module
 */
import type { Services } from "../services.ts";
import type { Position } from "../broker/broker.ts";
import type { Conn, Subscriber } from "../realtime/hub.ts";
import { FrameError, TOPIC_RE } from "../realtime/protocol.ts";

/** Broker channel and store stream of a topic. */
export const topicChannel = (topic: string): string => `topic:${topic}`;
/** A user's own topic: every connection with that user's token follows it; `{"user"}` publishes go there. */
export const userTopic = (sub: string): string => `user:${sub}`;
/** The topic of a topic channel or stream (`topic:orders` → `orders`). */
export const topicOf = (channel: string): string => channel.slice("topic:".length);

/** Most topics one socket or stream may follow. */
export const MAX_TOPICS_PER_SUBSCRIBER = 100;

/** The encoded publication frame; `dataJson` is already JSON, so it is spliced in without re-encoding. */
export function publicationFrame(topic: string, id: number, ts: number, dataJson: string): string {
  return `{"type":"publication","topic":${JSON.stringify(topic)},"data":${dataJson},"id":"${id}","ts":${ts}}`;
}

/** Parses a comma-separated topic list; throws a message naming the bad topic. */
export function parseTopics(raw: string | null): string[] | string {
  if (raw === null || raw.trim() === "") return [];
  const topics = [...new Set(raw.split(",").map((t) => t.trim()).filter((t) => t !== ""))];
  const bad = topics.find((t) => !TOPIC_RE.test(t));
  if (bad !== undefined) {
    return `Topic "${bad.slice(0, 140)}" must be 1–128 letters, digits, ".", "-", "_" or ":"`;
  }
  if (topics.length > MAX_TOPICS_PER_SUBSCRIBER) return `At most ${MAX_TOPICS_PER_SUBSCRIBER} topics`;
  return topics;
}

/** What was published. */
export interface Published {
  topic: string;
  id: string;
  delivered: number;
}

/** Stores (or numbers) a publication, then publishes it to every subscriber in the cluster. */
export async function publish(app: Services, topic: string, dataJson: string): Promise<Published> {
  return (await publishMany(app, [{ topic, dataJson }]))[0];
}

/**
 * Publishes a batch in its order: every publication stored in one group commit (or numbered), then sent to
 * the broker in order, so ids follow the batch order within each topic. One admission for the whole batch.
 */
export async function publishMany(
  app: Services,
  items: readonly { topic: string; dataJson: string }[],
): Promise<Published[]> {
  const started = performance.now();
  // Backpressure, as for socket frames (see lib/realtime/admission.ts).
  const waiting = app.hub.admission.admit();
  if (waiting) {
    await waiting;
    app.hub.admission.resumed();
  }
  try {
    return await numberAndPublish(app, items, started);
  } finally {
    app.hub.admission.done();
  }
}

const API_AUTHOR = { id: "api", name: "api", role: "api" } as const;
/** Frame bytes a batch hands to the broker before the event loop gets a turn (Deno's own socket buffer). */
const YIELD_BYTES = 256 * 1024;
/** The longest a batch waits for the sockets' queues at one such turn. */
const MAX_YIELD_MS = 20;

async function numberAndPublish(
  app: Services,
  items: readonly { topic: string; dataJson: string }[],
  started: number,
): Promise<Published[]> {
  const { store, broker, config, metrics } = app;
  const channels = items.map((item) => topicChannel(item.topic));
  let numbered: { id: number; ts: number }[];
  if (config.topicHistory > 0) {
    // Appended in one event-loop turn: the store commits them together, in this order.
    const stored = await Promise.all(
      channels.map((channel, i) => store.append(channel, { from: API_AUTHOR, data: items[i].dataJson })),
    );
    numbered = stored.map((m) => ({ id: m.seq, ts: m.ts }));
    // Trimming when a topic passes a tenth publication keeps at least N without a delete per publish.
    const trim = new Set<string>();
    stored.forEach((m, i) => m.seq % 10 === 0 && trim.add(channels[i]));
    await Promise.all([...trim].map((channel) => store.trim(channel, config.topicHistory)));
  } else {
    const ids = await Promise.all(channels.map((channel) => store.nextSeq(channel)));
    const ts = Date.now();
    numbered = ids.map((id) => ({ id, ts }));
  }
  const distinct = [...new Set(channels)];
  const counts = new Map(
    await Promise.all(distinct.map(async (c) => [c, await broker.presenceCount(c)] as const)),
  );
  const fanOut = () => sendInOrder(app, items, channels, numbered);
  if (!broker.inline) {
    // A cluster broker's publish is Redis taking the frame; awaited, so a failure still answers 503.
    await fanOut();
  } else {
    // With the memory broker, publishing is this process's fan-out, in a later turn, in publication order (see
    // Broker.inline). A small publication is answered at once: its answer does not wait behind thousands of
    // socket writes. A batch big enough to need turns for the sockets is answered when it is out, so its
    // publisher cannot pile up more while the sockets' queues are full.
    const sent = new Promise<void>((resolve, reject) => app.hub.later(() => fanOut().then(resolve, reject)));
    const bytes = items.reduce((n, item) => n + item.dataJson.length, 0);
    if (bytes >= YIELD_BYTES) await sent;
    else sent.catch((err) => app.log.error("publish_failed", { error: String(err) }));
  }
  metrics.inc("switchboard_publications_total", {}, items.length);
  metrics.observe("switchboard_publish_latency_ms", performance.now() - started, { endpoint: "publish" });
  return items.map((item, i) => ({
    topic: item.topic,
    id: String(numbered[i].id),
    delivered: counts.get(channels[i]) ?? 0,
  }));
}

/**
 * Hands a batch's frames to the broker in order. Past YIELD_BYTES of frames the event loop gets a turn, so
 * sockets write out what they hold before more comes: a big batch must not land in a healthy subscriber's
 * queue at once (past --max-buffered-bytes it would be cut as a slow consumer).
 */
async function sendInOrder(
  app: Services,
  items: readonly { topic: string; dataJson: string }[],
  channels: readonly string[],
  numbered: readonly { id: number; ts: number }[],
): Promise<void> {
  let sinceYield = 0;
  for (const [i, item] of items.entries()) {
    const frame = publicationFrame(item.topic, numbered[i].id, numbered[i].ts, item.dataJson);
    await app.broker.publish(channels[i], frame, { at: { stream: channels[i], seq: numbered[i].id } });
    sinceYield += frame.length;
    if (sinceYield >= YIELD_BYTES && i < items.length - 1) {
      sinceYield = 0;
      // And while the sockets' own queues still hold that much, a little longer (never long: a stuck peer is
      // cut by its own limits, not waited for).
      const until = performance.now() + MAX_YIELD_MS;
      do await new Promise((resolve) => setTimeout(resolve, 0)); while (
        app.hub.admission.queued > YIELD_BYTES && performance.now() < until
      );
    }
  }
}

/** What recovery found for one topic. */
export interface Recovery {
  frames: { frame: string; at: Position }[];
  truncated: boolean;
  lastId: number;
}

/**
 * Publications of `topic` after `since`, as frames: the newest `--topic-history` of them at most, with
 * `truncated` when older ones are gone (trimmed, or more than the history keeps).
 */
export async function recover(app: Services, topic: string, since: number): Promise<Recovery> {
  const { store, config } = app;
  const channel = topicChannel(topic);
  const lastSeq = await store.lastSeq(channel);
  if (since >= lastSeq) return { frames: [], truncated: false, lastId: lastSeq };
  if (config.topicHistory === 0) return { frames: [], truncated: true, lastId: lastSeq };
  const from = Math.max(since, lastSeq - config.topicHistory);
  const rows = await store.history(channel, { after: from, limit: config.topicHistory });
  const truncated = from > since || rows.length === 0 || rows[0].seq !== from + 1;
  return {
    frames: rows.map((m) => ({
      frame: publicationFrame(topic, m.seq, m.ts, m.data ?? "null"),
      at: { stream: channel, seq: m.seq },
    })),
    truncated,
    lastId: lastSeq,
  };
}

/** Subscribes a socket or stream to a topic (idempotent), joining presence so publishers count it. */
export async function follow(app: Services, sub: Subscriber, topic: string): Promise<boolean> {
  const channel = topicChannel(topic);
  if (sub.channels.has(channel)) return false;
  if (sub.channels.size >= MAX_TOPICS_PER_SUBSCRIBER) {
    throw new FrameError("bad_topic", `At most ${MAX_TOPICS_PER_SUBSCRIBER} topics per connection`);
  }
  await app.hub.join(sub, channel);
  await app.broker.presenceAdd(channel, { connId: sub.id, id: sub.id, name: sub.endpoint });
  return true;
}

/** Unsubscribes from a topic. */
export async function unfollow(app: Services, sub: Subscriber, topic: string): Promise<void> {
  const channel = topicChannel(topic);
  app.hub.leave(sub, channel);
  await app.broker.presenceRemove(channel, sub.id);
}

/** Removes a closed subscriber from the presence of every topic it followed. */
export async function forgetTopics(
  app: Services,
  sub: Subscriber,
  topics: Iterable<string>,
): Promise<void> {
  await Promise.all([...topics].map((t) => app.broker.presenceRemove(topicChannel(t), sub.id)));
}

/** What a push socket knows: the topics it follows, and the chain its subscriptions run in, one at a time. */
export interface PushState {
  topics: Set<string>;
  chain: Promise<void>;
}

/**
 * Subscribes a WebSocket to a topic and replies `{"type":"subscribed","topic","lastId"}`; with `since`, the missed
 * publications follow it (and `"truncated":true` when some are gone), before any live one, none twice.
 */
export async function subscribeSocket(
  app: Services,
  conn: Conn<PushState>,
  topic: string,
  since: number | undefined,
): Promise<void> {
  const topics = conn.state.topics;
  if (since === undefined) {
    const added = await follow(app, conn, topic);
    topics.add(topic);
    if (added) conn.sendJson({ type: "subscribed", topic });
    return;
  }
  conn.hold();
  try {
    await follow(app, conn, topic);
    topics.add(topic);
    const r = await recover(app, topic, since);
    const reply: Record<string, unknown> = { type: "subscribed", topic, lastId: String(r.lastId) };
    if (r.truncated) reply.truncated = true;
    const stream = topicChannel(topic);
    conn.release([JSON.stringify(reply), ...r.frames.map((f) => f.frame)], {
      stream,
      seq: r.lastId,
    });
  } catch (err) {
    conn.release([]);
    throw err;
  }
}
