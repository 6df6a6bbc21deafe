/**
 * The admin console's control plane: what one instance asks of every instance in the cluster.
 *
 * Each instance knows only its own hub, so a request goes out on the broker channel {@linkcode CONTROL}; every
 * instance (this one included, since the broker delivers to its own subscribers too) answers on the asker's reply
 * channel. The asker knows how many answers to wait for from the presence of {@linkcode INSTANCES}, where each
 * instance enters itself; a dead instance leaves it with the rest of its presence (see `lib/broker/redis.ts`), and
 * an instance that does not answer in time makes the answer `partial` rather than wrong.
 *
 * Operations: `list` (every connection of the instance), `inspect` (one connection), `close` (connections by id,
 * with 4005 `closed by an admin`). Nothing here knows a product: a connection's state is described by duck typing.
 *
 * @module
 */
import type { Subscription } from "../broker/broker.ts";
import { CloseCode, Conn, INSTANCE_ID, type Subscriber } from "../realtime/hub.ts";
import type { Services } from "../services.ts";

/** The broker channel every instance listens to for control requests. */
export const CONTROL = "admin:control";
/** The presence channel where every instance enters itself. */
export const INSTANCES = "admin:instances";
/** Where an instance gets the answers to its requests. */
export const replyChannel = (instance: string): string => `admin:reply:${instance}`;

/** How long a request waits for every instance to answer. */
export const REQUEST_TIMEOUT_MS = 1500;
/** Most connections one instance lists. */
export const MAX_LISTED = 2000;

/** A connection as the admin console shows it. */
export interface ConnView {
  id: string;
  instance: string;
  endpoint: string;
  ip?: string;
  openedAt?: number;
  channels: string[];
  /** Bytes waiting to go out (our queue and the native buffer). */
  pendingBytes?: number;
  /** The verified user of a socket with a token. */
  user?: { sub: string; name: string };
  /** What the endpoint knows that an operator may see: room and name, topics, visitor or agent, status. */
  state?: Record<string, unknown>;
}

type Op = "list" | "inspect" | "close";

interface ControlRequest {
  id: string;
  op: Op;
  replyTo: string;
  ids?: string[];
}

interface ControlReply {
  id: string;
  instance: string;
  result: unknown;
}

/** The answers of the instances to one request. */
export interface Answers<T> {
  /** Each answering instance with its result, this instance first. */
  replies: { instance: string; result: T }[];
  /** How many instances were expected to answer. */
  expected: number;
  /** Whether some instance did not answer in time. */
  partial: boolean;
}

/** The part of an endpoint's state an operator may see; never tokens or hashes. */
function describeState(state: unknown): Record<string, unknown> | undefined {
  if (typeof state !== "object" || state === null) return undefined;
  const s = state as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of ["room", "name", "visitorId", "status"]) {
    if (typeof s[key] === "string") out[key] = s[key];
  }
  if (s.topics instanceof Set) out.topics = [...s.topics].slice(0, 100);
  const agent = s.agent as Record<string, unknown> | undefined;
  if (typeof agent === "object" && agent !== null && typeof agent.username === "string") {
    out.agent = { id: agent.id, username: agent.username, name: agent.name, role: agent.role };
  }
  return Object.keys(out).length ? out : undefined;
}

/** The admin view of one of this process's sockets or streams. */
export function connView(c: Subscriber): ConnView {
  const view: ConnView = { id: c.id, instance: INSTANCE_ID, endpoint: c.endpoint, channels: [...c.channels] };
  const extra = c as Subscriber & { ip?: unknown; openedAt?: unknown; pendingBytes?: unknown };
  if (typeof extra.ip === "string") view.ip = extra.ip;
  if (typeof extra.openedAt === "number") view.openedAt = extra.openedAt;
  if (typeof extra.pendingBytes === "number") view.pendingBytes = Math.max(0, extra.pendingBytes);
  if (c instanceof Conn) {
    if (c.identity) view.user = { sub: c.identity.sub, name: c.identity.name };
    const state = describeState(c.state);
    if (state) view.state = state;
  }
  return view;
}

/** Asks every instance, answers for this one. */
export class ControlPlane {
  readonly instance = INSTANCE_ID;
  #app: Services;
  #subscriptions: Subscription[] = [];
  #pending = new Map<string, (reply: ControlReply) => void>();
  #closed = false;

  constructor(app: Services) {
    this.#app = app;
  }

  /** Listens for requests and answers, and enters this instance in {@linkcode INSTANCES}. */
  async start(): Promise<void> {
    const { broker } = this.#app;
    this.#subscriptions.push(
      broker.subscribe(CONTROL, (frame) => this.#onRequest(frame)),
      broker.subscribe(replyChannel(this.instance), (frame) => this.#onReply(frame)),
    );
    await Promise.all(this.#subscriptions.map((s) => s.ready));
    await this.#enter();
    // After a Redis outage the broker drops this instance's presence (its sockets join again): so do we.
    broker.onReconnect?.(() => {
      if (!this.#closed) this.#enter().catch(() => {});
    });
  }

  #enter(): Promise<void> {
    return this.#app.broker.presenceAdd(INSTANCES, { connId: this.instance, id: this.instance, name: "" });
  }

  /** Leaves {@linkcode INSTANCES} and stops listening (before the broker closes). */
  async stop(): Promise<void> {
    this.#closed = true;
    for (const s of this.#subscriptions) s.unsubscribe();
    this.#subscriptions = [];
    for (const resolve of this.#pending.values()) resolve({ id: "", instance: "", result: undefined });
    await this.#app.broker.presenceRemove(INSTANCES, this.instance).catch(() => {});
  }

  /** The instances in the cluster now, this one first. */
  async instances(): Promise<string[]> {
    const ids = (await this.#app.broker.presence(INSTANCES)).map((e) => e.id);
    return [this.instance, ...ids.filter((id) => id !== this.instance)];
  }

  /** Every connection of every instance. */
  list(): Promise<Answers<ConnView[]>> {
    return this.#ask<ConnView[]>({ op: "list" });
  }

  /** One connection, wherever it is; undefined when no instance holds it. */
  async inspect(id: string): Promise<ConnView | undefined> {
    const local = this.#app.hub.get(id);
    if (local) return connView(local);
    const answers = await this.#ask<ConnView | null>({ op: "inspect", ids: [id] }, (r) => r.result !== null);
    return answers.replies.find((r) => r.result !== null)?.result ?? undefined;
  }

  /**
   * Closes connections by id on whichever instances hold them (4005); returns the views of those closed. Resolves
   * once every holder answered, so the close frames are on their way.
   */
  async close(ids: readonly string[]): Promise<ConnView[]> {
    const want = new Set(ids);
    const closed: ConnView[] = [];
    // Local ones at once; the others through the broker.
    for (const id of ids) {
      const conn = this.#app.hub.get(id);
      // One already closing (its close handshake under way) is not there any more.
      if (conn && !conn.closing) {
        closed.push(connView(conn));
        conn.close(CloseCode.closedByAdmin);
        want.delete(id);
      }
    }
    if (want.size === 0) return closed;
    let found = closed.length;
    const answers = await this.#ask<ConnView[]>({ op: "close", ids: [...want] }, (r) => {
      found += r.result.length;
      return found >= ids.length;
    });
    for (const r of answers.replies) if (r.instance !== this.instance) closed.push(...r.result);
    return closed;
  }

  /** Publishes a request and collects answers until every instance answered, `done` says so, or time is up. */
  async #ask<T>(
    req: Omit<ControlRequest, "id" | "replyTo">,
    done: (reply: { instance: string; result: T }) => boolean = () => false,
  ): Promise<Answers<T>> {
    const expected = (await this.instances()).length;
    const id = crypto.randomUUID();
    const replies: { instance: string; result: T }[] = [];
    const { promise, resolve } = Promise.withResolvers<void>();
    const timer = setTimeout(resolve, REQUEST_TIMEOUT_MS);
    this.#pending.set(id, (reply) => {
      if (reply.id !== id) return resolve();
      if (replies.some((r) => r.instance === reply.instance)) return;
      const r = { instance: reply.instance, result: reply.result as T };
      replies.push(r);
      if (done(r) || replies.length >= expected) resolve();
    });
    try {
      await this.#app.broker.publish(CONTROL, JSON.stringify({ ...req, id, replyTo: this.instance }));
      await promise;
    } finally {
      clearTimeout(timer);
      this.#pending.delete(id);
    }
    replies.sort((a, b) => (a.instance === this.instance ? -1 : b.instance === this.instance ? 1 : 0));
    return { replies, expected, partial: replies.length < expected };
  }

  #onReply(frame: string): void {
    let reply: ControlReply;
    try {
      reply = JSON.parse(frame);
    } catch {
      return;
    }
    this.#pending.get(reply.id)?.(reply);
  }

  #onRequest(frame: string): void {
    let req: ControlRequest;
    try {
      req = JSON.parse(frame);
    } catch {
      return;
    }
    if (typeof req.id !== "string" || typeof req.replyTo !== "string") return;
    const result = this.#answer(req);
    this.#app.broker.publish(
      replyChannel(req.replyTo),
      JSON.stringify({ id: req.id, instance: this.instance, result } satisfies ControlReply),
    ).catch((err) => this.#app.log.warn("control_reply_failed", { op: req.op, error: String(err) }));
  }

  #answer(req: ControlRequest): unknown {
    const { hub } = this.#app;
    const ids = Array.isArray(req.ids) ? req.ids.filter((id) => typeof id === "string") : [];
    switch (req.op) {
      case "list": {
        const out: ConnView[] = [];
        for (const c of hub.conns()) {
          if (out.length >= MAX_LISTED) break;
          out.push(connView(c));
        }
        return out;
      }
      case "inspect": {
        const conn = ids[0] === undefined ? undefined : hub.get(ids[0]);
        return conn ? connView(conn) : null;
      }
      case "close": {
        const out: ConnView[] = [];
        for (const id of ids) {
          const conn = hub.get(id);
          if (!conn || conn.closing) continue;
          out.push(connView(conn));
          conn.close(CloseCode.closedByAdmin);
        }
        if (out.length) this.#app.log.info("admin_closed", { conns: out.map((c) => c.id).join(",") });
        return out;
      }
      default:
        return null;
    }
  }
}
