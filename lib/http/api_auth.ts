/**
 * API keys for the publish and schedule APIs: `Authorization: Bearer <key>`, compared in constant time against
 * every configured key (`--api-key`, `API_KEYS`). With no key configured the APIs are closed.
 *
 * @module
 */
import type { Services } from "../services.ts";
import { bearerToken, HttpError, timingSafeEqual } from "./http.ts";

/** Throws 401 unless the request carries a configured API key. */
export function requireApiKey(req: Request, app: Services): void {
  const keys = app.config.apiKeys;
  if (keys.length === 0) {
    throw new HttpError(
      401,
      "unauthorized",
      "No API key is configured on this server; start it with --api-key",
      {
        "www-authenticate": 'Bearer realm="switchboard"',
      },
    );
  }
  const bearer = bearerToken(req);
  // Compare against every key, always, so timing does not tell which key was close.
  let ok = false;
  if (bearer) { for (const key of keys) ok = timingSafeEqual(bearer, key) || ok; }
  if (!ok) {
    throw new HttpError(
      401,
      "unauthorized",
      bearer ? "Wrong API key" : "Missing Authorization: Bearer <key>",
      {
        "www-authenticate": 'Bearer realm="switchboard"',
      },
    );
  }
}
