/**
 * `POST /api/publish`: `{"topic","data"}` or `{"messages":[{"topic","data"},…]}` → `{"delivered": n, …}`.
 * `{"user":"42","data"}` publishes to topic `user:42`: every connection of that user, on every instance.
 *
 * @module
 */
import { requireApiKey } from "../lib/http/api_auth.ts";
import { HttpError, json, readJson } from "../lib/http/http.ts";
import type { AppRequest } from "../lib/context.ts";
import { TOPIC_RE } from "../lib/realtime/protocol.ts";
import { type Published, publishMany, userTopic } from "../lib/push/topics.ts";
import { SUB_RE } from "../lib/auth/identity.ts";

/** Most messages in one batch. */
export const MAX_BATCH = 1000;

/** Checks one `{topic, data}` item; returns the topic and the data re-encoded as JSON. */
export function validPublication(item: unknown, where: string): { topic: string; dataJson: string } {
  if (typeof item !== "object" || item === null || Array.isArray(item)) {
    throw new HttpError(400, "bad_request", `${where} must be an object with "topic" and "data"`);
  }
  const { user, data } = item as Record<string, unknown>;
  let { topic } = item as Record<string, unknown>;
  if (user !== undefined) {
    if (typeof user !== "string" || !SUB_RE.test(user) || topic !== undefined) {
      throw new HttpError(
        400,
        "bad_request",
        `${where}: "user" must be a user id (1–128 letters, digits or "._:@|+=-"), without "topic"`,
      );
    }
    topic = userTopic(user);
  } else if (typeof topic !== "string" || !TOPIC_RE.test(topic)) {
    throw new HttpError(
      400,
      "bad_topic",
      `${where}: "topic" must be 1–128 letters, digits, ".", "-", "_" or ":"`,
    );
  }
  if (data === undefined) {
    throw new HttpError(400, "bad_request", `${where}: "data" is required (any JSON value)`);
  }
  return { topic: topic as string, dataJson: JSON.stringify(data) };
}

/** Publishes one message or a batch. */
export async function publishApi(req: Request, ctx: AppRequest): Promise<Response> {
  const { app } = ctx;
  requireApiKey(req, app);
  const body = await readJson(req, app.config.maxPublishBytes);
  let items: { topic: string; dataJson: string }[];
  if (typeof body === "object" && body !== null && !Array.isArray(body) && "messages" in body) {
    const messages = (body as { messages: unknown }).messages;
    if (!Array.isArray(messages) || messages.length === 0) {
      throw new HttpError(400, "bad_request", '"messages" must be a non-empty array');
    }
    if (messages.length > MAX_BATCH) {
      throw new HttpError(413, "too_large", `At most ${MAX_BATCH} messages a batch`);
    }
    items = messages.map((m, i) => validPublication(m, `messages[${i}]`));
  } else {
    items = [validPublication(body, "The body")];
  }
  let results: Published[];
  try {
    results = await publishMany(app, items);
  } catch (err) {
    app.log.error("publish_failed", { error: String(err), messages: items.length });
    throw new HttpError(503, "unavailable", "Publishing failed; retry");
  }
  const delivered = results.reduce((n, r) => n + r.delivered, 0);
  return json(items.length === 1 ? { delivered, id: results[0].id } : { delivered, results });
}
