/**
 * The load generator: one workload against one running server, then one JSON line on stdout and exit.
 *
 * ```
 * # -A: Deno reads /proc/<pid>/* only with all permissions
 * deno run -A bench/load.ts <chat|echo|idle|publish> --url <ws url> [flags]
 * ```
 *
 * `--url` may hold `{i}`, replaced by the client's index (`ws://…/ws/chat/bench?name=c{i}`). With `--server-pid` the
 * server's RSS is sampled every 250 ms and its CPU share measured over the workload. Everything is bounded: a fixed
 * number of sockets, a fixed duration or count, and a hard deadline after which the process reports what it has
 * and exits. `bench/run.ts` starts the servers and runs this once per measurement.
 *
 * @module
 */
import { type Flags, numberFlag, parseFlags, requiredFlag, stringFlag } from "./flags.ts";
import { Histogram, type LatencySummary } from "./histogram.ts";
import { CpuMeter, MachineCpuMeter, readMemory, RssSampler } from "./proc_stats.ts";
import {
  CLIENT_KINDS,
  type ClientKind,
  control,
  encodeChat,
  readyOnOpen,
  scanDeliveries,
  stampedText,
  verifyFrame,
} from "./protocol.ts";

/** Process measurements common to every workload, over its measured window. */
export interface ServerStats {
  /** Largest server RSS sampled (every 250 ms), bytes. */
  maxRss: number;
  /** Peak RSS of the server since it started (`VmHWM`), bytes. */
  peakRss: number;
  /** Server CPU seconds per second (1 = one core). */
  cpu: number;
  /** The load generator's own CPU seconds per second. */
  clientCpu: number;
  /**
   * Busy cores of the whole machine not used by the server or the load generator: other work that was competing
   * for the two cores (anything above ~0.1 makes the run suspect).
   */
  otherCpu: number;
}

/** The chat workload's result. */
export interface ChatResult {
  workload: "chat";
  clients: number;
  /** Messages per client per burst (flood mode) or 0 in paced mode. */
  burst: number;
  /** Target deliveries per second in paced mode, 0 for the flood. */
  rate: number;
  seconds: number;
  deliveries: number;
  deliveriesPerSec: number;
  /** Deliveries in each whole second of the run (shows stalls). */
  perSecond: number[];
  /** Data frames received (fewer than deliveries when the server batches). */
  frames: number;
  burstsCompleted: number;
  latency: LatencySummary;
  verify: { frames: number; mismatches: number };
  /** Frames holding `"type":"error"` (a rate limit, say) and the first of them. */
  errorFrames: number;
  firstErrorFrame?: string;
  /** Sockets closed by the server during the run, by close code. */
  closed: Record<string, number>;
  server: ServerStats;
}

/** The echo workload's result. */
export interface EchoResult {
  workload: "echo";
  clients: number;
  payloadBytes: number;
  roundTrips: number;
  roundTripsPerSec: number;
  latency: LatencySummary;
  server: ServerStats;
}

/** The idle-connections workload's result. */
export interface IdleResult {
  workload: "idle";
  requested: number;
  opened: number;
  failed: number;
  connectSeconds: number;
  baseRss: number;
  loadedRss: number;
  rssPerConnection: number;
  server: ServerStats;
}

/** The publish fan-out workload's result. */
export interface PublishResult {
  workload: "publish";
  /** False when the server answered 404 or 405: the endpoint does not exist yet. */
  available: boolean;
  status: number;
  subscribers: number;
  opened: number;
  publishes: number;
  delivered: number;
  expected: number;
  latency: LatencySummary;
  /** Time for `POST /api/publish` to answer, ms. */
  httpLatency: LatencySummary;
  server: ServerStats;
}

/** Any workload's result. */
export type LoadResult = ChatResult | EchoResult | IdleResult | PublishResult;

/** Frame characters always verified by a full parse, and the share of the rest; see `chat`. */
const VERIFY_BASE_CHARS = 256 * 1024;
const VERIFY_SHARE = 0.02;

/** Paced mode sends what is due every this many ms. */
const PACE_TICK_MS = 5;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function clientUrl(template: string, i: number): string {
  return template.replaceAll("{i}", String(i));
}

/** Opens `count` things at most `concurrency` at a time; returns the ones that opened and the failures. */
async function openAll<T>(
  count: number,
  concurrency: number,
  open: (i: number) => Promise<T>,
): Promise<{ opened: T[]; failed: number; firstError: string | undefined }> {
  const opened: T[] = [];
  let failed = 0;
  let firstError: string | undefined;
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      try {
        opened.push(await open(i));
      } catch (err) {
        failed++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, worker),
  );
  return { opened, failed, firstError };
}

/** Opens one socket and resolves once it is ready (open, and the protocol handshake done if any). */
function openSocket(
  url: string,
  kind: ClientKind,
  onFrame: (ws: WebSocket, frame: string) => void,
  timeoutMs = 10_000,
): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    let ready = false;
    const timer = setTimeout(() => {
      ws.close();
      reject(new Error(`Socket ${url} not ready within ${timeoutMs} ms`));
    }, timeoutMs);
    const becomeReady = () => {
      ready = true;
      clearTimeout(timer);
      resolve(ws);
    };
    ws.onopen = () => {
      if (readyOnOpen(kind)) becomeReady();
    };
    ws.onerror = () => {}; // the close event follows
    ws.onclose = (e) => {
      if (ready) return;
      clearTimeout(timer);
      reject(new Error(`Socket ${url} closed before ready (code ${e.code})`));
    };
    ws.onmessage = (e: MessageEvent) => {
      if (typeof e.data !== "string") return;
      const c = kind === "plain" ? undefined : control(kind, e.data, ready);
      if (c?.kind === "control") {
        if (c.reply) ws.send(c.reply);
        if (c.ready && !ready) becomeReady();
        return;
      }
      if (ready) onFrame(ws, e.data);
    };
  });
}

/** One measured window: server RSS sampling and CPU use of the server, the load generator and the machine. */
class MeasuredWindow {
  #pid: number;
  #sampler: RssSampler | undefined;
  #server: CpuMeter | undefined;
  #client = new CpuMeter(Deno.pid);
  #machine = new MachineCpuMeter();

  /** Starts measuring now; with `pid` 0 only the client and machine are measured. */
  constructor(pid: number) {
    this.#pid = pid;
    if (pid > 0) {
      this.#sampler = new RssSampler(pid);
      this.#server = new CpuMeter(pid);
      this.#sampler.start();
    }
  }

  /** Takes one RSS sample of the server now (bytes). */
  sample(): number {
    return this.#sampler?.sample() ?? 0;
  }

  /** Stops and reports. */
  finish(): ServerStats {
    this.#sampler?.stop();
    const cpu = this.#server?.share() ?? 0;
    const clientCpu = this.#client.share();
    const other = this.#machine.cores() - cpu - clientCpu;
    return {
      maxRss: this.#sampler?.max ?? 0,
      peakRss: this.#pid > 0 ? readMemory(this.#pid)?.hwm ?? 0 : 0,
      cpu: round(cpu, 3),
      clientCpu: round(clientCpu, 3),
      otherCpu: round(Math.max(0, other), 3),
    };
  }
}

/**
 * The chat flood: `clients` sockets in one room; each sends `burst` stamped messages; the next burst starts
 * `gapMs` after every client received the whole previous burst (`clients × burst` deliveries each). With `rate`,
 * a paced run instead: messages spread over 5 ms ticks so the room sees `rate` deliveries per second.
 */
export async function chat(flags: Flags): Promise<ChatResult> {
  const url = requiredFlag(flags, "url");
  const kind = stringFlag(flags, "client", "switchboard") as ClientKind;
  const clients = numberFlag(flags, "clients", 32);
  const burst = numberFlag(flags, "burst", 1600);
  const gapMs = numberFlag(flags, "gap-ms", 64);
  const seconds = numberFlag(flags, "seconds", 10);
  const rate = numberFlag(flags, "rate", 0);
  const pid = numberFlag(flags, "server-pid", 0);
  const settleMs = numberFlag(flags, "settle-ms", 200);

  const latency = new Histogram();
  const record = (us: number) => latency.record(us);
  let measuring = false;
  let t0 = 0;
  let deliveries = 0;
  let frames = 0;
  let verified = 0;
  let receivedChars = 0;
  let verifiedChars = 0;
  let mismatches = 0;
  let burstsCompleted = 0;
  let errorFrames = 0;
  let firstErrorFrame: string | undefined;
  const perSecond: number[] = [];
  const closed: Record<string, number> = {};
  const perClient = new Map<WebSocket, { received: number; frames: number }>();
  let doneClients = 0;
  const expected = clients * burst;

  const onFrame = (ws: WebSocket, frame: string) => {
    if (!measuring) return;
    const now = performance.now();
    const n = scanDeliveries(frame, now * 1000, record);
    if (n === 0) {
      if (frame.includes('"type":"error"')) {
        errorFrames++;
        firstErrorFrame ??= frame.slice(0, 300);
      }
      return;
    }
    const mine = perClient.get(ws)!;
    // The shortcut is checked against a full parse within a budget (256 KiB + 2 % of the bytes received): a
    // batched frame can be megabytes, and parsing every one would make the client the bottleneck.
    receivedChars += frame.length;
    if (verifiedChars + frame.length <= VERIFY_BASE_CHARS + receivedChars * VERIFY_SHARE) {
      verified++;
      verifiedChars += frame.length;
      if (verifyFrame(kind, frame) !== n) mismatches++;
    }
    mine.frames++;
    frames++;
    deliveries += n;
    const second = Math.floor((now - t0) / 1000);
    perSecond[second] = (perSecond[second] ?? 0) + n;
    if (rate === 0) {
      const before = mine.received;
      mine.received += n;
      if (
        before < expected && mine.received >= expected &&
        ++doneClients === clients
      ) {
        burstsCompleted++;
        doneClients = 0;
        for (const c of perClient.values()) c.received = 0;
        setTimeout(sendBurst, gapMs);
      }
    }
  };

  const { opened, failed, firstError } = await openAll(
    clients,
    8,
    (i) => openSocket(clientUrl(url, i), kind, onFrame),
  );
  if (failed > 0) {
    for (const ws of opened) ws.close();
    throw new Error(
      `${failed} of ${clients} chat clients failed to connect: ${firstError}`,
    );
  }
  for (const ws of opened) {
    perClient.set(ws, { received: 0, frames: 0 });
    ws.onclose = (e) => {
      if (measuring) closed[e.code] = (closed[e.code] ?? 0) + 1;
    };
  }
  // Let join notices settle before the clock starts.
  await sleep(settleMs);

  function sendBurst() {
    if (!measuring) return;
    for (const ws of opened) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      for (let m = 0; m < burst; m++) ws.send(encodeChat(kind, stampedText()));
    }
  }

  let pacer: ReturnType<typeof setInterval> | undefined;
  function startPaced() {
    // `rate` deliveries/s is rate / clients messages/s, each delivered to every client. Sends follow the clock,
    // not the tick count, so a late timer catches up instead of lowering the rate.
    const messagesPerMs = rate / clients / 1000;
    let sent = 0;
    let next = 0;
    pacer = setInterval(() => {
      const due = Math.floor((performance.now() - t0) * messagesPerMs);
      for (; sent < due; sent++) {
        const ws = opened[next++ % opened.length];
        if (ws.readyState === WebSocket.OPEN) ws.send(encodeChat(kind, stampedText()));
      }
    }, PACE_TICK_MS);
  }

  const measured = new MeasuredWindow(pid);
  measuring = true;
  t0 = performance.now();
  if (rate > 0) startPaced();
  else sendBurst();
  await sleep(seconds * 1000);
  measuring = false;
  clearInterval(pacer);
  const elapsed = (performance.now() - t0) / 1000;
  const server = measured.finish();
  for (const ws of opened) ws.close();
  return {
    workload: "chat",
    clients,
    burst: rate > 0 ? 0 : burst,
    rate,
    seconds: round(elapsed, 3),
    deliveries,
    deliveriesPerSec: Math.round(deliveries / elapsed),
    perSecond: Array.from(
      { length: Math.ceil(elapsed) },
      (_, i) => perSecond[i] ?? 0,
    ),
    frames,
    burstsCompleted,
    latency: latency.summaryMs(),
    verify: { frames: verified, mismatches },
    errorFrames,
    firstErrorFrame,
    closed,
    server,
  };
}

/** Echo latency: each client sends a frame, waits for it to come back, and repeats; RTTs after a warm-up. */
export async function echo(flags: Flags): Promise<EchoResult> {
  const url = requiredFlag(flags, "url");
  const clients = numberFlag(flags, "clients", 1);
  const roundTrips = numberFlag(flags, "round-trips", 20_000);
  const warmup = numberFlag(flags, "warmup", 1000);
  const payloadBytes = Math.max(8, numberFlag(flags, "payload-bytes", 32));
  const pid = numberFlag(flags, "server-pid", 0);
  const latency = new Histogram();

  const sockets: {
    ws: WebSocket;
    waiting: ((frame: string) => void) | undefined;
  }[] = [];
  const { opened, failed, firstError } = await openAll(
    clients,
    8,
    async (i) => {
      const entry = {
        ws: undefined as unknown as WebSocket,
        waiting: undefined as ((f: string) => void) | undefined,
      };
      entry.ws = await openSocket(clientUrl(url, i), "plain", () => {});
      entry.ws.onmessage = (e) => entry.waiting?.(String(e.data));
      sockets.push(entry);
      return entry;
    },
  );
  if (failed > 0) {
    for (const s of opened) s.ws.close();
    throw new Error(
      `${failed} of ${clients} echo clients failed to connect: ${firstError}`,
    );
  }

  const pad = "x".repeat(payloadBytes);
  const roundTrip = (entry: (typeof sockets)[number], seq: number) =>
    new Promise<number>((resolve) => {
      const payload = (`e${seq}:` + pad).slice(0, payloadBytes);
      const start = performance.now();
      // Frames that are not our payload (a server greeting, say) are ignored.
      entry.waiting = (frame) => {
        if (frame === payload) resolve((performance.now() - start) * 1000);
      };
      entry.ws.send(payload);
    });

  let measured: MeasuredWindow | undefined;
  let t0 = 0;
  const perClient = Math.ceil(roundTrips / clients);
  await Promise.all(sockets.map(async (entry, c) => {
    for (let k = 0; k < warmup; k++) await roundTrip(entry, k);
    if (c === 0) {
      measured = new MeasuredWindow(pid);
      t0 = performance.now();
    }
    for (let k = 0; k < perClient; k++) {
      latency.record(await roundTrip(entry, warmup + k));
    }
  }));
  const elapsed = (performance.now() - t0) / 1000;
  const server = measured!.finish();
  for (const s of sockets) s.ws.close();
  return {
    workload: "echo",
    clients,
    payloadBytes,
    roundTrips: latency.count,
    roundTripsPerSec: Math.round(latency.count / elapsed),
    latency: latency.summaryMs(),
    server,
  };
}

/** Idle connections: open many sockets that never send, and see what each costs the server in RSS. */
export async function idle(flags: Flags): Promise<IdleResult> {
  const url = requiredFlag(flags, "url");
  const connections = numberFlag(flags, "connections", 10_000);
  const concurrency = numberFlag(flags, "concurrency", 100);
  const settleMs = numberFlag(flags, "settle-ms", 1500);
  const pid = numberFlag(flags, "server-pid", 0);
  if (pid <= 0) throw new Error("The idle workload needs --server-pid");

  await sleep(Math.min(300, settleMs));
  const baseRss = readMemory(pid)?.rss ?? 0;
  const measured = new MeasuredWindow(pid);
  const t0 = performance.now();
  const { opened, failed, firstError } = await openAll(
    connections,
    concurrency,
    (i) => openSocket(clientUrl(url, i), "plain", () => {}),
  );
  const connectSeconds = (performance.now() - t0) / 1000;
  if (failed > 0) {
    console.error(`idle: ${failed} connections failed, first: ${firstError}`);
  }
  // The server finishes registering sockets and its allocator settles; the last sample is the loaded RSS.
  await sleep(settleMs);
  const loadedRss = measured.sample();
  const server = measured.finish();
  for (const ws of opened) ws.close();
  return {
    workload: "idle",
    requested: connections,
    opened: opened.length,
    failed,
    connectSeconds: round(connectSeconds, 3),
    baseRss,
    loadedRss,
    rssPerConnection: opened.length > 0 ? Math.round((loadedRss - baseRss) / opened.length) : 0,
    server,
  };
}

/**
 * Publish fan-out: `subscribers` sockets on a topic; `publishes` HTTP publications, each stamped with its send
 * time; latency from the POST to each subscriber's receipt. One unmeasured warm-up publication goes first.
 */
export async function publish(flags: Flags): Promise<PublishResult> {
  const url = requiredFlag(flags, "url");
  const publishUrl = requiredFlag(flags, "publish-url");
  const apiKey = stringFlag(flags, "api-key", "");
  const topic = stringFlag(flags, "topic", "bench");
  const subscribers = numberFlag(flags, "subscribers", 5000);
  const publishes = numberFlag(flags, "publishes", 10);
  const waitMs = numberFlag(flags, "wait-ms", 3000);
  const settleMs = numberFlag(flags, "settle-ms", 200);
  const pid = numberFlag(flags, "server-pid", 0);
  const latency = new Histogram();
  const httpLatency = new Histogram();

  let measuring = false;
  let delivered = 0;
  let warmupDelivered = 0;
  let subscribed = 0;
  let onDelivery: (() => void) | undefined;
  const stamp = /"t":(\d+(?:\.\d+)?)/g;
  const onFrame = (_ws: WebSocket, frame: string) => {
    const now = performance.now();
    if (frame.includes('"type":"subscribed"')) subscribed++;
    for (const m of frame.matchAll(stamp)) {
      if (measuring) {
        latency.record((now - Number(m[1])) * 1000);
        delivered++;
      } else warmupDelivered++;
    }
    onDelivery?.();
  };
  const { opened, failed, firstError } = await openAll(
    subscribers,
    100,
    (i) => openSocket(clientUrl(url, i), "plain", onFrame),
  );
  if (failed > 0) {
    console.error(
      `publish: ${failed} subscribers failed, first: ${firstError}`,
    );
  }

  const post = async (t: number) => {
    const start = performance.now();
    const res = await fetch(publishUrl, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${apiKey}`,
      },
      body: JSON.stringify({ topic, data: { t } }),
    });
    await res.body?.cancel();
    return { status: res.status, ms: performance.now() - start };
  };
  /** Resolves when `count()` reaches `target` or after `waitMs`. */
  const until = (count: () => number, target: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, waitMs);
      function done() {
        clearTimeout(timer);
        onDelivery = undefined;
        resolve();
      }
      onDelivery = () => count() >= target && done();
      if (count() >= target) done();
    });

  // Subscriptions are confirmed with a `subscribed` frame; a server that sends none costs `waitMs` here.
  await until(() => subscribed, opened.length);
  await sleep(settleMs);
  const closeAll = () => opened.forEach((ws) => ws.close());
  const measured = new MeasuredWindow(pid);
  const probe = await post(performance.now());
  const base = {
    workload: "publish" as const,
    status: probe.status,
    subscribers,
    opened: opened.length,
    publishes,
  };
  // 404, or 405 from the catch-all page route: no publish route yet.
  if (probe.status === 404 || probe.status === 405) {
    closeAll();
    return {
      ...base,
      available: false,
      delivered: 0,
      expected: 0,
      latency: latency.summaryMs(),
      httpLatency: httpLatency.summaryMs(),
      server: measured.finish(),
    };
  }
  if (probe.status >= 300) {
    closeAll();
    throw new Error(`POST ${publishUrl} answered ${probe.status}`);
  }
  await until(() => warmupDelivered, opened.length);
  measuring = true;
  for (let p = 1; p <= publishes; p++) {
    const { status, ms } = await post(performance.now());
    httpLatency.record(ms * 1000);
    if (status >= 300) throw new Error(`Publish ${p} answered ${status}`);
    await until(() => delivered, p * opened.length);
    await sleep(100);
  }
  const server = measured.finish();
  closeAll();
  return {
    ...base,
    available: true,
    delivered,
    expected: publishes * opened.length,
    latency: latency.summaryMs(),
    httpLatency: httpLatency.summaryMs(),
    server,
  };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

const WORKLOADS: Record<string, (flags: Flags) => Promise<LoadResult>> = {
  chat,
  echo,
  idle,
  publish,
};

/** Runs the workload named by the first argument and prints its result as one JSON line. */
export async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args);
  const name = flags.positionals[0];
  const run = WORKLOADS[name];
  if (!run) {
    console.error(
      `load: unknown workload "${name}" (expected ${Object.keys(WORKLOADS).join(", ")})`,
    );
    return 2;
  }
  const kind = stringFlag(flags, "client", "switchboard");
  if (!(CLIENT_KINDS as readonly string[]).includes(kind)) {
    console.error(
      `load: unknown client kind "${kind}" (expected ${CLIENT_KINDS.join(", ")})`,
    );
    return 2;
  }
  // A hard stop, whatever happens to the server.
  const deadlineS = numberFlag(flags, "deadline", 120);
  const deadline = setTimeout(() => {
    console.error(
      `load: ${name} still running after ${deadlineS} s; giving up`,
    );
    Deno.exit(3);
  }, deadlineS * 1000);
  try {
    const result = await run(flags);
    console.log(JSON.stringify(result));
    return 0;
  } catch (err) {
    console.error(`load: ${name} failed: ${(err as Error).message}`);
    return 1;
  } finally {
    clearTimeout(deadline);
  }
}

if (import.meta.main) {
  // Exit at once: sockets still closing must not hold the process open.
  Deno.exit(await main(Deno.args));
}
