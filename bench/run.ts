/**
 * `deno task bench`: runs every workload against Switchboard and the baselines in `bench/peers/`, each server a
 * fresh subprocess on a free port, in alternating A/B order over several rounds; prints markdown tables of the
 * medians with ratios to the baselines measured in the same run, and writes everything to JSON.
 *
 * ```
 * deno run --allow-all bench/run.ts [--seconds 10] [--rounds 3] [--only chat,paced,echo,idle,publish,cluster] [--smoke]
 * ```
 *
 * See docs/benchmarks.md for what each workload does and what the numbers mean.
 *
 * @module
 */
import { type Flags, numberFlag, parseFlags, stringFlag } from "./flags.ts";
import { type Cluster, startCluster, stopAllClusters } from "./cluster.ts";
import type { ChatResult, LoadResult } from "./load.ts";
import { freePort, killAll, runToEnd, type ServerProcess, startServer } from "./process.ts";
import { summarise as summariseProfile } from "./profile_summary.ts";
import { goals, type Run, summarise, type TargetSummary, workloadTable } from "./report.ts";
import {
  API_KEY,
  DEFAULT_WORKLOADS,
  SUPPORT_AGENTS,
  SUPPORT_PASSWORD,
  SUPPORT_VISITORS,
  SWITCHBOARD,
  type Target,
  TARGETS,
  type Workload,
  WORKLOADS,
} from "./targets.ts";

const BENCH_DIR = new URL(".", import.meta.url).pathname;
const LOAD = `${BENCH_DIR}load.ts`;

const USAGE = `Usage: deno task bench [flags]

  --seconds N       chat, paced and support run length per measurement (default 10; smoke 0.5)
  --rounds N        rounds; target order alternates between rounds (default 3; smoke 1)
  --only LIST       workloads, comma separated: ${WORKLOADS.join(",")} (default all but cluster and
                    support, which need redis-server and PostgreSQL; smoke: chat,echo,idle,publish)
  --targets LIST    only these target ids, comma separated (e.g. switchboard,switchboard-batch; default all)
  --clients N       chat clients in the room (default 32)
  --burst N         messages per client per burst (default 1600)
  --round-trips N   echo round trips measured (default 20000)
  --connections N   idle connections (default 10000)
  --subscribers N   publish subscribers (default 5000)
  --publishes N     measured publications (default 10)
  --batch-posts N   1,000-item batch publishes timed after them (default 5; smoke 1)
  --visitors N      support: visitors in closed-loop conversations with 20 agents (default 200)
  --drain-s N       cluster: longest wait for the last burst after the measured window (default 60)
  --out FILE        JSON results (default bench/results/latest.json)
  --server-flags S  extra Switchboard flags, space separated (e.g. "--max-buffered-bytes 4194304"); they win
  --paced-rate N    paced: every target at N deliveries/s (default: half its own flood rate; needs no chat run)
  --profile         run Switchboard under --cpu-prof and print where its time went (pick runs with --only/--targets)
  --smoke           a few-second run with small counts and one round; exits non-zero when a target fails
  --help            show this text`;

/** Everything a run is parameterised by. */
export interface Settings {
  smoke: boolean;
  rounds: number;
  seconds: number;
  workloads: Workload[];
  /** Target ids to run; empty means all. */
  targets: string[];
  chat: { clients: number; burst: number; gapMs: number };
  echo: { clients: number; roundTrips: number; warmup: number; payloadBytes: number };
  idle: { connections: number; settleMs: number };
  publish: { subscribers: number; publishes: number; batchPosts: number };
  support: { visitors: number; agents: number };
  /** The cluster workload: how long the load generator waits for the burst in flight when the window ends. */
  cluster: { drainS: number };
  /** `--paced-rate N`: every paced target at N deliveries/s instead of half its own flood rate. */
  pacedRate: number | undefined;
  profile: boolean;
  /** Extra flags for every Switchboard process (they come last, so they override the bench's own). */
  serverFlags: string[];
  out: string;
}

/** Builds the settings from flags; `--smoke` changes the defaults, explicit flags still win. */
export function settingsFrom(flags: Flags): Settings {
  const smoke = flags.values.has("smoke");
  const only = stringFlag(flags, "only", smoke ? "chat,echo,idle,publish" : DEFAULT_WORKLOADS.join(","));
  const workloads = only.split(",").map((w) => w.trim()).filter((w) => w !== "");
  for (const w of workloads) {
    if (!(WORKLOADS as readonly string[]).includes(w)) {
      throw new Error(`Unknown workload "${w}" in --only (expected ${WORKLOADS.join(", ")})`);
    }
  }
  return {
    smoke,
    rounds: Math.max(1, numberFlag(flags, "rounds", smoke ? 1 : 3)),
    seconds: numberFlag(flags, "seconds", smoke ? 0.5 : 10),
    workloads: WORKLOADS.filter((w) => workloads.includes(w)),
    targets: stringFlag(flags, "targets", "").split(",").map((t) => t.trim()).filter((t) => t !== ""),
    chat: {
      clients: numberFlag(flags, "clients", smoke ? 4 : 32),
      burst: numberFlag(flags, "burst", smoke ? 100 : 1600),
      gapMs: 64,
    },
    echo: {
      clients: 1,
      roundTrips: numberFlag(flags, "round-trips", smoke ? 300 : 20_000),
      warmup: smoke ? 50 : 1000,
      payloadBytes: 32,
    },
    idle: {
      connections: numberFlag(flags, "connections", smoke ? 100 : 10_000),
      settleMs: smoke ? 200 : 1500,
    },
    publish: {
      subscribers: numberFlag(flags, "subscribers", smoke ? 50 : 5000),
      publishes: numberFlag(flags, "publishes", smoke ? 3 : 10),
      batchPosts: numberFlag(flags, "batch-posts", smoke ? 1 : 5),
    },
    cluster: { drainS: numberFlag(flags, "drain-s", 60) },
    support: {
      visitors: numberFlag(flags, "visitors", smoke ? 20 : SUPPORT_VISITORS),
      agents: smoke ? 2 : SUPPORT_AGENTS,
    },
    pacedRate: numberFlag(flags, "paced-rate", 0) || undefined,
    profile: flags.values.has("profile"),
    serverFlags: stringFlag(flags, "server-flags", "").split(/\s+/).filter((f) => f !== ""),
    out: stringFlag(flags, "out", `${BENCH_DIR}results/latest.json`),
  };
}

/** The load generator's arguments for one workload: its name, then `--flag value` pairs. */
function loadArgs(workload: Workload, s: Settings, port: number, rate: number | undefined): string[] {
  const flags = (name: string, values: Record<string, string | number>) => [
    name,
    ...Object.entries(values).flatMap(([flag, value]) => [`--${flag}`, String(value)]),
  ];
  switch (workload) {
    case "chat":
      return flags("chat", {
        clients: s.chat.clients,
        burst: s.chat.burst,
        "gap-ms": s.chat.gapMs,
        seconds: s.seconds,
      });
    case "paced":
      return flags("chat", { clients: s.chat.clients, rate: Math.round(rate ?? 0), seconds: s.seconds });
    case "cluster":
      // The chat flood, every message checked for exactly-once delivery (bench/load.ts `--exact`).
      return [
        ...flags("chat", {
          clients: s.chat.clients,
          burst: s.chat.burst,
          "gap-ms": s.chat.gapMs,
          seconds: s.seconds,
          "drain-s": s.cluster.drainS,
        }),
        "--exact",
      ];
    case "echo":
      return flags("echo", {
        clients: s.echo.clients,
        "round-trips": s.echo.roundTrips,
        warmup: s.echo.warmup,
        "payload-bytes": s.echo.payloadBytes,
      });
    case "idle":
      return flags("idle", { connections: s.idle.connections, "settle-ms": s.idle.settleMs });
    case "support":
      return flags("support", {
        visitors: s.support.visitors,
        agents: s.support.agents,
        seconds: s.seconds,
        "agent-password": SUPPORT_PASSWORD,
      });
    case "publish":
      return flags("publish", {
        subscribers: s.publish.subscribers,
        publishes: s.publish.publishes,
        "batch-posts": s.publish.batchPosts,
        "publish-url": `http://127.0.0.1:${port}/api/publish`,
        "api-key": API_KEY,
      });
  }
}

/** How long one load-generator run may take before it is killed, in seconds. */
function deadlineS(workload: Workload, s: Settings): number {
  switch (workload) {
    case "chat":
    case "paced":
      return s.seconds + 30;
    case "cluster":
      return s.seconds + s.cluster.drainS + 30;
    case "echo":
      return 60 + s.echo.roundTrips / 1000;
    case "idle":
      return 60 + s.idle.connections / 100;
    case "publish":
      return 60 + s.publish.subscribers / 100 + s.publish.publishes * 5;
    case "support":
      return s.seconds + 90;
  }
}

/** Runs `workload` once against `target`: a fresh server, one load-generator run, the server stopped. */
async function measure(
  workload: Workload,
  target: Target,
  s: Settings,
  round: number,
  position: number,
  rate: number | undefined,
): Promise<Run> {
  const run: Run = {
    workload,
    target: target.id,
    round,
    position,
    ok: false,
    rate,
  };
  const port = freePort();
  // A cluster's instances get their data dirs from bench/cluster.ts.
  const tmpDir = target.instances ? undefined : await Deno.makeTempDir({ prefix: "switchboard-bench-" });
  const cmd = target.server.command(port, tmpDir ?? "");
  const serverFlags = [...target.serverFlags ?? [], ...s.serverFlags];
  if (target.server === SWITCHBOARD) cmd.push(...serverFlags);
  let profileDir: string | undefined;
  const profileDirs: string[] = [];
  if (s.profile && target.server === SWITCHBOARD) {
    profileDir = `${BENCH_DIR}results/profiles/${workload}-${target.id}-r${round + 1}`;
    await Deno.mkdir(profileDir, { recursive: true });
    cmd.splice(2, 0, "--cpu-prof", `--cpu-prof-dir=${profileDir}`);
    for (let i = 0; i < (target.instances ?? 0); i++) {
      profileDirs.push(`${profileDir}/sb${i + 1}`);
      await Deno.mkdir(profileDirs[i], { recursive: true });
    }
  }
  let server: ServerProcess | undefined;
  let cluster: Cluster | undefined;
  try {
    // A cluster target starts Redis, PostgreSQL and its instances; the clients are split between the instances.
    let servers: ServerProcess[];
    if (target.instances) {
      cluster = await startCluster(target.instances, serverFlags, profileDirs);
      servers = cluster.servers;
    } else {
      server = await startServer(cmd, port);
      servers = [server];
    }
    const url = servers.map((sv) => target.url.replace("{port}", String(sv.port))).join(" ");
    const deadline = deadlineS(workload, s);
    const args = [
      ...loadArgs(workload, s, port, rate),
      ...[
        "--url",
        url,
        "--client",
        target.client,
        "--server-pid",
        `${servers[0].pid}`,
      ],
      ...(workload === "cluster" || workload === "support"
        ? ["--pids", cluster?.pids ?? `sb1=${servers[0].pid}`]
        : []),
      ...["--deadline", `${deadline}`],
      // Smoke runs wait less for joins and subscriptions to settle (idle has its own settle time).
      ...(s.smoke && workload !== "idle" ? ["--settle-ms", "50"] : []),
    ];
    const { code, stdout, stderr } = await runToEnd([
      "deno",
      "run",
      "-A",
      LOAD,
      ...args,
    ], (deadline + 10) * 1000);
    const line = stdout.trim().split("\n").pop() ?? "";
    const died = servers.find((sv) => sv.exited);
    if (died) {
      throw new Error(`Server exited during the run\n${died.output}`);
    }
    if (code !== 0 || !line.startsWith("{")) {
      throw new Error(
        `Load generator exited with ${code}: ${stderr.trim().split("\n").slice(-3).join(" / ")}`,
      );
    }
    run.result = JSON.parse(line) as LoadResult;
    const problem = emptyResult(run.result);
    if (problem) throw new Error(problem);
    run.ok = true;
  } catch (err) {
    run.error = (err as Error).message;
  } finally {
    // A profiled server needs time to write its profile after its own shutdown deadline.
    await server?.stop(profileDir ? 20_000 : 3000);
    await cluster?.stop(profileDir ? 20_000 : 3000);
    if (tmpDir) await Deno.remove(tmpDir, { recursive: true }).catch(() => {});
  }
  if (profileDir && profileDirs.length === 0) await printProfile(profileDir, target.label);
  for (const [i, dir] of profileDirs.entries()) await printProfile(dir, `${target.label}, instance ${i + 1}`);
  return run;
}

/** Why a finished run counts as a failure (nothing delivered), or undefined. */
function emptyResult(r: LoadResult): string | undefined {
  switch (r.workload) {
    case "chat":
      if (r.deliveries === 0) return "No deliveries";
      if (r.verify.mismatches > 0) {
        return `${r.verify.mismatches} frames counted differently by the fast scan`;
      }
      return r.exact ? inexact(r) : undefined;
    case "echo":
      return r.roundTrips === 0 ? "No round trips" : undefined;
    case "idle":
      return r.opened === 0 ? "No connection opened" : undefined;
    case "publish":
      return r.available && r.delivered === 0 ? "No publication delivered" : undefined;
    case "support":
      if (r.messages === 0) return "No support message arrived";
      return r.errorFrames ? `${r.errorFrames} error frames` : undefined;
  }
}

/** The exactly-once check of one run, in a few words. */
function exactSummary(r: ChatResult): string {
  const e = r.exact!;
  const each = e.bursts ? e.perClient / e.bursts : 0;
  return `${e.bursts} complete bursts (${each.toLocaleString("en-US")} messages per client each)` +
    (e.missing
      ? `, last burst ${e.missing.toLocaleString("en-US")} deliveries short after a ${
        Math.round(e.drainMs / 1000)
      } s drain${e.stalled ? " (stalled)" : " (still arriving; gap-free so far)"}`
      : `, drained in ${(e.drainMs / 1000).toFixed(1)} s`) +
    (e.outOfOrder
      ? `; per-sender order broken: ${e.outOfOrder.toLocaleString("en-US")} late deliveries`
      : "");
}

/**
 * Why an `--exact` chat run failed its exactly-once check, or undefined. Reordering alone (every message arrived,
 * once, but not in its sender's order) is reported by {@linkcode exactSummary} and the table, not a failure.
 */
function inexact(r: ChatResult): string | undefined {
  const e = r.exact!;
  const problems = [
    e.duplicates && `${e.duplicates} duplicate deliveries`,
    e.malformed && `${e.malformed} deliveries with a bad id`,
    e.stalled && `${e.missing} messages of the last burst never arrived (nothing came for 10 s)`,
  ].filter((p) => p);
  return problems.length ? `Exactly-once check failed: ${problems.join(", ")}` : undefined;
}

async function printProfile(dir: string, label: string): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.endsWith(".cpuprofile")) continue;
    const file = `${dir}/${entry.name}`;
    const { totalMs, functions } = summariseProfile(
      JSON.parse(await Deno.readTextFile(file)),
    );
    console.error(`\nprofile of ${label}: ${file}`);
    for (const f of functions.slice(0, 15)) {
      console.error(
        `  ${(100 * f.selfMs / totalMs).toFixed(1).padStart(5)} % self  ${f.name}`,
      );
    }
  }
}

/** One line of progress on stderr per run. */
function progress(run: Run, label: string, s: Settings): string {
  const line = progressLine(run, label, s);
  const other = run.result?.server.otherCpu ?? 0;
  // Other processes competing for the cores make a run suspect; say so where it happens.
  return other > 0.1 ? `${line} (other processes used ${Math.round(other * 100)} % CPU)` : line;
}

function progressLine(run: Run, label: string, s: Settings): string {
  const head = `${run.workload.padEnd(7)} round ${run.round + 1}/${s.rounds}  ${label.padEnd(40)}`;
  if (!run.ok) return `${head} FAILED: ${run.error?.split("\n")[0]}`;
  const r = run.result!;
  switch (r.workload) {
    case "chat": {
      const c = r as ChatResult;
      const closed = Object.values(c.closed).reduce((a, b) => a + b, 0);
      const procs = Object.entries(c.server.processes ?? {});
      const rss = procs.length
        ? procs.map(([label, p]) => `${label} ${Math.round(p.maxRss / 2 ** 20)}`).join(", ")
        : `${Math.round(c.server.maxRss / 2 ** 20)}`;
      return `${head} ${c.deliveriesPerSec.toLocaleString("en-US")} deliveries/s, p99 ${c.latency.p99} ms, ` +
        `max RSS ${rss} MiB` +
        (procs.length
          ? `, CPU ${procs.map(([label, p]) => `${label} ${Math.round(p.cpu * 100)} %`).join(", ")}`
          : "") +
        (c.exact ? `, exactly once: ${exactSummary(c)}` : "") +
        (closed ? `, ${closed} sockets closed` : "") +
        (c.errorFrames ? `, ${c.errorFrames} error frames: ${c.firstErrorFrame}` : "");
    }
    case "echo":
      return `${head} p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms`;
    case "idle":
      return `${head} ${r.opened} open, ${Math.round(r.rssPerConnection / 102.4) / 10} KiB each`;
    case "publish":
      return r.available
        ? `${head} ${r.delivered}/${r.expected} delivered, p99 ${r.latency.p99} ms`
        : `${head} not available yet (${r.status})`;
    case "support":
      return `${head} ${r.messagesPerSec.toLocaleString("en-US")} messages/s, p99 ${r.latency.p99} ms` +
        (r.errorFrames ? `, ${r.errorFrames} error frames` : "");
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function output(cmd: string, ...args: string[]): Promise<string> {
  try {
    const out = await new Deno.Command(cmd, {
      args,
      stdout: "piped",
      stderr: "null",
    }).output();
    return new TextDecoder().decode(out.stdout).trim();
  } catch {
    return "unavailable";
  }
}

/** The machine the numbers come from. */
async function machine(): Promise<Record<string, string | number>> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const meminfo = await Deno.readTextFile("/proc/meminfo").catch(() => "");
  return {
    cpus: navigator.hardwareConcurrency,
    cpuModel: cpuinfo.match(/^model name\s*:\s*(.*)$/m)?.[1] ?? "unknown",
    memTotalMiB: Math.round(
      Number(meminfo.match(/^MemTotal:\s+(\d+)/m)?.[1] ?? 0) / 1024,
    ),
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    node: await output("node", "--version"),
  };
}

/** The Switchboard source measured: the commit, and whether the server's files differ from it. */
async function source(): Promise<{ commit: string; modified: string[] }> {
  const root = new URL("..", import.meta.url).pathname;
  const commit = await output("git", "-C", root, "rev-parse", "--short", "HEAD");
  const status = await output(
    "git",
    "-C",
    root,
    "status",
    "--porcelain",
    "--",
    "main.ts",
    "app.ts",
    "lib",
    "handlers",
  );
  const modified = status === "unavailable"
    ? []
    // `output` trims, so the first line may have lost the leading blank of its two-letter status.
    : status.split("\n").filter((l) => l.trim()).map((l) => l.trim().replace(/^\S+\s+/, ""));
  return { commit, modified };
}

/** A SHA-256 over Switchboard's server source (main.ts, lib/, handlers/), to notice edits during a run. */
async function sourceDigest(): Promise<string> {
  const root = new URL("..", import.meta.url).pathname;
  const files: string[] = ["main.ts", "app.ts"];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(`${root}${dir}`)) {
      if (e.isDirectory) await walk(`${dir}/${e.name}`);
      else if (e.isFile) files.push(`${dir}/${e.name}`);
    }
  };
  for (const dir of ["lib", "handlers"]) await walk(dir).catch(() => {});
  files.sort();
  const parts: Uint8Array[] = [];
  for (const f of files) {
    parts.push(
      new TextEncoder().encode(`${f}\0`),
      await Deno.readFile(`${root}${f}`).catch(() => new Uint8Array()),
    );
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    all.set(p, offset);
    offset += p.length;
  }
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return [...hash.slice(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** What the cluster table cannot show: everything shares this machine's cores. */
function clusterCaveat(s: Settings): string {
  const cores = navigator.hardwareConcurrency;
  return `On this ${cores}-core machine the cluster rows run 2 Switchboard processes, redis-server, PostgreSQL ` +
    `and the load generator on the same ${cores} cores (the embedded rows: 1 Switchboard process and the load ` +
    `generator), so the ratio understates what separate machines would give. Exactly once: every message carries ` +
    `its sender and sequence number; a burst counts when every client has every message of it, and a duplicate, ` +
    `or a burst that stops arriving, fails the run. The burst in flight when the ${s.seconds} s window closes is ` +
    `drained uncounted (up to ${s.cluster.drainS} s) so its tail is checked too ("+ part": the drain ran out of ` +
    `time while messages were still arriving). Per-sender order: deliveries that came after a later message of ` +
    `the same sender, per run (summed over the clients). RSS: max of 250 ms samples (PostgreSQL: summed PSS of ` +
    `the postmaster and its backends); CPU: share of one core over the window.`;
}

/** Runs `npm ci` in bench/ when a Node baseline is needed and bench/node_modules is missing. */
async function ensureNodeModules(): Promise<void> {
  if (await exists(`${BENCH_DIR}node_modules`)) return;
  console.error(
    "bench: installing the Node baselines' packages (npm ci in bench/)",
  );
  const { code, stderr } = await runToEnd(
    ["npm", "ci", "--no-audit", "--no-fund"],
    300_000,
    BENCH_DIR,
  );
  if (code !== 0) {
    throw new Error(`npm ci failed in ${BENCH_DIR}: ${stderr.trim()}`);
  }
}

/** Runs the benchmark; returns the exit code (1 when any target failed). */
export async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args, ["smoke", "profile", "help"]);
  if (flags.values.has("help")) {
    console.log(USAGE);
    return 0;
  }
  const s = settingsFrom(flags);
  const startedAt = new Date();
  const src = await source();
  const digestAtStart = await sourceDigest();
  // Other work on the machine skews everything; the load average at the start says whether there was any.
  const loadAvgAtStart = (await Deno.readTextFile("/proc/loadavg").catch(() => "")).split(" ").slice(0, 3)
    .join(" ");
  const t0 = performance.now();
  if (s.workloads.some((w) => TARGETS[w].some((t) => t.server.node))) {
    await ensureNodeModules();
  }

  const runs: Run[] = [];
  const summaries: Partial<Record<Workload, TargetSummary[]>> = {};
  const notes: string[] = [];
  for (const workload of s.workloads) {
    const targets = TARGETS[workload].filter((t) => s.targets.length === 0 || s.targets.includes(t.id));
    if (targets.length === 0) continue;
    // Paced runs aim at half of each target's median flood rate from this same benchmark run.
    const rates = new Map(
      (summaries.chat ?? []).map((
        t,
      ) => [
        t.id,
        t.medians.deliveriesPerSec ? t.medians.deliveriesPerSec / 2 : 0,
      ]),
    );
    if (workload === "paced" && !summaries.chat && !s.pacedRate) {
      notes.push(
        "paced: skipped, it needs the chat workload in the same run (its rate is half the chat median)",
      );
      continue;
    }
    for (let round = 0; round < s.rounds; round++) {
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const [position, target] of order.entries()) {
        const rate = workload === "paced" ? s.pacedRate ?? rates.get(target.id) : undefined;
        if (workload === "paced" && !rate) continue;
        const started = performance.now();
        const run = await measure(workload, target, s, round, position, rate);
        runs.push(run);
        console.error(
          `${progress(run, target.label, s)} [${((performance.now() - started) / 1000).toFixed(1)} s]`,
        );
      }
    }
    summaries[workload] = summarise(
      targets,
      runs.filter((r) => r.workload === workload),
    );
    if (workload === "cluster") {
      const reordered = runs.filter((r) =>
        r.workload === "cluster" && ((r.result as ChatResult | undefined)?.exact?.outOfOrder ?? 0) > 0
      );
      if (reordered.length) {
        const by = [...new Set(reordered.map((r) => r.target))]
          .map((id) => `${id} ×${reordered.filter((r) => r.target === id).length}`);
        notes.push(
          `**cluster: per-sender order broken in ${reordered.length} of ${
            s.rounds * targets.length
          } runs** ` +
            `(${by.join(", ")}): every message arrived exactly once, but some after a later message of the ` +
            `same sender; docs/protocol.md promises arrival order under backpressure.`,
        );
      }
    }
  }

  const seconds = (performance.now() - t0) / 1000;
  const command = `deno task bench ${args.join(" ")}`.trim();
  const lines = [
    `## Switchboard benchmark (${s.smoke ? "smoke" : "full"}, ${s.rounds} round${s.rounds === 1 ? "" : "s"})`,
    "",
    `\`${command}\` on ${startedAt.toISOString()}, ${seconds.toFixed(0)} s. Medians of the rounds. ` +
    `Switchboard at ${src.commit}` +
    (src.modified.length ? ` with ${src.modified.length} uncommitted server files.` : "."),
  ];
  const titles: Record<Workload, string> = {
    chat: `Chat flood: ${s.chat.clients} clients in one room, bursts of ${s.chat.burst} messages each, ` +
      `${s.seconds} s`,
    paced: `Chat at ${
      s.pacedRate ? `${s.pacedRate.toLocaleString("en-US")} deliveries/s` : "half each target's flood rate"
    } (${s.chat.clients} clients, ${s.seconds} s): delivery latency`,
    echo: `Echo: ${s.echo.clients} client, ${s.echo.roundTrips.toLocaleString("en-US")} round trips of ` +
      `${s.echo.payloadBytes} bytes`,
    idle: `Idle connections: ${s.idle.connections.toLocaleString("en-US")} sockets`,
    publish: `Publish fan-out: ${s.publish.subscribers.toLocaleString("en-US")} subscribers, ` +
      `${s.publish.publishes} publications`,
    cluster:
      `Cluster: the chat flood (${s.chat.clients} clients, bursts of ${s.chat.burst}, ${s.seconds} s) on one ` +
      `embedded instance and on 2 instances + Redis + PostgreSQL, clients split evenly`,
    support: `Support: ${s.support.visitors} visitors and ${s.support.agents} agents, each conversation a ` +
      `closed loop (the agent answers every message at once), auto assignment, ${s.seconds} s`,
  };
  for (const w of s.workloads) {
    if (!summaries[w]) continue;
    lines.push("", `### ${titles[w]}`, "", workloadTable(w, summaries[w]!, TARGETS[w]));
    if (w === "cluster") lines.push("", clusterCaveat(s));
  }
  const goalLines = s.smoke ? [] : goals(summaries, s);
  if (goalLines.length) {
    lines.push(
      "",
      "### Issue 7 goals",
      "",
      ...goalLines.map((g) => `- ${g}`),
    );
  }
  const digestAtEnd = await sourceDigest();
  if (digestAtEnd !== digestAtStart) {
    notes.push(
      "**Switchboard's source (main.ts, lib/, handlers/) changed during this run: rounds mix versions.**",
    );
  }
  if (notes.length) lines.push("", ...notes.map((n) => `- ${n}`));
  const markdown = lines.join("\n");
  console.log(markdown);

  const report = {
    command,
    startedAt: startedAt.toISOString(),
    seconds: Math.round(seconds),
    machine: { ...await machine(), loadAvgAtStart },
    switchboard: { ...src, digestAtStart, digestAtEnd },
    settings: {
      ...s,
    },
    summaries,
    runs,
    markdown,
  };
  const outDir = s.out.slice(0, s.out.lastIndexOf("/"));
  if (outDir) await Deno.mkdir(outDir, { recursive: true });
  await Deno.writeTextFile(s.out, JSON.stringify(report, null, 2) + "\n");
  console.error(`\nbench: results in ${s.out}`);

  const failed = runs.filter((r) => !r.ok);
  if (failed.length) {
    console.error(`bench: ${failed.length} of ${runs.length} runs failed`);
    return 1;
  }
  return 0;
}

if (import.meta.main) {
  // An interrupted benchmark stops the servers and load generators it started, and nothing else.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, async () => {
      killAll();
      await stopAllClusters();
      Deno.exit(130);
    });
  }
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (err) {
    console.error(`bench: ${(err as Error).message}`);
    code = 2;
  }
  Deno.exit(code);
}
