/**
 * `GET /ws/support/visitor[?token=T]`: the visitor's chat with customer service. An unknown or missing token
 * starts a new visitor; the visitor only ever reaches its own conversation, whatever ids it sends.
 *
 * @module
 */
import { jsonMessages } from "../lib/dispatch.ts";
import type { RequestContext } from "../lib/http.ts";
import { acceptSocket } from "../lib/socket_route.ts";
import type { VisitorState } from "../lib/support.ts";

/** Upgrades to a visitor socket. */
export async function visitorSocket(req: Request, ctx: RequestContext): Promise<Response> {
  const { app, url } = ctx;
  const { support } = app;
  // Origin and limits are checked by acceptSocket before any visitor is created, so refuse early on those.
  if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") return acceptSocket(req, ctx, NOOP);
  const { token, visitor } = await support.visitorFor(url.searchParams.get("token") ?? undefined);
  const conversation = await support.conversationFor(visitor);
  const state: VisitorState & { token: string } = {
    visitor,
    conversationId: conversation.id,
    lastTypingAt: 0,
    token,
  };
  return acceptSocket(req, ctx, {
    endpoint: "support_visitor",
    state: state as unknown as Record<string, unknown>,
    handlers: {
      open: (conn) => support.visitorOpen(conn, token),
      message: jsonMessages(app, {
        message: (conn, frame) => support.visitorMessage(conn, frame),
        typing: (conn) => support.visitorTyping(conn),
        profile: (conn, frame) => support.visitorProfile(conn, frame),
        rate: (conn, frame) => support.visitorRate(conn, frame),
        read: (conn, frame) => support.visitorRead(conn, frame),
      }),
    },
  });
}

const NOOP = { endpoint: "support_visitor", handlers: {} };
