/**
 * `GET /sse/push?topics=a,b` — Server-Sent Events for clients that can't use WebSockets. Each publication is an
 * `event: publication` whose `id` is the stream's cursor over all its topics (`a:12,b:7`); a reconnecting
 * `EventSource` sends it back as `Last-Event-ID` and, with `--topic-history`, gets what it missed.
 *
 * @module
 */
import type { AppContext } from "../lib/context.ts";
import { HttpError } from "../lib/http/http.ts";
import type { AppRequest } from "../lib/context.ts";
import { Holdback } from "../lib/realtime/conn.ts";
import { newConnId, type Subscriber } from "../lib/realtime/hub.ts";
import { follow, forgetTopics, parseTopics, recover, topicOf, userTopic } from "../lib/push/topics.ts";
import { forbidden, identify, mayJoin } from "../lib/auth/identity.ts";
import type { Position } from "../lib/broker/broker.ts";

const KEEPALIVE_MS = 15_000;
const encoder = new TextEncoder();

/** Parses a cursor `a:12,b:7` into topic → last id. */
export function parseCursorHeader(raw: string | null): Map<string, number> {
  const out = new Map<string, number>();
  if (!raw) return out;
  for (const part of raw.split(",")) {
    const i = part.lastIndexOf(":");
    const id = Number(part.slice(i + 1));
    if (i > 0 && Number.isSafeInteger(id) && id >= 0) out.set(part.slice(0, i), id);
  }
  return out;
}

/** One SSE response stream, fanned out to by the hub like a socket. */
class SseStream implements Subscriber {
  readonly id = newConnId();
  readonly endpoint = "sse";
  readonly channels = new Set<string>();
  closed = false;
  readonly openedAt = Date.now();
  /** The client's address (the admin console shows it). */
  readonly ip: string;
  readonly cursor: Map<string, number>;
  #controller: ReadableStreamDefaultController<Uint8Array>;
  #app: AppContext;
  #topics: string[];
  #keepalive: ReturnType<typeof setInterval> | undefined;
  #expiry: ReturnType<typeof setTimeout> | undefined;
  #holdback = new Holdback();

  constructor(
    app: AppContext,
    controller: ReadableStreamDefaultController<Uint8Array>,
    topics: string[],
    cursor: Map<string, number>,
    ip: string,
  ) {
    this.#app = app;
    this.ip = ip;
    this.#controller = controller;
    this.#topics = topics;
    this.cursor = cursor;
  }

  get pendingBytes(): number {
    return -(this.#controller.desiredSize ?? 0);
  }

  #write(text: string): void {
    if (this.closed) return;
    try {
      this.#controller.enqueue(encoder.encode(text));
    } catch {
      this.close();
      return;
    }
    const limit = this.#app.config.maxBufferedBytes;
    if (limit > 0 && this.pendingBytes > limit) {
      this.#app.hub.slowConsumer(this);
      this.close();
    }
  }

  /** Writes a publication frame as an event carrying the updated cursor (held back while recovering). */
  send(frame: string, at?: Position): void {
    if (this.#holdback.keep(frame, at)) return;
    if (at) {
      const topic = topicOf(at.stream);
      // A live publication the recovery already sent is not sent again.
      if (at.seq <= (this.cursor.get(topic) ?? -1)) return;
      this.cursor.set(topic, at.seq);
    }
    const id = [...this.cursor].map(([t, n]) => `${t}:${n}`).join(",");
    this.#write(`id: ${id}\nevent: publication\ndata: ${frame}\n\n`);
  }

  /** Ends the stream at a user token's expiry (an `EventSource` then reconnects, with a fresh token or not). */
  expireAt(ms: number | undefined): void {
    if (ms === undefined) return;
    this.#expiry = setTimeout(() => {
      this.#write(`event: expired\ndata: {}\n\n`);
      this.close();
    }, Math.min(Math.max(0, ms - Date.now()), 2 ** 31 - 1));
  }

  comment(text: string): void {
    this.#write(`: ${text}\n\n`);
  }

  async start(): Promise<void> {
    const app = this.#app;
    app.hub.add(this);
    app.metrics.inc("switchboard_connections_total", { endpoint: "sse" });
    this.#write(`retry: 2000\n\n`);
    // Live publications wait until the missed ones are out, so the order holds and nothing comes twice.
    this.#holdback.hold();
    const recovered: { frame: string; at: Position | undefined }[] = [];
    for (const topic of this.#topics) {
      await follow(app, this, topic);
      const since = this.cursor.get(topic);
      if (since !== undefined) {
        const r = await recover(app, topic, since);
        recovered.push(...r.frames);
        if (r.truncated) this.#write(`event: truncated\ndata: ${JSON.stringify({ topic })}\n\n`);
      }
    }
    for (const { frame, at } of [...recovered, ...this.#holdback.release()]) this.send(frame, at);
    this.#keepalive = setInterval(() => this.comment("keepalive"), KEEPALIVE_MS);
  }

  /** Ends the stream (client gone, shutdown, slow consumer); runs once. */
  close(): void {
    if (!this.#app.hub.remove(this)) return;
    this.#app.guard.close(this.ip);
    clearInterval(this.#keepalive);
    clearTimeout(this.#expiry);
    try {
      this.#controller.close();
    } catch {
      // already closed by the client
    }
    forgetTopics(this.#app, this, this.#topics).catch(() => {});
  }
}

/** Opens an SSE stream (protected topics and `--require-auth` as on the push socket; a token adds `user:<sub>`). */
export async function ssePush(req: Request, ctx: AppRequest): Promise<Response> {
  const { app, url, ip } = ctx;
  const parsed = parseTopics(url.searchParams.get("topics"));
  if (typeof parsed === "string") throw new HttpError(400, "bad_topic", parsed);
  const identity = await identify(req, url, app.verifier, app.config.requireAuth);
  if (parsed.length === 0 && !identity) {
    throw new HttpError(400, "bad_topic", 'Query "topics" must name at least one topic');
  }
  for (const topic of parsed) if (!mayJoin(identity, topic)) throw forbidden(topic);
  const own = identity ? userTopic(identity.sub) : undefined;
  const topics = own && !parsed.includes(own) ? [own, ...parsed] : parsed;
  if (!app.guard.handshakes.take(ip)) {
    app.metrics.inc("switchboard_rejected_upgrades_total", { reason: "handshake_rate" });
    throw new HttpError(429, "rate_limited", "Too many connection attempts; retry later", {
      "retry-after": "1",
    });
  }
  if (!app.guard.open(ip)) {
    app.metrics.inc("switchboard_rejected_upgrades_total", { reason: "conns_per_ip" });
    throw new HttpError(429, "too_many_connections", `Too many open connections from ${ip}`);
  }
  const cursor = parseCursorHeader(req.headers.get("last-event-id") ?? url.searchParams.get("lastEventId"));
  let stream: SseStream;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      stream = new SseStream(app, controller, topics, cursor, ip);
      stream.expireAt(identity?.expiresAt);
      stream.start().catch((err) => {
        app.log.error("sse_failed", { conn: stream.id, error: String(err) });
        stream.close();
      });
    },
    cancel() {
      stream.close();
    },
  }, { highWaterMark: 0 });
  return new Response(body, {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-accel-buffering": "no",
    },
  });
}
