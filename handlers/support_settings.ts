/**
 * Business hours, welcome and the offline form: `GET /api/support/settings` (an agent's session or an API key),
 * `PUT /api/support/settings` (an admin's session or an API key; fields left out stay), and the public
 * `GET /api/support/availability[?lang=en|zh]` the widget asks before it offers a chat or the form.
 *
 * @module
 */
import { audit } from "../lib/admin/audit.ts";
import type { AppRequest } from "../lib/context.ts";
import { requireApiKey } from "../lib/http/api_auth.ts";
import { json, readJson, requestLang } from "../lib/http/http.ts";
import { requireOperator, sessionAgent } from "../lib/support/agents.ts";

const MAX_SETTINGS_BYTES = 64 * 1024;

/** The settings, for any agent (the console shows them) or the API key. */
export async function getSettings(req: Request, ctx: AppRequest): Promise<Response> {
  if (!await sessionAgent(ctx.app, req, ctx.url)) requireApiKey(req, ctx.app);
  return json(await ctx.app.support.settings.get());
}

/** Changes the settings. */
export async function putSettings(req: Request, ctx: AppRequest): Promise<Response> {
  const actor = await requireOperator(ctx.app, req, ctx.url);
  const body = await readJson(req, MAX_SETTINGS_BYTES);
  const settings = await ctx.app.support.settings.save(body);
  await audit(ctx.app, actor, "support.settings", "support", { changed: Object.keys(body as object) });
  return json(settings);
}

/** Whether visitors can chat now, with the welcome. */
export async function getAvailability(req: Request, ctx: AppRequest): Promise<Response> {
  return json(await ctx.app.support.availability(requestLang(req, ctx.url)), 200, {
    "cache-control": "no-store",
  });
}
