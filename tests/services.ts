/**
 * Real Redis and PostgreSQL servers for cluster tests, each in a temp dir on a free loopback port.
 * Without the Debian packages the tests that need them are reported as ignored with a loud note; CI installs them.
 *
 * @module
 */
// Not ./helpers.ts: that imports the server, and bench/cluster.ts loads this module from bench/'s own config.
import { setTimeout as delay } from "node:timers/promises";

const PG_BIN = await (async () => {
  try {
    for await (const e of Deno.readDir("/usr/lib/postgresql")) {
      const bin = `/usr/lib/postgresql/${e.name}/bin`;
      if (await Deno.stat(`${bin}/postgres`).then(() => true).catch(() => false)) return bin;
    }
  } catch {
    // not installed
  }
  return undefined;
})();
const REDIS = await Deno.stat("/usr/bin/redis-server").then(() => "/usr/bin/redis-server").catch(() =>
  undefined
);

/** Whether both services can be started here. */
export const hasServices = PG_BIN !== undefined && REDIS !== undefined;
if (!hasServices) {
  console.warn(
    "\n*** SKIPPED: cluster tests need redis-server and postgresql (apt-get install redis-server postgresql). ***\n",
  );
}

/** A free TCP port on 127.0.0.1. */
/**
 * The flags of one instance of a test cluster: its own data dir, the shared Redis and (when given) PostgreSQL,
 * quiet logs, then `extra` (later flags win).
 */
export function clusterArgs(
  dataDir: string,
  redisUrl: string,
  database: string | undefined,
  ...extra: string[]
): string[] {
  return [
    "--data-dir",
    dataDir,
    "--redis",
    redisUrl,
    ...(database ? ["--database", database] : []),
    "--log-level",
    "warn",
    ...extra,
  ];
}

export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function waitForPort(port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      c.close();
      return;
    } catch {
      await delay(50);
    }
  }
  throw new Error(`Nothing listened on port ${port} within ${timeoutMs} ms`);
}

/** A running service. */
export interface Service extends AsyncDisposable {
  url: string;
  port: number;
  /** Stops the process (SIGKILL when `hard`). */
  stop(hard?: boolean): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
}

/** Starts `redis-server` on a free port, without persistence. */
export async function startRedis(): Promise<Service> {
  const port = freePort();
  const dir = await Deno.makeTempDir({ prefix: "sb-redis-" });
  let child: Deno.ChildProcess | undefined;
  const start = async () => {
    child = new Deno.Command(REDIS!, {
      args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitForPort(port);
  };
  const stop = async (hard = false) => {
    if (!child) return;
    child.kill(hard ? "SIGKILL" : "SIGTERM");
    await child.status;
    child = undefined;
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop,
    start,
    async [Symbol.asyncDispose]() {
      await stop(true);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Starts a throwaway PostgreSQL cluster (trust auth on loopback, fsync off) on a free port. */
export async function startPostgres(): Promise<Service> {
  const port = freePort();
  const dir = await Deno.makeTempDir({ prefix: "sb-pg-" });
  const asRoot = Deno.uid() === 0;
  // PostgreSQL refuses to run as root: use the postgres system user the Debian package creates.
  const cmd = (bin: string, args: string[]) =>
    asRoot
      ? new Deno.Command("runuser", {
        args: ["-u", "postgres", "--", `${PG_BIN}/${bin}`, ...args],
        stdout: "null",
        stderr: "piped",
      })
      : new Deno.Command(`${PG_BIN}/${bin}`, { args, stdout: "null", stderr: "piped" });
  if (asRoot) await new Deno.Command("chown", { args: ["postgres:postgres", dir] }).output();
  const init = await cmd("initdb", ["-D", `${dir}/data`, "-A", "trust", "-U", "switchboard", "--no-sync"])
    .output();
  if (init.code !== 0) throw new Error(`initdb failed: ${new TextDecoder().decode(init.stderr)}`);
  let child: Deno.ChildProcess | undefined;
  const start = async () => {
    child = cmd("postgres", [
      "-D",
      `${dir}/data`,
      "-p",
      String(port),
      "-k",
      dir,
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "fsync=off",
      "-c",
      "max_connections=200",
    ]).spawn();
    child.stderr.cancel();
    await waitForPort(port, 30_000);
    // Accepting TCP is not yet accepting queries; wait for a real answer.
    for (let i = 0; i < 100; i++) {
      const ready = await new Deno.Command(`${PG_BIN}/pg_isready`, {
        args: ["-h", "127.0.0.1", "-p", String(port)],
        stdout: "null",
        stderr: "null",
      }).output();
      if (ready.code === 0) return;
      await delay(100);
    }
  };
  // Through runuser a signal may not reach postgres itself; pg_ctl stops the server by its data dir.
  const stop = async (hard = false) => {
    if (!child) return;
    await cmd("pg_ctl", ["stop", "-D", `${dir}/data`, "-m", hard ? "immediate" : "fast", "-w"]).output();
    await child.status;
    child = undefined;
  };
  await start();
  return {
    url: `postgres://switchboard@127.0.0.1:${port}/postgres`,
    port,
    stop,
    start,
    async [Symbol.asyncDispose]() {
      await stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Creates a fresh database on a PostgreSQL service and returns its URL. */
export async function createDatabase(pg: Service, name: string): Promise<string> {
  const { default: postgres } = await import("postgres");
  const sql = postgres(pg.url, { onnotice: () => {} });
  try {
    await sql.unsafe(`CREATE DATABASE ${name}`);
  } finally {
    await sql.end();
  }
  return pg.url.replace(/\/postgres$/, `/${name}`);
}
