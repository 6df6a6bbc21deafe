/**
 * Data requests, for an admin's session or an API key: `GET /api/support/visitors/:id/export` hands out
 * everything stored of one visitor as one JSON file (profile, context, conversations with their messages, and
 * files with their bytes; agents' private notes are internal and not part of it), and
 * `DELETE /api/support/visitors/:id` deletes the visitor with all of it, notes included. `:id` is a visitor id
 * or `user:<sub>` (URL-encoded) for a visitor the host identified with a user token.
 *
 * @module
 */
import { audit } from "../lib/admin/audit.ts";
import type { AppRequest } from "../lib/context.ts";
import { HttpError, json } from "../lib/http/http.ts";
import { requireOperator } from "../lib/support/agents.ts";
import { tokenHash } from "../lib/support/passwords.ts";
import { supportMessage } from "../lib/support/support.ts";

const ID_RE = /^[A-Za-z0-9_-]{1,100}$/;

/** The visitor a path names: its id, or `user:<sub>` for a visitor the host identified with a user token. */
async function visitorId(ctx: AppRequest): Promise<string> {
  let raw: string;
  try {
    raw = decodeURIComponent(ctx.params.id ?? "");
  } catch {
    throw new HttpError(400, "bad_request", "Give a visitor id, or user:<sub>");
  }
  if (raw.startsWith("user:") && raw.length > 5 && raw.length <= 300) {
    const visitor = await ctx.app.store.visitorByToken(await tokenHash(raw));
    if (!visitor) throw new HttpError(404, "not_found", `No visitor for ${raw.slice(0, 80)}`);
    return visitor.id;
  }
  if (!ID_RE.test(raw)) throw new HttpError(400, "bad_request", "Give a visitor id, or user:<sub>");
  return raw;
}

const iso = (ms: number | null) => ms === null ? null : new Date(ms).toISOString();

function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/** Everything of one visitor, as an attachment `visitor-<id>.json`. */
export async function exportVisitor(req: Request, ctx: AppRequest): Promise<Response> {
  const actor = await requireOperator(ctx.app, req, ctx.url);
  const id = await visitorId(ctx);
  const data = await ctx.app.store.visitorExport(id);
  if (!data) throw new HttpError(404, "not_found", `No visitor ${id}`);
  await audit(ctx.app, actor, "visitor.export", id, {
    conversations: data.conversations.length,
    uploads: data.uploads.length,
  });
  const v = data.visitor;
  return json(
    {
      exportedAt: new Date().toISOString(),
      visitor: {
        id: v.id,
        name: v.name,
        email: v.email,
        createdAt: iso(v.createdAt),
        verified: v.verified,
        attributes: v.attributes ?? {},
        context: v.context ?? {},
      },
      conversations: data.conversations.map((c) => ({
        id: c.id,
        status: c.status,
        source: c.source,
        createdAt: iso(c.createdAt),
        closedAt: iso(c.closedAt),
        rating: c.rating,
        ratingComment: c.ratingComment,
        messages: c.messages.map((m) => supportMessage(c.id, m)),
      })),
      uploads: data.uploads.map((u) => ({
        id: u.id,
        name: u.name,
        type: u.type,
        size: u.size,
        createdAt: iso(u.createdAt),
        conversationId: u.stream?.startsWith("conv:") ? u.stream.slice("conv:".length) : null,
        base64: base64(u.data),
      })),
    },
    200,
    {
      "content-disposition": `attachment; filename="visitor-${id}.json"`,
      "cache-control": "no-store",
    },
  );
}

/** Deletes a visitor and everything of it; answers what was deleted. */
export async function deleteVisitor(req: Request, ctx: AppRequest): Promise<Response> {
  const actor = await requireOperator(ctx.app, req, ctx.url);
  const id = await visitorId(ctx);
  const deleted = await ctx.app.store.deleteVisitor(id);
  if (!deleted) throw new HttpError(404, "not_found", `No visitor ${id}`);
  await audit(ctx.app, actor, "visitor.delete", id, { ...deleted });
  return json({ deleted });
}
