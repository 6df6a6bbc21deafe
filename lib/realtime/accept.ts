/**
 * Accepting a WebSocket: every check (origin, per-IP limits) happens **before** `Deno.upgradeWebSocket`, because a
 * throw after the upgrade stops the whole server (denoland/deno#22333). Every socket event handler is wrapped so one
 * socket's failure never reaches the event loop.
 *
 * @module
 */
import { CloseCode, Conn } from "./hub.ts";
import { authFrame, type Identity, userChannel } from "../auth/identity.ts";
import { HttpError, type RequestContext } from "../http/http.ts";
import type { Services } from "../services.ts";
import { type SocketClose, type SocketMessage, type UpgradedSocket, upgradeWebSocket } from "./websocket.ts";

/** What an endpoint does with its sockets (of state `S`). Each may be async; failures are contained. */
export interface SocketHandlers<S> {
  open?(conn: Conn<S>): void | Promise<void>;
  message?(conn: Conn<S>, data: string | ArrayBuffer): void | Promise<void>;
  close?(conn: Conn<S>): void | Promise<void>;
}

/** How to accept one socket. */
export interface AcceptOptions<S> {
  /** Endpoint name for logs and metrics (`echo`, `push`, `chat`, …). */
  endpoint: string;
  handlers: SocketHandlers<S>;
  /** Endpoint data: `conn.state`. */
  state: S;
  /** Set when the endpoint already called {@linkcode preflight}. */
  preflighted?: boolean;
  /** False for sockets that never use the broker (echo); the others are refused with 503 while it is down. */
  needsBroker?: boolean;
  /** The verified user, when the request carried a token (checked before the upgrade). */
  identity?: Identity;
}

const encoder = new TextEncoder();

/** UTF-8 size of a frame, computed exactly only when the cheap bounds can't decide. */
function frameBytes(data: string | ArrayBuffer, limit: number): number {
  if (typeof data !== "string") return data.byteLength;
  if (data.length * 3 <= limit || data.length > limit) return data.length;
  return encoder.encode(data).byteLength;
}

/** Whether `origin` may open sockets on this server (see `--allowed-origins`). */
export function originAllowed(
  origin: string | null,
  host: string | null,
  allowed: readonly string[],
): boolean {
  // Non-browser clients send no Origin; cross-site hijacking needs a browser, which always sends one.
  if (origin === null) return true;
  if (allowed.includes("*")) return true;
  let parsed: URL;
  try {
    parsed = new URL(origin);
  } catch {
    return false;
  }
  if (host !== null && parsed.host === host.toLowerCase()) return true;
  return allowed.some((a) => a.replace(/\/$/, "").toLowerCase() === parsed.origin);
}

/**
 * The checks every socket handshake passes before anything else happens: an upgrade request (else 426), an allowed
 * origin (else 403), and the per-IP handshake rate (else 429). Endpoints that do async work before upgrading call
 * this first, so a refused request costs nothing.
 */
export function preflight(req: Request, ctx: RequestContext<Services>): void {
  const { app, ip } = ctx;
  const { config, metrics, guard } = app;
  if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    throw new HttpError(
      426,
      "upgrade_required",
      "This is a WebSocket endpoint: connect with a WebSocket client",
      {
        upgrade: "websocket",
      },
    );
  }
  if (!originAllowed(req.headers.get("origin"), req.headers.get("host"), config.allowedOrigins)) {
    metrics.inc("switchboard_rejected_upgrades_total", { reason: "origin" });
    throw new HttpError(
      403,
      "forbidden_origin",
      `Origin "${req.headers.get("origin")}" may not open sockets here`,
    );
  }
  if (!guard.handshakes.take(ip)) {
    metrics.inc("switchboard_rejected_upgrades_total", { reason: "handshake_rate" });
    throw new HttpError(429, "rate_limited", "Too many connection attempts; retry later", {
      "retry-after": "1",
    });
  }
}

/**
 * Checks (unless {@linkcode AcceptOptions.preflighted}) and upgrades `req`, registers the socket in the hub and
 * wires `handlers`.
 *
 * @throws {HttpError} 426 without an upgrade, 403 for a foreign origin, 429 over a per-IP limit.
 */
export function acceptSocket<S>(
  req: Request,
  ctx: RequestContext<Services>,
  options: AcceptOptions<S>,
): Response {
  const { app, ip, url } = ctx;
  // The closures below live as long as the socket: they keep this string, not the request's URL object.
  const path = url.pathname + url.search;
  const { config, log, metrics, hub, guard } = app;
  if (!options.preflighted) preflight(req, ctx);
  if (options.needsBroker !== false && app.broker.connected?.() === false) {
    metrics.inc("switchboard_rejected_upgrades_total", { reason: "broker_down" });
    throw new HttpError(503, "unavailable", "The server cannot reach its broker right now; retry shortly", {
      "retry-after": "2",
    });
  }
  if (!guard.open(ip)) {
    metrics.inc("switchboard_rejected_upgrades_total", { reason: "conns_per_ip" });
    throw new HttpError(429, "too_many_connections", `Too many open connections from ${ip}`);
  }
  const batch = url.searchParams.get("batch") === "1";
  const limit = config.maxMessageBytes;
  const { endpoint } = options;
  const tooLarge = (id: string) => {
    metrics.inc("switchboard_errors_total", { code: "too_large" });
    log.warn("frame_too_large", { conn: id, endpoint, limit });
  };
  let upgraded: { socket: UpgradedSocket; response: Response };
  try {
    // The own transport refuses an oversized frame from its header, before buffering it; Deno's buffers it all
    // and `onmessage` below closes the socket.
    upgraded = upgradeWebSocket(req, {
      idleTimeout: config.idleTimeoutS,
      maxMessageBytes: limit,
      onTooLarge: () => tooLarge(conn.id),
    });
  } catch (err) {
    guard.close(ip);
    throw new HttpError(400, "bad_upgrade", `WebSocket upgrade failed: ${(err as Error).message}`);
  }
  const { socket, response } = upgraded;
  socket.binaryType = "arraybuffer";
  const conn = new Conn(hub, socket, options.endpoint, ip, batch, options.state);
  conn.identity = options.identity;
  const { handlers } = options;
  const messagesIn = metrics.counter("switchboard_messages_in_total", { endpoint });

  const fail = (where: string, err: unknown) => {
    metrics.inc("switchboard_errors_total", { code: "internal" });
    log.error("socket_handler_failed", { conn: conn.id, endpoint, where, error: String(err) });
    conn.close(CloseCode.internal);
  };
  const run = (where: string, fn: () => void | Promise<void>) => {
    try {
      const result = fn();
      if (result instanceof Promise) result.catch((err) => fail(where, err));
    } catch (err) {
      fail(where, err);
    }
  };

  socket.onopen = () => {
    hub.add(conn);
    metrics.inc("switchboard_connections_total", { endpoint });
    log.info("connect", { conn: conn.id, endpoint, ip, url: path });
    const identity = conn.identity;
    if (identity) {
      // The first frame of a socket with a token says who it is and when the token expires.
      conn.sendJson(authFrame(identity));
      conn.expireAt(identity.expiresAt);
      // Every socket of a user is in its channel: `{"user"}` publications and disconnects reach it anywhere.
      const channel = userChannel(identity.sub);
      run("open", async () => {
        await hub.join(conn, channel);
        await app.broker.presenceAdd(channel, { connId: conn.id, id: identity.sub, name: identity.name });
      });
    }
    if (handlers.open) run("open", () => handlers.open!(conn));
  };
  socket.onmessage = (event: SocketMessage) => {
    if (conn.closed) return;
    messagesIn.inc();
    if (frameBytes(event.data, limit) > limit) {
      tooLarge(conn.id);
      conn.close(CloseCode.tooLarge, `message over ${limit} bytes`);
      return;
    }
    if (handlers.message) run("message", () => handlers.message!(conn, event.data));
  };
  // `close` can fire twice (1001 then 1005 after an idle timeout): hub.remove is true only once.
  socket.onclose = (event: SocketClose) => {
    conn.expireAt(undefined);
    if (!hub.remove(conn)) return;
    guard.close(ip);
    log.info("disconnect", { conn: conn.id, endpoint, code: event.code, ms: Date.now() - conn.openedAt });
    if (conn.identity) {
      app.broker.presenceRemove(userChannel(conn.identity.sub), conn.id).catch((err) =>
        log.warn("presence_remove_failed", { conn: conn.id, error: String(err) })
      );
    }
    if (handlers.close) run("close", () => handlers.close!(conn));
  };
  socket.onerror = () => {
    // The close event follows; nothing to do but not let it be unhandled.
  };
  return response;
}
