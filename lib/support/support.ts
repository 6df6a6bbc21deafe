/**
 * Customer service (客服): visitors, conversations, the queue, agents, assignment and transfer.
 *
 * All state lives in the store (conversations, messages) and the broker (presence, fan-out), so any instance can
 * serve any visitor or agent. Channels:
 * - `support:visitor:<visitorId>`: every socket of one visitor (all its tabs, on any instance);
 * - `support:agent:<agentId>`: every socket of one agent;
 * - `support:agents`: every agent socket (queue and conversation updates, who is online).
 * Presence: `support:agents` holds connected agent sockets; `support:online` those whose status is online.
 *
 * A conversation joins the agent queue with the visitor's first message. Accepting is a conditional update in the
 * store, so exactly one agent wins a race, whichever instance each is on.
 *
 * @module
 */
import type { Services } from "../services.ts";
import type { FrameMeta } from "../broker/broker.ts";
import { CloseCode, type Conn } from "../realtime/hub.ts";
import { newToken, tokenHash } from "./passwords.ts";
import {
  FrameError,
  messageFrame,
  must,
  storable,
  validClientMsgId,
  validText,
  type WireMessage,
} from "../realtime/protocol.ts";
import type { AgentRecord, ConversationRecord, StoredMessage, VisitorRecord } from "../store/store.ts";
import { visitorIdFor } from "../store/rows.ts";

export const visitorChannel = (visitorId: string): string => `support:visitor:${visitorId}`;
export const agentChannel = (id: string): string => `support:agent:${id}`;
export const convStream = (id: string): string => `conv:${id}`;
export const AGENTS = "support:agents";
export const ONLINE = "support:online";

const HISTORY_LIMIT = 200;
const QUEUE_LIMIT = 1000;

/** How often the sessions behind open agent sockets are checked (an ended session closes its sockets). */
export const SESSION_CHECK_MS = 2000;

/** A support message on the wire. */
export type SupportMessage = WireMessage<{ conversationId: string }>;

/** The wire form of a stored conversation message. */
export function supportMessage(conversationId: string, m: StoredMessage): SupportMessage {
  return messageFrame(m, { conversationId }, "visitor");
}

/**
 * What a visitor socket knows. A new visitor has a token but no rows yet: the visitor and its conversation are
 * stored with its first message or profile, so page views that never write cost nothing.
 */
export interface VisitorState {
  token: string;
  tokenHash: string;
  /** The stored visitor's id, or for a token not stored yet the id its row will get ({@linkcode visitorIdFor}). */
  visitorId: string;
  visitor: VisitorRecord | undefined;
  lastTypingAt: number;
}

/** What an agent socket knows. */
export interface AgentState {
  agent: AgentRecord;
  /** The hash of the session token the socket was opened with: when the session ends, the socket closes. */
  sessionHash: string;
  status: "online" | "away";
  lastTypingAt: number;
}

const base64url = (bytes: Uint8Array): string =>
  btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

/** Compares two strings without an early exit (token signatures). */
function constantTimeEqual(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ (b.charCodeAt(i) || 0);
  return diff === 0;
}

const visitorName = (v: VisitorRecord) => v.name || `Visitor ${v.id.slice(0, 4)}`;

/** The customer-service core; one per app. */
export class Support {
  #app: Services;
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #assigning: Promise<void> = Promise.resolve();
  /** Agents who let an auto-assigned conversation time out, per conversation (tried others first). */
  #skipped = new Map<string, Set<string>>();
  /** This instance's agent sockets, checked against their sessions every {@linkcode SESSION_CHECK_MS}. */
  #agentConns = new Set<Conn<AgentState>>();
  #sessionTimer: ReturnType<typeof setInterval> | undefined;
  #tokenKey: Promise<CryptoKey> | undefined;

  constructor(app: Services) {
    this.#app = app;
    app.metrics.gauge(
      "switchboard_support_queue_length",
      "Conversations waiting for an agent",
      () => this.queueLength,
    );
  }

  async #publish(channel: string, message: unknown, meta?: FrameMeta): Promise<void> {
    try {
      await this.#app.broker.publish(channel, JSON.stringify(message), meta);
    } catch (err) {
      this.#app.log.error("publish_failed", { channel, error: String(err) });
      // What was stored stays stored; the sockets resync when the broker is back (close 1012).
      throw new FrameError(
        "unavailable",
        "Saved, but live delivery failed; it will appear after reconnecting",
      );
    }
  }

  #later(ms: number, fn: () => Promise<void>): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn().catch((err) => this.#app.log.error("support_timer_failed", { error: String(err) }));
    }, ms);
    this.#timers.add(t);
  }

  /** Stops every timer (shutdown). */
  stop(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    clearInterval(this.#sessionTimer);
    this.#sessionTimer = undefined;
  }

  // ---- views -------------------------------------------------------------------------------------------------

  /** The wire form of a conversation for agents. */
  async view(c: ConversationRecord): Promise<Record<string, unknown>> {
    const { store } = this.#app;
    const [visitor, last, unread] = await Promise.all([
      store.visitorById(c.visitorId),
      store.history(convStream(c.id), { limit: 1 }),
      store.countAfter(convStream(c.id), c.agentReadSeq, "visitor"),
    ]);
    return {
      id: c.id,
      status: c.status,
      visitor: { id: c.visitorId, name: visitor ? visitorName(visitor) : "", email: visitor?.email ?? "" },
      agentId: c.agentId,
      lastMessage: last[0] ? supportMessage(c.id, last[0]) : null,
      createdAt: c.createdAt,
      unread,
    };
  }

  /** Queued conversations that have a message, oldest first. */
  queue(): Promise<ConversationRecord[]> {
    return this.#app.store.queuedConversations(QUEUE_LIMIT);
  }

  /** Agents connected now, with their status. */
  async agents(): Promise<{ id: string; name: string; username: string; status: "online" | "away" }[]> {
    const [all, online] = await Promise.all([
      this.#app.broker.presence(AGENTS),
      this.#app.broker.presence(ONLINE),
    ]);
    const onlineIds = new Set(online.map((e) => e.id));
    const ids = [...new Set(all.map((e) => e.id))];
    const records = await Promise.all(ids.map((id) => this.#app.store.agentById(id)));
    return ids.map((id, i) => ({
      id,
      name: records[i]?.name ?? "",
      username: records[i]?.username ?? "",
      status: onlineIds.has(id) ? "online" as const : "away" as const,
    }));
  }

  async #onlineAgentIds(): Promise<Set<string>> {
    return new Set((await this.#app.broker.presence(ONLINE)).map((e) => e.id));
  }

  async #conversationUpdate(c: ConversationRecord): Promise<void> {
    await this.#publish(AGENTS, { type: "conversation", conversation: await this.view(c) });
  }

  async #agentsUpdate(): Promise<void> {
    await this.#publish(AGENTS, { type: "agents", agents: await this.agents() });
  }

  /** Conversations waiting in the queue at the last count (for `/metrics`). */
  queueLength = 0;

  /**
   * Tells queued visitors their position after the conversation created at `pivot` joined or left the queue.
   * The queue is ordered by creation, so only conversations created at or after `pivot` moved: a new one tells
   * only itself, not the whole queue again.
   */
  async #positions(pivot: number): Promise<void> {
    const queue = await this.queue();
    this.queueLength = queue.length;
    await Promise.all(
      queue.map((c, i) =>
        c.createdAt >= pivot
          ? this.#publish(visitorChannel(c.visitorId), { type: "queued", position: i + 1 })
          : undefined
      ),
    );
  }

  async #noAgentNotice(conn: Conn): Promise<void> {
    if ((await this.#onlineAgentIds()).size === 0) {
      conn.sendJson({
        type: "notice",
        code: "no_agent_online",
        message: "No agent is online right now; leave a message and we will answer as soon as possible.",
      });
    }
  }

  // ---- visitors ----------------------------------------------------------------------------------------------

  /**
   * The visitor a token names. A token we issued whose visitor is not stored yet (another tab of the same
   * browser, before anyone wrote) keeps its identity; anything else gets a fresh token. Nothing is stored until
   * the visitor writes.
   */
  async visitorFor(token: string | undefined): Promise<Omit<VisitorState, "lastTypingAt">> {
    if (token && token.startsWith("v_") && token.length <= 100) {
      const hash = await tokenHash(token);
      const visitor = await this.#app.store.visitorByToken(hash);
      if (visitor) return { token, tokenHash: hash, visitorId: visitor.id, visitor };
      if (await this.#issuedByUs(token)) {
        return { token, tokenHash: hash, visitorId: visitorIdFor(hash), visitor: undefined };
      }
    }
    const fresh = await this.#newVisitorToken();
    const hash = await tokenHash(fresh);
    return { token: fresh, tokenHash: hash, visitorId: visitorIdFor(hash), visitor: undefined };
  }

  /** The HMAC key that signs visitor tokens, shared by every instance through the store. */
  #key(): Promise<CryptoKey> {
    this.#tokenKey ??= this.#app.store.secret("visitor-tokens").then((secret) =>
      crypto.subtle.importKey(
        "raw",
        new TextEncoder().encode(secret),
        { name: "HMAC", hash: "SHA-256" },
        false,
        [
          "sign",
          "verify",
        ],
      )
    );
    this.#tokenKey.catch(() => (this.#tokenKey = undefined));
    return this.#tokenKey;
  }

  /** `v_<random>.<signature>`: the server can tell its own tokens without storing them. */
  async #newVisitorToken(): Promise<string> {
    const body = newToken("v");
    const mac = await crypto.subtle.sign("HMAC", await this.#key(), new TextEncoder().encode(body));
    return `${body}.${base64url(new Uint8Array(mac).slice(0, 16))}`;
  }

  async #issuedByUs(token: string): Promise<boolean> {
    const dot = token.lastIndexOf(".");
    if (dot === -1) return false;
    const body = token.slice(0, dot);
    const mac = new Uint8Array(
      await crypto.subtle.sign("HMAC", await this.#key(), new TextEncoder().encode(body)),
    ).slice(0, 16);
    return constantTimeEqual(base64url(mac), token.slice(dot + 1));
  }

  /** The visitor's current conversation: the open one, else the last one (closed). */
  async conversationFor(visitor: VisitorRecord): Promise<ConversationRecord | undefined> {
    const { store } = this.#app;
    return (await store.openConversationOf(visitor.id)) ?? (await store.latestConversationOf(visitor.id));
  }

  /** The conversation a visitor socket works on now (another tab may have started a new one). */
  async #current(s: VisitorState): Promise<ConversationRecord | undefined> {
    return s.visitor ? await this.conversationFor(s.visitor) : undefined;
  }

  /** A visitor socket opened: session, history, then where the conversation stands. */
  async visitorOpen(conn: Conn<VisitorState>): Promise<void> {
    const s = conn.state;
    await this.#app.hub.join(conn, visitorChannel(s.visitorId));
    const c = await this.#current(s);
    conn.sendJson({ type: "session", token: s.token, conversationId: c?.id ?? null });
    if (c) await this.#sendStatus(conn, c);
    else {
      conn.sendJson({ type: "history", conversationId: null, messages: [] });
      await this.#noAgentNotice(conn);
    }
  }

  async #sendStatus(conn: Conn<VisitorState>, c: ConversationRecord): Promise<void> {
    const history = await this.#app.store.history(convStream(c.id), { limit: HISTORY_LIMIT });
    conn.sendJson({
      type: "history",
      conversationId: c.id,
      messages: history.map((m) => supportMessage(c.id, m)),
    });
    if (c.status === "closed") {
      conn.sendJson({ type: "closed", conversationId: c.id, rated: c.rating !== null });
      return;
    }
    if (c.status === "assigned" && c.agentId) {
      const agent = await this.#app.store.agentById(c.agentId);
      conn.sendJson({ type: "assigned", agent: { id: c.agentId, name: agent?.name ?? "" } });
      if (c.agentReadSeq > 0) conn.sendJson({ type: "read", upTo: String(c.agentReadSeq) });
    } else if (history.length > 0) {
      const position = (await this.queue()).findIndex((q) => q.id === c.id) + 1;
      if (position > 0) conn.sendJson({ type: "queued", position });
    }
    await this.#noAgentNotice(conn);
  }

  /** Stores the visitor on first use (one row per token, whichever socket gets there first). */
  async #ensureVisitor(conn: Conn<VisitorState>): Promise<VisitorRecord> {
    const s = conn.state;
    s.visitor ??= await this.#app.store.createVisitor(s.tokenHash);
    return s.visitor;
  }

  /**
   * The conversation a visitor writes to: the open one, or a new one (after a close, or the very first). The
   * store keeps one open conversation per visitor, so tabs writing at once share it, and all of them are told.
   */
  async #writableConversation(conn: Conn<VisitorState>): Promise<ConversationRecord> {
    const { store, guard, metrics } = this.#app;
    const visitor = await this.#ensureVisitor(conn);
    const open = await store.openConversationOf(visitor.id);
    if (open) return open;
    if (!guard.newConversations.take(conn.ip)) {
      metrics.inc("switchboard_errors_total", { code: "rate_limited" });
      throw new FrameError(
        "rate_limited",
        "Too many new conversations from your address; try again in a minute",
      );
    }
    // Writing after a close starts a new conversation, preferring the agent who had the last one.
    const last = await store.latestConversationOf(visitor.id);
    const { conversation, created } = await store.openConversation(
      visitor.id,
      last?.agentId ?? last?.lastAgentId ?? null,
    );
    if (created) {
      const channel = visitorChannel(visitor.id);
      await this.#publish(channel, { type: "session", conversationId: conversation.id });
      await this.#publish(channel, { type: "history", conversationId: conversation.id, messages: [] });
    }
    return conversation;
  }

  /** A visitor wrote: store it, deliver it, and queue the conversation on its first message. */
  async visitorMessage(conn: Conn<VisitorState>, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state;
    const text = must(validText(frame.text));
    const clientMsgId = must(validClientMsgId(frame.clientMsgId));
    const c = await this.#writableConversation(conn);
    const visitor = (await this.#app.store.visitorById(s.visitor!.id)) ?? s.visitor!;
    const stored = await this.#append(convStream(c.id), {
      from: { id: visitor.id, name: visitorName(visitor), role: "visitor" },
      text,
      clientMsgId,
    });
    const message = supportMessage(c.id, stored);
    // A resend after a reconnect is confirmed to its sender again, not stored or delivered twice.
    if (stored.duplicate) return conn.sendJson(message);
    // The visitor's channel carries every message of the conversation, so it carries their positions.
    await this.#publish(visitorChannel(c.visitorId), message, {
      at: { stream: stored.stream, seq: stored.seq },
    });
    if (c.status === "assigned" && c.agentId) {
      await this.#publish(agentChannel(c.agentId), message);
    } else {
      await this.#conversationUpdate(c);
      if (stored.seq === 1) {
        await this.#positions(c.createdAt);
        this.autoAssign();
      }
      await this.#noAgentNotice(conn);
    }
  }

  async #append(stream: string, m: Parameters<Services["store"]["append"]>[1]): Promise<StoredMessage> {
    try {
      return await this.#app.store.append(stream, m);
    } catch (err) {
      this.#app.log.error("store_failed", { error: String(err) });
      throw new FrameError("unavailable", "The message could not be stored; send it again");
    }
  }

  /** The visitor is typing: tell the agent holding the conversation. */
  async visitorTyping(conn: Conn<VisitorState>): Promise<void> {
    const s = conn.state;
    const now = Date.now();
    if (now - s.lastTypingAt < 1000) return;
    s.lastTypingAt = now;
    const c = await this.#current(s);
    if (c?.status === "assigned" && c.agentId && s.visitor) {
      await this.#publish(agentChannel(c.agentId), {
        type: "typing",
        conversationId: c.id,
        from: { id: s.visitor.id, name: visitorName(s.visitor), role: "visitor" },
      });
    }
  }

  /** The visitor set a name or email. */
  async visitorProfile(conn: Conn<VisitorState>, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state;
    const profile: { name?: string; email?: string } = {};
    if (frame.name !== undefined) {
      if (typeof frame.name !== "string" || [...frame.name.trim()].length > 64 || !storable(frame.name)) {
        throw new FrameError("bad_message", '"name" must be storable text of at most 64 characters');
      }
      profile.name = frame.name.trim();
    }
    if (frame.email !== undefined) {
      const email = typeof frame.email === "string" ? frame.email.trim() : "";
      if (
        email !== "" && (email.length > 254 || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email) || !storable(email))
      ) {
        throw new FrameError("bad_message", '"email" must be an email address');
      }
      profile.email = email;
    }
    const visitor = await this.#ensureVisitor(conn);
    await this.#app.store.updateVisitor(visitor.id, profile);
    s.visitor = { ...visitor, ...profile };
    conn.sendJson({ type: "profile", name: s.visitor.name, email: s.visitor.email });
    const c = await this.#current(s);
    if (c && c.status !== "closed") await this.#conversationUpdate(c);
  }

  /** The visitor rated a closed conversation. */
  async visitorRate(conn: Conn<VisitorState>, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state;
    const score = frame.score;
    if (typeof score !== "number" || !Number.isInteger(score) || score < 1 || score > 5) {
      throw new FrameError("bad_message", '"score" must be a whole number from 1 to 5');
    }
    const comment = frame.comment === undefined || frame.comment === ""
      ? null
      : must(validText(frame.comment, 1000));
    const c = await this.#current(s);
    if (!c || c.status !== "closed") {
      throw new FrameError("forbidden", "A conversation can be rated once it is closed");
    }
    await this.#app.store.rateConversation(c.id, score, comment);
    conn.sendJson({ type: "rated", conversationId: c.id, score });
  }

  /** The visitor has read agent messages up to an id. */
  async visitorRead(conn: Conn<VisitorState>, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state;
    const upTo = Number(frame.upTo);
    if (!Number.isSafeInteger(upTo) || upTo < 0) {
      throw new FrameError("bad_message", '"upTo" must be a message id');
    }
    const c = await this.#current(s);
    if (!c) return;
    await this.#app.store.markRead(c.id, "visitor", upTo);
    if (c.status === "assigned" && c.agentId) {
      await this.#publish(agentChannel(c.agentId), {
        type: "read",
        conversationId: c.id,
        upTo: String(upTo),
      });
    }
  }

  // ---- agents ------------------------------------------------------------------------------------------------

  /** An agent socket opened: presence, then the state frame. */
  async agentOpen(conn: Conn<AgentState>): Promise<void> {
    const { hub, broker, store } = this.#app;
    const s = conn.state;
    const entry = { connId: conn.id, id: s.agent.id, name: s.agent.name };
    this.#agentConns.add(conn);
    this.#sessionTimer ??= setInterval(() => this.#checkSessions(), SESSION_CHECK_MS);
    await Promise.all([hub.join(conn, agentChannel(s.agent.id)), hub.join(conn, AGENTS)]);
    await broker.presenceAdd(AGENTS, entry);
    await broker.presenceAdd(ONLINE, entry);
    const [queue, mine] = await Promise.all([
      this.queue(),
      store.conversations({ status: "assigned", agentId: s.agent.id, limit: QUEUE_LIMIT }),
    ]);
    conn.sendJson({
      type: "state",
      agent: { id: s.agent.id, name: s.agent.name, username: s.agent.username },
      queue: await Promise.all(queue.map((c) => this.view(c))),
      mine: await Promise.all(mine.map((c) => this.view(c))),
      agents: await this.agents(),
    });
    await this.#agentsUpdate();
    this.autoAssign();
  }

  /** An agent socket closed: presence, and re-queue its conversations if it does not come back in time. */
  async agentClose(conn: Conn<AgentState>): Promise<void> {
    const { broker } = this.#app;
    const s = conn.state;
    this.#agentConns.delete(conn);
    if (this.#agentConns.size === 0) {
      clearInterval(this.#sessionTimer);
      this.#sessionTimer = undefined;
    }
    await broker.presenceRemove(AGENTS, conn.id);
    await broker.presenceRemove(ONLINE, conn.id);
    await this.agentGone(s.agent.id);
  }

  /**
   * Closes this instance's agent sockets whose session ended (logout, password change, removal, expiry), here or
   * on any other instance or from `deno task agent`: the store is the one place all of them change.
   */
  async #checkSessions(): Promise<void> {
    const conns = [...this.#agentConns];
    if (conns.length === 0) return;
    let live: Set<string>;
    try {
      live = await this.#app.store.liveSessions(
        [...new Set(conns.map((c) => c.state.sessionHash))],
        Date.now(),
      );
    } catch (err) {
      // The store is away: keep the sockets rather than cut every agent; the next check tries again.
      this.#app.log.warn("session_check_failed", { error: String(err) });
      return;
    }
    for (const c of conns) if (!live.has(c.state.sessionHash)) this.#endSocket(c);
  }

  /** Closes this instance's sockets of one session at once (the logout request came here). */
  endSession(sessionHash: string): void {
    for (const c of this.#agentConns) {
      if (c.state.sessionHash === sessionHash) this.#endSocket(c);
    }
  }

  #endSocket(conn: Conn<AgentState>): void {
    this.#app.log.info("agent_session_ended", { conn: conn.id });
    conn.close(CloseCode.sessionEnded);
  }

  /** Sockets of a dead instance left presence (cluster mode): its agents are gone. */
  async presenceExpired(channel: string, entries: readonly { id: string }[]): Promise<void> {
    if (channel !== AGENTS) return;
    await Promise.all([...new Set(entries.map((e) => e.id))].map((id) => this.agentGone(id)));
  }

  /**
   * An agent socket is gone (closed here, or its instance died): tell the other agents, and re-queue the agent's
   * conversations unless it is back within `--support-grace`.
   */
  async agentGone(agentId: string): Promise<void> {
    const { broker, config } = this.#app;
    await this.#agentsUpdate();
    this.#later(config.supportGraceS * 1000, async () => {
      const still = (await broker.presence(AGENTS)).some((e) => e.id === agentId);
      if (!still) await this.requeueAll(agentId, "agent_left");
    });
  }

  /** Puts every conversation an agent holds back in the queue. */
  async requeueAll(agentId: string, reason: string): Promise<void> {
    const mine = await this.#app.store.conversations({ status: "assigned", agentId, limit: QUEUE_LIMIT });
    for (const c of mine) await this.#requeue(c.id, agentId, reason);
  }

  async #requeue(id: string, agentId: string, reason: string): Promise<boolean> {
    const c = await this.#app.store.requeueConversation(id, agentId);
    if (!c) return false;
    this.#app.log.info("conversation_requeued", { conversation: id, agent: agentId, reason });
    await this.#conversationUpdate(c);
    await this.#positions(c.createdAt);
    this.autoAssign();
    return true;
  }

  #mine(conn: Conn<AgentState>, c: ConversationRecord | undefined, id: string): ConversationRecord {
    const s = conn.state;
    if (!c) throw new FrameError("not_found", `No conversation "${id.slice(0, 64)}"`);
    if (c.status !== "assigned" || c.agentId !== s.agent.id) {
      throw new FrameError("forbidden", "This conversation is not assigned to you; accept it first");
    }
    return c;
  }

  /** Tells everyone a conversation has a new holder; `fromQueue` when it left the queue (positions move). */
  async #notifyAssigned(
    c: ConversationRecord,
    agent: AgentRecord,
    fromQueue: boolean,
    extra: Record<string, unknown> = {},
  ) {
    const messages = await this.#app.store.history(convStream(c.id), { limit: HISTORY_LIMIT });
    await this.#publish(agentChannel(agent.id), {
      type: "accepted",
      conversation: await this.view(c),
      messages: messages.map((m) => supportMessage(c.id, m)),
      ...extra,
    });
    await this.#publish(visitorChannel(c.visitorId), {
      type: "assigned",
      agent: { id: agent.id, name: agent.name },
    });
    await this.#conversationUpdate(c);
    if (fromQueue) await this.#positions(c.createdAt);
  }

  /** Accept: exactly one agent wins; the others get `taken`. */
  async accept(conn: Conn<AgentState>, conversationId: string): Promise<void> {
    const s = conn.state;
    const { store } = this.#app;
    const won = await store.assignConversation(conversationId, s.agent.id, { status: "queued" });
    if (!won) {
      const c = await store.conversation(conversationId);
      if (!c) throw new FrameError("not_found", `No conversation "${conversationId.slice(0, 64)}"`);
      if (c.status === "closed") throw new FrameError("forbidden", "This conversation is closed");
      if (c.agentId === s.agent.id) throw new FrameError("taken", "You already have this conversation");
      throw new FrameError("taken", "Another agent took this conversation first");
    }
    this.#skipped.delete(conversationId);
    await this.#notifyAssigned(won, s.agent, true);
  }

  /** An agent's reply. */
  async agentMessage(conn: Conn<AgentState>, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state;
    const id = String(frame.conversationId ?? "");
    const text = must(validText(frame.text));
    const clientMsgId = must(validClientMsgId(frame.clientMsgId));
    const c = this.#mine(conn, await this.#app.store.conversation(id), id);
    const stored = await this.#append(convStream(c.id), {
      from: { id: s.agent.id, name: s.agent.name, role: "agent" },
      text,
      clientMsgId,
    });
    const message = supportMessage(c.id, stored);
    if (stored.duplicate) return conn.sendJson(message);
    await this.#publish(visitorChannel(c.visitorId), message, {
      at: { stream: stored.stream, seq: stored.seq },
    });
    await this.#publish(agentChannel(s.agent.id), message);
  }

  async agentTyping(conn: Conn<AgentState>, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state;
    const id = String(frame.conversationId ?? "");
    const now = Date.now();
    if (now - s.lastTypingAt < 1000) return;
    s.lastTypingAt = now;
    const c = this.#mine(conn, await this.#app.store.conversation(id), id);
    await this.#publish(visitorChannel(c.visitorId), {
      type: "typing",
      from: { id: s.agent.id, name: s.agent.name, role: "agent" },
    });
  }

  async agentRead(conn: Conn<AgentState>, frame: Record<string, unknown>): Promise<void> {
    const id = String(frame.conversationId ?? "");
    const upTo = Number(frame.upTo);
    if (!Number.isSafeInteger(upTo) || upTo < 0) {
      throw new FrameError("bad_message", '"upTo" must be a message id');
    }
    const c = this.#mine(conn, await this.#app.store.conversation(id), id);
    await this.#app.store.markRead(c.id, "agent", upTo);
    await this.#publish(visitorChannel(c.visitorId), { type: "read", upTo: String(upTo) });
  }

  /** Hands a conversation to another connected agent (by username). */
  async transfer(conn: Conn<AgentState>, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state;
    const id = String(frame.conversationId ?? "");
    const c = this.#mine(conn, await this.#app.store.conversation(id), id);
    const username = String(frame.toAgent ?? "");
    const target = await this.#app.store.agentByUsername(username);
    if (!target) throw new FrameError("not_found", `No agent "${username.slice(0, 32)}"`);
    if (target.id === s.agent.id) throw new FrameError("bad_message", "You already hold this conversation");
    const connected = (await this.#app.broker.presence(AGENTS)).some((e) => e.id === target.id);
    if (!connected) throw new FrameError("not_found", `Agent "${username}" is not connected`);
    const moved = await this.#app.store.assignConversation(c.id, target.id, {
      status: "assigned",
      agentId: s.agent.id,
    });
    if (!moved) throw new FrameError("taken", "The conversation changed meanwhile; try again");
    await this.#notifyAssigned(moved, target, false, {
      transferredFrom: { id: s.agent.id, name: s.agent.name, username: s.agent.username },
    });
  }

  /** Closes a conversation (the holder, or any agent for a queued one). */
  async close(conn: Conn<AgentState>, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state;
    const id = String(frame.conversationId ?? "");
    const c = await this.#app.store.conversation(id);
    if (!c) throw new FrameError("not_found", `No conversation "${id.slice(0, 64)}"`);
    if (c.status === "assigned" && c.agentId !== s.agent.id) {
      throw new FrameError("forbidden", "Another agent holds this conversation");
    }
    const closed = await this.#app.store.closeConversation(id);
    if (!closed) throw new FrameError("forbidden", "This conversation is closed already");
    await this.#publish(visitorChannel(c.visitorId), { type: "closed", conversationId: id, rated: false });
    await this.#conversationUpdate(closed);
    if (c.status === "queued") await this.#positions(c.createdAt);
  }

  /** Online (takes conversations) or away (keeps its own, gets no new ones). */
  async status(conn: Conn<AgentState>, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state;
    if (frame.status !== "online" && frame.status !== "away") {
      throw new FrameError("bad_message", '"status" must be "online" or "away"');
    }
    s.status = frame.status;
    if (s.status === "online") {
      await this.#app.broker.presenceAdd(ONLINE, { connId: conn.id, id: s.agent.id, name: s.agent.name });
    } else {
      await this.#app.broker.presenceRemove(ONLINE, conn.id);
    }
    conn.sendJson({ type: "status", status: s.status });
    await this.#agentsUpdate();
    if (s.status === "online") this.autoAssign();
  }

  // ---- auto assignment ---------------------------------------------------------------------------------------

  /** With `--support-assign auto`, gives queued conversations to online agents; runs one pass at a time. */
  autoAssign(): void {
    if (this.#app.config.supportAssign !== "auto") return;
    this.#assigning = this.#assigning.then(() => this.#assignPass()).catch((err) =>
      this.#app.log.error("auto_assign_failed", { error: String(err) })
    );
  }

  /** Resolves when pending auto-assignment passes are done (tests). */
  settled(): Promise<void> {
    return this.#assigning;
  }

  async #assignPass(): Promise<void> {
    const { store, config } = this.#app;
    const online = [...await this.#onlineAgentIds()];
    if (online.length === 0) return;
    const load = new Map<string, number>();
    for (const id of online) {
      load.set(
        id,
        (await store.conversations({ status: "assigned", agentId: id, limit: QUEUE_LIMIT })).length,
      );
    }
    for (const c of await this.queue()) {
      const skipped = this.#skipped.get(c.id) ?? new Set();
      const open = online.filter((id) => load.get(id)! < config.supportMaxChats);
      const fresh = open.filter((id) => !skipped.has(id));
      const pool = fresh.length > 0 ? fresh : open;
      if (pool.length === 0) return;
      const preferred = c.lastAgentId && pool.includes(c.lastAgentId) ? c.lastAgentId : undefined;
      const pick = preferred ?? pool.reduce((a, b) => (load.get(b)! < load.get(a)! ? b : a));
      const agent = await store.agentById(pick);
      if (!agent) continue;
      const won = await store.assignConversation(c.id, pick, { status: "queued" });
      if (!won) continue;
      load.set(pick, load.get(pick)! + 1);
      this.#app.log.info("conversation_auto_assigned", { conversation: c.id, agent: pick });
      await this.#notifyAssigned(won, agent, true, { auto: true });
      this.#watchAnswer(won.id, pick, await store.lastSeq(convStream(won.id)));
    }
  }

  /** Re-queues an auto-assigned conversation whose agent has not answered within the timeout. */
  #watchAnswer(id: string, agentId: string, seqAtAssign: number): void {
    const timeout = this.#app.config.supportAnswerTimeoutS;
    if (timeout <= 0) return;
    this.#later(timeout * 1000, async () => {
      const answered = await this.#app.store.countAfter(convStream(id), seqAtAssign, "agent");
      if (answered > 0) return;
      const skipped = this.#skipped.get(id) ?? new Set();
      skipped.add(agentId);
      this.#skipped.set(id, skipped);
      await this.#requeue(id, agentId, "no_answer");
    });
  }
}
