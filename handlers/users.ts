/**
 * `POST /api/users/:sub/disconnect` (API key): closes every connection of one user, on every instance, with the
 * final close code 4003 (the client module does not reconnect). Answers `{"closed": n}`.
 *
 * @module
 */
import { SUB_RE, userChannel } from "../lib/auth/identity.ts";
import type { AppRequest } from "../lib/context.ts";
import { requireApiKey } from "../lib/http/api_auth.ts";
import { HttpError, json } from "../lib/http/http.ts";
import { CloseCode } from "../lib/realtime/close_codes.ts";

/** Disconnects a user everywhere. */
export async function disconnectUser(req: Request, ctx: AppRequest): Promise<Response> {
  const { app } = ctx;
  requireApiKey(req, app);
  const sub = ctx.params.sub ?? "";
  if (!SUB_RE.test(sub)) {
    throw new HttpError(400, "bad_request", 'The user id must be 1–128 letters, digits or "._:@|+=-"');
  }
  const channel = userChannel(sub);
  try {
    // Every socket of the user is present in its channel, on whichever instance it is.
    const closed = await app.broker.presenceCount(channel);
    await app.broker.publish(channel, "", { close: CloseCode.disconnected });
    app.log.info("user_disconnected", { sub: sub.slice(0, 8), closed });
    return json({ closed });
  } catch (err) {
    app.log.error("disconnect_failed", { error: String(err) });
    throw new HttpError(503, "unavailable", "The broker cannot be reached; retry");
  }
}
