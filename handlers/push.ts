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
import { forbidden, identify, mayJoin } from "../lib/auth/identity.ts";
import { acceptSocket, preflight } from "../lib/realtime/accept.ts";
import {
  forgetTopics,
  parseTopics,
  type PushState,
  subscribeSocket,
  unfollow,
  userTopic,
} from "../lib/push/topics.ts";

function topicOf(frame: Record<string, unknown>): string {
  const topic = frame.topic;
  if (typeof topic !== "string" || !TOPIC_RE.test(topic)) {
    throw new FrameError("bad_topic", '"topic" must be 1–128 letters, digits, ".", "-", "_" or ":"');
  }
  return topic;
}

/**
 * Upgrades to the push socket. With a user token the socket follows `user:<sub>` without asking; protected
 * topics need a token that grants them (403 before the upgrade); with `--require-auth`, topics need a token.
 */
export async function pushSocket(req: Request, ctx: AppRequest): Promise<Response> {
  const { app, url } = ctx;
  const time = url.searchParams.get("time") !== "0";
  const topics = parseTopics(url.searchParams.get("topics"));
  if (typeof topics === "string") throw new HttpError(400, "bad_topic", topics);
  const since = parseCursor(url.searchParams.get("since"));
  if (since === null) throw new HttpError(400, "bad_since", 'Query "since" must be a publication id');
  preflight(req, ctx);
  // The time-only push stays open for diagnostics, as the seed's test page uses it.
  const identity = await identify(req, url, app.verifier, app.config.requireAuth && topics.length > 0);
  for (const topic of topics) if (!mayJoin(identity, topic)) throw forbidden(topic);
  const own = identity ? userTopic(identity.sub) : undefined;
  // Subscriptions of one socket run one after another so recoveries never interleave.
  const serial = (conn: Conn<PushState>, fn: () => Promise<void>) => {
    const next = conn.state.chain.then(fn);
    conn.state.chain = next.catch(() => {});
    return next;
  };
  return acceptSocket(req, ctx, {
    endpoint: "push",
    preflighted: true,
    identity,
    state: { topics: new Set<string>(), chain: Promise.resolve() } satisfies PushState,
    handlers: {
      async open(conn) {
        if (time) app.ticker.add(conn);
        if (own) {
          // The socket is in its user's channel already (accept.ts); say so like any subscription.
          conn.state.topics.add(own);
          conn.sendJson({ type: "subscribed", topic: own });
        }
        for (const topic of topics) await serial(conn, () => subscribeSocket(app, conn, topic, since));
      },
      message: jsonMessages(app, {
        subscribe(conn, frame) {
          const topic = topicOf(frame);
          if (!mayJoin(conn.identity, topic) || (app.config.requireAuth && !conn.identity)) {
            throw new FrameError("forbidden", `Topic "${topic}" needs a user token that grants it`);
          }
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
