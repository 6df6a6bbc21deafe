/**
 * Child processes for the benchmark: servers on free ports, and load-generator runs. Every process started here is
 * tracked until it exits, so an interrupted benchmark can stop exactly the processes it started.
 *
 * @module
 */

/** Open-file limit asked for each child (idle runs hold 10,000+ sockets); the hard limit caps it silently. */
const NOFILE = 65536;

const live = new Set<Deno.ChildProcess>();

/** Kills every child this module started that is still running (used on SIGINT). */
export function killAll(): void {
  for (const child of live) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Keeps the last `limit` characters of a stream, reading it to the end so the child never blocks on a full pipe. */
class Tail {
  text = "";
  done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>, limit = 8192) {
    this.done = (async () => {
      for await (
        const chunk of (stream as ReadableStream<Uint8Array<ArrayBuffer>>).pipeThrough(
          new TextDecoderStream(),
        )
      ) {
        this.text = (this.text + chunk).slice(-limit);
      }
    })().catch(() => {});
  }
}

/** Spawns `cmd` through `sh` with a raised open-file limit; `exec` keeps the pid the program's own. */
function spawn(cmd: string[], cwd?: string): Deno.ChildProcess {
  const script = `ulimit -n ${NOFILE} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
  const child = new Deno.Command("sh", {
    args: ["-c", script, "sh", ...cmd],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  live.add(child);
  child.status.finally(() => live.delete(child));
  return child;
}

/** A server started by {@linkcode startServer}. */
export class ServerProcess {
  readonly pid: number;
  readonly port: number;
  #child: Deno.ChildProcess;
  #stdout: Tail;
  #stderr: Tail;
  #exited = false;

  constructor(child: Deno.ChildProcess, port: number) {
    this.#child = child;
    this.pid = child.pid;
    this.port = port;
    this.#stdout = new Tail(child.stdout);
    this.#stderr = new Tail(child.stderr);
    child.status.then(() => this.#exited = true);
  }

  /** Whether the process has exited. */
  get exited(): boolean {
    return this.#exited;
  }

  /** The end of what it wrote to stdout and stderr. */
  get output(): string {
    return `${this.#stdout.text}${this.#stderr.text}`.trim();
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 3000): Promise<void> {
    if (!this.#exited) {
      try {
        this.#child.kill("SIGTERM");
      } catch {
        // already gone
      }
      const timer = setTimeout(() => {
        try {
          this.#child.kill("SIGKILL");
        } catch {
          // already gone
        }
      }, graceMs);
      await this.#child.status;
      clearTimeout(timer);
    }
    await Promise.all([this.#stdout.done, this.#stderr.done]);
  }
}

/** Starts `cmd` and waits until its port accepts connections; throws with its output if it dies or times out. */
export async function startServer(
  cmd: string[],
  port: number,
  timeoutMs = 15_000,
): Promise<ServerProcess> {
  const server = new ServerProcess(spawn(cmd), port);
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (server.exited) {
      await server.stop();
      throw new Error(
        `Server exited before listening: ${cmd.join(" ")}\n${server.output}`,
      );
    }
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return server;
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  await server.stop();
  throw new Error(
    `Server not listening on port ${port} after ${timeoutMs} ms: ${cmd.join(" ")}\n${server.output}`,
  );
}

/** Runs a command to completion (killed after `timeoutMs`); returns its exit code, stdout and stderr. */
export async function runToEnd(
  cmd: string[],
  timeoutMs: number,
  cwd?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(cmd, cwd);
  const stdout = new Tail(child.stdout, 1 << 20);
  const stderr = new Tail(child.stderr);
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, timeoutMs);
  const status = await child.status;
  clearTimeout(timer);
  await Promise.all([stdout.done, stderr.done]);
  return { code: status.code, stdout: stdout.text, stderr: stderr.text };
}
