/**
 * What the benchmark measures: the servers it starts, and for each workload the targets (a server, a socket URL
 * and the chat protocol to speak) with the baselines first.
 *
 * @module
 */
import type { ClientKind } from "./protocol.ts";

const BENCH_DIR = new URL(".", import.meta.url).pathname;
const ROOT_DIR = new URL("..", import.meta.url).pathname;

/** The API key Switchboard is started with, for `POST /api/publish`. */
export const API_KEY = "bench-key";

/** A server the benchmark starts. */
export interface ServerSpec {
  name: string;
  /** The command line, given a free port and a fresh temporary directory. */
  command(port: number, tmpDir: string): string[];
  /** Whether it runs on Node (and needs `bench/node_modules`). */
  node: boolean;
}

/**
 * Switchboard as the bench runs it: per-connection and per-IP limits lifted by their documented flags (the
 * workloads are floods from one IP by design), a send queue big enough for one burst, warnings only.
 */
export const SWITCHBOARD: ServerSpec = {
  name: "switchboard",
  node: false,
  command: (port, tmpDir) => [
    "deno",
    "run",
    "-A",
    `${ROOT_DIR}main.ts`,
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--data-dir",
    tmpDir,
    "--rate-limit",
    "0",
    "--max-conns-per-ip",
    "0",
    "--handshake-rate",
    "0",
    "--new-rooms-per-ip",
    "0",
    "--new-conversations-per-ip",
    "0",
    "--api-key",
    API_KEY,
    "--log-level",
    "warn",
  ],
};

const denoPeer = (file: string, permissions = ["--allow-net=127.0.0.1", "--allow-env=PORT"]): ServerSpec => ({
  name: file,
  node: false,
  command: (port) => ["deno", "run", ...permissions, `${BENCH_DIR}peers/${file}`, `${port}`],
});

const nodePeer = (file: string): ServerSpec => ({
  name: file,
  node: true,
  command: (port) => ["node", `${BENCH_DIR}peers/${file}`, `${port}`],
});

/** The baseline servers in `bench/peers/`. */
export const PEERS = {
  rawDenoChat: denoPeer("raw_deno_chat.ts"),
  rawDenoEcho: denoPeer("raw_deno_echo.ts"),
  rawDenoPublish: denoPeer("raw_deno_publish.ts"),
  ownFramingChat: denoPeer("own_framing_chat.ts"),
  denoNodeWsChat: denoPeer("deno_node_ws_chat.ts", ["--allow-net=127.0.0.1", "--allow-env", "--allow-read"]),
  nodeWsChat: nodePeer("node_ws_chat.mjs"),
  socketioChat: nodePeer("socketio_chat.mjs"),
};

/** One thing measured: a server, the URL template of its sockets (`{port}`, `{i}`), and how to talk to it. */
export interface Target {
  id: string;
  label: string;
  server: ServerSpec;
  url: string;
  client: ClientKind;
  /** A baseline: other targets' ratios are computed against it. */
  baseline: boolean;
  /**
   * Cluster mode: this many Switchboard instances on one fresh Redis and one fresh PostgreSQL (see
   * `bench/cluster.ts`), the clients split evenly between them; absent: one embedded instance.
   */
  instances?: number;
  /** The target whose rate this one is compared with (`× embedded` in the cluster table). */
  versus?: string;
  /** Flags this target's Switchboard processes need (before `--server-flags`, which win). */
  serverFlags?: string[];
}

/** The workloads, in the order they run. */
export const WORKLOADS = ["chat", "paced", "echo", "idle", "publish", "cluster", "support"] as const;
/** One of {@linkcode WORKLOADS}. */
export type Workload = typeof WORKLOADS[number];
/**
 * What runs without `--only`: everything but `cluster` and `support`, which need redis-server and PostgreSQL
 * installed (`cluster` takes about six minutes on its own; `--only cluster,support` runs them).
 */
export const DEFAULT_WORKLOADS: readonly Workload[] = ["chat", "paced", "echo", "idle", "publish"];

const CHAT_TARGETS: Target[] = [
  {
    id: "raw-deno",
    label: "raw Deno chat",
    server: PEERS.rawDenoChat,
    url: "ws://127.0.0.1:{port}/",
    client: "plain",
    baseline: true,
  },
  {
    id: "node-ws",
    label: "Node ws chat",
    server: PEERS.nodeWsChat,
    url: "ws://127.0.0.1:{port}/",
    client: "plain",
    baseline: true,
  },
  {
    id: "socketio",
    label: "Socket.IO chat",
    server: PEERS.socketioChat,
    url: "ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket",
    client: "socketio",
    baseline: true,
  },
  {
    id: "own-framing",
    label: "raw Deno chat, own framing + corked writes (experiment)",
    server: PEERS.ownFramingChat,
    url: "ws://127.0.0.1:{port}/",
    client: "plain",
    baseline: false,
  },
  {
    id: "deno-node-ws",
    label: "Node ws chat run by Deno on node:http (experiment)",
    server: PEERS.denoNodeWsChat,
    url: "ws://127.0.0.1:{port}/",
    client: "plain",
    baseline: false,
  },
  {
    id: "switchboard",
    label: "Switchboard chat, batch=0",
    server: SWITCHBOARD,
    url: "ws://127.0.0.1:{port}/ws/chat/bench?name=c{i}",
    client: "switchboard",
    baseline: false,
  },
  {
    id: "switchboard-batch",
    label: "Switchboard chat, batch=1",
    server: SWITCHBOARD,
    url: "ws://127.0.0.1:{port}/ws/chat/bench?name=c{i}&batch=1",
    client: "switchboard",
    baseline: false,
  },
  {
    id: "switchboard-deno",
    label: "Switchboard chat, batch=0, --transport deno",
    server: SWITCHBOARD,
    url: "ws://127.0.0.1:{port}/ws/chat/bench?name=c{i}",
    client: "switchboard",
    baseline: false,
    serverFlags: ["--transport", "deno"],
  },
  {
    id: "switchboard-batch-deno",
    label: "Switchboard chat, batch=1, --transport deno",
    server: SWITCHBOARD,
    url: "ws://127.0.0.1:{port}/ws/chat/bench?name=c{i}&batch=1",
    client: "switchboard",
    baseline: false,
    serverFlags: ["--transport", "deno"],
  },
];

const chatUrl = (batch: number) => `ws://127.0.0.1:{port}/ws/chat/bench?name=c{i}${batch ? "&batch=1" : ""}`;

/**
 * The cluster workload (issue 7: "2 instances + Redis on one room ≥ 0.6× one embedded instance"): the chat flood,
 * with every message checked for exactly-once delivery, against one embedded instance and against two instances on
 * Redis and PostgreSQL with the clients split between them; with and without batching.
 */
const CLUSTER_TARGETS: Target[] = [
  {
    id: "switchboard-batch",
    label: "1 embedded instance, batch=1",
    server: SWITCHBOARD,
    url: chatUrl(1),
    client: "switchboard",
    baseline: true,
  },
  {
    id: "cluster-batch",
    label: "2 instances + Redis + PostgreSQL, batch=1",
    server: SWITCHBOARD,
    url: chatUrl(1),
    client: "switchboard",
    baseline: false,
    instances: 2,
    versus: "switchboard-batch",
  },
  {
    id: "switchboard",
    label: "1 embedded instance, batch=0",
    server: SWITCHBOARD,
    url: chatUrl(0),
    client: "switchboard",
    baseline: true,
  },
  {
    id: "cluster",
    label: "2 instances + Redis + PostgreSQL, batch=0",
    server: SWITCHBOARD,
    url: chatUrl(0),
    client: "switchboard",
    baseline: false,
    instances: 2,
    versus: "switchboard",
  },
];

/** Agents of the support workload (`bench1`…), their password, and the flags that make room for every chat. */
export const SUPPORT_AGENTS = 20;
export const SUPPORT_VISITORS = 200;
export const SUPPORT_PASSWORD = "bench-pass-123";
const SUPPORT_FLAGS = [
  ...Array.from({ length: SUPPORT_AGENTS }, (_, j) => ["--demo-agent", `bench${j + 1}:${SUPPORT_PASSWORD}`])
    .flat(),
  "--support-assign",
  "auto",
  "--support-max-chats",
  String(Math.ceil(SUPPORT_VISITORS / SUPPORT_AGENTS) * 2),
  "--support-answer-timeout",
  "0",
];

/**
 * The support workload (issue 15, goal 6): 200 visitors and 20 agents in closed-loop conversations, on one
 * embedded instance and on two instances with Redis and PostgreSQL (see `bench/support_load.ts`).
 */
const SUPPORT_TARGETS: Target[] = [
  {
    id: "support",
    label: "1 embedded instance",
    server: SWITCHBOARD,
    url: "ws://127.0.0.1:{port}",
    client: "plain",
    baseline: true,
    serverFlags: SUPPORT_FLAGS,
  },
  {
    id: "support-cluster",
    label: "2 instances + Redis + PostgreSQL",
    server: SWITCHBOARD,
    url: "ws://127.0.0.1:{port}",
    client: "plain",
    baseline: false,
    instances: 2,
    versus: "support",
    serverFlags: SUPPORT_FLAGS,
  },
];

/** The targets of each workload, baselines first. */
export const TARGETS: Record<Workload, Target[]> = {
  chat: CHAT_TARGETS,
  cluster: CLUSTER_TARGETS,
  support: SUPPORT_TARGETS,
  paced: CHAT_TARGETS,
  echo: [
    {
      id: "raw-deno-echo",
      label: "raw Deno echo",
      server: PEERS.rawDenoEcho,
      url: "ws://127.0.0.1:{port}/",
      client: "plain",
      baseline: true,
    },
    {
      id: "switchboard-echo",
      label: "Switchboard /ws/echo",
      server: SWITCHBOARD,
      url: "ws://127.0.0.1:{port}/ws/echo",
      client: "plain",
      baseline: false,
    },
  ],
  idle: [
    {
      id: "raw-deno",
      label: "raw Deno chat",
      server: PEERS.rawDenoChat,
      url: "ws://127.0.0.1:{port}/",
      client: "plain",
      baseline: true,
    },
    {
      id: "switchboard-push",
      label: "Switchboard /ws/push?time=0",
      server: SWITCHBOARD,
      url: "ws://127.0.0.1:{port}/ws/push?time=0",
      client: "plain",
      baseline: false,
    },
    {
      id: "switchboard-chat",
      label: "Switchboard chat, a room each",
      server: SWITCHBOARD,
      url: "ws://127.0.0.1:{port}/ws/chat/idle-{i}?name=c{i}",
      client: "plain",
      baseline: false,
    },
  ],
  publish: [
    {
      id: "raw-deno-publish",
      label: "raw Deno publish loop",
      server: PEERS.rawDenoPublish,
      url: "ws://127.0.0.1:{port}/",
      client: "plain",
      baseline: true,
    },
    {
      id: "switchboard-publish",
      label: "Switchboard POST /api/publish → /ws/push",
      server: SWITCHBOARD,
      url: "ws://127.0.0.1:{port}/ws/push?topics=bench&time=0",
      client: "plain",
      baseline: false,
    },
    {
      id: "switchboard-publish-deno",
      label: "Switchboard POST /api/publish → /ws/push, --transport deno",
      server: SWITCHBOARD,
      url: "ws://127.0.0.1:{port}/ws/push?topics=bench&time=0",
      client: "plain",
      baseline: false,
      serverFlags: ["--transport", "deno"],
    },
  ],
};
