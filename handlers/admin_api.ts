/**
 * The admin console's API (issue #14), for operators (an admin's session, or an API key; other agents get 403):
 *
 * - `GET /api/admin/connections`: every instance's connections, asked through the broker (`partial` when an
 *   instance did not answer in time); `GET /api/admin/connections/:id` one of them;
 *   `POST /api/admin/connections/:id/disconnect` closes it with 4005 on whichever instance holds it.
 * - `GET /api/admin/rooms`, `GET /api/admin/topics`: rooms with their members and topics with their subscribers,
 *   cluster-wide from the broker's presence; `POST /api/admin/rooms/:room/kick` `{"member"}` closes every socket
 *   of that member in the room (the others see it leave).
 * - `GET /api/admin/support`: the queue and the agents, with who is connected.
 * - `POST /api/admin/publish` `{"topic","data"}`: a test publication.
 * - `GET /api/admin/audit?before=&limit=`: the audit log, newest first.
 *
 * Every action is written to the audit log (`lib/admin/audit.ts`).
 *
 * @module
 */
import { audit } from "../lib/admin/audit.ts";
import type { AppRequest } from "../lib/context.ts";
import { HttpError, json, readJson } from "../lib/http/http.ts";
import { publish } from "../lib/push/topics.ts";
import { ROOM_RE } from "../lib/realtime/protocol.ts";
import type { AuditEntry } from "../lib/store/store.ts";
import { requireOperator } from "../lib/support/agents.ts";
import { validPublication } from "./publish.ts";

/** Most rooms or topics listed. */
const MAX_CHANNELS = 500;
/** A connection id: an instance prefix and a counter (`lib/realtime/conn.ts`). */
const CONN_ID_RE = /^[0-9a-f]{8}-[0-9a-z]{1,13}$/;

function connId(ctx: AppRequest): string {
  const id = ctx.params.id ?? "";
  if (!CONN_ID_RE.test(id)) {
    throw new HttpError(400, "bad_request", `"${id.slice(0, 40)}" is not a connection id (like 1a2b3c4d-5)`);
  }
  return id;
}

function brokerDown(ctx: AppRequest, err: unknown): HttpError {
  ctx.app.log.error("admin_broker_failed", { path: ctx.url.pathname, error: String(err) });
  return new HttpError(503, "unavailable", "The broker cannot be reached; retry");
}

/** Every instance's connections. */
export async function adminConnections(req: Request, ctx: AppRequest): Promise<Response> {
  await requireOperator(ctx.app, req, ctx.url);
  const answers = await ctx.app.admin.list().catch((err) => {
    throw brokerDown(ctx, err);
  });
  return json({
    instance: ctx.app.admin.instance,
    instances: answers.replies.map((r) => ({ instance: r.instance, connections: r.result })),
    expected: answers.expected,
    partial: answers.partial,
  });
}

/** One connection, wherever it is. */
export async function adminConnection(req: Request, ctx: AppRequest): Promise<Response> {
  await requireOperator(ctx.app, req, ctx.url);
  const id = connId(ctx);
  const view = await ctx.app.admin.inspect(id).catch((err) => {
    throw brokerDown(ctx, err);
  });
  if (!view) throw new HttpError(404, "not_found", `No open connection "${id}"`);
  return json({ connection: view });
}

/** Closes one connection (4005), on whichever instance holds it. */
export async function adminDisconnect(req: Request, ctx: AppRequest): Promise<Response> {
  const actor = await requireOperator(ctx.app, req, ctx.url);
  const id = connId(ctx);
  const [closed] = await ctx.app.admin.close([id]).catch((err) => {
    throw brokerDown(ctx, err);
  });
  if (!closed) throw new HttpError(404, "not_found", `No open connection "${id}"`);
  await audit(ctx.app, actor, "connection.disconnect", id, {
    instance: closed.instance,
    endpoint: closed.endpoint,
    ...(closed.user ? { user: closed.user.sub } : {}),
  });
  return json({ closed });
}

/** Channels with a prefix and their presence entries, cluster-wide. */
async function presenceOf(ctx: AppRequest, prefix: string) {
  const { broker } = ctx.app;
  try {
    const counts = await broker.presenceCounts(prefix);
    const channels = [...counts.keys()].sort().slice(0, MAX_CHANNELS);
    const entries = await Promise.all(channels.map((c) => broker.presence(c)));
    return { channels, entries, truncated: counts.size > channels.length };
  } catch (err) {
    throw brokerDown(ctx, err);
  }
}

/** Rooms with their members (a member is a user or a named socket; `sockets` are its connections). */
export async function adminRooms(req: Request, ctx: AppRequest): Promise<Response> {
  await requireOperator(ctx.app, req, ctx.url);
  const { channels, entries, truncated } = await presenceOf(ctx, "chat:");
  const rooms = channels.map((channel, i) => {
    const members = new Map<string, { id: string; name: string; verified?: true; sockets: string[] }>();
    for (const e of entries[i]) {
      const m = members.get(e.id) ??
        { id: e.id, name: e.name, ...(e.verified ? { verified: true as const } : {}), sockets: [] };
      m.sockets.push(e.connId);
      members.set(e.id, m);
    }
    return { room: channel.slice("chat:".length), members: [...members.values()] };
  }).filter((r) => r.members.length > 0);
  return json({ rooms, truncated });
}

/** Topics with their subscribers (sockets and SSE streams). */
export async function adminTopics(req: Request, ctx: AppRequest): Promise<Response> {
  await requireOperator(ctx.app, req, ctx.url);
  const { channels, entries, truncated } = await presenceOf(ctx, "topic:");
  const topics = channels.map((channel, i) => ({
    topic: channel.slice("topic:".length),
    subscribers: entries[i].map((e) => ({ connId: e.connId, endpoint: e.name })),
  })).filter((t) => t.subscribers.length > 0);
  return json({ topics, truncated });
}

/** Removes a member from a room: every socket of theirs in it closes with 4005, and the room sees them leave. */
export async function adminKick(req: Request, ctx: AppRequest): Promise<Response> {
  const actor = await requireOperator(ctx.app, req, ctx.url);
  const room = ctx.params.room ?? "";
  if (!ROOM_RE.test(room)) throw new HttpError(400, "bad_room", `"${room.slice(0, 80)}" is not a room name`);
  const body = await readJson(req, 4096) as Record<string, unknown> | null;
  const member = body?.member;
  if (typeof member !== "string" || member === "" || member.length > 200) {
    throw new HttpError(
      400,
      "bad_request",
      'Send {"member": "<member id>"} (the id from GET /api/admin/rooms)',
    );
  }
  let sockets: string[];
  let name = "";
  try {
    const entries = (await ctx.app.broker.presence(`chat:${room}`)).filter((e) => e.id === member);
    sockets = entries.map((e) => e.connId);
    name = entries[0]?.name ?? "";
  } catch (err) {
    throw brokerDown(ctx, err);
  }
  if (sockets.length === 0) {
    throw new HttpError(404, "not_found", `No member "${member.slice(0, 64)}" in room "${room}"`);
  }
  const closed = await ctx.app.admin.close(sockets).catch((err) => {
    throw brokerDown(ctx, err);
  });
  await audit(ctx.app, actor, "room.kick", room, { member, name, sockets: closed.map((c) => c.id) });
  return json({ room, member, name, closed: closed.length });
}

/** The support queue and every agent, with who is connected now. */
export async function adminSupport(req: Request, ctx: AppRequest): Promise<Response> {
  await requireOperator(ctx.app, req, ctx.url);
  const { support, store } = ctx.app;
  const [queue, connected, agents] = await Promise.all([
    support.queue(),
    support.connectedAgents(),
    store.listAgents(),
  ]);
  const status = new Map(connected.map((a) => [a.id, a.status]));
  return json({
    queue: await support.views(queue),
    agents: agents.map((a) => ({
      id: a.id,
      username: a.username,
      name: a.name,
      role: a.role,
      disabled: a.disabled,
      connected: status.has(a.id),
      status: status.get(a.id) ?? null,
    })),
  });
}

/** A test publication from the console: `{"topic","data"}` → `{"id","delivered"}`. */
export async function adminPublish(req: Request, ctx: AppRequest): Promise<Response> {
  const actor = await requireOperator(ctx.app, req, ctx.url);
  const body = await readJson(req, ctx.app.config.maxPublishBytes);
  const { topic, dataJson } = validPublication(body, "The body");
  let published;
  try {
    published = await publish(ctx.app, topic, dataJson);
  } catch (err) {
    throw brokerDown(ctx, err);
  }
  await audit(ctx.app, actor, "publish", topic, {
    id: published.id,
    delivered: published.delivered,
    bytes: dataJson.length,
  });
  return json({ topic, id: published.id, delivered: published.delivered });
}

function auditView(e: AuditEntry) {
  return { ...e, at: new Date(e.at).toISOString() };
}

/** The audit log, newest first: `?before=` (an ISO time or ms, exclusive) and `?limit=` (1–500, default 100). */
export async function adminAudit(req: Request, ctx: AppRequest): Promise<Response> {
  await requireOperator(ctx.app, req, ctx.url);
  const q = ctx.url.searchParams;
  const limit = Number(q.get("limit") ?? "100");
  if (!Number.isInteger(limit) || limit < 1 || limit > 500) {
    throw new HttpError(400, "bad_query", '"limit" must be a whole number from 1 to 500');
  }
  const rawBefore = q.get("before");
  let before: number | undefined;
  if (rawBefore !== null && rawBefore !== "") {
    before = /^\d+$/.test(rawBefore) ? Number(rawBefore) : Date.parse(rawBefore);
    if (!Number.isSafeInteger(before)) {
      throw new HttpError(400, "bad_query", '"before" must be an ISO time or ms since 1970');
    }
  }
  const entries = await ctx.app.store.auditLog({ before, limit });
  return json({ entries: entries.map(auditView) });
}
