/**
 * `GET /metrics`: Prometheus text exposition.
 *
 * @module
 */
import type { AppRequest } from "../lib/context.ts";

/** Renders every metric. */
export function metrics(_req: Request, ctx: AppRequest): Response {
  return new Response(ctx.app.metrics.render(), {
    headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8", "cache-control": "no-store" },
  });
}
