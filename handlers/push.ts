/**
 * `GET /ws/push[?topics=a,b][&time=0][&since=N]` (seed: `test_websocket`): the seed's `{"time": …}` frame at once
 * and on every shared tick (unless `time=0`), plus publications on the topics it follows. Client frames:
 * `{"type":"subscribe","topic","since"?}` and `{"type":"unsubscribe","topic"}`.
 *
 * @module
 */
import { jsonMessages } from "../lib/realtime/frames.ts";
import { HttpError } from "../lib/http/http.ts";
import type { AppRequest } from "../lib/context.ts";
import type { Conn } from "../lib/realtime/hub.ts";
import { FrameError, parseCursor, TOPIC_RE } from "../lib/realtime/protocol.ts";
import { acceptSocket } from "../lib/realtime/accept.ts";
import { forgetTopics, parseTopics, type PushState, subscribeSocket, unfollow } from "../lib/push/topics.ts";

function topicOf(frame: Record<string, unknown>): string {
  const topic = frame.topic;
  if (typeof topic !== "string" || !TOPIC_RE.test(topic)) {
    throw new FrameError("bad_topic", '"topic" must be 1–128 letters, digits, ".", "-", "_" or ":"');
  }
  return topic;
}

/** Upgrades to the push socket. */
export function pushSocket(req: Request, ctx: AppRequest): Response {
  const { app, url } = ctx;
  const time = url.searchParams.get("time") !== "0";
  const topics = parseTopics(url.searchParams.get("topics"));
  if (typeof topics === "string") throw new HttpError(400, "bad_topic", topics);
  const since = parseCursor(url.searchParams.get("since"));
  if (since === null) throw new HttpError(400, "bad_since", 'Query "since" must be a publication id');
  // Subscriptions of one socket run one after another so recoveries never interleave.
  const serial = (conn: Conn<PushState>, fn: () => Promise<void>) => {
    const next = conn.state.chain.then(fn);
    conn.state.chain = next.catch(() => {});
    return next;
  };
  return acceptSocket(req, ctx, {
    endpoint: "push",
    state: { topics: new Set<string>(), chain: Promise.resolve() } satisfies PushState,
    handlers: {
      async open(conn) {
        if (time) app.ticker.add(conn);
        for (const topic of topics) await serial(conn, () => subscribeSocket(app, conn, topic, since));
      },
      message: jsonMessages(app, {
        subscribe(conn, frame) {
          const topic = topicOf(frame);
          const s = frame.since === undefined ? undefined : parseCursor(String(frame.since));
          if (s === null) throw new FrameError("bad_message", '"since" must be a publication id');
          return serial(conn, () => subscribeSocket(app, conn, topic, s));
        },
        unsubscribe(conn, frame) {
          const topic = topicOf(frame);
          return serial(conn, async () => {
            conn.state.topics.delete(topic);
            await unfollow(app, conn, topic);
            conn.sendJson({ type: "unsubscribed", topic });
          });
        },
      }),
      close(conn) {
        app.ticker.remove(conn);
        return forgetTopics(app, conn, conn.state.topics);
      },
    },
  });
}
