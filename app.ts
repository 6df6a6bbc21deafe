/**
 * The app: builds the engine's services (store, broker, hub), the products on top of them (chat, push, customer
 * service), and the one fetch handler over {@linkcode ROUTES}. `main.ts` serves it.
 *
 * @module
 */
import {
  adminAudit,
  adminConnection,
  adminConnections,
  adminDisconnect,
  adminKick,
  adminPublish,
  adminRooms,
  adminSupport,
  adminTopics,
} from "./handlers/admin_api.ts";
import { addAgentApi, listAgentsApi, updateAgentApi } from "./handlers/agents_api.ts";
import { addCanned, deleteCanned, listCanned } from "./handlers/canned_api.ts";
import { chatSocket } from "./handlers/chat.ts";
import { echoSocket } from "./handlers/echo.ts";
import { healthz, readyz } from "./handlers/health.ts";
import { metrics } from "./handlers/metrics.ts";
import { page } from "./handlers/pages.ts";
import { pushSocket } from "./handlers/push.ts";
import { publishApi } from "./handlers/publish.ts";
import { listRooms, roomMessages } from "./handlers/rooms_api.ts";
import { createSchedule, deleteSchedule, listSchedules } from "./handlers/schedules.ts";
import { selfcheckSse, selfcheckTime } from "./handlers/selfcheck.ts";
import { ssePush } from "./handlers/sse.ts";
import { agentSocket } from "./handlers/support_agent.ts";
import {
  agentLogin,
  agentLogout,
  agentMe,
  listConversations,
  transcript,
  visitorConversations,
} from "./handlers/support_api.ts";
import { visitorSocket } from "./handlers/support_visitor.ts";
import { supportReport } from "./handlers/reports.ts";
import { getAvailability, getSettings, putSettings } from "./handlers/support_settings.ts";
import { leaveMessage } from "./handlers/support_offline.ts";
import { deleteVisitor, exportVisitor } from "./handlers/data_requests.ts";
import { disconnectUser } from "./handlers/users.ts";
import { ControlPlane } from "./lib/admin/control.ts";
import type { Broker } from "./lib/broker/broker.ts";
import { MemoryBroker } from "./lib/broker/memory.ts";
import { Retention } from "./lib/store/retention.ts";
import { membersExpired, registerChatMetrics } from "./lib/chat/rooms.ts";
import { TokenVerifier } from "./lib/auth/identity.ts";
import { type Config, ConfigError } from "./lib/config.ts";
import type { AppContext } from "./lib/context.ts";
import { errorResponse, HttpError } from "./lib/http/http.ts";
import { type Route, route, Router } from "./lib/http/router.ts";
import { StaticFiles } from "./lib/http/static_files.ts";
import { Logger } from "./lib/log.ts";
import { Metrics } from "./lib/metrics.ts";
import { Scheduler } from "./lib/push/scheduler.ts";
import { Ticker } from "./lib/push/ticker.ts";
import { ConnectionGuard } from "./lib/realtime/guard.ts";
import { CloseCode, Hub } from "./lib/realtime/hub.ts";
import type { Services } from "./lib/services.ts";
import { openStore } from "./lib/store/open.ts";
import { saveDemoAgents } from "./lib/support/agents.ts";
import { Support } from "./lib/support/support.ts";
import { downloadFile, uploadFile } from "./handlers/uploads.ts";
import { Webhooks } from "./lib/webhooks/webhooks.ts";
import { getDelivery, listDeliveries, retryDelivery } from "./handlers/webhooks_api.ts";

/** The route table; the first match wins. */
export const ROUTES: readonly Route<AppContext>[] = [
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
  route("POST", "/api/users/:sub/disconnect", disconnectUser),
  route("POST", "/api/schedules", createSchedule),
  route("GET", "/api/schedules", listSchedules),
  route("DELETE", "/api/schedules/:id", deleteSchedule),
  route("GET", "/ws/support/visitor", visitorSocket),
  route("GET", "/ws/support/agent", agentSocket),
  route("POST", "/api/agent/login", agentLogin),
  route("POST", "/api/agent/logout", agentLogout),
  route("GET", "/api/agent/me", agentMe),
  route("GET", "/api/agents", listAgentsApi),
  route("GET", "/api/canned", listCanned),
  route("POST", "/api/canned", addCanned),
  route("DELETE", "/api/canned/:id", deleteCanned),
  route("POST", "/api/agents", addAgentApi),
  route("PATCH", "/api/agents/:username", updateAgentApi),
  route("GET", "/api/support/conversations", listConversations),
  route("GET", "/api/support/conversations/:id/transcript", transcript),
  route("GET", "/api/support/visitors/:id/conversations", visitorConversations),
  route("GET", "/api/support/visitors/:id/export", exportVisitor),
  route("DELETE", "/api/support/visitors/:id", deleteVisitor),
  route("GET", "/api/support/reports", supportReport),
  route("GET", "/api/support/settings", getSettings),
  route("PUT", "/api/support/settings", putSettings),
  route("GET", "/api/support/availability", getAvailability),
  route("POST", "/api/support/offline", leaveMessage),
  route("POST", "/api/uploads", uploadFile),
  route("GET", "/api/webhooks/deliveries", listDeliveries),
  route("GET", "/api/webhooks/deliveries/:id", getDelivery),
  route("POST", "/api/webhooks/deliveries/:id/retry", retryDelivery),
  route("GET", "/api/uploads/:id", downloadFile),
  route("GET", "/api/admin/connections", adminConnections),
  route("GET", "/api/admin/connections/:id", adminConnection),
  route("POST", "/api/admin/connections/:id/disconnect", adminDisconnect),
  route("GET", "/api/admin/rooms", adminRooms),
  route("POST", "/api/admin/rooms/:room/kick", adminKick),
  route("GET", "/api/admin/topics", adminTopics),
  route("GET", "/api/admin/support", adminSupport),
  route("POST", "/api/admin/publish", adminPublish),
  route("GET", "/api/admin/audit", adminAudit),
  route("GET", "/api/selfcheck/time", selfcheckTime),
  route("GET", "/sse/selfcheck", selfcheckSse),
  route("GET", "/*", page),
  route("HEAD", "/*", page),
];

const router = new Router(ROUTES);

/** A built app: its fetch handler, its context, and how to stop it. */
export interface App {
  ctx: AppContext;
  /** Retention (`--history-retention-days`, `--room-history-max`, `--retention-days`). */
  retention: Retention;
  fetch(req: Request, info: Deno.ServeHandlerInfo): Promise<Response>;
  /** Closes every socket with 1001 and stops timers. */
  closeSockets(): void;
  /** Releases the store and broker. */
  close(): Promise<void>;
}

/** Builds the app from a config: services, products, and the fetch handler over {@linkcode ROUTES}. */
export async function createApp(config: Config, log = new Logger(config.logLevel)): Promise<App> {
  const metricsRegistry = new Metrics();
  metricsRegistry.gauge(
    "switchboard_process_memory_bytes",
    "Process memory: resident set (rss), V8 heap (heap_total, heap_used) and buffers outside it (external)",
    () => {
      const m = Deno.memoryUsage();
      const kinds: [string, number][] = [
        ["rss", m.rss],
        ["heap_total", m.heapTotal],
        ["heap_used", m.heapUsed],
        ["external", m.external],
      ];
      return new Map(kinds.map(([kind, bytes]) => [Metrics.labels({ kind }), bytes]));
    },
  );
  const store = await openStore({ dataDir: config.dataDir, databaseUrl: config.databaseUrl });
  // The Redis client is loaded only in cluster mode.
  const broker: Broker = config.redisUrl
    ? await (await import("./lib/broker/redis.ts")).RedisBroker.connect(config.redisUrl, log)
    : new MemoryBroker();
  const hub = new Hub(broker, metricsRegistry, log, config.maxBufferedBytes);
  const services: Services = {
    config,
    log,
    metrics: metricsRegistry,
    hub,
    broker,
    store,
    guard: new ConnectionGuard(config),
    verifier: await TokenVerifier.create(config).catch((err) => {
      throw new ConfigError((err as Error).message);
    }),
    webhooks: new Webhooks(config, store, log, metricsRegistry),
  };
  // The products on top of the services; the context is the same object, so products and handlers share it.
  const ctx: AppContext = Object.assign(services, {
    ticker: new Ticker(config.pushIntervalMs, config.tz),
    staticFiles: await StaticFiles.load(),
    support: new Support(services),
    admin: new ControlPlane(services),
  });
  await saveDemoAgents(store, config.demoAgents);
  await ctx.admin.start();
  registerChatMetrics(services);
  // Cluster mode: members of a dead instance leave presence; after a broker outage, sockets resync.
  broker.onExpired?.((channel, entries) => {
    Promise.all([
      membersExpired(services, channel, entries),
      ctx.support.agents.presenceExpired(channel, entries),
    ])
      .catch((err) => log.error("presence_expiry_failed", { channel, error: String(err) }));
  });
  broker.onReconnect?.(() => {
    for (const conn of hub.conns()) {
      if (conn.endpoint !== "echo") conn.close(CloseCode.resync);
    }
  });
  const scheduler = new Scheduler(services);
  scheduler.start();
  const retention = new Retention(store, config, log);
  retention.start();
  ctx.support.uploads.start();
  services.webhooks.start();
  const stopTimers = () => {
    ctx.ticker.stop();
    scheduler.stop();
    retention.stop();
    ctx.support.stop();
  };

  /** Routes the request; every thrown {@linkcode HttpError} and every failure becomes a JSON answer here. */
  async function fetch(req: Request, info: Deno.ServeHandlerInfo): Promise<Response> {
    const url = new URL(req.url);
    try {
      const { route, params } = router.match(req.method, url);
      const ip = (info.remoteAddr as Deno.NetAddr).hostname ?? "unknown";
      return await route.handler(req, { params, url, ip, app: ctx });
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
      hub.closeAll(CloseCode.goingAway);
    },
    async close() {
      stopTimers();
      // Publications already answered still reach the sockets that are left.
      await hub.runLater();
      await services.webhooks.stop();
      await ctx.admin.stop();
      await broker.close();
      await store.close();
    },
  };
}
