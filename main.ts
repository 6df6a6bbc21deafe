/**
 * Switchboard: a real-time server (echo, push, chat rooms, customer service) on one port.
 *
 * As a library, {@linkcode createApp} builds the app from a config and {@linkcode startServer} serves it; as a
 * command (`deno task start`), it parses flags, serves, and shuts down gracefully on SIGINT/SIGTERM.
 *
 * @module
 */
import { chatSocket } from "./handlers/chat.ts";
import { echoSocket } from "./handlers/echo.ts";
import { healthz, readyz } from "./handlers/health.ts";
import { metrics } from "./handlers/metrics.ts";
import { page } from "./handlers/pages.ts";
import { pushSocket } from "./handlers/push.ts";
import { publishApi } from "./handlers/publish.ts";
import { listRooms, roomMessages } from "./handlers/rooms_api.ts";
import { createSchedule, deleteSchedule, listSchedules } from "./handlers/schedules.ts";
import { ssePush } from "./handlers/sse.ts";
import { agentSocket } from "./handlers/support_agent.ts";
import { agentLogin, agentLogout, agentMe, listConversations, transcript } from "./handlers/support_api.ts";
import { visitorSocket } from "./handlers/support_visitor.ts";
import type { Broker } from "./lib/broker/broker.ts";
import { MemoryBroker } from "./lib/broker/memory.ts";
import { type Config, ConfigError, helpText, parseConfig } from "./lib/config.ts";
import type { AppContext } from "./lib/context.ts";
import { ConnectionGuard } from "./lib/realtime/guard.ts";
import { errorResponse, HttpError, type RequestContext, type Route, route } from "./lib/http/http.ts";
import { CloseCode, Hub } from "./lib/realtime/hub.ts";
import { SupervisedServer } from "./lib/http/listener.ts";
import { Logger } from "./lib/log.ts";
import { Metrics } from "./lib/metrics.ts";
import { StaticFiles } from "./lib/http/static_files.ts";
import { saveAgent } from "./lib/support/agents.ts";
import { Retention } from "./lib/chat/retention.ts";
import { Scheduler } from "./lib/push/scheduler.ts";
import { openStore } from "./lib/store/open.ts";
import { AGENTS, Support } from "./lib/support/support.ts";
import { Ticker } from "./lib/push/ticker.ts";

/** The route table; the first match wins. */
export const ROUTES: readonly Route[] = [
  route("GET", "/healthz", healthz),
  route("GET", "/readyz", readyz),
  route("GET", "/metrics", metrics),
  route("GET", "/ws/echo", echoSocket),
  route("GET", "/md_admin/test_socket", echoSocket),
  route("GET", "/test_socket", echoSocket),
  route("GET", "/ws/push", pushSocket),
  route("GET", "/md_admin/test_websocket", pushSocket),
  route("GET", "/test_websocket", pushSocket),
  route("GET", "/ws/chat/:room", chatSocket),
  route("GET", "/api/rooms", listRooms),
  route("GET", "/api/rooms/:room/messages", roomMessages),
  route("GET", "/sse/push", ssePush),
  route("POST", "/api/publish", publishApi),
  route("POST", "/api/schedules", createSchedule),
  route("GET", "/api/schedules", listSchedules),
  route("DELETE", "/api/schedules/:id", deleteSchedule),
  route("GET", "/ws/support/visitor", visitorSocket),
  route("GET", "/ws/support/agent", agentSocket),
  route("POST", "/api/agent/login", agentLogin),
  route("POST", "/api/agent/logout", agentLogout),
  route("GET", "/api/agent/me", agentMe),
  route("GET", "/api/support/conversations", listConversations),
  route("GET", "/api/support/conversations/:id/transcript", transcript),
  route("GET", "/*", page),
  route("HEAD", "/*", page),
];

/** Each route's literal part: the whole path (exact), or the part before its first parameter or wildcard. */
const LITERALS = new Map(ROUTES.map((r) => {
  const cut = r.pattern.pathname.search(/[:*(]/);
  return [
    r,
    cut === -1
      ? { exact: true, path: r.pattern.pathname }
      : { exact: false, path: r.pattern.pathname.slice(0, cut) },
  ];
}));

/** A built app: its fetch handler, its context, and how to stop it. */
export interface App {
  ctx: AppContext;
  /** Room-history retention (`--history-retention-days`, `--room-history-max`). */
  retention: Retention;
  fetch(req: Request, info: Deno.ServeHandlerInfo): Promise<Response>;
  /** Closes every socket with 1001 and stops timers. */
  closeSockets(): void;
  /** Releases the store and broker. */
  close(): Promise<void>;
}

/** Builds the app from a config: store, broker, hub, and the fetch handler over {@linkcode ROUTES}. */
export async function createApp(config: Config, log = new Logger(config.logLevel)): Promise<App> {
  const metricsRegistry = new Metrics();
  const store = await openStore({ dataDir: config.dataDir, databaseUrl: config.databaseUrl });
  // The Redis client is loaded only in cluster mode.
  const broker: Broker = config.redisUrl
    ? await (await import("./lib/broker/redis.ts")).RedisBroker.connect(config.redisUrl, log)
    : new MemoryBroker();
  const hub = new Hub(broker, metricsRegistry, log, config.maxBufferedBytes);
  const ctx: AppContext = {
    config,
    log,
    metrics: metricsRegistry,
    hub,
    broker,
    store,
    ticker: new Ticker(config.pushIntervalMs, config.tz),
    guard: new ConnectionGuard(config),
    staticFiles: await StaticFiles.load(),
    support: undefined as unknown as Support,
  };
  ctx.support = new Support(ctx);
  for (const spec of config.demoAgents) {
    const i = spec.indexOf(":");
    if (i <= 0) {
      throw new ConfigError(`Invalid --demo-agent "${spec.split(":")[0]}:…" (expected user:password)`);
    }
    try {
      await saveAgent(store, spec.slice(0, i), spec.slice(i + 1));
    } catch (err) {
      throw new ConfigError(`Invalid --demo-agent for "${spec.slice(0, i)}": ${(err as Error).message}`);
    }
  }
  // Cluster mode: members of a dead instance leave presence; after a broker outage, sockets resync.
  broker.onExpired?.((channel, entries) => {
    const done = channel.startsWith("chat:")
      ? Promise.all(
        entries.map((e) =>
          broker.publish(channel, JSON.stringify({ type: "leave", member: { id: e.id, name: e.name } }))
        ),
      )
      : channel === AGENTS
      ? Promise.all([...new Set(entries.map((e) => e.id))].map((id) => ctx.support.agentGone(id)))
      : Promise.resolve();
    done.catch((err) => log.error("presence_expiry_failed", { channel, error: String(err) }));
  });
  broker.onReconnect?.(() => {
    for (const conn of hub.conns()) {
      if (conn.endpoint !== "echo") conn.close(CloseCode.resync, "reconnect to resync");
    }
  });
  const scheduler = new Scheduler(ctx);
  scheduler.start();
  const retention = new Retention(store, config, log);
  retention.start();
  const stopTimers = () => {
    ctx.ticker.stop();
    scheduler.stop();
    retention.stop();
    ctx.support.stop();
  };
  metricsRegistry.gauge(
    "switchboard_rooms",
    "Chat rooms with members on this instance",
    () => hub.channelNames("chat:").length,
  );
  metricsRegistry.gauge(
    "switchboard_support_queue_length",
    "Conversations waiting for an agent",
    () => ctx.support.queueLength,
  );
  metricsRegistry.gauge("switchboard_connections", "Open sockets by endpoint", () => {
    const counts = new Map<string, number>();
    for (const conn of hub.conns()) {
      const key = Metrics.labels({ endpoint: conn.endpoint });
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return counts;
  });

  async function fetch(req: Request, info: Deno.ServeHandlerInfo): Promise<Response> {
    const url = new URL(req.url);
    try {
      let otherMethod = false;
      for (const r of ROUTES) {
        // A literal prefix check first: URLPattern.exec is costly and most routes cannot match.
        const literal = LITERALS.get(r)!;
        if (literal.exact ? url.pathname !== literal.path : !url.pathname.startsWith(literal.path)) continue;
        // An exact path has no parameters, so it needs no URLPattern match at all.
        const params = literal.exact ? {} : r.pattern.exec(url)?.pathname.groups;
        if (!params) continue;
        if (r.method !== "*" && r.method !== req.method) {
          // A path that exists with another method is a 405, unless only the page fallback matched.
          otherMethod ||= r.pattern.pathname !== "/*";
          continue;
        }
        if (otherMethod && r.pattern.pathname === "/*") break;
        const rc: RequestContext = {
          params,
          url,
          ip: (info.remoteAddr as Deno.NetAddr).hostname ?? "unknown",
          app: ctx,
        };
        return await r.handler(req, rc);
      }
      if (otherMethod) {
        throw new HttpError(405, "method_not_allowed", `Method ${req.method} is not allowed here`);
      }
      throw new HttpError(404, "not_found", `No route for "${url.pathname}"`);
    } catch (err) {
      if (err instanceof HttpError) {
        if (err.status >= 500) log.error("http_error", { path: url.pathname, status: err.status });
        ctx.metrics.inc("switchboard_http_errors_total", { status: String(err.status) });
        return errorResponse(err);
      }
      // The logger redacts secrets in `path` fields.
      log.error("request_failed", { path: url.pathname + url.search, error: String(err) });
      return errorResponse(new HttpError(500, "internal", "Internal server error"));
    }
  }

  return {
    ctx,
    retention,
    fetch,
    closeSockets() {
      stopTimers();
      hub.closeAll(CloseCode.goingAway, "Server shutting down");
    },
    async close() {
      stopTimers();
      await broker.close();
      await store.close();
    },
  };
}

/** A running server. */
export interface RunningServer {
  app: App;
  /** The current Deno server; another takes its place when the listener is opened again (lib/listener.ts). */
  readonly server: Deno.HttpServer<Deno.NetAddr>;
  /** The port, kept by every listener. */
  port: number;
  /** Graceful shutdown: sockets get 1001, the listener stops, the store closes. */
  shutdown(): Promise<void>;
}

/** Builds the app and serves it on `config.host:config.port` (port 0 picks a free port). */
export async function startServer(config: Config, log = new Logger(config.logLevel)): Promise<RunningServer> {
  const app = await createApp(config, log);
  const tls = config.cert && config.key
    ? { cert: await Deno.readTextFile(config.cert), key: await Deno.readTextFile(config.key) }
    : {};
  // Deno's serve loop stops for good on an accept error such as EMFILE; the supervisor opens the listener
  // again (issue #10, finding 3; see lib/listener.ts).
  const listener = new SupervisedServer(
    { hostname: config.host, port: config.port, ...tls },
    app.fetch,
    app.ctx,
  );
  const port = listener.port;
  log.always("start", { host: config.host, port, tls: Boolean(config.cert), dataDir: config.dataDir });
  let stopping: Promise<void> | undefined;
  return {
    app,
    get server() {
      return listener.server;
    },
    port,
    shutdown() {
      stopping ??= (async () => {
        app.closeSockets();
        await listener.shutdown();
        await app.close();
        log.always("stop", { port });
      })();
      return stopping;
    },
  };
}

/** The command: parse flags, serve, stop on SIGINT/SIGTERM. */
export async function main(args: string[]): Promise<void> {
  let config: Config;
  try {
    const parsed = parseConfig(args, Deno.env.toObject());
    if (parsed.help) {
      console.log(helpText());
      return;
    }
    config = parsed.config;
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`switchboard: ${err.message}`);
      Deno.exit(2);
    }
    throw err;
  }
  const log = new Logger(config.logLevel);
  // A socket handler's failure must never take the process down (see shared DENO_NOTES).
  globalThis.addEventListener("error", (e) => {
    e.preventDefault();
    log.error("uncaught_error", { error: String(e.error ?? e.message) });
  });
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    log.error("unhandled_rejection", { error: String(e.reason) });
  });
  let running: RunningServer;
  try {
    running = await startServer(config, log);
  } catch (err) {
    console.error(
      `switchboard: ${err instanceof ConfigError ? "" : "cannot start: "}${(err as Error).message}`,
    );
    Deno.exit(err instanceof ConfigError ? 2 : 1);
  }
  const stop = async (signal: string) => {
    log.info("signal", { signal });
    // Exit within 2 s even if a peer never finishes its close handshake.
    const deadline = setTimeout(() => Deno.exit(0), 1800);
    await running.shutdown();
    clearTimeout(deadline);
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
}

if (import.meta.main) {
  await main(Deno.args);
}
