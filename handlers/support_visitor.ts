/**
 * `GET /ws/support/visitor[?token=T]`: the visitor's chat with customer service. An unknown or missing token
 * starts a new visitor; the visitor only ever reaches its own conversation, whatever ids it sends.
 *
 * @module
 */
import { jsonMessages } from "../lib/realtime/frames.ts";
import type { AppRequest } from "../lib/context.ts";
import { acceptSocket, preflight } from "../lib/realtime/accept.ts";
import type { VisitorState } from "../lib/support/support.ts";
import { identify } from "../lib/auth/identity.ts";
import { HttpError, requestLang } from "../lib/http/http.ts";

/** Upgrades to a visitor socket. */
export async function visitorSocket(req: Request, ctx: AppRequest): Promise<Response> {
  const { app, url } = ctx;
  const { support } = app;
  // Origin and rate checks first: a refused request must not touch the store.
  preflight(req, ctx);
  // Visitors may stay anonymous (a shop's are); a user token (`?jwt=` or Authorization) identifies the visitor,
  // and a bad one is refused with 401 before anything is stored.
  const jwt = url.searchParams.get("jwt");
  const identity = jwt
    ? await app.verifier.verify(jwt).catch((err) => {
      throw new HttpError(401, "unauthorized", (err as Error).message);
    })
    : await identify(req, url, app.verifier, false);
  const state: VisitorState = {
    ...await support.visitors.visitorFor(url.searchParams.get("token") ?? undefined, identity),
    lastTypingAt: 0,
    lang: requestLang(req, url),
  };
  return acceptSocket(req, ctx, {
    endpoint: "support_visitor",
    preflighted: true,
    // Like every socket with a token: `auth` first, closed at exp, and in the user's channel.
    identity,
    state,
    handlers: {
      open: (conn) => support.visitors.visitorOpen(conn),
      close: (conn) => support.visitors.visitorClose(conn),
      message: jsonMessages(app, {
        message: (conn, frame) => support.visitors.visitorMessage(conn, frame),
        typing: (conn) => support.visitors.visitorTyping(conn),
        context: (conn, frame) => support.visitors.visitorContext(conn, frame),
        profile: (conn, frame) => support.visitors.visitorProfile(conn, frame),
        rate: (conn, frame) => support.visitors.visitorRate(conn, frame),
        read: (conn, frame) => support.visitors.visitorRead(conn, frame),
      }),
    },
  });
}
