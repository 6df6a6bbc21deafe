/**
 * The own transport's front (`--transport own`): the process listens on the port itself, reads the head of each
 * connection's first request, and
 * - for a WebSocket upgrade, calls the app's fetch handler with a request whose upgrade goes to our framing
 *   (`lib/realtime/websocket.ts`), then writes the handler's answer: the 101 handshake, or the refusal (403,
 *   429, …) as plain HTTP/1.1;
 * - for anything else, hands the connection to `Deno.serve` (a {@linkcode SupervisedServer} on a loopback port
 *   of its own): the bytes already read and the rest of the stream are piped both ways. The handler sees the
 *   client's address, not the pipe's.
 *
 * The same handler, routes and checks serve both transports; only the socket under {@linkcode Conn} differs.
 * An accept error (EMFILE) does not end the front: it is counted and logged like the supervisor's (one
 * {@linkcode AcceptErrors}), and the loop waits (50 ms, doubling to 2 s) before accepting again. A client has `--header-timeout` seconds to send
 * its first request head (slow-header clients are cut).
 *
 * @module
 */
import type { Services } from "../services.ts";
import { acceptKey, frontRequests, ServerSocket, SocketSet } from "../realtime/websocket.ts";
import { type Head, isUpgrade, readHead, writeAll } from "./request_head.ts";
import { AcceptErrors, type ListenOptions, registerSupervisor, SupervisedServer } from "./listener.ts";

/** How long shutdown waits for sockets' close handshakes. */
const SHUTDOWN_GRACE_MS = 1000;

const encoder = new TextEncoder();

/** Writes a non-upgrade answer as HTTP/1.1 and ends the connection. */
async function writeResponse(conn: Deno.Conn, res: Response): Promise<void> {
  const body = new Uint8Array(await res.arrayBuffer());
  let head = `HTTP/1.1 ${res.status} ${res.statusText || "Error"}\r\n`;
  res.headers.forEach((value, name) => {
    if (name !== "content-length" && name !== "connection" && name !== "transfer-encoding") {
      head += `${name}: ${value}\r\n`;
    }
  });
  head += `content-length: ${body.length}\r\nconnection: close\r\n\r\n`;
  await writeAll(conn, encoder.encode(head));
  if (body.length > 0) await writeAll(conn, body);
}

/** A response that means "upgraded": the front writes the 101 itself (a `Response` cannot have status 101). */
const upgradedResponses = new WeakSet<Response>();

/** Copies `from` to `to` until `from` ends, then ends `to`'s writing side; a reset on either side ends both. */
async function pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(16 * 1024);
  try {
    while (true) {
      const n = await from.read(buf);
      if (n === null) break;
      await writeAll(to, buf.subarray(0, n));
    }
    await to.closeWrite();
  } catch {
    for (const c of [from, to]) {
      try {
        c.close();
      } catch { /* closed */ }
    }
  }
}

/** The listener of `--transport own`; the rest of the app sees the same handler as with Deno's transport. */
export class FrontServer {
  #options: ListenOptions;
  #handler: Deno.ServeHandler<Deno.NetAddr>;
  #ctx: Services;
  #listener: Deno.Listener;
  #inner: SupervisedServer;
  #sockets: SocketSet;
  /** The pipe's local port → the client's address, for the inner server's handler. */
  #peers = new Map<number, Deno.NetAddr>();
  #conns = new Set<Deno.Conn>();
  #tls: boolean;
  #stopping: Promise<void> | undefined;
  #loop: Promise<void>;
  #errors: AcceptErrors;

  constructor(options: ListenOptions, handler: Deno.ServeHandler<Deno.NetAddr>, ctx: Services) {
    this.#options = options;
    this.#handler = handler;
    this.#ctx = ctx;
    this.#errors = new AcceptErrors(ctx);
    this.#tls = Boolean(options.cert && options.key);
    this.#sockets = new SocketSet(ctx.config.idleTimeoutS);
    this.#listener = this.#tls
      ? Deno.listenTls({
        hostname: options.hostname,
        port: options.port,
        cert: options.cert!,
        key: options.key!,
      })
      : Deno.listen({ hostname: options.hostname, port: options.port });
    // The inner server: plain HTTP on loopback, reached only through our pipes.
    this.#inner = new SupervisedServer(
      { hostname: "127.0.0.1", port: 0 },
      (req, info) => {
        const peer = this.#peers.get(info.remoteAddr.port);
        if (!peer) return handler(req, info);
        if (this.#tls) req = new Request(req.url.replace(/^http:/, "https:"), req);
        return handler(req, { ...info, remoteAddr: peer });
      },
      ctx,
      { register: false },
    );
    registerSupervisor(ctx, this);
    this.#loop = this.#acceptLoop();
  }

  /** The inner Deno server (serving every plain HTTP request). */
  get server(): Deno.HttpServer<Deno.NetAddr> {
    return this.#inner.server;
  }

  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  acceptProblem(now = Date.now()): string | undefined {
    return this.#inner.acceptProblem(now) ?? this.#errors.problem(now);
  }

  async #acceptLoop(): Promise<void> {
    while (!this.#stopping) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch (err) {
        if (this.#stopping || err instanceof Deno.errors.BadResource) return;
        const wait = this.#errors.acceptFailed(err, this.port);
        await new Promise((r) => setTimeout(r, wait));
        continue;
      }
      this.#serve(conn).catch((err) => this.#ctx.log.warn("front_failed", { error: String(err) }));
    }
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    this.#conns.add(conn);
    let handedOver = false;
    try {
      if (!this.#tls) (conn as Deno.TcpConn).setNoDelay(true);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<"timeout">((r) =>
        timer = setTimeout(() => r("timeout"), this.#ctx.config.headerTimeoutS * 1000)
      );
      let head: Head | null | "bad" | "timeout";
      try {
        head = await Promise.race([readHead(conn), timedOut]);
      } catch {
        head = null;
      } finally {
        clearTimeout(timer);
      }
      if (head === null || head === "timeout" || this.#stopping) return;
      if (head === "bad") {
        await writeResponse(
          conn,
          Response.json({ error: "bad_request", message: "Malformed request" }, { status: 400 }),
        );
        return;
      }
      if (isUpgrade(head)) handedOver = await this.#upgrade(conn, head);
      else handedOver = await this.#proxy(conn, head);
    } catch {
      // The peer went away mid-answer.
    } finally {
      if (!handedOver) {
        this.#conns.delete(conn);
        try {
          conn.close();
        } catch { /* closed */ }
      }
    }
  }

  /** Runs the handler for an upgrade request; true when the connection became a socket. */
  async #upgrade(conn: Deno.Conn, head: Head): Promise<boolean> {
    const host = head.headers.get("host") ?? `${this.#options.hostname}:${this.port}`;
    let req: Request;
    try {
      req = new Request(`${this.#tls ? "https" : "http"}://${host}${head.target}`, { headers: head.headers });
    } catch {
      await writeResponse(
        conn,
        Response.json({ error: "bad_request", message: "Malformed request" }, { status: 400 }),
      );
      return false;
    }
    let upgraded: { socket: ServerSocket; key: string; protocol: string } | undefined;
    const key = head.headers.get("sec-websocket-key");
    frontRequests.set(req, {
      upgrade: (options) => {
        if (!key || !/^[A-Za-z0-9+/]{22}==$/.test(key)) {
          throw new TypeError("Invalid Sec-WebSocket-Key header");
        }
        if (head.headers.get("sec-websocket-version") !== "13") {
          throw new TypeError("Unsupported Sec-WebSocket-Version (13 only)");
        }
        const protocol = options.protocol ?? "";
        const socket = new ServerSocket(conn, this.#sockets, options);
        upgraded = { socket, key, protocol };
        const response = new Response(null, { status: 200 });
        upgradedResponses.add(response);
        return { socket, response };
      },
    });
    const remoteAddr = conn.remoteAddr as Deno.NetAddr;
    const res = await this.#handler(req, { remoteAddr, completed: Promise.resolve() });
    if (!upgraded || !upgradedResponses.has(res)) {
      await writeResponse(conn, res);
      return false;
    }
    const { socket, protocol } = upgraded;
    this.#conns.delete(conn);
    try {
      await writeAll(
        conn,
        encoder.encode(
          "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n" +
            `sec-websocket-accept: ${await acceptKey(upgraded.key)}\r\n${
              protocol ? `sec-websocket-protocol: ${protocol}\r\n` : ""
            }\r\n`,
        ),
      );
    } catch {
      socket.destroy(1006, "", false);
      return true;
    }
    socket.start(head.rest);
    return true;
  }

  /** Pipes a plain HTTP connection to the inner server; true when it was handed over. */
  async #proxy(conn: Deno.Conn, head: Head): Promise<boolean> {
    let inner: Deno.TcpConn;
    try {
      inner = await Deno.connect({ hostname: "127.0.0.1", port: this.#inner.port });
    } catch {
      await writeResponse(
        conn,
        Response.json({ error: "unavailable", message: "Server busy; retry shortly" }, {
          status: 503,
          headers: { "retry-after": "1" },
        }),
      );
      return false;
    }
    inner.setNoDelay(true);
    const localPort = (inner.localAddr as Deno.NetAddr).port;
    this.#peers.set(localPort, conn.remoteAddr as Deno.NetAddr);
    this.#conns.add(inner);
    (async () => {
      try {
        await writeAll(inner, head.raw);
        await Promise.all([pipe(conn, inner), pipe(inner, conn)]);
      } catch {
        // Either side went away.
      } finally {
        this.#peers.delete(localPort);
        for (const c of [conn, inner]) {
          this.#conns.delete(c);
          try {
            c.close();
          } catch { /* closed */ }
        }
      }
    })();
    return true;
  }

  /** Stops accepting, lets sockets finish their close handshakes, and shuts the inner server. */
  shutdown(): Promise<void> {
    this.#stopping ??= (async () => {
      try {
        this.#listener.close();
      } catch { /* closed */ }
      await this.#loop;
      await this.#sockets.drained(SHUTDOWN_GRACE_MS);
      await this.#inner.shutdown();
      for (const c of this.#conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      this.#conns.clear();
    })();
    return this.#stopping;
  }
}
