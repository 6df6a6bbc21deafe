/**
 * The load generator: one workload against one running server, then one JSON line on stdout and exit.
 *
 * ```
 * # -A: Deno reads /proc/<pid>/* only with all permissions
 * deno run -A bench/load.ts <chat|echo|idle|publish|support> --url <ws url> [flags]
 * ```
 *
 * `--url` may hold `{i}`, replaced by the client's index (`ws://…/ws/chat/bench?name=c{i}`), and may be several URLs
 * separated by spaces: client `i` then uses URL `i mod n` (the cluster workload splits one room over instances).
 * With `--server-pid` the server's RSS is sampled every 250 ms and its CPU share measured over the workload;
 * `--pids label=pid,…` does the same for each process listed (`pid+`: with its descendants, RSS as their summed
 * PSS), reported under `server.processes`. `chat --exact` checks exactly-once delivery (see {@linkcode chat}).
 * Everything is bounded: a fixed number of sockets, a fixed duration or count, and a hard deadline after which the
 * process reports what it has and exits. `bench/run.ts` starts the servers and runs this once per measurement.
 *
 * @module
 */
import { type Flags, numberFlag, parseFlags, requiredFlag, stringFlag } from "./flags.ts";
import { Histogram, type LatencySummary } from "./histogram.ts";
import {
  CpuMeter,
  MachineCpuMeter,
  readCpuSeconds,
  readMemory,
  readTreeCpuSeconds,
  readTreePss,
  RssSampler,
} from "./proc_stats.ts";
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
import { support, type SupportResult } from "./support_load.ts";

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
  /** Each process named by `--pids`, by label. */
  processes?: Record<string, ProcessStats>;
}

/** One watched process (or process tree) over the measured window. */
export interface ProcessStats {
  pid: number;
  /** Whether its descendants are included (then `maxRss` is their summed PSS). */
  tree: boolean;
  /** Largest RSS sampled every 250 ms (a tree: largest summed PSS), bytes. */
  maxRss: number;
  /** CPU seconds per second, descendants included for a tree. */
  cpu: number;
}

/** The exactly-once check of a flood run with `--exact` (every message carries its sender and sequence number). */
export interface ExactResult {
  /** Bursts every client received completely, those finished while draining after the measured window included. */
  bursts: number;
  /** Messages each client received exactly once over those bursts. */
  perClient: number;
  /** Deliveries of a message a client had already received. */
  duplicates: number;
  /** Deliveries of a message after a later one of the same sender (per-sender order broken). */
  outOfOrder: number;
  /**
   * Messages skipped over: a client got a sender's message before an earlier one of the same sender that it had
   * not received yet (lost, or late and then also counted in `outOfOrder`).
   */
  skipped: number;
  /** Deliveries with no or an impossible sender and sequence number. */
  malformed: number;
  /**
   * Messages of the burst in flight some client had not received when the drain ended (0 when it finished):
   * `stalled` says whether deliveries had stopped (lost messages) or were still coming when time ran out.
   */
  missing: number;
  stalled: boolean;
  /** How long the in-flight burst took to finish after the measured window (or the drain waited), ms. */
  drainMs: number;
}

/** A drain with no new delivery for this long has stalled: what is missing is lost. */
const DRAIN_STALL_MS = 10_000;

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
  /** With `--exact`: whether every client got every message of every burst exactly once. */
  exact?: ExactResult;
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
  /** Items per batch publish (`{"messages": […]}`, to a topic nobody follows), and its answer time. */
  batchSize: number;
  batchHttpLatency: LatencySummary;
  server: ServerStats;
}

/** Any workload's result. */
export type LoadResult = ChatResult | EchoResult | IdleResult | PublishResult | SupportResult;

/** Frame characters always verified by a full parse, and the share of the rest; see `chat`. */
const VERIFY_BASE_CHARS = 256 * 1024;
const VERIFY_SHARE = 0.02;

/** Paced mode sends what is due every this many ms. */
const PACE_TICK_MS = 5;

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function clientUrl(templates: string, i: number): string {
  const urls = templates.split(" ").filter((u) => u !== "");
  return urls[i % urls.length].replaceAll("{i}", String(i));
}

/** Parses `--pids label=pid,label=pid+,…` (`+`: the process and its descendants). */
export function watchedPids(flags: Flags): { label: string; pid: number; tree: boolean }[] {
  const raw = stringFlag(flags, "pids", "");
  return raw.split(",").filter((p) => p !== "").map((entry) => {
    const m = entry.match(/^([\w.-]+)=(\d+)(\+?)$/);
    if (!m) throw new Error(`Invalid --pids entry "${entry}" (expected label=pid or label=pid+)`);
    return { label: m[1], pid: Number(m[2]), tree: m[3] === "+" };
  });
}

/** RSS (or a tree's summed PSS) sampling and CPU metering of one watched process. */
class WatchedProcess {
  readonly label: string;
  readonly pid: number;
  readonly tree: boolean;
  #cpu0: number;
  #t0 = performance.now();
  #timer: ReturnType<typeof setInterval>;
  #max = 0;

  constructor(w: { label: string; pid: number; tree: boolean }) {
    this.label = w.label;
    this.pid = w.pid;
    this.tree = w.tree;
    this.#cpu0 = this.#cpuNow() ?? 0;
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), 250);
  }

  #cpuNow(): number | null {
    return this.tree ? readTreeCpuSeconds(this.pid) : readCpuSeconds(this.pid);
  }

  #sample(): void {
    const rss = this.tree ? readTreePss(this.pid) : readMemory(this.pid)?.rss ?? 0;
    if (rss > this.#max) this.#max = rss;
  }

  /** CPU share so far, as a share of one core. */
  cpu(): number {
    const elapsed = (performance.now() - this.#t0) / 1000;
    const used = (this.#cpuNow() ?? this.#cpu0) - this.#cpu0;
    return elapsed > 0 ? used / elapsed : 0;
  }

  finish(): ProcessStats {
    clearInterval(this.#timer);
    this.#sample();
    return { pid: this.pid, tree: this.tree, maxRss: this.#max, cpu: round(this.cpu(), 3) };
  }
}

/** Opens `count` things at most `concurrency` at a time; returns the ones that opened and the failures. */
export async function openAll<T>(
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
export class MeasuredWindow {
  #pid: number;
  #sampler: RssSampler | undefined;
  #server: CpuMeter | undefined;
  #client = new CpuMeter(Deno.pid);
  #machine = new MachineCpuMeter();
  #watched: WatchedProcess[];

  /** Starts measuring now; with `pid` 0 only the client, the machine and the `watched` processes are measured. */
  constructor(pid: number, watched: { label: string; pid: number; tree: boolean }[] = []) {
    this.#pid = pid;
    this.#watched = watched.map((w) => new WatchedProcess(w));
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
    const watched = this.#watched.map((w) => w.finish());
    // The server itself may be among the watched processes; count its CPU once.
    const watchedCpu = watched.filter((w) => w.pid !== this.#pid).reduce((sum, w) => sum + w.cpu, 0);
    const other = this.#machine.cores() - cpu - clientCpu - watchedCpu;
    return {
      maxRss: this.#sampler?.max ?? 0,
      peakRss: this.#pid > 0 ? readMemory(this.#pid)?.hwm ?? 0 : 0,
      cpu: round(cpu, 3),
      clientCpu: round(clientCpu, 3),
      otherCpu: round(Math.max(0, other), 3),
      ...(watched.length
        ? { processes: Object.fromEntries(this.#watched.map((w, i) => [w.label, watched[i]])) }
        : {}),
    };
  }
}
/**
 * The chat flood: `clients` sockets in one room; each sends `burst` stamped messages; the next burst starts
 * `gapMs` after every client received the whole previous burst (`clients × burst` deliveries each). With `rate`,
 * a paced run instead: messages spread over 5 ms ticks so the room sees `rate` deliveries per second.
 *
 * With `--exact` (flood only) every message carries its sender and sequence number, each client keeps a bitmap of
 * the current burst, and a burst is complete for a client when it has every message once; duplicates, per-sender
 * order and malformed stamps are counted. After the measured window no new burst starts and the one in flight is
 * drained (up to `--drain-s`, default 60) without counting towards the rate, so every message sent is checked.
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
  const watched = watchedPids(flags);
  const settleMs = numberFlag(flags, "settle-ms", 200);
  const exact = rate === 0 && flags.values.has("exact");
  const drainMs = numberFlag(flags, "drain-s", 60) * 1000;

  const latency = new Histogram();
  const record = (us: number) => latency.record(us);
  const ignore = () => {};
  let measuring = false;
  let draining = false;
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
  const perClient = new Map<WebSocket, ClientTrack>();
  let doneClients = 0;
  const expected = clients * burst;

  // The exactly-once check: which burst is in flight, and what went wrong so far.
  let currentBurst = 0;
  let inFlight = false;
  let exactBursts = 0;
  let duplicates = 0;
  let outOfOrder = 0;
  let skipped = 0;
  let malformed = 0;
  let lastFresh = 0;
  let onBurstDone: (() => void) | undefined;
  let track: ClientTrack | undefined;
  let fresh = 0;
  const onId = (sender: number, seq: number) => {
    const t = track!;
    const b = Math.floor(seq / burst);
    if (sender < 0 || sender >= clients || b > currentBurst) {
      malformed++;
      return;
    }
    // A message of an earlier burst: that burst was complete for everyone, so this is a second copy.
    if (b < currentBurst) {
      duplicates++;
      return;
    }
    const index = sender * burst + seq % burst;
    if (t.seen![index]) {
      duplicates++;
      return;
    }
    t.seen![index] = 1;
    fresh++;
    // Each sender's sequence numbers run 0, 1, 2, … across bursts, and each client must see exactly that.
    const next = t.next![sender];
    if (seq < next) outOfOrder++;
    else {
      skipped += seq - next;
      t.next![sender] = seq + 1;
    }
  };

  const burstDone = () => {
    if (measuring) burstsCompleted++;
    exactBursts++;
    currentBurst++;
    inFlight = false;
    doneClients = 0;
    for (const c of perClient.values()) {
      c.received = 0;
      c.seen?.fill(0);
    }
    if (measuring) setTimeout(sendBurst, gapMs);
    onBurstDone?.();
  };

  const onFrame = (ws: WebSocket, frame: string) => {
    if (!measuring && !draining) return;
    const now = performance.now();
    const mine = perClient.get(ws)!;
    track = mine;
    fresh = 0;
    const n = scanDeliveries(frame, now * 1000, measuring ? record : ignore, exact ? onId : undefined);
    if (n === 0) {
      if (measuring && frame.includes('"type":"error"')) {
        errorFrames++;
        firstErrorFrame ??= frame.slice(0, 300);
      }
      return;
    }
    if (measuring) {
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
    }
    if (rate === 0) {
      const before = mine.received;
      // With ids, only first copies count towards completing the burst.
      mine.received += exact ? fresh : n;
      if (fresh) lastFresh = now;
      if (before < expected && mine.received >= expected && ++doneClients === clients) burstDone();
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
    perClient.set(ws, {
      received: 0,
      frames: 0,
      seen: exact ? new Uint8Array(expected) : undefined,
      next: exact ? new Float64Array(clients) : undefined,
    });
    ws.onclose = (e) => {
      if (measuring || draining) closed[e.code] = (closed[e.code] ?? 0) + 1;
    };
  }
  // Let join notices settle before the clock starts.
  await sleep(settleMs);

  function sendBurst() {
    if (!measuring) return;
    inFlight = true;
    for (const [sender, ws] of opened.entries()) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      for (let m = 0; m < burst; m++) {
        const id = exact ? { sender, seq: currentBurst * burst + m } : undefined;
        ws.send(encodeChat(kind, stampedText(id)));
      }
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

  const measured = new MeasuredWindow(pid, watched);
  measuring = true;
  t0 = performance.now();
  if (rate > 0) startPaced();
  else sendBurst();
  await sleep(seconds * 1000);
  draining = exact;
  measuring = false;
  clearInterval(pacer);
  const elapsed = (performance.now() - t0) / 1000;
  const server = measured.finish();
  let exactResult: ExactResult | undefined;
  if (exact) {
    const drainStart = performance.now();
    lastFresh = Math.max(lastFresh, drainStart);
    let stalled = false;
    if (inFlight) {
      // Until the burst is complete, deliveries stop for DRAIN_STALL_MS, or drainMs is up.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, drainMs);
        const watch = setInterval(() => {
          if (performance.now() - lastFresh > DRAIN_STALL_MS) {
            stalled = true;
            done();
          }
        }, 500);
        function done() {
          clearTimeout(timer);
          clearInterval(watch);
          onBurstDone = undefined;
          resolve();
        }
        onBurstDone = done;
      });
    }
    draining = false;
    let missing = 0;
    if (inFlight) { for (const c of perClient.values()) missing += expected - c.received; }
    exactResult = {
      bursts: exactBursts,
      perClient: exactBursts * expected,
      duplicates,
      outOfOrder,
      skipped,
      malformed,
      missing,
      stalled: missing > 0 && stalled,
      drainMs: Math.round(performance.now() - drainStart),
    };
  }
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
    ...(exactResult ? { exact: exactResult } : {}),
    server,
  };
}

/** A chat client's progress through the current burst. */
interface ClientTrack {
  /** Deliveries of the current burst (with `--exact`, distinct messages). */
  received: number;
  frames: number;
  /** With `--exact`: which messages of the current burst arrived (index `sender × burst + n`). */
  seen?: Uint8Array;
  /** With `--exact`: the sequence number expected next from each sender. */
  next?: Float64Array;
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
  const batchSize = numberFlag(flags, "batch-size", 1000);
  const batchPosts = numberFlag(flags, "batch-posts", 5);
  const latency = new Histogram();
  const httpLatency = new Histogram();
  const batchHttpLatency = new Histogram();

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

  const post = async (t: number, body: unknown = { topic, data: { t } }) => {
    const start = performance.now();
    const res = await fetch(publishUrl, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${apiKey}`,
      },
      body: JSON.stringify(body),
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
    batchSize,
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
      batchHttpLatency: batchHttpLatency.summaryMs(),
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
  // Batches go to a topic nobody follows: this measures storing and numbering, not the fan-out above.
  const batch = {
    messages: Array.from({ length: batchSize }, (_, i) => ({ topic: `${topic}-batch`, data: { i } })),
  };
  for (let b = 0; b < batchPosts; b++) {
    const { status, ms } = await post(0, batch);
    if (status >= 300) throw new Error(`Batch publish ${b + 1} answered ${status}`);
    batchHttpLatency.record(ms * 1000);
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
    batchHttpLatency: batchHttpLatency.summaryMs(),
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
  support,
};

/** Runs the workload named by the first argument and prints its result as one JSON line. */
export async function main(args: string[]): Promise<number> {
  const flags = parseFlags(args, ["exact"]);
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
