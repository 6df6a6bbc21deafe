/**
 * `POST /api/support/offline` `{name, email, text[, clientMsgId]}`: the widget's leave-a-message form, with its
 * visitor token as `Authorization: Bearer v_…` when it has one, or the host's user token (a JWT) for a customer
 * who is logged in: the message then joins that verified visitor, whose name and email come from the token (the
 * form's email only when the token has none). Answers 201 `{conversationId, token}` (keep the token: the reply
 * shows in the widget's history), 400 for a bad field, 401 for a bad user token, 429 past
 * `--new-conversations-per-ip`.
 *
 * @module
 */
import type { AppRequest } from "../lib/context.ts";
import { bearerToken, HttpError, json, readJson } from "../lib/http/http.ts";
import { FrameError, must, validClientMsgId, validText } from "../lib/realtime/protocol.ts";
import { validProfile } from "../lib/support/visitors.ts";
import { identify } from "../lib/auth/identity.ts";

const MAX_FORM_BYTES = 32 * 1024;

/** Stores an offline message. */
export async function leaveMessage(req: Request, ctx: AppRequest): Promise<Response> {
  const body = await readJson(req, MAX_FORM_BYTES);
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new HttpError(400, "bad_request", "Send the form as a JSON object {name, email, text}");
  }
  const form = body as Record<string, unknown>;
  // A bad user token is refused (401) before anything is stored.
  const identity = await identify(req, ctx.url, ctx.app.verifier, false);
  try {
    const profile = validProfile({ name: form.name ?? "", email: form.email ?? "" });
    if (!profile.email && !identity?.email) {
      throw new FrameError("bad_message", '"email" is needed, so that we can answer');
    }
    const text = must(validText(form.text));
    const clientMsgId = must(validClientMsgId(form.clientMsgId));
    const token = bearerToken(req);
    const left = await ctx.app.support.visitors.leaveMessage(
      ctx.ip,
      token?.startsWith("v_") ? token : undefined,
      {
        name: profile.name ?? "",
        email: profile.email ?? "",
        text,
        clientMsgId,
      },
      identity,
    );
    return json(left, 201);
  } catch (err) {
    if (!(err instanceof FrameError)) throw err;
    if (err.code === "rate_limited") {
      throw new HttpError(429, "rate_limited", err.message, { "retry-after": "60" });
    }
    if (err.code === "unavailable") throw new HttpError(503, "unavailable", err.message);
    throw new HttpError(400, "bad_request", err.message);
  }
}
