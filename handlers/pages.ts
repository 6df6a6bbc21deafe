/**
 * Pages from `static/`, with the seed's page aliases.
 *
 * @module
 */
import { HttpError } from "../lib/http/http.ts";
import type { AppRequest } from "../lib/context.ts";

/** Seed page paths (Django `md_admin` app) and the page each one serves. */
export const PAGE_ALIASES: Record<string, string> = {
  "/": "/index.html",
  "/md_admin/socket_test": "/echo.html",
  "/socket_test": "/echo.html",
  "/md_admin/websocket_test": "/push.html",
  "/websocket_test": "/push.html",
};

/** Serves a file from `static/` by its URL path, or 404. */
export function page(req: Request, ctx: AppRequest): Response {
  let path = ctx.url.pathname;
  path = PAGE_ALIASES[path] ?? PAGE_ALIASES[path.replace(/\/$/, "")] ?? path;
  const res = ctx.app.staticFiles.serve(path, req);
  if (!res) throw new HttpError(404, "not_found", `No page at "${ctx.url.pathname}"`);
  return res;
}
