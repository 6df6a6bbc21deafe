/**
 * Webhook deliveries, for operators (an API key, or an admin's session): `GET /api/webhooks/deliveries
 * [?status=pending|delivered|failed][&limit=]`, `GET /api/webhooks/deliveries/:id` (with every try), and
 * `POST /api/webhooks/deliveries/:id/retry` (due again now, tries counting on; written to the audit log).
 *
 * @module
 */
import { audit } from "../lib/admin/audit.ts";
import type { AppRequest } from "../lib/context.ts";
import { HttpError, json } from "../lib/http/http.ts";
import type { WebhookDelivery } from "../lib/store/store.ts";
import { requireOperator } from "../lib/support/agents.ts";

const STATUSES = new Set(["pending", "delivered", "failed"]);
const iso = (ms: number | null) => ms === null ? null : new Date(ms).toISOString();

function view(d: WebhookDelivery) {
  return {
    id: d.id,
    url: d.url,
    event: d.event,
    status: d.status,
    attempts: d.attempts,
    createdAt: iso(d.createdAt),
    nextAt: d.status === "pending" ? iso(d.nextAt) : null,
    deliveredAt: iso(d.deliveredAt),
    lastStatus: d.lastStatus,
    lastError: d.lastError,
  };
}

/** Deliveries, newest first. */
export async function listDeliveries(req: Request, ctx: AppRequest): Promise<Response> {
  await requireOperator(ctx.app, req, ctx.url);
  const status = ctx.url.searchParams.get("status") ?? undefined;
  if (status !== undefined && !STATUSES.has(status)) {
    throw new HttpError(400, "bad_status", '"status" must be pending, delivered or failed');
  }
  const limit = Number(ctx.url.searchParams.get("limit") ?? "100");
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw new HttpError(400, "bad_request", '"limit" must be a whole number from 1 to 1000');
  }
  const list = await ctx.app.store.deliveries({ status: status as WebhookDelivery["status"], limit });
  return json({ deliveries: list.map(view) });
}

async function found(ctx: AppRequest): Promise<WebhookDelivery> {
  const id = ctx.params.id ?? "";
  const d = await ctx.app.store.delivery(id);
  if (!d) throw new HttpError(404, "not_found", `No delivery "${id.slice(0, 64)}"`);
  return d;
}

/** One delivery with its body and every try. */
export async function getDelivery(req: Request, ctx: AppRequest): Promise<Response> {
  await requireOperator(ctx.app, req, ctx.url);
  const d = await found(ctx);
  const attempts = await ctx.app.store.deliveryAttempts(d.id);
  return json({
    delivery: { ...view(d), body: JSON.parse(d.body) },
    attempts: attempts.map((a) => ({ ...a, at: iso(a.at) })),
  });
}

/** Makes a pending or failed delivery due now. */
export async function retryDelivery(req: Request, ctx: AppRequest): Promise<Response> {
  const who = await requireOperator(ctx.app, req, ctx.url);
  const d = await found(ctx);
  if (!(await ctx.app.store.retryDelivery(d.id, Date.now()))) {
    throw new HttpError(409, "conflict", "This delivery was delivered already");
  }
  ctx.app.log.info("webhook_retry", { by: who, id: d.id });
  await audit(ctx.app, who, "webhook.retry", d.id, { event: d.event, url: d.url, status: d.status });
  ctx.app.webhooks.kick();
  return json({ delivery: view((await ctx.app.store.delivery(d.id))!) }, 202);
}
