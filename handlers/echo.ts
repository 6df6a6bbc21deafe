/**
 * `GET /ws/echo` (seed: `test_socket`): every frame comes back to the same socket unchanged, text as text and
 * binary as binary, in order.
 *
 * @module
 */
import type { AppRequest } from "../lib/context.ts";
import { acceptSocket } from "../lib/realtime/accept.ts";

/** Upgrades to the echo socket. */
export function echoSocket(req: Request, ctx: AppRequest): Response {
  return acceptSocket(req, ctx, {
    endpoint: "echo",
    needsBroker: false,
    state: undefined,
    handlers: {
      message(conn, data) {
        conn.sendRaw(data);
      },
    },
  });
}
