/**
 * What `/selfcheck.html` asks the server, to tell whether the path from a browser to here is sound:
 *
 * - `GET /api/selfcheck/time`: the server's clock (`now`, ms) and how the request arrived (`proto`, as this
 *   server or a proxy's `X-Forwarded-Proto` says), for the clock-skew and https checks.
 * - `GET /sse/selfcheck?count=4&gap=300`: `count` SSE events `gap` ms apart, then `done`. A proxy that
 *   buffers the stream hands them over all at once, which the page sees. It is under `/sse/`, so it takes the
 *   proxy's path for SSE (and sends the same headers as `/sse/push`).
 *
 * Open to anyone: they reveal nothing and cost little (the stream is short and counts against the per-IP limit).
 *
 * @module
 */
import type { AppRequest } from "../lib/context.ts";
import { HttpError, json } from "../lib/http/http.ts";
import { INSTANCE_ID } from "../lib/realtime/hub.ts";

const encoder = new TextEncoder();

/** The server's clock and what it saw of the request. */
export function selfcheckTime(req: Request, ctx: AppRequest): Response {
  const forwarded = req.headers.get("x-forwarded-proto");
  return json({
    now: Date.now(),
    instance: INSTANCE_ID,
    proto: forwarded ?? ctx.url.protocol.replace(":", ""),
    forwarded: forwarded !== null,
  });
}

function intParam(ctx: AppRequest, name: string, fallback: number, min: number, max: number): number {
  const raw = ctx.url.searchParams.get(name);
  const n = raw === null ? fallback : Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new HttpError(400, "bad_query", `"${name}" must be a whole number from ${min} to ${max}`);
  }
  return n;
}

/** A short SSE stream of `tick` events spaced in time, then `done`. */
export function selfcheckSse(_req: Request, ctx: AppRequest): Response {
  const { app, ip } = ctx;
  const count = intParam(ctx, "count", 4, 1, 10);
  const gap = intParam(ctx, "gap", 300, 50, 2000);
  if (!app.guard.open(ip)) {
    throw new HttpError(429, "too_many_connections", `Too many open connections from ${ip}`);
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  let open = true;
  const finish = () => {
    if (!open) return;
    open = false;
    clearTimeout(timer);
    app.guard.close(ip);
  };
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      let i = 0;
      const tick = () => {
        if (!open) return;
        try {
          if (i < count) {
            controller.enqueue(
              encoder.encode(`event: tick\ndata: ${JSON.stringify({ i, ts: Date.now() })}\n\n`),
            );
            i++;
            timer = setTimeout(tick, gap);
          } else {
            controller.enqueue(encoder.encode(`event: done\ndata: ${JSON.stringify({ count, gap })}\n\n`));
            controller.close();
            finish();
          }
        } catch {
          finish();
        }
      };
      // A comment first, so the response head goes out at once.
      controller.enqueue(encoder.encode(`retry: 60000\n: selfcheck\n\n`));
      timer = setTimeout(tick, gap);
    },
    cancel: finish,
  }, { highWaterMark: 0 });
  return new Response(body, {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-accel-buffering": "no",
    },
  });
}
