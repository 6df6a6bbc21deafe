/**
 * One message loop for every JSON socket: parse, rate-limit, dispatch on `type`, and turn every failure into an
 * `error` frame on that socket only. A handler rejects a frame by throwing {@linkcode FrameError}.
 *
 * @module
 */
import type { AppContext } from "./context.ts";
import { CloseCode, type Conn } from "./hub.ts";
import {
  type ClientFrame,
  type ErrorCode,
  errorFrame,
  isProtocolError,
  parseClientFrame,
} from "./protocol.ts";
import { MessageLimiter } from "./rate_limit.ts";

/** A rejected client frame; becomes `{"type":"error","code","message"}`. */
export class FrameError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = "FrameError";
    this.code = code;
  }
}

/** Returns `v`, or throws its error when validation failed. */
export function must<T>(v: T | { code: ErrorCode; message: string }): T {
  if (isProtocolError(v)) throw new FrameError(v.code, v.message);
  return v as T;
}

/** Handlers by frame type. */
export type FrameHandlers = Record<string, (conn: Conn, frame: ClientFrame) => void | Promise<void>>;

/**
 * Builds a `message` socket handler that parses JSON frames and dispatches them on `type`, with the
 * per-connection rate limit from the config (`--rate-limit`, `--rate-burst`).
 */
export function jsonMessages(app: AppContext, handlers: FrameHandlers) {
  const { config, metrics, log, hub } = app;
  const limiters = new WeakMap<Conn, MessageLimiter>();
  // An error about a frame names its clientMsgId and conversationId, so the client knows what failed.
  const reject = (conn: Conn, code: ErrorCode, message: string, frame?: ClientFrame) => {
    metrics.inc("switchboard_errors_total", { code });
    const extra: Record<string, string> = {};
    for (const key of ["clientMsgId", "conversationId"]) {
      const v = frame?.[key];
      if (typeof v === "string") extra[key] = v.slice(0, 64);
    }
    conn.send(errorFrame(code, message, extra));
  };
  return async (conn: Conn, data: string | ArrayBuffer): Promise<void> => {
    let limiter = limiters.get(conn);
    if (!limiter) {
      limiter = new MessageLimiter(config.rateLimit, config.rateBurst);
      limiters.set(conn, limiter);
    }
    const verdict = limiter.check();
    if (verdict === "abuse") {
      metrics.inc("switchboard_errors_total", { code: "rate_limited" });
      log.warn("rate_abuse", { conn: conn.id, endpoint: conn.endpoint });
      conn.close(CloseCode.policy, "rate limit exceeded");
      return;
    }
    if (verdict === "limited") {
      const parsed = parseClientFrame(data);
      return reject(
        conn,
        "rate_limited",
        "Too many messages; slow down",
        isProtocolError(parsed) ? undefined : parsed,
      );
    }
    // Backpressure before anything is parsed or stored: a waiting frame is just its text (see Hub.admit).
    const waiting = hub.admit();
    if (waiting) {
      await waiting;
      hub.resumed();
    }
    try {
      await handle(conn, data);
    } finally {
      hub.done();
    }
  };

  async function handle(conn: Conn, data: string | ArrayBuffer): Promise<void> {
    const frame = parseClientFrame(data);
    if (isProtocolError(frame)) return reject(conn, frame.code, frame.message);
    const handler = Object.hasOwn(handlers, frame.type) ? handlers[frame.type] : undefined;
    if (!handler) {
      return reject(conn, "unknown_type", `Unknown frame type "${frame.type.slice(0, 40)}"`, frame);
    }
    try {
      await handler(conn, frame);
    } catch (err) {
      if (err instanceof FrameError) return reject(conn, err.code, err.message, frame);
      log.error("frame_failed", {
        conn: conn.id,
        endpoint: conn.endpoint,
        type: frame.type,
        error: String(err),
      });
      reject(conn, "internal", "The server could not handle this frame; try again", frame);
    }
  }
}
