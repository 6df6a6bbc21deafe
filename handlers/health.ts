/**
 * `GET /healthz` (the process is up) and `GET /readyz` (the store and broker answer).
 *
 * @module
 */
import { json, type RequestContext } from "../lib/http.ts";

/** Liveness: 200 while the process serves requests. */
export function healthz(): Response {
  return json({ status: "ok" });
}

/** Readiness: 200 when the store and the broker answer, else 503 naming which does not. */
export async function readyz(_req: Request, ctx: RequestContext): Promise<Response> {
  const [store, broker] = await Promise.all([
    ctx.app.store.ready().catch(() => false),
    ctx.app.broker.ready().catch(() => false),
  ]);
  const ok = store && broker;
  return json({ status: ok ? "ok" : "unavailable", store, broker }, ok ? 200 : 503);
}
