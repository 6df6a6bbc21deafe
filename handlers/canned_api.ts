/**
 * Canned replies: `GET /api/canned[?conversationId=]` (the team's and my own; with a conversation, each also
 * `rendered` with its variables), `POST /api/canned` (`{shortcut, text, team?}`; team replies are for admins),
 * `DELETE /api/canned/:id` (my own, or a team reply as an admin). Variables: `{{visitor.name}}`,
 * `{{visitor.email}}`, `{{agent.name}}`, `{{agent.username}}`.
 *
 * @module
 */
import type { AppContext, AppRequest } from "../lib/context.ts";
import { HttpError, json, readJson } from "../lib/http/http.ts";
import { validText } from "../lib/realtime/protocol.ts";
import type { AgentRecord, CannedReply } from "../lib/store/store.ts";
import { mayRead, requireAgent } from "../lib/support/agents.ts";
import { visitorName } from "../lib/support/desk.ts";

/** Shortcuts: 1–32 of letters, digits, `-`, `_`, `.`, typed after `/` in the console. */
const SHORTCUT_RE = /^[A-Za-z0-9._-]{1,32}$/;

/** Fills `{{visitor.name}}` and friends; unknown variables stay as they are. */
export function renderCanned(text: string, vars: Record<string, string>): string {
  return text.replace(/\{\{\s*([a-z]+\.[a-z]+)\s*\}\}/g, (all, key: string) => vars[key] ?? all);
}

async function variables(app: AppContext, agent: AgentRecord, conversationId: string) {
  const c = await app.store.conversation(conversationId);
  if (!c) throw new HttpError(404, "not_found", `No conversation "${conversationId.slice(0, 64)}"`);
  if (!(await mayRead(app.store, agent, c))) throw new HttpError(403, "forbidden", "Not your conversation");
  const visitor = await app.store.visitorById(c.visitorId);
  return {
    "visitor.name": visitor ? visitorName(visitor) : "",
    "visitor.email": visitor?.email ?? "",
    "agent.name": agent.name,
    "agent.username": agent.username,
  };
}

const view = (r: CannedReply) => ({ id: r.id, shortcut: r.shortcut, text: r.text, team: r.ownerId === "" });

/** The team's canned replies and my own (mine first when a shortcut is in both). */
export async function listCanned(req: Request, ctx: AppRequest): Promise<Response> {
  const agent = await requireAgent(ctx.app, req, ctx.url);
  const replies = await ctx.app.store.cannedReplies(agent.id);
  const conversationId = ctx.url.searchParams.get("conversationId");
  const vars = conversationId ? await variables(ctx.app, agent, conversationId) : undefined;
  const sorted = [...replies].sort((a, b) =>
    a.shortcut.localeCompare(b.shortcut) || Number(a.ownerId === "") - Number(b.ownerId === "")
  );
  return json({
    replies: sorted.map((r) => vars ? { ...view(r), rendered: renderCanned(r.text, vars) } : view(r)),
  });
}

/** Adds a canned reply (team-wide ones for admins). */
export async function addCanned(req: Request, ctx: AppRequest): Promise<Response> {
  const agent = await requireAgent(ctx.app, req, ctx.url);
  const body = await readJson(req, 16_384) as Record<string, unknown> | null;
  const shortcut = body?.shortcut;
  if (typeof shortcut !== "string" || !SHORTCUT_RE.test(shortcut)) {
    throw new HttpError(400, "bad_request", '"shortcut" must be 1–32 letters, digits, ".", "-" or "_"');
  }
  const text = validText(body?.text);
  if (!text.ok) throw new HttpError(400, "bad_request", text.message);
  const team = body?.team === true;
  if (team && agent.role !== "admin") throw new HttpError(403, "forbidden", "Only admins add team replies");
  const saved = await ctx.app.store.addCannedReply({
    ownerId: team ? "" : agent.id,
    shortcut,
    text: text.value,
  });
  if (!saved) throw new HttpError(400, "bad_request", `The shortcut "/${shortcut}" exists already`);
  return json({ reply: view(saved) }, 201);
}

/** Deletes my canned reply, or a team reply as an admin. */
export async function deleteCanned(req: Request, ctx: AppRequest): Promise<Response> {
  const agent = await requireAgent(ctx.app, req, ctx.url);
  const reply = await ctx.app.store.cannedReply(ctx.params.id ?? "");
  if (!reply) throw new HttpError(404, "not_found", "No such canned reply");
  const allowed = reply.ownerId === agent.id || (reply.ownerId === "" && agent.role === "admin");
  if (!allowed) throw new HttpError(403, "forbidden", "Not your canned reply");
  await ctx.app.store.deleteCannedReply(reply.id);
  return json({ deleted: true });
}
