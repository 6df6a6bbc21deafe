/**
 * Switchboard: a real-time server (echo, push, chat rooms, customer service) on one port.
 *
 * The process: as a library, {@linkcode startServer} serves an app built by {@linkcode createApp} (`app.ts`); as
 * a command (`deno task start`), it parses flags, serves, and shuts down gracefully on SIGINT/SIGTERM.
 *
 * @module
 */
import { type App, createApp } from "./app.ts";
import { type Config, ConfigError, helpText, parseConfig } from "./lib/config.ts";
import { SupervisedServer } from "./lib/http/listener.ts";
import { FrontServer } from "./lib/http/front.ts";
import { Logger } from "./lib/log.ts";

export { type App, createApp, ROUTES } from "./app.ts";

/** A running server. */
export interface RunningServer {
  app: App;
  /** The current Deno server; another takes its place when the listener is opened again (lib/http/listener.ts). */
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
  // again (issue #10, finding 3; see lib/http/listener.ts). The own transport's front keeps its own listener
  // and serves plain HTTP through a supervised server behind it (lib/http/front.ts).
  const listen = { hostname: config.host, port: config.port, ...tls };
  const listener = config.transport === "own"
    ? new FrontServer(listen, app.fetch, app.ctx)
    : new SupervisedServer(listen, app.fetch, app.ctx);
  const port = listener.port;
  log.always("start", {
    host: config.host,
    port,
    tls: Boolean(config.cert),
    transport: config.transport,
    dataDir: config.dataDir,
  });
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
