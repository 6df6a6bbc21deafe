/**
 * Switchboard in cluster mode for the benchmark: a fresh `redis-server` and a fresh PostgreSQL (the throwaway
 * services of `tests/services.ts`, in temp dirs on free ports), then `instances` Switchboard processes started
 * one after another with the bench's usual flags plus `--redis` and `--database`, each on its own port and data
 * dir. {@linkcode Cluster.stop} stops all of it; {@linkcode stopAllClusters} does the same for an interrupted run.
 *
 * @module
 */
import type { Service } from "../tests/services.ts";
import { findProcesses } from "./proc_stats.ts";
import { freePort, type ServerProcess, startServer } from "./process.ts";
import { SWITCHBOARD } from "./targets.ts";

/** A running cluster. */
export interface Cluster {
  servers: ServerProcess[];
  /** What `bench/load.ts --pids` should watch: `sb1=…,sb2=…,redis=…,postgres=…+` (the postmaster and below). */
  pids: string;
  /** Stops the instances (SIGTERM, then SIGKILL after `graceMs`), then Redis and PostgreSQL. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<Cluster>();

/** How long the services get to start, and to stop, before the bench gives up on them. */
const SERVICE_TIMEOUT_MS = 60_000;

/** Rejects after `ms` with `what` in the message. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Waits until `GET /readyz` answers 200 (store and broker reachable). */
async function ready(port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let last = "";
  while (performance.now() < deadline) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2000) });
      last = `${res.status} ${await res.text()}`;
      if (res.ok) return;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`Instance on port ${port} not ready after ${timeoutMs} ms: ${last}`);
}

/** The one process whose command line `matches`, or an error naming `what`. */
function onePid(what: string, matches: (cmdline: string) => boolean): number {
  const pids = findProcesses(matches);
  if (pids.length !== 1) throw new Error(`Expected one ${what} process, found ${pids.length}`);
  return pids[0];
}

/**
 * The postmaster of the PostgreSQL on `port`, from the `postmaster.pid` file in the data dir its command line
 * names (a backend that has just forked still shows the postmaster's command line).
 */
function postmasterPid(port: number): number {
  const dirs = new Set(
    findProcesses((c) => /(^|\/)postgres /.test(c) && c.includes(` -p ${port} `) && !/runuser/.test(c))
      .flatMap((pid) => {
        try {
          const argv = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
          return [argv[argv.indexOf("-D") + 1]];
        } catch {
          return []; // a backend gone meanwhile
        }
      }),
  );
  if (dirs.size !== 1) {
    throw new Error(`Expected one PostgreSQL data dir for port ${port}, found ${dirs.size}`);
  }
  const [dir] = dirs;
  return Number(Deno.readTextFileSync(`${dir}/postmaster.pid`).split("\n")[0]);
}

/**
 * Starts Redis, PostgreSQL and `instances` Switchboard processes on them; `extraFlags` go last on every
 * instance's command line, `profileDirs[i]` (when given) runs instance `i` under `--cpu-prof`.
 */
export async function startCluster(
  instances: number,
  extraFlags: string[] = [],
  profileDirs: string[] = [],
): Promise<Cluster> {
  // Imported here, not at the top: the module looks for the binaries when loaded, and only this workload needs them.
  const { hasServices, startPostgres, startRedis } = await import("../tests/services.ts");
  if (!hasServices) {
    throw new Error(
      "The cluster workload needs redis-server and PostgreSQL (apt-get install redis-server postgresql)",
    );
  }
  const services: Service[] = [];
  const servers: ServerProcess[] = [];
  const dirs: string[] = [];
  let stopped: Promise<void> | undefined;
  const cluster: Cluster = {
    servers,
    pids: "",
    stop(graceMs = 3000) {
      stopped ??= (async () => {
        await Promise.all(servers.map((s) => s.stop(graceMs)));
        // Each service's own dispose stops it (Redis by SIGKILL, PostgreSQL by `pg_ctl stop -m fast`) and removes
        // its temp dir; bounded, so a stuck service cannot hang the benchmark.
        for (const service of services.reverse()) {
          await within(
            Promise.resolve(service[Symbol.asyncDispose]()),
            SERVICE_TIMEOUT_MS,
            "stopping a service",
          ).catch((
            err,
          ) => console.error(`bench: ${(err as Error).message}`));
        }
        for (const dir of dirs) await Deno.remove(dir, { recursive: true }).catch(() => {});
        live.delete(cluster);
      })();
      return stopped;
    },
  };
  live.add(cluster);
  try {
    const redis = await within(startRedis(), SERVICE_TIMEOUT_MS, "starting redis-server");
    services.push(redis);
    const pg = await within(startPostgres(), SERVICE_TIMEOUT_MS, "starting PostgreSQL");
    services.push(pg);
    // A fresh PostgreSQL cluster per measurement, so its default database is as new as an embedded data dir.
    const database = pg.url;
    const watched = [
      `redis=${
        onePid("redis-server", (c) =>
          c.includes("redis-server") && (c.endsWith(`:${redis.port}`) || c.includes(`--port ${redis.port} `)))
      }`,
      `postgres=${postmasterPid(pg.port)}+`,
    ];
    for (let i = 0; i < instances; i++) {
      const port = freePort();
      const dir = await Deno.makeTempDir({ prefix: "switchboard-bench-" });
      dirs.push(dir);
      const cmd = [
        ...SWITCHBOARD.command(port, dir),
        "--redis",
        redis.url,
        "--database",
        database,
        ...extraFlags,
      ];
      if (profileDirs[i]) cmd.splice(2, 0, "--cpu-prof", `--cpu-prof-dir=${profileDirs[i]}`);
      // One after another: the first one runs the schema migrations.
      const server = await startServer(cmd, port, 30_000);
      servers.push(server);
      await ready(port);
    }
    cluster.pids = [...servers.map((s, i) => `sb${i + 1}=${s.pid}`), ...watched].join(",");
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

/** Stops every cluster still running (an interrupted benchmark), within `timeoutMs`. */
export async function stopAllClusters(timeoutMs = 10_000): Promise<void> {
  await within(Promise.all([...live].map((c) => c.stop(500))), timeoutMs, "stopping the clusters").catch(
    () => {},
  );
}
