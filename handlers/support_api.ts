/**
 * Agent login and the support HTTP API:
 * `POST /api/agent/login`, `POST /api/agent/logout`, `GET /api/agent/me`,
 * `GET /api/support/conversations?status=`, `GET /api/support/conversations/:id/transcript[?format=text]`.
 *
 * @module
 */
import {
  agentView,
  login,
  logout,
  mayRead,
  requestToken,
  requireAgent,
  SESSION_COOKIE,
  SESSION_TTL_MS,
} from "../lib/support/agents.ts";
import { tokenHash } from "../lib/support/passwords.ts";
import { HttpError, json, readJson } from "../lib/http/http.ts";
import type { AppRequest } from "../lib/context.ts";
import type { ConversationStatus } from "../lib/store/store.ts";
import { convStream, supportMessage } from "../lib/support/support.ts";
import { mentionsIn, noteFrame, notesStream } from "../lib/support/desk.ts";
import type { StoredMessage } from "../lib/store/store.ts";

function cookie(token: string, maxAgeS: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${
    secure ? "; Secure" : ""
  }`;
}

/** Whether the client reached us over https (directly, or through a proxy that says so). */
function isSecure(req: Request, ctx: AppRequest): boolean {
  return ctx.url.protocol === "https:" || req.headers.get("x-forwarded-proto") === "https";
}

/** `{username, password}` → `{token, agent}` and the session cookie. */
export async function agentLogin(req: Request, ctx: AppRequest): Promise<Response> {
  const body = await readJson(req, 4096) as Record<string, unknown> | null;
  const username = body?.username;
  const password = body?.password;
  if (typeof username !== "string" || typeof password !== "string" || username === "" || password === "") {
    throw new HttpError(400, "bad_request", 'Send {"username": "…", "password": "…"}');
  }
  const { token, agent } = await login(ctx.app, username, password, ctx.ip);
  const secure = isSecure(req, ctx);
  return json({ token, agent: agentView(agent), expiresIn: SESSION_TTL_MS / 1000 }, 200, {
    "set-cookie": cookie(token, SESSION_TTL_MS / 1000, secure),
  });
}

/** Ends the session and clears the cookie. */
export async function agentLogout(req: Request, ctx: AppRequest): Promise<Response> {
  const token = requestToken(req, ctx.url);
  await logout(ctx.app, req, ctx.url);
  // Sockets of this session here close now; those on other instances at their next session check.
  if (token) ctx.app.support.agents.endSession(await tokenHash(token));
  return json({ ok: true }, 200, { "set-cookie": cookie("", 0, isSecure(req, ctx)) });
}

/** The logged-in agent, or 401. */
export async function agentMe(req: Request, ctx: AppRequest): Promise<Response> {
  return json({ agent: agentView(await requireAgent(ctx.app, req, ctx.url)) });
}

const STATUSES = new Set(["queued", "assigned", "closed"]);

/** Conversations, optionally by status; agents only. */
export async function listConversations(req: Request, ctx: AppRequest): Promise<Response> {
  const agent = await requireAgent(ctx.app, req, ctx.url);
  const status = ctx.url.searchParams.get("status") ?? undefined;
  if (status !== undefined && !STATUSES.has(status)) {
    throw new HttpError(
      400,
      "bad_status",
      `"status" must be queued, assigned or closed, not "${status.slice(0, 20)}"`,
    );
  }
  // Admins see every conversation; agents the queue and what they hold or held.
  const visibleTo = agent.role === "admin" ? undefined : agent.id;
  const q = ctx.url.searchParams.get("q")?.trim();
  if (q !== undefined && (q.length === 0 || q.length > 200)) {
    throw new HttpError(400, "bad_query", '"q" must be 1–200 characters');
  }
  const list = q
    ? await ctx.app.store.searchConversations(q, { visibleTo, limit: 100 })
    : await ctx.app.store.conversations({
      status: status as ConversationStatus | undefined,
      visibleTo,
      limit: 500,
    });
  return json({ conversations: await ctx.app.support.views(list) });
}

/** A visitor's conversations, newest last (the console's side panel: earlier conversations); role rule applies. */
export async function visitorConversations(req: Request, ctx: AppRequest): Promise<Response> {
  const agent = await requireAgent(ctx.app, req, ctx.url);
  const list = await ctx.app.store.conversations({
    visitorId: ctx.params.id ?? "",
    visibleTo: agent.role === "admin" ? undefined : agent.id,
    limit: 100,
  });
  return json({ conversations: await ctx.app.support.views(list) });
}

/** A conversation's whole transcript as JSON, or as text with `?format=text`; agents only. */
export async function transcript(req: Request, ctx: AppRequest): Promise<Response> {
  const agent = await requireAgent(ctx.app, req, ctx.url);
  const { store, support } = ctx.app;
  const id = ctx.params.id ?? "";
  const c = await store.conversation(id);
  if (!c) throw new HttpError(404, "not_found", `No conversation "${id.slice(0, 64)}"`);
  if (!(await mayRead(store, agent, c))) {
    throw new HttpError(403, "forbidden", "This conversation is held by another agent; ask an admin");
  }
  const all = async (stream: string) => {
    const out: StoredMessage[] = [];
    for (let after = 0;;) {
      const page = await store.history(stream, { after, limit: 1000 });
      out.push(...page);
      if (page.length < 1000) break;
      after = page[page.length - 1].seq;
    }
    return out;
  };
  const [stored, storedNotes] = await Promise.all([all(convStream(id)), all(notesStream(id))]);
  const messages = stored.map((m) => supportMessage(id, m));
  // Agents' private notes are part of the agents' transcript, marked private (a visitor never sees this API).
  const notes = storedNotes.map((m) => noteFrame(id, m, mentionsIn(m.text ?? "")));
  const view = await support.view(c);
  if (ctx.url.searchParams.get("format") === "text") {
    const time = (ts: number) => new Date(ts).toISOString().replace("T", " ").slice(0, 19);
    const lines = [
      `Conversation ${c.id} (${c.status})`,
      `Visitor: ${(view.visitor as { name: string }).name}`,
      `Started: ${time(c.createdAt)} UTC`,
      ...(c.rating !== null
        ? [`Rating: ${c.rating}/5${c.ratingComment ? ` — ${c.ratingComment}` : ""}`]
        : []),
      "",
      ...[
        ...messages.map((m) => ({
          ts: m.ts,
          line: `${m.from.name} (${m.from.role}): ${
            [m.text, ...(m.attachments ?? []).map((a) => `[file: ${a.name}, ${a.url}]`)].filter(Boolean).join(
              " ",
            )
          }`,
        })),
        ...notes.map((n) => ({
          ts: n.ts as number,
          line: `${(n.from as { name: string }).name} (private note): ${n.text}`,
        })),
      ].sort((a, b) => a.ts - b.ts).map((e) => `[${time(e.ts)}] ${e.line}`),
    ];
    return new Response(lines.join("\n") + "\n", {
      headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
    });
  }
  return json({
    conversation: { ...view, rating: c.rating, ratingComment: c.ratingComment, closedAt: c.closedAt },
    messages,
    notes,
  });
}
