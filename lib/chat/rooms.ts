/**
 * Chat rooms: presence, history on entry, `since` recovery, and durable messages delivered only after they are
 * stored. Rooms exist by use: an empty room holds no memory, only its stored history.
 *
 * Channels: room `r` publishes on broker channel `chat:r`; messages are stored in stream `room:r`.
 *
 * @module
 */
import { publicUser } from "../auth/identity.ts";
import type { PresenceEntry } from "../broker/broker.ts";
import type { Services } from "../services.ts";
import type { Pipelined } from "../realtime/frames.ts";
import type { Conn } from "../realtime/hub.ts";
import {
  FrameError,
  messageFrame,
  must,
  validClientMsgId,
  validText,
  type WireMessage,
} from "../realtime/protocol.ts";
import type { StoredMessage } from "../store/store.ts";

/** The broker channel of a room. */
export const roomChannel = (room: string): string => `chat:${room}`;
/** The store stream of a room. */
export const roomStream = (room: string): string => `room:${room}`;

/** A chat message on the wire. */
export type ChatMessage = WireMessage<{ room: string }>;

/** The wire form of a stored room message. */
export function chatMessage(room: string, m: StoredMessage): ChatMessage {
  return messageFrame(m, { room });
}

/** What a chat socket knows about itself. */
export interface ChatState {
  room: string;
  name: string;
  since: number | undefined;
  lastTypingAt: number;
  /** The room had no history when this socket joined: its first message may start the room (a per-IP limit). */
  mayBeNew: boolean;
}

/** A member of a room as others see it: a verified user (one member for all its sockets) or a named socket. */
export type Member = { id: string; name: string; verified?: true; info?: unknown };

/** Who a chat socket is: its token's user, or (anonymous) the socket itself under its `?name=`. */
export function memberOf(conn: Conn<ChatState>): Member {
  return conn.identity ? publicUser(conn.identity) : { id: conn.id, name: conn.state.name };
}

const entryOf = (conn: Conn<ChatState>, m: Member) => ({
  connId: conn.id,
  id: m.id,
  name: m.name,
  ...(m.verified ? { verified: true } : {}),
});

const TYPING_INTERVAL_MS = 1000;

/** Reads a page of a room's history: `{messages, hasMore}`, oldest first. */
export async function roomHistory(
  app: Services,
  room: string,
  q: { before?: number; after?: number; limit: number },
): Promise<{ messages: ChatMessage[]; hasMore: boolean }> {
  const rows = await app.store.history(roomStream(room), { ...q, limit: q.limit + 1 });
  const hasMore = rows.length > q.limit;
  // With `after` the oldest come first and the extra row is the last; otherwise the extra row is the first.
  const page = hasMore ? (q.after !== undefined ? rows.slice(0, q.limit) : rows.slice(1)) : rows;
  return { messages: page.map((m) => chatMessage(room, m)), hasMore };
}

/** Joins a socket to its room: presence, join notice, then the welcome with history. */
export async function joinRoom(app: Services, conn: Conn<ChatState>): Promise<void> {
  const { broker, hub, config } = app;
  const s = conn.state;
  const channel = roomChannel(s.room);
  const member = memberOf(conn);
  // Hold live frames until the welcome is out, so nothing is lost between the history read and the subscription.
  conn.hold();
  await hub.join(conn, channel);
  // All sockets of one user are one member: only the first announces a join.
  const already = conn.identity ? (await broker.presence(channel)).some((e) => e.id === member.id) : false;
  await broker.presenceAdd(channel, entryOf(conn, member));
  if (!already) await broker.publish(channel, JSON.stringify({ type: "join", member }), { except: conn.id });
  const [members, page] = await Promise.all([
    broker.presence(channel),
    s.since !== undefined
      ? roomHistory(app, s.room, { after: s.since, limit: config.historySize })
      : roomHistory(app, s.room, { limit: config.historySize }),
  ]);
  const welcome: Record<string, unknown> = {
    type: "welcome",
    room: s.room,
    you: member,
    members: uniqueMembers(members),
    history: page.messages,
  };
  if (s.since !== undefined && page.hasMore) welcome.truncated = true;
  s.mayBeNew = page.messages.length === 0;
  const lastId = page.messages.length ? Number(page.messages[page.messages.length - 1].id) : (s.since ?? -1);
  // A message published while we read may also be in the history: send it once, even when its live copy comes
  // after the welcome (from Redis). A truncated history sends every live one.
  conn.release(
    [JSON.stringify(welcome)],
    page.hasMore ? undefined : { stream: roomStream(s.room), seq: lastId },
  );
}

/** Counts the rooms with members here for `/metrics`. */
export function registerChatMetrics(app: Pick<Services, "metrics" | "hub">): void {
  app.metrics.gauge(
    "switchboard_rooms",
    "Chat rooms with members on this instance",
    () => app.hub.channelNames("chat:").length,
  );
}

/** Presence entries as room members: one per id (a user's sockets share it), in join order. */
function uniqueMembers(entries: readonly PresenceEntry[]): Member[] {
  const out = new Map<string, Member>();
  for (const e of entries) {
    if (!out.has(e.id)) {
      out.set(e.id, e.verified ? { id: e.id, name: e.name, verified: true } : { id: e.id, name: e.name });
    }
  }
  return [...out.values()];
}

/** Members of a dead instance left a room's presence (cluster mode): tell the room who is gone for good. */
export async function membersExpired(
  app: Pick<Services, "broker">,
  channel: string,
  entries: readonly PresenceEntry[],
): Promise<void> {
  if (!channel.startsWith("chat:")) return;
  const staying = new Set((await app.broker.presence(channel)).map((e) => e.id));
  const gone = uniqueMembers(entries.filter((e) => !staying.has(e.id)));
  await Promise.all(
    gone.map((member) => app.broker.publish(channel, JSON.stringify({ type: "leave", member }))),
  );
}

/** Removes a closed socket from its room's presence and tells the others (a user leaves with its last socket). */
export async function leaveRoom(app: Services, conn: Conn<ChatState>): Promise<void> {
  const channel = roomChannel(conn.state.room);
  const member = memberOf(conn);
  await app.broker.presenceRemove(channel, conn.id);
  if (conn.identity && (await app.broker.presence(channel)).some((e) => e.id === member.id)) return;
  await app.broker.publish(channel, JSON.stringify({ type: "leave", member }));
}

/**
 * Stores a member's message, then publishes it to the room (sender included). The append is queued before this
 * returns, so a socket's messages are numbered in the order sent; the commit and the publication finish in
 * `settled` while the socket's next frame is taken.
 */
export function postMessage(
  app: Services,
  conn: Conn<ChatState>,
  frame: Record<string, unknown>,
): Pipelined | Promise<Pipelined> {
  const s = conn.state;
  const text = must(validText(frame.text));
  const clientMsgId = must(validClientMsgId(frame.clientMsgId));
  const post = (): Pipelined => {
    const started = performance.now();
    // A message resent after a reconnect is acknowledged to its sender again, not stored twice (the store
    // recognises its clientMsgId atomically).
    const from = conn.identity
      ? { id: conn.identity.sub, name: conn.identity.name, role: "user" as const }
      : { id: conn.id, name: s.name };
    const stored = app.store.append(
      roomStream(s.room),
      { from, text, clientMsgId },
      app.webhooks.emit("chat.message.created", (m: StoredMessage) => ({
        room: s.room,
        message: chatMessage(s.room, m),
      })),
    );
    return { settled: publishStored(app, conn, s, stored, started) };
  };
  // Only a socket that joined an empty room pays for the check (and awaits before its append).
  return s.mayBeNew ? admitNewRoom(app, conn, s).then(post) : post();
}

/** Logs a store failure; the sender gets `unavailable` and may send again. */
function storeFailed(app: Services, conn: Conn, err: unknown): FrameError {
  app.log.error("store_failed", { conn: conn.id, error: String(err) });
  return new FrameError("unavailable", "The message could not be stored; send it again");
}

/** A first message in an empty room starts the room: at most `--new-rooms-per-ip` a minute from one IP. */
async function admitNewRoom(app: Services, conn: Conn<ChatState>, s: ChatState): Promise<void> {
  let last: number;
  try {
    last = await app.store.lastSeq(roomStream(s.room));
  } catch (err) {
    throw storeFailed(app, conn, err);
  }
  if (last > 0) {
    s.mayBeNew = false;
    return;
  }
  if (!app.guard.newRooms.take(conn.ip)) {
    app.metrics.inc("switchboard_errors_total", { code: "rate_limited" });
    throw new FrameError("rate_limited", "Too many new rooms from your address; try again in a minute");
  }
  s.mayBeNew = false;
}

async function publishStored(
  app: Services,
  conn: Conn<ChatState>,
  s: ChatState,
  pending: Promise<StoredMessage>,
  started: number,
): Promise<void> {
  let stored: StoredMessage;
  try {
    stored = await pending;
  } catch (err) {
    throw storeFailed(app, conn, err);
  }
  if (stored.duplicate) return conn.sendJson(chatMessage(s.room, stored));
  try {
    await app.broker.publish(roomChannel(s.room), JSON.stringify(chatMessage(s.room, stored)), {
      at: { stream: stored.stream, seq: stored.seq },
    });
  } catch (err) {
    app.log.error("publish_failed", { conn: conn.id, error: String(err) });
    // Stored, so members catch up with `since` when they reconnect; the sender learns it did not go out live.
    throw new FrameError(
      "unavailable",
      `Message ${stored.seq} was stored but not delivered live; it will be on reconnect`,
    );
  }
  app.metrics.observe("switchboard_publish_latency_ms", performance.now() - started, { endpoint: "chat" });
}

/** Tells the others this member is typing (at most once a second; never stored). */
export async function typing(app: Services, conn: Conn<ChatState>): Promise<void> {
  const s = conn.state;
  const now = Date.now();
  if (now - s.lastTypingAt < TYPING_INTERVAL_MS) return;
  s.lastTypingAt = now;
  await app.broker.publish(
    roomChannel(s.room),
    JSON.stringify({ type: "typing", from: memberOf(conn) }),
    { except: conn.id },
  );
}
