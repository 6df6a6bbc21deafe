/**
 * Attachments: `POST /api/uploads[?name=]` stores a file (the raw body, or `multipart/form-data` with a `file`
 * field) for a visitor (`Authorization: Bearer <visitor or user token>`) or an agent (its session), and answers
 * 201 `{upload: {id, name, type, size, url}}`; send the id in a message's `attachments`. `GET /api/uploads/:id`
 * serves it to its uploader and, once sent, to that conversation's visitor and the agents who may read it.
 *
 * @module
 */
import type { AppRequest } from "../lib/context.ts";
import { json } from "../lib/http/http.ts";
import { isImage } from "../lib/http/sniff.ts";

/** Stores an upload. */
export async function uploadFile(req: Request, ctx: AppRequest): Promise<Response> {
  const u = await ctx.app.support.uploads.receive(req, ctx.url, ctx.ip);
  return json(
    { upload: { id: u.id, name: u.name, type: u.type, size: u.size, url: `/api/uploads/${u.id}` } },
    201,
  );
}

/**
 * Serves an upload with headers that keep it inert: its sniffed type, `nosniff`, a sandboxing CSP, and
 * `Content-Disposition: attachment` for everything but images.
 */
export async function downloadFile(req: Request, ctx: AppRequest): Promise<Response> {
  const u = await ctx.app.support.uploads.download(req, ctx.url, ctx.params.id ?? "");
  const disposition = isImage(u.type) ? "inline" : "attachment";
  const ascii = u.name.replace(/[^\x20-\x7e]/g, "_").replace(/["\\]/g, "_");
  return new Response(u.data as Uint8Array<ArrayBuffer>, {
    headers: {
      "content-type": u.type,
      "content-length": String(u.size),
      "content-disposition": `${disposition}; filename="${ascii}"; filename*=UTF-8''${
        encodeURIComponent(u.name)
      }`,
      "x-content-type-options": "nosniff",
      "content-security-policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox",
      "cross-origin-resource-policy": "same-origin",
      // A file never changes, but who may read it can: the browser keeps it, no shared cache does.
      "cache-control": "private, max-age=86400",
      "vary": "authorization, cookie",
    },
  });
}
