/**
 * The support workload (issue 15, goal 6): `visitors` visitor sockets and `agents` agent sockets exchanging
 * messages through the customer-service desk, each conversation a closed loop: the visitor writes a stamped
 * message, the agent holding the conversation answers it at once with the same stamp, and the visitor writes
 * the next one when the answer arrives. Reports messages/s (both directions, counted where they arrive) and
 * the one-way latency of every message, send to arrival, over the measured window.
 *
 * The server must run with `--demo-agent benchN:<password>` for N = 1…agents and auto assignment with room for
 * every conversation (`bench/targets.ts` has the flags). `--url` holds the instances' base URLs
 * (`ws://127.0.0.1:<port>`), space separated: client `i` uses `i mod n`, agents and visitors alike.
 *
 * @module
 */
import { type Flags, numberFlag, requiredFlag, stringFlag } from "./flags.ts";
import { Histogram, type LatencySummary } from "./histogram.ts";
import { clientUrl, MeasuredWindow, openAll, type ServerStats, sleep, watchedPids } from "./load.ts";

/** The support workload's result. */
export interface SupportResult {
  workload: "support";
  visitors: number;
  agents: number;
  /** Visitor and agent sockets that opened. */
  opened: number;
  /** Conversations assigned to an agent before the measured window. */
  assigned: number;
  seconds: number;
  /** Messages that arrived in the window: visitor → agent and agent → visitor. */
  messages: number;
  messagesPerSec: number;
  /** Send to arrival, both directions. */
  latency: LatencySummary;
  errorFrames: number;
  server: ServerStats;
}

type Frame = Record<string, unknown>;
const STAMP = /^t=(\d+(?:\.\d+)?)$/;

/** One socket that parses JSON frames (plain frames, or a batch array) and hands each to `onFrame`. */
function openJson(
  url: string,
  onFrame: (ws: WebSocket, f: Frame) => void,
  readyType: string,
): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const timer = setTimeout(() => {
      ws.close();
      reject(new Error(`Socket ${url} sent no ${readyType} within 10 s`));
    }, 10_000);
    let ready = false;
    ws.onerror = () => {};
    ws.onclose = (e) => {
      if (ready) return;
      clearTimeout(timer);
      reject(new Error(`Socket ${url} closed before ${readyType} (code ${e.code} ${e.reason})`));
    };
    ws.onmessage = (e: MessageEvent) => {
      if (typeof e.data !== "string") return;
      const parsed = JSON.parse(e.data);
      for (const f of Array.isArray(parsed) ? parsed : [parsed]) {
        if (!ready && f.type === readyType) {
          ready = true;
          clearTimeout(timer);
          resolve(ws);
        }
        onFrame(ws, f);
      }
    };
  });
}

/** Runs the support workload; see the module docs. */
export async function support(flags: Flags): Promise<SupportResult> {
  const bases = requiredFlag(flags, "url");
  const visitors = numberFlag(flags, "visitors", 200);
  const agents = numberFlag(flags, "agents", 20);
  const seconds = numberFlag(flags, "seconds", 10);
  const password = stringFlag(flags, "agent-password", "bench-pass-123");
  const settleMs = numberFlag(flags, "settle-ms", 200);
  const pid = numberFlag(flags, "server-pid", 0);
  const latency = new Histogram();
  let measuring = false;
  let sending = true;
  let messages = 0;
  let errorFrames = 0;
  let firstError: Frame | undefined;
  const onError = (f: Frame) => {
    errorFrames++;
    firstError ??= f;
  };
  const arrived = (text: unknown): boolean => {
    const m = typeof text === "string" ? STAMP.exec(text) : null;
    if (!m || !measuring) return false;
    latency.record((performance.now() - Number(m[1])) * 1000);
    messages++;
    return true;
  };

  // Agents first, so that auto assignment has somewhere to put each conversation.
  const agentSockets = await openAll(agents, 10, async (j) => {
    const base = clientUrl(bases, j);
    const res = await fetch(`${base.replace(/^ws/, "http")}/api/agent/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: `bench${j + 1}`, password }),
    });
    const body = await res.json();
    if (res.status !== 200) {
      throw new Error(`Agent bench${j + 1} login answered ${res.status}: ${body.message}`);
    }
    return await openJson(`${base}/ws/support/agent?token=${body.token}`, (ws, f) => {
      if (f.type === "error") onError(f);
      else if (f.type === "message" && (f.from as Frame)?.role === "visitor") {
        // The agent answers every visitor message at once, with its stamp (or a fresh one while warming up).
        const stamp = arrived(f.text) ? `t=${STAMP.exec(f.text as string)![1]}` : `t=${performance.now()}`;
        if (sending) {
          ws.send(JSON.stringify({ type: "message", conversationId: f.conversationId, text: stamp }));
        }
      } else if (f.type === "accepted") {
        // Auto assignment hands over a conversation with its first message: answered like any other.
        const first = (f.messages as Frame[] | undefined)?.findLast((m) =>
          (m.from as Frame)?.role === "visitor"
        );
        const id = (f.conversation as Frame).id;
        if (first && sending) {
          ws.send(JSON.stringify({ type: "message", conversationId: id, text: "welcome" }));
        }
      }
    }, "state");
  });
  if (agentSockets.failed) {
    throw new Error(`${agentSockets.failed} agents failed: ${agentSockets.firstError}`);
  }

  let assigned = 0;
  const visitorSockets = await openAll(
    visitors,
    50,
    (i) =>
      openJson(`${clientUrl(bases, i)}/ws/support/visitor`, (ws, f) => {
        if (f.type === "error") onError(f);
        else if (f.type === "assigned") assigned++;
        else if (f.type === "message" && (f.from as Frame)?.role === "agent") {
          arrived(f.text);
          // Closed loop: the answer (or the welcome) makes the visitor write the next message.
          if (sending && measuring) {
            ws.send(JSON.stringify({ type: "message", text: `t=${performance.now()}` }));
          }
        }
      }, "history"),
  );
  if (visitorSockets.failed) {
    throw new Error(`${visitorSockets.failed} visitors failed: ${visitorSockets.firstError}`);
  }
  // Warm-up: every visitor opens its conversation; auto assignment gives each to an agent.
  for (const ws of visitorSockets.opened) ws.send(JSON.stringify({ type: "message", text: "hello" }));
  const until = performance.now() + 30_000;
  while (assigned < visitors && performance.now() < until) await sleep(20);
  if (assigned < visitors) {
    throw new Error(`Only ${assigned} of ${visitors} conversations were assigned in 30 s`);
  }
  await sleep(settleMs);

  const measured = new MeasuredWindow(pid, watchedPids(flags));
  measuring = true;
  const started = performance.now();
  for (const ws of visitorSockets.opened) {
    ws.send(JSON.stringify({ type: "message", text: `t=${performance.now()}` }));
  }
  await sleep(seconds * 1000);
  const elapsed = (performance.now() - started) / 1000;
  const counted = messages;
  measuring = false;
  sending = false;
  const server = measured.finish();
  // What is in flight arrives uncounted; then the sockets go.
  await sleep(200);
  for (const ws of [...visitorSockets.opened, ...agentSockets.opened]) ws.close();
  if (errorFrames) {
    console.error(`support: ${errorFrames} error frames, first: ${JSON.stringify(firstError)}`);
  }
  return {
    workload: "support",
    visitors,
    agents,
    opened: visitorSockets.opened.length + agentSockets.opened.length,
    assigned,
    seconds: Math.round(elapsed * 100) / 100,
    messages: counted,
    messagesPerSec: Math.round(counted / elapsed),
    latency: latency.summaryMs(),
    errorFrames,
    server,
  };
}
