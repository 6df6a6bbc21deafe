/**
 * `GET /ws/chat/:room?name=…[&since=…]`: a chat room socket. Room, name and cursor are checked before the
 * upgrade (400 with a clear text).
 *
 * @module
 */
import { type ChatState, joinRoom, leaveRoom, postMessage, typing } from "../lib/chat/rooms.ts";
import { jsonMessages } from "../lib/realtime/frames.ts";
import { HttpError } from "../lib/http/http.ts";
import type { AppRequest } from "../lib/context.ts";
import { parseCursor, ROOM_RE, validName } from "../lib/realtime/protocol.ts";
import { forbidden, identify, mayJoin } from "../lib/auth/identity.ts";
import { acceptSocket, preflight } from "../lib/realtime/accept.ts";

/**
 * Upgrades to a chat room socket. With a user token the member is the verified user and `?name=` is ignored; a
 * protected room (`private-…`) needs a token that grants it (403); `--require-auth` refuses anonymous members.
 */
export async function chatSocket(req: Request, ctx: AppRequest): Promise<Response> {
  const room = ctx.params.room ?? "";
  if (!ROOM_RE.test(room)) {
    throw new HttpError(
      400,
      "bad_room",
      `Room "${room.slice(0, 80)}" must be 1–64 letters, digits, "-", "_" or "."`,
    );
  }
  const since = parseCursor(ctx.url.searchParams.get("since"));
  if (since === null) {
    throw new HttpError(400, "bad_since", 'Query "since" must be a message id (a whole number)');
  }
  const app = ctx.app;
  preflight(req, ctx);
  const identity = await identify(req, ctx.url, app.verifier, app.config.requireAuth);
  if (!mayJoin(identity, room)) throw forbidden(room);
  let name: string;
  if (identity) name = identity.name;
  else {
    const checked = validName(ctx.url.searchParams.get("name") ?? "");
    if (!checked.ok) {
      throw new HttpError(400, "bad_name", `Query "name": ${checked.message} (1–32 characters)`);
    }
    name = checked.value;
  }
  const state: ChatState = { room, name, since, lastTypingAt: 0, mayBeNew: false };
  return acceptSocket(req, ctx, {
    endpoint: "chat",
    preflighted: true,
    identity,
    state,
    handlers: {
      open: (conn) => joinRoom(app, conn),
      message: jsonMessages(app, {
        message: (conn, frame) => postMessage(app, conn, frame),
        typing: (conn) => typing(app, conn),
      }),
      close: (conn) => leaveRoom(app, conn),
    },
  });
}
