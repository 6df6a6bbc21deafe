/**
 * Turning benchmark runs into medians, ratios and markdown tables.
 *
 * @module
 */
import type { ChatResult, EchoResult, IdleResult, LoadResult, PublishResult, ServerStats } from "./load.ts";
import type { SupportResult } from "./support_load.ts";
import type { Target, Workload } from "./targets.ts";

/** One measurement: a workload against a target in one round. */
export interface Run {
  workload: Workload;
  target: string;
  round: number;
  /** Position of this target within its round (A/B order alternates between rounds). */
  position: number;
  ok: boolean;
  error?: string;
  result?: LoadResult;
  /** The paced workload's deliveries/s goal. */
  rate?: number;
}

/** The median of a target's runs for each metric the tables show; null where no run produced it. */
export type Medians = Record<string, number | null>;

/** A target's runs and their medians. */
export interface TargetSummary {
  id: string;
  label: string;
  baseline: boolean;
  runs: Run[];
  failures: number;
  medians: Medians;
}

/** The median of the finite numbers in `xs`, or null. */
export function median(xs: (number | null | undefined)[]): number | null {
  const v = xs.filter((x): x is number => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

const MiB = 1024 * 1024;

/** Deliveries in the worst whole second of a chat run (the partial last second is left out). */
function worstSecond(r: ChatResult): number | null {
  const whole = r.perSecond.slice(0, Math.floor(r.seconds));
  return whole.length ? Math.min(...whole) : null;
}

/** The metrics of one result, by name. */
export function metricsOf(result: LoadResult): Record<string, number | null> {
  return { ...workloadMetrics(result), otherCpu: result.server.otherCpu ?? null };
}

/** Per watched process (the cluster and support workloads): `rss:<label>` MiB and `cpu:<label>` share of a core. */
function processMetrics(server: ServerStats): Record<string, number> {
  return Object.fromEntries(
    Object.entries(server.processes ?? {}).flatMap(([label, p]) => [
      [`rss:${label}`, p.maxRss / MiB],
      [`cpu:${label}`, p.cpu],
    ]),
  );
}

function workloadMetrics(result: LoadResult): Record<string, number | null> {
  switch (result.workload) {
    case "chat": {
      const r = result as ChatResult;
      return {
        deliveriesPerSec: r.deliveriesPerSec,
        worstSecond: worstSecond(r),
        perFrame: r.frames > 0 ? r.deliveries / r.frames : null,
        p50: r.latency.p50,
        p99: r.latency.p99,
        p999: r.latency.p999,
        maxRssMiB: r.server.maxRss / MiB,
        peakRssMiB: r.server.peakRss / MiB,
        serverCpu: r.server.cpu,
        clientCpu: r.server.clientCpu,
        closed: Object.values(r.closed).reduce((a, b) => a + b, 0),
        mismatches: r.verify.mismatches,
        errorFrames: r.errorFrames,
        ...(r.exact ? { exactBursts: r.exact.bursts, drainMs: r.exact.drainMs } : {}),
        ...processMetrics(r.server),
      };
    }
    case "echo": {
      const r = result as EchoResult;
      return {
        roundTripsPerSec: r.roundTripsPerSec,
        p50us: r.latency.p50 === null ? null : r.latency.p50 * 1000,
        p99us: r.latency.p99 === null ? null : r.latency.p99 * 1000,
        p999us: r.latency.p999 === null ? null : r.latency.p999 * 1000,
        maxRssMiB: r.server.maxRss / MiB,
        serverCpu: r.server.cpu,
      };
    }
    case "idle": {
      const r = result as IdleResult;
      return {
        opened: r.opened,
        failed: r.failed,
        kibPerConnection: r.rssPerConnection / 1024,
        baseRssMiB: r.baseRss / MiB,
        loadedRssMiB: r.loadedRss / MiB,
        connectSeconds: r.connectSeconds,
      };
    }
    case "publish": {
      const r = result as PublishResult;
      return {
        available: r.available ? 1 : 0,
        status: r.status,
        opened: r.opened,
        delivered: r.delivered,
        expected: r.expected,
        p50: r.latency.p50,
        p99: r.latency.p99,
        max: r.latency.max,
        httpP50: r.httpLatency.p50,
        batchP50: r.batchHttpLatency?.p50 ?? null,
        maxRssMiB: r.server.maxRss / MiB,
      };
    }
    case "support": {
      const r = result as SupportResult;
      return {
        messagesPerSec: r.messagesPerSec,
        p50: r.latency.p50,
        p99: r.latency.p99,
        errorFrames: r.errorFrames,
        ...processMetrics(r.server),
        clientCpu: r.server.clientCpu,
      };
    }
  }
}

/** Groups runs by target and takes per-metric medians over the successful ones. */
export function summarise(
  targets: readonly Target[],
  runs: readonly Run[],
): TargetSummary[] {
  return targets.map((t) => {
    const mine = runs.filter((r) => r.target === t.id);
    const good = mine.filter((r) => r.ok && r.result);
    const perRun = good.map((r) => metricsOf(r.result!));
    const names = new Set(perRun.flatMap((m) => Object.keys(m)));
    const medians: Medians = {};
    for (const name of names) {
      medians[name] = median(perRun.map((m) => m[name]));
    }
    const rates = good.map((r) => r.rate);
    if (rates.some((x) => x !== undefined)) medians.rate = median(rates);
    return {
      id: t.id,
      label: t.label,
      baseline: t.baseline,
      runs: mine,
      failures: mine.length - good.length,
      medians,
    };
  });
}

const int = (x: number | null | undefined) =>
  x === null || x === undefined ? "–" : Math.round(x).toLocaleString("en-US");
const fixed = (x: number | null | undefined, digits = 1) =>
  x === null || x === undefined ? "–" : x.toFixed(digits);
const ratio = (a: number | null | undefined, b: number | null | undefined) =>
  a == null || b == null || b === 0 ? "–" : `${(a / b).toFixed(2)}×`;
const pct = (x: number | null | undefined) =>
  x === null || x === undefined ? "–" : `${Math.round(x * 100)} %`;

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join(
    "\n",
  );
}

function failedRow(s: TargetSummary, columns: number): string[] | undefined {
  if (s.failures < s.runs.length) return undefined;
  const why = s.runs.find((r) => r.error)?.error?.split("\n")[0] ?? "no run";
  return [
    s.label,
    `failed: ${why.slice(0, 120)}`,
    ...Array(columns - 2).fill(""),
  ];
}

/** The chat flood table, with ratios to each baseline measured in the same run. */
export function chatTable(summaries: TargetSummary[]): string {
  const base = (id: string) => summaries.find((s) => s.id === id)?.medians.deliveriesPerSec;
  const header = [
    "Target",
    "deliveries/s",
    "× raw Deno",
    "× Node ws",
    "× Socket.IO",
    "worst 1 s",
    "per frame",
    "p50 ms",
    "p99 ms",
    "max RSS MiB",
    "server CPU",
    "client CPU",
    "other CPU",
  ];
  const rows = summaries.map((s) => {
    const m = s.medians;
    return failedRow(s, header.length) ?? [
      s.label + (s.failures ? ` (${s.failures} failed)` : ""),
      int(m.deliveriesPerSec),
      ratio(m.deliveriesPerSec, base("raw-deno")),
      ratio(m.deliveriesPerSec, base("node-ws")),
      ratio(m.deliveriesPerSec, base("socketio")),
      int(m.worstSecond),
      fixed(m.perFrame),
      fixed(m.p50, 0),
      fixed(m.p99, 0),
      int(m.maxRssMiB),
      pct(m.serverCpu),
      pct(m.clientCpu),
      pct(m.otherCpu),
    ];
  });
  return table(header, rows);
}

/** The paced (half the flood rate) latency table. */
export function pacedTable(summaries: TargetSummary[]): string {
  const header = [
    "Target",
    "goal deliveries/s",
    "achieved",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "max RSS MiB",
    "server CPU",
    "other CPU",
  ];
  const rows = summaries.map((s) => {
    const m = s.medians;
    return failedRow(s, header.length) ?? [
      s.label + (s.failures ? ` (${s.failures} failed)` : ""),
      int(m.rate),
      int(m.deliveriesPerSec),
      fixed(m.p50, 2),
      fixed(m.p99, 2),
      fixed(m.p999, 2),
      int(m.maxRssMiB),
      pct(m.serverCpu),
      pct(m.otherCpu),
    ];
  });
  return table(header, rows);
}

/** The echo latency table, with the p50 and p99 ratios to the raw Deno echo server. */
export function echoTable(summaries: TargetSummary[]): string {
  const base = summaries.find((s) => s.id === "raw-deno-echo")?.medians;
  const header = [
    "Target",
    "round trips/s",
    "p50 µs",
    "p99 µs",
    "p99.9 µs",
    "p50 × raw",
    "p99 × raw",
    "RSS MiB",
    "other CPU",
  ];
  const rows = summaries.map((s) => {
    const m = s.medians;
    return failedRow(s, header.length) ?? [
      s.label + (s.failures ? ` (${s.failures} failed)` : ""),
      int(m.roundTripsPerSec),
      int(m.p50us),
      int(m.p99us),
      int(m.p999us),
      ratio(m.p50us, base?.p50us),
      ratio(m.p99us, base?.p99us),
      int(m.maxRssMiB),
      pct(m.otherCpu),
    ];
  });
  return table(header, rows);
}

/** The idle connections table, with RSS per connection against the raw Deno server. */
export function idleTable(summaries: TargetSummary[]): string {
  const base = summaries.find((s) => s.id === "raw-deno")?.medians;
  const header = [
    "Target",
    "connections",
    "RSS before MiB",
    "RSS after MiB",
    "KiB/connection",
    "× raw Deno",
    "connect s",
    "other CPU",
  ];
  const rows = summaries.map((s) => {
    const m = s.medians;
    return failedRow(s, header.length) ?? [
      s.label + (s.failures ? ` (${s.failures} failed)` : ""),
      int(m.opened) + (m.failed ? ` (${int(m.failed)} failed)` : ""),
      int(m.baseRssMiB),
      int(m.loadedRssMiB),
      fixed(m.kibPerConnection),
      ratio(m.kibPerConnection, base?.kibPerConnection),
      fixed(m.connectSeconds, 2),
      pct(m.otherCpu),
    ];
  });
  return table(header, rows);
}

/** The publish fan-out table; "not available yet" while the endpoint answers 404 or 405. */
export function publishTable(summaries: TargetSummary[]): string {
  const header = [
    "Target",
    "subscribers",
    "delivered",
    "p50 ms",
    "p99 ms",
    "max ms",
    "p99 × raw",
    "POST p50 ms",
    "1,000-item batch POST p50 ms",
    "max RSS MiB",
    "other CPU",
  ];
  const base = summaries.find((s) => s.id === "raw-deno-publish")?.medians;
  const rows = summaries.map((s) => {
    const m = s.medians;
    const failed = failedRow(s, header.length);
    if (failed) return failed;
    if (m.available === 0) {
      return [
        s.label,
        `not available yet (POST /api/publish answered ${m.status})`,
        ...Array(header.length - 2).fill(""),
      ];
    }
    return [
      s.label + (s.failures ? ` (${s.failures} failed)` : ""),
      int(m.opened),
      `${int(m.delivered)} / ${int(m.expected)}`,
      fixed(m.p50, 2),
      fixed(m.p99, 2),
      fixed(m.max, 2),
      ratio(m.p99, base?.p99),
      fixed(m.httpP50, 2),
      fixed(m.batchP50, 2),
      int(m.maxRssMiB),
      pct(m.otherCpu),
    ];
  });
  return table(header, rows);
}

/**
 * For a row of a table of cluster targets: the `rate` of the target it is compared with (its `versus`, else its
 * own), and its per-instance cells (`sb1 + sb2`) of a metric.
 */
function versusAndInstances(
  targets: readonly Target[],
  summaries: TargetSummary[],
  s: TargetSummary,
  rate: string,
) {
  const m = s.medians;
  const versus = targets.find((t) => t.id === s.id)?.versus;
  const base = versus ? summaries.find((b) => b.id === versus)?.medians[rate] : m[rate];
  const instances = Object.keys(m).filter((k) => /^rss:sb\d+$/.test(k)).map((k) => k.slice(4)).sort();
  const each = (metric: string, format: (x: number | null | undefined) => string) =>
    instances.map((i) => format(m[`${metric}:${i}`])).join(" + ");
  return { base, each };
}

/**
 * The cluster table: each cluster target against its `versus` embedded target, the exactly-once check, and the
 * RSS and CPU of every process (Switchboard instances, Redis, PostgreSQL) and of the load generator.
 */
export function clusterTable(targets: readonly Target[], summaries: TargetSummary[]): string {
  const header = [
    "Target",
    "deliveries/s",
    "× embedded",
    "worst 1 s",
    "p50 ms",
    "p99 ms",
    "exactly once",
    "per-sender order",
    "Switchboard max RSS MiB",
    "Redis max RSS MiB",
    "PostgreSQL PSS MiB",
    "Switchboard CPU",
    "Redis CPU",
    "PostgreSQL CPU",
    "client CPU",
    "other CPU",
  ];
  const rows = summaries.map((s) => {
    const m = s.medians;
    const { base, each } = versusAndInstances(targets, summaries, s, "deliveriesPerSec");
    // Listed per run, not as a median (a run that failed its check is counted in the label).
    const good = s.runs.filter((r) => r.ok && r.result?.workload === "chat");
    const bursts = good.map((r) => {
      const e = (r.result as ChatResult).exact;
      return e ? `${e.bursts}${e.missing ? " + part" : ""}` : "?";
    });
    const exact = good.length ? `yes; bursts: ${bursts.join(", ")}` : "–";
    const late = good.map((r) => (r.result as ChatResult).exact?.outOfOrder ?? 0);
    const order = good.length === 0
      ? "–"
      : late.every((n) => n === 0)
      ? "kept"
      : `broken: ${late.map((n) => n.toLocaleString("en-US")).join(", ")} late`;
    return failedRow(s, header.length) ?? [
      s.label + (s.failures ? ` (${s.failures} failed)` : ""),
      int(m.deliveriesPerSec),
      ratio(m.deliveriesPerSec, base),
      int(m.worstSecond),
      fixed(m.p50, 0),
      fixed(m.p99, 0),
      exact,
      order,
      each("rss", int),
      int(m["rss:redis"]),
      int(m["rss:postgres"]),
      each("cpu", pct),
      pct(m["cpu:redis"]),
      pct(m["cpu:postgres"]),
      pct(m.clientCpu),
      pct(m.otherCpu),
    ];
  });
  return table(header, rows);
}

/** The support table: messages/s and latency, the cluster against the embedded instance, CPU per process. */
export function supportTable(targets: readonly Target[], summaries: TargetSummary[]): string {
  const header = [
    "Target",
    "messages/s",
    "× embedded",
    "p50 ms",
    "p99 ms",
    "Switchboard max RSS MiB",
    "Switchboard CPU",
    "Redis CPU",
    "PostgreSQL CPU",
    "client CPU",
    "other CPU",
  ];
  const rows = summaries.map((s) => {
    const m = s.medians;
    const { base, each } = versusAndInstances(targets, summaries, s, "messagesPerSec");
    return failedRow(s, header.length) ?? [
      s.label + (s.failures ? ` (${s.failures} failed)` : ""),
      int(m.messagesPerSec),
      ratio(m.messagesPerSec, base),
      fixed(m.p50, 1),
      fixed(m.p99, 1),
      each("rss", int),
      each("cpu", pct),
      pct(m["cpu:redis"]),
      pct(m["cpu:postgres"]),
      pct(m.clientCpu),
      pct(m.otherCpu),
    ];
  });
  return table(header, rows);
}

/** The table for one workload. */
export function workloadTable(
  workload: Workload,
  summaries: TargetSummary[],
  targets: readonly Target[] = [],
): string {
  switch (workload) {
    case "chat":
      return chatTable(summaries);
    case "paced":
      return pacedTable(summaries);
    case "echo":
      return echoTable(summaries);
    case "idle":
      return idleTable(summaries);
    case "publish":
      return publishTable(summaries);
    case "cluster":
      return clusterTable(targets, summaries);
    case "support":
      return supportTable(targets, summaries);
  }
}

/** Where each issue 7 goal stands, one line each, from this run's medians. */
export function goals(
  by: Partial<Record<Workload, TargetSummary[]>>,
  s: { idle: { connections: number }; publish: { subscribers: number } },
): string[] {
  const get = (w: Workload, id: string) => by[w]?.find((s) => s.id === id)?.medians;
  const lines: string[] = [];
  const met = (ok: boolean) => ok ? "met" : "**not met**";
  const chat = get("chat", "switchboard-batch");
  const chat0 = get("chat", "switchboard");
  const raw = get("chat", "raw-deno");
  const sio = get("chat", "socketio");
  if (chat?.deliveriesPerSec != null) {
    const d = chat.deliveriesPerSec;
    lines.push(
      `Chat batch=1 ≥ 500k deliveries/s and RSS ≤ 200 MiB: ${int(d)}/s, ${int(chat.maxRssMiB)} MiB: ` +
        met(d >= 500_000 && (chat.maxRssMiB ?? Infinity) <= 200),
    );
  }
  if (chat0?.deliveriesPerSec != null && raw?.deliveriesPerSec) {
    lines.push(
      `Chat batch=0 ≥ 1.0× raw Deno: ${ratio(chat0.deliveriesPerSec, raw.deliveriesPerSec)} ` +
        `(max RSS ${int(chat0.maxRssMiB)} vs ${int(raw.maxRssMiB)} MiB): ` +
        met(chat0.deliveriesPerSec >= raw.deliveriesPerSec),
    );
  }
  for (
    const [id, s] of [["switchboard", chat0], [
      "switchboard-batch",
      chat,
    ]] as const
  ) {
    if (s?.deliveriesPerSec != null && sio?.deliveriesPerSec) {
      lines.push(
        `Chat ${id === "switchboard" ? "batch=0" : "batch=1"} ≥ 3× Socket.IO: ` +
          `${ratio(s.deliveriesPerSec, sio.deliveriesPerSec)}: ${
            met(s.deliveriesPerSec >= 3 * sio.deliveriesPerSec)
          }`,
      );
    }
  }
  for (const id of ["switchboard", "switchboard-batch"]) {
    const p = get("paced", id);
    if (p?.p99 != null) {
      lines.push(
        `Latency p99 at half the max rate < 20 ms (${id === "switchboard" ? "batch=0" : "batch=1"}): ` +
          `${fixed(p.p99, 2)} ms: ${met(p.p99 < 20)}`,
      );
    }
  }
  const echo = get("echo", "switchboard-echo");
  const rawEcho = get("echo", "raw-deno-echo");
  if (echo?.p99us != null && rawEcho?.p99us) {
    lines.push(
      `Echo p99 ≤ 1.2× raw Deno: ${ratio(echo.p99us, rawEcho.p99us)}: ${
        met(echo.p99us <= 1.2 * rawEcho.p99us)
      }`,
    );
  }
  const idle = get("idle", "switchboard-push");
  if (idle?.opened != null) {
    const kib = fixed(idle.kibPerConnection);
    const rawKib = get("idle", "raw-deno")?.kibPerConnection;
    lines.push(
      `${int(s.idle.connections)} idle connections on one instance: ${
        int(idle.opened)
      } opened, ${kib} KiB each ` +
        `(raw Deno ${fixed(rawKib)} KiB): ${met(idle.opened >= s.idle.connections)}`,
    );
  }
  const pub = get("publish", "switchboard-publish");
  if (pub?.available === 0) {
    lines.push(
      `Publish → ${int(s.publish.subscribers)} subscribers p99 < 50 ms: not available yet`,
    );
  } else if (pub?.p99 != null) {
    lines.push(
      `Publish → ${int(pub.opened)} subscribers p99 < 50 ms: ${fixed(pub.p99, 2)} ms: ${met(pub.p99 < 50)}`,
    );
  }
  const clusterPairs = [["cluster-batch", "switchboard-batch", 1], ["cluster", "switchboard", 0]] as const;
  for (const [id, versus, batch] of clusterPairs) {
    const c = get("cluster", id)?.deliveriesPerSec;
    const e = get("cluster", versus)?.deliveriesPerSec;
    if (c != null && e) {
      lines.push(
        `Cluster: 2 instances + Redis on one room ≥ 0.6× one embedded instance (batch=${batch}): ` +
          `${int(c)} vs ${int(e)}/s, ${ratio(c, e)}: ${met(c >= 0.6 * e)}`,
      );
    }
  }
  return lines;
}
