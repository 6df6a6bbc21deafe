/**
 * Test helpers: the app in-process on port 0, the real command as a subprocess, and a WebSocket client that
 * waits for frames. Everything they open is closed by `await using`.
 *
 * @module
 */
import { type Config, defaultConfig } from "../lib/config.ts";
import { Logger } from "../lib/log.ts";
import { type RunningServer, startServer } from "../main.ts";

/** The repository root. */
export const ROOT = new URL("../", import.meta.url).pathname;

/** A server started in this process on a free port, with its own temp data dir. */
export interface TestServer extends AsyncDisposable {
  port: number;
  dataDir: string;
  /** Set when the server runs on PostgreSQL. */
  databaseUrl: string | undefined;
  running: RunningServer;
  http(path: string): string;
  ws(path: string): string;
}

/** Starts the app in-process on 127.0.0.1:0 with a fresh data dir (unless given). */
export async function startTestServer(overrides: Partial<Config> = {}): Promise<TestServer> {
  const dataDir = overrides.dataDir ?? await Deno.makeTempDir({ prefix: "switchboard-test-" });
  const config: Config = {
    ...defaultConfig(),
    host: "127.0.0.1",
    port: 0,
    logLevel: "silent",
    ...overrides,
    dataDir,
  };
  const running = await startServer(config, new Logger(config.logLevel));
  const ownDir = overrides.dataDir === undefined;
  return {
    port: running.port,
    dataDir,
    databaseUrl: config.databaseUrl,
    running,
    http: (path) => `http://127.0.0.1:${running.port}${path}`,
    ws: (path) => `ws://127.0.0.1:${running.port}${path}`,
    async [Symbol.asyncDispose]() {
      await running.shutdown();
      if (ownDir) await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    },
  };
}

/** A WebSocket client that queues what it receives. */
export class TestClient implements AsyncDisposable {
  readonly ws: WebSocket;
  readonly received: unknown[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<CloseEvent>;
  #waiters: (() => void)[] = [];
  #unpackArrays: boolean;

  constructor(url: string, options: { unpackArrays?: boolean; headers?: Record<string, string> } = {}) {
    this.#unpackArrays = options.unpackArrays ?? false;
    this.ws = options.headers
      // deno-lint-ignore no-explicit-any
      ? new WebSocket(url, { headers: options.headers } as any)
      : new WebSocket(url);
    this.ws.binaryType = "arraybuffer";
    this.opened = new Promise((resolve, reject) => {
      this.ws.addEventListener("open", () => resolve(), { once: true });
      this.ws.addEventListener("error", () => reject(new Error(`WebSocket to ${url} failed`)), {
        once: true,
      });
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) =>
      this.ws.addEventListener("close", (e) => {
        resolve(e);
        // No frame will come any more: wake every waiter so it can fail now instead of at its timeout.
        for (const w of this.#waiters.splice(0)) w();
      }, { once: true })
    );
    this.ws.addEventListener("message", (e: MessageEvent) => {
      let data: unknown = e.data;
      if (typeof data === "string") {
        try {
          data = JSON.parse(data);
        } catch {
          // plain text frame
        }
      }
      if (this.#unpackArrays && Array.isArray(data)) this.received.push(...data);
      else this.received.push(data);
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  /** Opens a client and waits for the open event. */
  static async open(url: string, options?: ConstructorParameters<typeof TestClient>[1]): Promise<TestClient> {
    const c = new TestClient(url, options);
    await c.opened;
    return c;
  }

  /** Sends an object as JSON, or a string/bytes as they are. */
  send(data: unknown): void {
    if (typeof data === "string" || data instanceof ArrayBuffer || data instanceof Uint8Array) {
      this.ws.send(data as string);
    } else this.ws.send(JSON.stringify(data));
  }

  /** Removes and returns the first received frame matching `match`, waiting up to `timeoutMs`. */
  async next<T = Record<string, unknown>>(
    match: (frame: Record<string, unknown>) => boolean = () => true,
    timeoutMs = 5000,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const i = this.received.findIndex((f) => match(f as Record<string, unknown>));
      if (i !== -1) return this.received.splice(i, 1)[0] as T;
      const left = deadline - Date.now();
      if (this.ws.readyState === WebSocket.CLOSED) {
        throw new Error(
          `The socket closed before a matching frame; received: ${JSON.stringify(this.received)}`,
        );
      }
      if (left <= 0) {
        throw new Error(
          `No matching frame within ${timeoutMs} ms; received: ${JSON.stringify(this.received)}`,
        );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  /** Waits for the next frame of a given `type`. */
  nextType<T = Record<string, unknown>>(type: string, timeoutMs = 5000): Promise<T> {
    return this.next<T>((f) => f?.type === type, timeoutMs);
  }

  /** The close event of a socket the server should close soon; throws instead of hanging when it does not. */
  async closedWithin(ms: number): Promise<CloseEvent> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`The server did not close the socket within ${ms} ms`)), ms);
    });
    try {
      return await Promise.race([this.closed, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes and waits for the close event. */
  async close(): Promise<CloseEvent> {
    if (this.ws.readyState === WebSocket.CONNECTING) await this.opened.catch(() => {});
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.close();
    return await this.closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The real command (`deno task start …`) running as a subprocess. */
export interface ServerProcess extends AsyncDisposable {
  port: number;
  child: Deno.ChildProcess;
  /** Every stdout line so far. */
  lines: string[];
  http(path: string): string;
  ws(path: string): string;
  /** Sends a signal and waits for the exit status. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

/**
 * Runs `deno task start --port 0 …args` (or `deno run main.ts` when `direct`, or a compiled `binary`) from `cwd`,
 * waits for its `start` log line and returns its port. A `wrapper` is a command that the server's command line is
 * appended to; it must `exec` it, so that signals reach the server, e.g.
 * `["bash", "-c", 'ulimit -n 100 && exec "$@"', "bash"]`.
 */
export async function spawnServer(
  args: string[],
  options: {
    cwd?: string;
    direct?: boolean;
    binary?: string;
    env?: Record<string, string>;
    wrapper?: string[];
  } = {},
): Promise<ServerProcess> {
  const listen = ["--port", "0", "--host", "127.0.0.1"];
  const cmdArgs = options.binary
    ? [...listen, ...args]
    : options.direct
    ? ["run", "--allow-all", `${ROOT}main.ts`, ...listen, ...args]
    : ["task", "--config", `${ROOT}deno.json`, "start", ...listen, ...args];
  const program = options.binary ?? Deno.execPath();
  const [command, ...commandArgs] = options.wrapper
    ? [...options.wrapper, program, ...cmdArgs]
    : [program, ...cmdArgs];
  const child = new Deno.Command(command, {
    args: commandArgs,
    cwd: options.cwd ?? ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...options.env },
  }).spawn();
  const lines: string[] = [];
  let stderr = "";
  const stderrDone = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) stderr += chunk;
  })();
  const { promise: portPromise, resolve: portResolve, reject: portReject } = Promise.withResolvers<number>();
  const stdoutDone = (async () => {
    let buf = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lines.push(line);
        try {
          const rec = JSON.parse(line);
          if (rec.event === "start") portResolve(rec.port);
        } catch {
          // not a log line
        }
      }
    }
    portReject(new Error(`Server exited before listening; stderr: ${stderr}`));
  })();
  const timer = setTimeout(() => portReject(new Error("Server did not start within 30 s")), 30_000);
  let port: number;
  try {
    port = await portPromise;
  } catch (err) {
    child.kill("SIGKILL");
    await child.status;
    await Promise.all([stdoutDone, stderrDone]);
    throw err;
  } finally {
    clearTimeout(timer);
  }
  let status: Promise<Deno.CommandStatus> | undefined;
  const stop = async (signal: Deno.Signal = "SIGTERM") => {
    if (!status) {
      try {
        child.kill(signal);
      } catch {
        // already exited
      }
      status = child.status;
    }
    const s = await status;
    await Promise.all([stdoutDone, stderrDone]);
    return s;
  };
  return {
    port,
    child,
    lines,
    http: (path) => `http://127.0.0.1:${port}${path}`,
    ws: (path) => `ws://127.0.0.1:${port}${path}`,
    stop,
    async [Symbol.asyncDispose]() {
      // `deno task` forwards SIGTERM to the server but a SIGKILL would orphan it: ask first, then insist.
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // already exited
        }
      }, 3000);
      await stop(options.direct || options.binary ? "SIGKILL" : "SIGTERM");
      clearTimeout(timer);
    },
  };
}

/** Resolves after `ms`. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Fetches and consumes the body; returns status, headers and text. */
export async function get(
  url: string,
  init?: RequestInit,
): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await fetch(url, init);
  return { status: res.status, headers: res.headers, text: await res.text() };
}
