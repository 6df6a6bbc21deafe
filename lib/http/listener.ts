/**
 * Serving that survives accept errors: when the listener of `Deno.serve` dies, it is opened again.
 *
 * Why (issue #10, finding 3; measured on Deno 2.9.6 with `ulimit -n 64`): when `accept()` fails, for
 * example with EMFILE ("Too many open files"), Deno's serve loop ends for good. `server.finished` rejects
 * with a `Deno.errors.Http` whose message is "Too many open files (os error 24)" (nothing handled it, so it
 * surfaced as an unhandled rejection), and the listening socket is closed: every later connection is refused
 * while the process stays up. The connections accepted before are not affected: open WebSockets still echo,
 * keep-alive HTTP connections still get answers, and `shutdown()` on the dead server still closes them
 * (WebSockets get 1001) without an error. `Deno.serve` has no option for this: `onError` covers only the
 * handler, and it takes no listener of ours that we could keep open (denoland/deno#10148 was the same
 * problem in `Listener.accept`).
 *
 * So {@linkcode SupervisedServer} watches each server's `finished`. When it rejects while we are not
 * stopping, the error is counted (`switchboard_accept_errors_total{code}`) and logged (`accept_failed`), and
 * after a back-off (50 ms, doubling to 2 s while errors keep coming) `Deno.serve` is called again on the same
 * host, the port the first server got, the same TLS key pair and the same handler. During the back-off new
 * connections are refused, which is what a client should see while the process has no descriptor to give
 * it. Dead servers are kept, so their connections live on; {@linkcode SupervisedServer.shutdown} shuts down
 * every server once.
 *
 * @module
 */
import type { Services } from "../services.ts";

/** The first wait before the listener is opened again. */
export const BACKOFF_MIN_MS = 50;
/** The longest wait between attempts. */
export const BACKOFF_MAX_MS = 2000;
/** An accept error this recent makes `/readyz` answer 503; errors further apart start the back-off anew. */
export const ACCEPT_ERROR_WINDOW_MS = 5000;
/**
 * Dead servers kept for the connections they still serve. Under lasting pressure a server dies every 2 s;
 * past this many (about two minutes of it), the oldest is shut down so they do not pile up: its remaining
 * sockets get 1001, as on a restart, which also gives descriptors back.
 */
const MAX_RETIRED = 64;

/** Errno numbers of the errors accept and listen fail with, per OS; Deno gives only "(os error N)". */
const ERRNO: Record<string, Record<number, string>> = {
  linux: { 12: "ENOMEM", 23: "ENFILE", 24: "EMFILE", 103: "ECONNABORTED", 105: "ENOBUFS" },
  darwin: { 12: "ENOMEM", 23: "ENFILE", 24: "EMFILE", 53: "ECONNABORTED", 55: "ENOBUFS" },
  windows: { 10024: "EMFILE", 10053: "ECONNABORTED", 10055: "ENOBUFS" },
};

/** The errno name of a listener error (`"EMFILE"`), from its `code` or its "(os error N)"; else `"other"`. */
export function acceptErrorCode(err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code === "string" && /^E[A-Z]+$/.test(code)) return code;
  const errno = /\(os error (\d+)\)/.exec(err instanceof Error ? err.message : String(err))?.[1];
  return (errno && ERRNO[Deno.build.os]?.[Number(errno)]) || "other";
}

/** Where to listen: host, port (0 picks a free one) and, for TLS, the PEM key pair. */
export interface ListenOptions {
  hostname: string;
  port: number;
  cert?: string;
  key?: string;
}

/** What `/readyz` asks a listener: why new connections may fail right now. */
export interface AcceptWatch {
  acceptProblem(now?: number): string | undefined;
}

/** Each app's listener, for `/readyz`; a map here keeps {@linkcode Services} as `createApp` builds it. */
const supervisors = new WeakMap<Services, AcceptWatch>();

/** Makes `watch` the one `/readyz` asks for `ctx` (see {@linkcode acceptProblem}). */
export function registerSupervisor(ctx: Services, watch: AcceptWatch): void {
  supervisors.set(ctx, watch);
}

/**
 * Why new connections to the app may fail, for `/readyz`: `"EMFILE 1.2 s ago"` after a recent accept
 * error, `"EMFILE, not listening for 0.3 s"` while the listener is being opened again, or `undefined` when
 * all is well (or the app is not served by a {@linkcode SupervisedServer}).
 */
export function acceptProblem(ctx: Services, now = Date.now()): string | undefined {
  return supervisors.get(ctx)?.acceptProblem(now);
}

/**
 * One listener's accept errors: the back-off they call for (50 ms, doubling to 2 s while they keep coming
 * within {@linkcode ACCEPT_ERROR_WINDOW_MS}), their count and log line, and what `/readyz` says of them. Both
 * {@linkcode SupervisedServer} and the own transport's front (`front.ts`) keep one.
 */
export class AcceptErrors {
  #ctx: Services;
  #backoffMs = BACKOFF_MIN_MS;
  #last: { code: string; at: number } | undefined;

  constructor(ctx: Services) {
    this.#ctx = ctx;
  }

  /** The wait before the next attempt. */
  get backoffMs(): number {
    return this.#backoffMs;
  }

  /** An accept failed: counted, logged, and the back-off set; returns the wait before accepting again. */
  acceptFailed(err: unknown, port: number, now = Date.now()): number {
    const code = acceptErrorCode(err);
    const recent = this.#last !== undefined && now - this.#last.at < ACCEPT_ERROR_WINDOW_MS;
    this.#backoffMs = recent ? Math.min(this.#backoffMs * 2, BACKOFF_MAX_MS) : BACKOFF_MIN_MS;
    this.#last = { code, at: now };
    this.#ctx.metrics.inc("switchboard_accept_errors_total", { code });
    this.#ctx.log.error("accept_failed", { code, error: String(err), port, retryMs: this.#backoffMs });
    return this.#backoffMs;
  }

  /** Opening the listener again failed (it needs a descriptor too): the back-off doubles. */
  listenFailed(err: unknown, port: number): number {
    const code = acceptErrorCode(err);
    this.#last = { code, at: Date.now() };
    this.#backoffMs = Math.min(this.#backoffMs * 2, BACKOFF_MAX_MS);
    this.#ctx.log.warn("listen_failed", { code, error: String(err), port, retryMs: this.#backoffMs });
    return this.#backoffMs;
  }

  /** See {@linkcode acceptProblem}; `downSince`: when the listener closed, while it is not open again. */
  problem(now: number, downSince?: number): string | undefined {
    if (!this.#last) return undefined;
    const { code, at } = this.#last;
    if (downSince !== undefined) {
      return `${code}, not listening for ${((now - downSince) / 1000).toFixed(1)} s`;
    }
    return now - at < ACCEPT_ERROR_WINDOW_MS ? `${code} ${((now - at) / 1000).toFixed(1)} s ago` : undefined;
  }
}

/** `Deno.serve` with a listener that is opened again whenever its accept loop dies (see the module docs). */
export class SupervisedServer implements AcceptWatch {
  #options: ListenOptions;
  #handler: Deno.ServeHandler<Deno.NetAddr>;
  #ctx: Services;
  #server: Deno.HttpServer<Deno.NetAddr>;
  #port: number;
  /** Servers whose accept loop died; their connections may still be open. */
  #retired: Deno.HttpServer<Deno.NetAddr>[] = [];
  /** Shutdowns of retired servers past {@linkcode MAX_RETIRED}, awaited by {@linkcode shutdown}. */
  #closing = new Set<Promise<void>>();
  #stopping: Promise<void> | undefined;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #errors: AcceptErrors;
  /** Set while no listener is open. */
  #downSince: number | undefined;

  /**
   * Listens at once; throws as `Deno.serve` does when it cannot listen (address in use, no permission).
   * `register: false` leaves `/readyz` to another listener (the own transport's front, which owns this one).
   */
  constructor(
    options: ListenOptions,
    handler: Deno.ServeHandler<Deno.NetAddr>,
    ctx: Services,
    { register = true } = {},
  ) {
    this.#options = options;
    this.#handler = handler;
    this.#ctx = ctx;
    this.#errors = new AcceptErrors(ctx);
    this.#server = this.#serve(options.port);
    // Port 0 picked a port: later listeners must take the same one, clients know no other.
    this.#port = this.#server.addr.port;
    if (register) supervisors.set(ctx, this);
  }

  /** The current server; replaced when the listener is opened again. */
  get server(): Deno.HttpServer<Deno.NetAddr> {
    return this.#server;
  }

  /** The port, the same for every listener. */
  get port(): number {
    return this.#port;
  }

  /** See {@linkcode acceptProblem}. */
  acceptProblem(now = Date.now()): string | undefined {
    return this.#errors.problem(now, this.#downSince);
  }

  /** Stops retrying and shuts down every server, current and dead, once each. */
  shutdown(): Promise<void> {
    this.#stopping ??= (async () => {
      clearTimeout(this.#retry);
      // While down, the current server is also the last retired one.
      const servers = new Set([this.#server, ...this.#retired]);
      this.#retired = [];
      await Promise.all([...[...servers].map((s) => s.shutdown()), ...this.#closing]);
    })();
    return this.#stopping;
  }

  #serve(port: number): Deno.HttpServer<Deno.NetAddr> {
    const { hostname, cert, key } = this.#options;
    const tls = cert && key ? { cert, key } : {};
    const server = Deno.serve({ hostname, port, onListen() {}, ...tls }, this.#handler);
    // `finished` resolves after our own shutdown() and rejects only when the accept loop died.
    server.finished.catch((err) => this.#died(server, err));
    return server;
  }

  #died(server: Deno.HttpServer<Deno.NetAddr>, err: unknown): void {
    if (this.#stopping || server !== this.#server) return;
    const now = Date.now();
    this.#errors.acceptFailed(err, this.#port, now);
    this.#downSince = now;
    this.#retired.push(server);
    if (this.#retired.length > MAX_RETIRED) {
      const oldest = this.#retired.shift()!;
      const closing: Promise<void> = oldest.shutdown()
        .catch((e) => this.#ctx.log.error("shutdown_failed", { port: this.#port, error: String(e) }))
        .finally(() => this.#closing.delete(closing));
      this.#closing.add(closing);
    }
    this.#scheduleListen();
  }

  #scheduleListen(): void {
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.#listen();
    }, this.#errors.backoffMs);
  }

  #listen(): void {
    if (this.#stopping) return;
    try {
      this.#server = this.#serve(this.#port);
    } catch (err) {
      // Opening a socket needs a descriptor too, so this fails with EMFILE until some are freed.
      this.#errors.listenFailed(err, this.#port);
      this.#scheduleListen();
      return;
    }
    this.#ctx.log.info("listen_restored", { port: this.#port, downMs: Date.now() - this.#downSince! });
    this.#downSince = undefined;
  }
}
