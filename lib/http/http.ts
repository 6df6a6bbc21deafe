/**
 * HTTP plumbing: the request context, {@linkcode HttpError}, JSON bodies and responses. Routes are in
 * `router.ts`.
 *
 * @module
 */
/** What every route handler gets besides the request; `A` is the app's context. */
export interface RequestContext<A = unknown> {
  /** Named groups matched by the route's pattern. */
  params: Record<string, string | undefined>;
  url: URL;
  /** The client's address. */
  ip: string;
  app: A;
}

/** Every `error` code an HTTP answer may carry (docs/protocol.md lists them with their statuses). */
export type HttpErrorCode =
  | "bad_json"
  | "bad_name"
  | "bad_query"
  | "bad_request"
  | "bad_room"
  | "bad_settings"
  | "bad_since"
  | "bad_status"
  | "bad_topic"
  | "bad_upgrade"
  | "busy"
  | "conflict"
  | "forbidden"
  | "forbidden_origin"
  | "internal"
  | "method_not_allowed"
  | "not_found"
  | "rate_limited"
  | "too_large"
  | "too_many_connections"
  | "too_many_schedules"
  | "unauthorized"
  | "unavailable"
  | "unsupported_type"
  | "upgrade_required";

/**
 * An error that becomes an HTTP response `{"error": code, "message": message}`; the app's fetch handler is the
 * one place that turns it into a response.
 */
export class HttpError extends Error {
  readonly status: number;
  readonly code: HttpErrorCode;
  readonly headers: Record<string, string>;

  constructor(status: number, code: HttpErrorCode, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

/** A JSON response. */
export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", ...headers },
  });
}

/** The response for an {@linkcode HttpError}. */
export function errorResponse(err: HttpError): Response {
  return json({ error: err.code, message: err.message }, err.status, err.headers);
}

/** Reads a body no larger than `maxBytes` (413 past it, before reading when it says its length). */
export async function readBody(
  req: Request,
  maxBytes: number,
  what = "Request body",
): Promise<Uint8Array<ArrayBuffer>> {
  const tooLarge = () => new HttpError(413, "too_large", `${what} is over ${maxBytes} bytes`);
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > maxBytes) throw tooLarge();
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (req.body) {
    for await (const chunk of req.body) {
      size += chunk.byteLength;
      if (size > maxBytes) throw tooLarge();
      chunks.push(chunk);
    }
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  return bytes;
}

/** Reads a JSON body no larger than `maxBytes`; throws {@linkcode HttpError} 400/413. */
export async function readJson(req: Request, maxBytes: number): Promise<unknown> {
  const bytes = await readBody(req, maxBytes);
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new HttpError(400, "bad_json", "Request body is not valid JSON");
  }
}

/** Constant-time comparison of two strings (length is not hidden). */
/** The language a page asks for: `?lang=zh|en`, else the browser's `Accept-Language` (Chinese or English). */
export function requestLang(req: Request, url: URL): "en" | "zh" {
  const q = url.searchParams.get("lang");
  if (q === "zh" || q === "en") return q;
  return /^\s*zh\b/i.test(req.headers.get("accept-language") ?? "") ? "zh" : "en";
}

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(req: Request): string | undefined {
  return /^Bearer\s+(\S+)$/i.exec(req.headers.get("authorization") ?? "")?.[1];
}

export function timingSafeEqual(a: string, b: string): boolean {
  const ea = new TextEncoder().encode(a);
  const eb = new TextEncoder().encode(b);
  let diff = ea.length ^ eb.length;
  const n = Math.max(ea.length, eb.length);
  for (let i = 0; i < n; i++) diff |= (ea[i] ?? 0) ^ (eb[i] ?? 0);
  return diff === 0;
}
