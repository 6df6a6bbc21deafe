/**
 * `GET /ws/push` (seed: `test_websocket`): `{"time":"YYYY.MM.DD HH:MM:SS"}` at once and on every shared tick.
 *
 * @module
 */
import type { RequestContext } from "../lib/http.ts";
import { acceptSocket } from "../lib/socket_route.ts";

/** Upgrades to the push socket. */
export function pushSocket(req: Request, ctx: RequestContext): Response {
  const { ticker } = ctx.app;
  const time = ctx.url.searchParams.get("time") !== "0";
  return acceptSocket(req, ctx, {
    endpoint: "push",
    handlers: {
      open(conn) {
        if (time) ticker.add(conn);
      },
      close(conn) {
        ticker.remove(conn);
      },
    },
  });
}
