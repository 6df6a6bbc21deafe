/**
 * `GET /healthz` (the process is up) and `GET /readyz` (the store and broker answer, the listener accepts).
 *
 * @module
 */
import { json } from "../lib/http/http.ts";
import type { AppRequest } from "../lib/context.ts";
import { acceptProblem } from "../lib/http/listener.ts";

/** Liveness: 200 while the process serves requests. */
export function healthz(): Response {
  return json({ status: "ok" });
}

/**
 * Readiness: 200 when the store and the broker answer and the listener had no accept error (EMFILE, …)
 * in the last 5 seconds; else 503 naming what is wrong, with `accept` describing the listener's last error.
 */
export async function readyz(_req: Request, ctx: AppRequest): Promise<Response> {
  const [store, broker] = await Promise.all([
    ctx.app.store.ready().catch(() => false),
    ctx.app.broker.ready().catch(() => false),
  ]);
  const accept = acceptProblem(ctx.app);
  const ok = store && broker && accept === undefined;
  return json(
    { status: ok ? "ok" : "unavailable", store, broker, ...(accept === undefined ? {} : { accept }) },
    ok ? 200 : 503,
  );
}
