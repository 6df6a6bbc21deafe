/**
 * `GET /api/rooms` and `GET /api/rooms/:room/messages?before=&after=&limit=` (scroll-back and catch-up).
 *
 * @module
 */
import { roomChannel, roomHistory, roomStream } from "../lib/chat/rooms.ts";
import { HttpError, json } from "../lib/http/http.ts";
import type { AppRequest } from "../lib/context.ts";
import { forbidden, identify, isProtected, mayJoin } from "../lib/auth/identity.ts";
import { parseCursor, ROOM_RE } from "../lib/realtime/protocol.ts";

const MAX_ROOMS = 1000;
const MAX_PAGE = 200;

/** Rooms that have history or members, with online counts. */
export async function listRooms(_req: Request, ctx: AppRequest): Promise<Response> {
  const { store, broker } = ctx.app;
  let streams, online;
  try {
    [streams, online] = await Promise.all([
      store.streams("room:", MAX_ROOMS),
      broker.presenceCounts("chat:"),
    ]);
  } catch (err) {
    ctx.app.log.error("rooms_failed", { error: String(err) });
    throw new HttpError(503, "unavailable", "Rooms cannot be listed right now; retry");
  }
  const rooms = new Map<string, { room: string; online: number; lastId: string }>();
  for (const s of streams) {
    const room = s.stream.slice("room:".length);
    if (isProtected(room)) continue;
    rooms.set(room, { room, online: online.get(roomChannel(room)) ?? 0, lastId: String(s.lastSeq) });
  }
  for (const [channel, n] of online) {
    const room = channel.slice("chat:".length);
    if (isProtected(room)) continue;
    if (!rooms.has(room)) rooms.set(room, { room, online: n, lastId: "0" });
  }
  return json({
    rooms: [...rooms.values()].sort((a, b) => b.online - a.online || a.room.localeCompare(b.room)),
  });
}

/** A page of a room's history, oldest first, with `hasMore` (a protected room needs a token that grants it). */
export async function roomMessages(req: Request, ctx: AppRequest): Promise<Response> {
  const room = ctx.params.room ?? "";
  if (!ROOM_RE.test(room)) {
    throw new HttpError(400, "bad_room", `Room "${room.slice(0, 80)}" is not a valid name`);
  }
  const needsToken = isProtected(room) || ctx.app.config.requireAuth;
  const identity = await identify(req, ctx.url, ctx.app.verifier, needsToken);
  if (!mayJoin(identity, room)) throw forbidden(room);
  const q = ctx.url.searchParams;
  const before = parseCursor(q.get("before"));
  const after = parseCursor(q.get("after"));
  const limitRaw = parseCursor(q.get("limit"));
  if (before === null || after === null || limitRaw === null) {
    throw new HttpError(400, "bad_query", '"before", "after" and "limit" must be whole numbers');
  }
  const limit = Math.min(Math.max(limitRaw ?? 50, 1), MAX_PAGE);
  const page = await roomHistory(ctx.app, room, { before, after, limit });
  return json({ room, ...page, lastId: String(await ctx.app.store.lastSeq(roomStream(room))) });
}
