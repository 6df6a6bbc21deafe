/**
 * One message loop for every JSON socket: parse, rate-limit, dispatch on `type`, and turn every failure into an
 * `error` frame on that socket only. A handler rejects a frame by throwing {@linkcode FrameError}.
 *
 * @module
 */
import { authFrame, type Identity, isJwt } from "../auth/identity.ts";
import type { Services } from "../services.ts";
import { CloseCode, type Conn } from "./hub.ts";
import { type ClientFrame, type ErrorCode, errorFrame, parseClientFrame } from "./protocol.ts";
import { MessageLimiter } from "./rate_limit.ts";

import { FrameError } from "./protocol.ts";

/**
 * What a handler may return instead of finishing its work: the frame has taken effect in order (say, its append
 * was queued in the store, which numbers appends in call order), and `settled` finishes the rest (the commit, the
 * publication). The socket's next frame may start meanwhile; a failure of `settled` still becomes an error frame.
 */
/** Frames in one socket's line at which its reading pauses, and at which it resumes. */
export const LINE_PAUSE = 32;
export const LINE_RESUME = 8;

export interface Pipelined {
  settled: Promise<void>;
}

/** Handlers by frame type. */
export type FrameHandlers<S> = Record<
  string,
  (conn: Conn<S>, frame: ClientFrame) => void | Pipelined | Promise<void | Pipelined>
>;

/**
 * Builds a `message` socket handler that parses JSON frames and dispatches them on `type`, with the
 * per-connection rate limit from the config (`--rate-limit`, `--rate-burst`).
 *
 * Frames of one socket take effect in the order they were sent: each one waits until the one before it has
 * finished, or has said it took effect ({@linkcode Pipelined}); only a frame of the pipelined one's type starts
 * before it has settled. Deno delivers a socket's frames without waiting
 * for our handlers, so without this an `await` in one handler lets the next frame overtake it.
 */
export function jsonMessages<S>(app: Services, handlers: FrameHandlers<S>) {
  const { config, metrics, log, hub, verifier } = app;
  const limiters = new WeakMap<Conn, MessageLimiter>();
  /** Per socket, the pipelined frames not yet settled: their type, and a promise of all of them settling. */
  const pipelines = new WeakMap<Conn, { type: string; settled: Promise<unknown> }>();
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
  const failed = (conn: Conn, frame: ClientFrame, err: unknown) => {
    if (err instanceof FrameError) return reject(conn, err.code, err.message, frame);
    log.error("frame_failed", {
      conn: conn.id,
      endpoint: conn.endpoint,
      type: frame.type,
      error: String(err),
    });
    reject(conn, "internal", "The server could not handle this frame; try again", frame);
  };
  return (conn: Conn<S>, data: string | ArrayBuffer): Promise<void> | undefined => {
    let limiter = limiters.get(conn);
    if (!limiter) {
      limiter = new MessageLimiter(config.rateLimit, config.rateBurst);
      limiters.set(conn, limiter);
    }
    const verdict = limiter.check();
    if (verdict === "abuse") {
      metrics.inc("switchboard_errors_total", { code: "rate_limited" });
      log.warn("rate_abuse", { conn: conn.id, endpoint: conn.endpoint });
      conn.close(CloseCode.policy);
      return;
    }
    if (verdict === "limited") {
      const parsed = parseClientFrame(data);
      reject(
        conn,
        "rate_limited",
        "Too many messages; slow down",
        parsed.ok ? parsed.value : undefined,
      );
      return;
    }
    // The socket's line: this frame starts once the one before it has taken effect (an idle socket has none).
    // A long line stops the reading of this socket until it is short again (where the transport can).
    if (++conn.inboundCount === LINE_PAUSE) conn.pauseReading();
    conn.inbound = conn.inbound ? conn.inbound.then(() => take(conn, data)) : take(conn, data);
    return conn.inbound;
  };

  /**
   * `{"type":"refresh","token"}` on any socket that came with a user token: the same user with a later expiry
   * keeps the socket open (answer `refreshed`); another user's token closes it with 4004.
   */
  async function refresh(conn: Conn<S>, frame: ClientFrame): Promise<void> {
    const current = conn.identity;
    if (!current) return reject(conn, "forbidden", "This socket has no user token to refresh", frame);
    if (typeof frame.token !== "string" || !isJwt(frame.token)) {
      return reject(conn, "bad_message", '"token" must be a JWT', frame);
    }
    let next: Identity;
    try {
      next = await verifier.verify(frame.token);
    } catch (err) {
      return reject(conn, "unauthorized", (err as Error).message, frame);
    }
    if (next.sub !== current.sub) {
      log.warn("refresh_refused", { conn: conn.id, endpoint: conn.endpoint });
      return conn.close(CloseCode.refreshRefused);
    }
    if (current.expiresAt !== undefined && (next.expiresAt ?? Infinity) <= current.expiresAt) {
      return reject(conn, "bad_message", "The new token must expire later than the current one", frame);
    }
    conn.identity = next;
    conn.expireAt(next.expiresAt);
    conn.sendJson(authFrame(next, "refreshed"));
  }

  /** One frame's turn in its socket's line; resolves when the next frame may start. Never rejects. */
  async function take(conn: Conn<S>, data: string | ArrayBuffer): Promise<void> {
    // Backpressure before anything is parsed or stored: a waiting frame is just its text (see lib/realtime/admission.ts).
    const waiting = hub.admission.admit();
    if (waiting) {
      await waiting;
      hub.admission.resumed();
    }
    let frame: ClientFrame | undefined;
    let settled: Promise<void> | undefined;
    try {
      const parsed = parseClientFrame(data);
      if (!parsed.ok) return reject(conn, parsed.code, parsed.message);
      frame = parsed.value;
      if (frame.type === "refresh") return await refresh(conn, frame);
      const handler = Object.hasOwn(handlers, frame.type) ? handlers[frame.type] : undefined;
      if (!handler) {
        return reject(conn, "unknown_type", `Unknown frame type "${frame.type.slice(0, 40)}"`, frame);
      }
      // Only a frame of the same type overtakes a pipelined one's settling (the next chat or support message);
      // any other (a close, a transfer, a leave) waits until it is stored and delivered, so it cannot act first.
      const pending = pipelines.get(conn);
      if (pending && pending.type !== frame.type) {
        await pending.settled;
        if (pipelines.get(conn) === pending) pipelines.delete(conn);
      }
      settled = (await handler(conn, frame))?.settled;
      if (settled) {
        const mine = settled.catch(() => {});
        const before = pipelines.get(conn);
        pipelines.set(conn, {
          type: frame.type,
          settled: before && before.type === frame.type ? Promise.all([before.settled, mine]) : mine,
        });
      }
    } catch (err) {
      failed(conn, frame!, err);
    } finally {
      if (--conn.inboundCount === 0) conn.inbound = undefined;
      if (conn.inboundCount === LINE_RESUME) conn.resumeReading();
      if (settled) {
        const f = frame!;
        settled.then(() => hub.admission.done(), (err) => {
          failed(conn, f, err);
          hub.admission.done();
        });
      } else hub.admission.done();
    }
  }
}
