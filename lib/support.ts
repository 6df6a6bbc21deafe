/**
 * Customer service (客服): visitors, conversations, the queue, agents, assignment and transfer.
 *
 * All state lives in the store (conversations, messages) and the broker (presence, fan-out), so any instance can
 * serve any visitor or agent. Channels:
 * - `support:conv:<id>`: the visitor's sockets of a conversation;
 * - `support:agent:<agentId>`: every socket of one agent;
 * - `support:agents`: every agent socket (queue and conversation updates, who is online).
 * Presence: `support:agents` holds connected agent sockets; `support:online` those whose status is online.
 *
 * A conversation joins the agent queue with the visitor's first message. Accepting is a conditional update in the
 * store, so exactly one agent wins a race, whichever instance each is on.
 *
 * @module
 */
import type { AppContext } from "./context.ts";
import { FrameError, must } from "./dispatch.ts";
import type { Conn } from "./hub.ts";
import { newToken, tokenHash } from "./passwords.ts";
import { messageFrame, validClientMsgId, validText, type WireMessage } from "./protocol.ts";
import type { AgentRecord, ConversationRecord, StoredMessage, VisitorRecord } from "./store.ts";

export const convChannel = (id: string): string => `support:conv:${id}`;
export const agentChannel = (id: string): string => `support:agent:${id}`;
export const convStream = (id: string): string => `conv:${id}`;
export const AGENTS = "support:agents";
export const ONLINE = "support:online";

const HISTORY_LIMIT = 200;
const QUEUE_LIMIT = 1000;

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
  visitor: VisitorRecord | undefined;
  conversationId: string | undefined;
  lastTypingAt: number;
}

/** What an agent socket knows. */
export interface AgentState {
  agent: AgentRecord;
  status: "online" | "away";
  lastTypingAt: number;
}

const visitorName = (v: VisitorRecord) => v.name || `Visitor ${v.id.slice(0, 4)}`;

/** The customer-service core; one per app. */
export class Support {
  #app: AppContext;
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #assigning: Promise<void> = Promise.resolve();
  /** Agents who let an auto-assigned conversation time out, per conversation (tried others first). */
  #skipped = new Map<string, Set<string>>();

  constructor(app: AppContext) {
    this.#app = app;
  }

  async #publish(channel: string, message: unknown, except?: string): Promise<void> {
    try {
      await this.#app.broker.publish(channel, JSON.stringify(message), except);
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
  async queue(): Promise<ConversationRecord[]> {
    const queued = await this.#app.store.conversations({ status: "queued", limit: QUEUE_LIMIT });
    const seqs = await Promise.all(queued.map((c) => this.#app.store.lastSeq(convStream(c.id))));
    return queued.filter((_, i) => seqs[i] > 0);
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

  /** Tells every queued visitor its position. */
  async #positions(): Promise<void> {
    const queue = await this.queue();
    this.queueLength = queue.length;
    await Promise.all(
      queue.map((c, i) => this.#publish(convChannel(c.id), { type: "queued", position: i + 1 })),
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

  /** The visitor a token names, or a fresh token (nothing stored until the visitor writes). */
  async visitorFor(
    token: string | undefined,
  ): Promise<{ token: string; visitor: VisitorRecord | undefined }> {
    if (token && token.startsWith("v_") && token.length <= 100) {
      const visitor = await this.#app.store.visitorByToken(await tokenHash(token));
      if (visitor) return { token, visitor };
    }
    return { token: newToken("v"), visitor: undefined };
  }

  /** The visitor's current conversation: the open one, else the last one (closed). */
  async conversationFor(visitor: VisitorRecord): Promise<ConversationRecord | undefined> {
    const { store } = this.#app;
    return (await store.openConversationOf(visitor.id)) ?? (await store.latestConversationOf(visitor.id));
  }

  /** A visitor socket opened: session, history, then where the conversation stands. */
  async visitorOpen(conn: Conn): Promise<void> {
    const s = conn.state as unknown as VisitorState;
    const c = s.conversationId ? await this.#app.store.conversation(s.conversationId) : undefined;
    if (c) this.#app.hub.join(conn, convChannel(c.id));
    conn.sendJson({ type: "session", token: s.token, conversationId: c?.id ?? null });
    if (c) await this.#sendStatus(conn, c);
    else {
      conn.sendJson({ type: "history", conversationId: null, messages: [] });
      await this.#noAgentNotice(conn);
    }
  }

  async #sendStatus(conn: Conn, c: ConversationRecord): Promise<void> {
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

  /** Stores the visitor on first use. */
  async #ensureVisitor(conn: Conn): Promise<VisitorRecord> {
    const s = conn.state as unknown as VisitorState;
    s.visitor ??= await this.#app.store.createVisitor(await tokenHash(s.token));
    return s.visitor;
  }

  /** The conversation a visitor writes to: the open one, or a new one (after a close, or the very first). */
  async #writableConversation(conn: Conn): Promise<ConversationRecord> {
    const { store, hub } = this.#app;
    const s = conn.state as unknown as VisitorState;
    const visitor = await this.#ensureVisitor(conn);
    const current = s.conversationId ? await store.conversation(s.conversationId) : undefined;
    if (current && current.status !== "closed") return current;
    // Writing after a close starts a new conversation, preferring the agent who had the last one.
    const next = await store.createConversation(visitor.id, current?.agentId ?? current?.lastAgentId ?? null);
    if (current) hub.leave(conn, convChannel(current.id));
    hub.join(conn, convChannel(next.id));
    s.conversationId = next.id;
    conn.sendJson({ type: "session", token: s.token, conversationId: next.id });
    conn.sendJson({ type: "history", conversationId: next.id, messages: [] });
    return next;
  }

  /** A visitor wrote: store it, deliver it, and queue the conversation on its first message. */
  async visitorMessage(conn: Conn, frame: Record<string, unknown>): Promise<void> {
    const { store } = this.#app;
    const s = conn.state as unknown as VisitorState;
    const text = must(validText(frame.text));
    const clientMsgId = must(validClientMsgId(frame.clientMsgId));
    const c = await this.#writableConversation(conn);
    const stream = convStream(c.id);
    const earlier = clientMsgId ? await store.findByClientMsgId(stream, clientMsgId) : undefined;
    if (earlier) return conn.sendJson(supportMessage(c.id, earlier));
    const visitor = (await store.visitorById(s.visitor!.id)) ?? s.visitor!;
    const stored = await this.#append(stream, {
      from: { id: visitor.id, name: visitorName(visitor), role: "visitor" },
      text,
      clientMsgId,
    });
    const message = supportMessage(c.id, stored);
    await this.#publish(convChannel(c.id), message);
    if (c.status === "assigned" && c.agentId) {
      await this.#publish(agentChannel(c.agentId), message);
    } else {
      await this.#conversationUpdate(c);
      if (stored.seq === 1) {
        await this.#positions();
        this.autoAssign();
      }
      await this.#noAgentNotice(conn);
    }
  }

  async #append(stream: string, m: Parameters<AppContext["store"]["append"]>[1]): Promise<StoredMessage> {
    try {
      return await this.#app.store.append(stream, m);
    } catch (err) {
      this.#app.log.error("store_failed", { error: String(err) });
      throw new FrameError("unavailable", "The message could not be stored; send it again");
    }
  }

  /** The visitor is typing: tell the agent holding the conversation. */
  async visitorTyping(conn: Conn): Promise<void> {
    const s = conn.state as unknown as VisitorState;
    const now = Date.now();
    if (now - s.lastTypingAt < 1000) return;
    s.lastTypingAt = now;
    const c = s.conversationId ? await this.#app.store.conversation(s.conversationId) : undefined;
    if (c?.status === "assigned" && c.agentId && s.visitor) {
      await this.#publish(agentChannel(c.agentId), {
        type: "typing",
        conversationId: c.id,
        from: { id: s.visitor.id, name: visitorName(s.visitor), role: "visitor" },
      });
    }
  }

  /** The visitor set a name or email. */
  async visitorProfile(conn: Conn, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state as unknown as VisitorState;
    const profile: { name?: string; email?: string } = {};
    if (frame.name !== undefined) {
      if (typeof frame.name !== "string" || [...frame.name.trim()].length > 64) {
        throw new FrameError("bad_message", '"name" must be a string of at most 64 characters');
      }
      profile.name = frame.name.trim();
    }
    if (frame.email !== undefined) {
      const email = typeof frame.email === "string" ? frame.email.trim() : "";
      if (email !== "" && (email.length > 254 || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email))) {
        throw new FrameError("bad_message", '"email" must be an email address');
      }
      profile.email = email;
    }
    const visitor = await this.#ensureVisitor(conn);
    await this.#app.store.updateVisitor(visitor.id, profile);
    s.visitor = { ...visitor, ...profile };
    conn.sendJson({ type: "profile", name: s.visitor.name, email: s.visitor.email });
    const c = s.conversationId ? await this.#app.store.conversation(s.conversationId) : undefined;
    if (c && c.status !== "closed") await this.#conversationUpdate(c);
  }

  /** The visitor rated a closed conversation. */
  async visitorRate(conn: Conn, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state as unknown as VisitorState;
    const score = frame.score;
    if (typeof score !== "number" || !Number.isInteger(score) || score < 1 || score > 5) {
      throw new FrameError("bad_message", '"score" must be a whole number from 1 to 5');
    }
    const comment = frame.comment === undefined || frame.comment === ""
      ? null
      : must(validText(frame.comment, 1000));
    const c = s.conversationId ? await this.#app.store.conversation(s.conversationId) : undefined;
    if (!c || c.status !== "closed") {
      throw new FrameError("forbidden", "A conversation can be rated once it is closed");
    }
    await this.#app.store.rateConversation(c.id, score, comment);
    conn.sendJson({ type: "rated", conversationId: c.id, score });
  }

  /** The visitor has read agent messages up to an id. */
  async visitorRead(conn: Conn, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state as unknown as VisitorState;
    const upTo = Number(frame.upTo);
    if (!Number.isSafeInteger(upTo) || upTo < 0) {
      throw new FrameError("bad_message", '"upTo" must be a message id');
    }
    if (!s.conversationId) return;
    await this.#app.store.markRead(s.conversationId, "visitor", upTo);
    const c = await this.#app.store.conversation(s.conversationId);
    if (c?.status === "assigned" && c.agentId) {
      await this.#publish(agentChannel(c.agentId), {
        type: "read",
        conversationId: c.id,
        upTo: String(upTo),
      });
    }
  }

  // ---- agents ------------------------------------------------------------------------------------------------

  /** An agent socket opened: presence, then the state frame. */
  async agentOpen(conn: Conn): Promise<void> {
    const { hub, broker, store } = this.#app;
    const s = conn.state as unknown as AgentState;
    const entry = { connId: conn.id, id: s.agent.id, name: s.agent.name };
    hub.join(conn, agentChannel(s.agent.id));
    hub.join(conn, AGENTS);
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
  async agentClose(conn: Conn): Promise<void> {
    const { broker } = this.#app;
    const s = conn.state as unknown as AgentState;
    await broker.presenceRemove(AGENTS, conn.id);
    await broker.presenceRemove(ONLINE, conn.id);
    await this.agentGone(s.agent.id);
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
    await this.#positions();
    this.autoAssign();
    return true;
  }

  #mine(conn: Conn, c: ConversationRecord | undefined, id: string): ConversationRecord {
    const s = conn.state as unknown as AgentState;
    if (!c) throw new FrameError("not_found", `No conversation "${id.slice(0, 64)}"`);
    if (c.status !== "assigned" || c.agentId !== s.agent.id) {
      throw new FrameError("forbidden", "This conversation is not assigned to you; accept it first");
    }
    return c;
  }

  async #notifyAssigned(c: ConversationRecord, agent: AgentRecord, extra: Record<string, unknown> = {}) {
    const messages = await this.#app.store.history(convStream(c.id), { limit: HISTORY_LIMIT });
    await this.#publish(agentChannel(agent.id), {
      type: "accepted",
      conversation: await this.view(c),
      messages: messages.map((m) => supportMessage(c.id, m)),
      ...extra,
    });
    await this.#publish(convChannel(c.id), { type: "assigned", agent: { id: agent.id, name: agent.name } });
    await this.#conversationUpdate(c);
    await this.#positions();
  }

  /** Accept: exactly one agent wins; the others get `taken`. */
  async accept(conn: Conn, conversationId: string): Promise<void> {
    const s = conn.state as unknown as AgentState;
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
    await this.#notifyAssigned(won, s.agent);
  }

  /** An agent's reply. */
  async agentMessage(conn: Conn, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state as unknown as AgentState;
    const id = String(frame.conversationId ?? "");
    const text = must(validText(frame.text));
    const clientMsgId = must(validClientMsgId(frame.clientMsgId));
    const c = this.#mine(conn, await this.#app.store.conversation(id), id);
    const stream = convStream(c.id);
    const earlier = clientMsgId ? await this.#app.store.findByClientMsgId(stream, clientMsgId) : undefined;
    if (earlier) return conn.sendJson(supportMessage(c.id, earlier));
    const stored = await this.#append(stream, {
      from: { id: s.agent.id, name: s.agent.name, role: "agent" },
      text,
      clientMsgId,
    });
    const message = supportMessage(c.id, stored);
    await this.#publish(convChannel(c.id), message);
    await this.#publish(agentChannel(s.agent.id), message);
  }

  async agentTyping(conn: Conn, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state as unknown as AgentState;
    const id = String(frame.conversationId ?? "");
    const now = Date.now();
    if (now - s.lastTypingAt < 1000) return;
    s.lastTypingAt = now;
    const c = this.#mine(conn, await this.#app.store.conversation(id), id);
    await this.#publish(convChannel(c.id), {
      type: "typing",
      from: { id: s.agent.id, name: s.agent.name, role: "agent" },
    });
  }

  async agentRead(conn: Conn, frame: Record<string, unknown>): Promise<void> {
    const id = String(frame.conversationId ?? "");
    const upTo = Number(frame.upTo);
    if (!Number.isSafeInteger(upTo) || upTo < 0) {
      throw new FrameError("bad_message", '"upTo" must be a message id');
    }
    const c = this.#mine(conn, await this.#app.store.conversation(id), id);
    await this.#app.store.markRead(c.id, "agent", upTo);
    await this.#publish(convChannel(c.id), { type: "read", upTo: String(upTo) });
  }

  /** Hands a conversation to another connected agent (by username). */
  async transfer(conn: Conn, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state as unknown as AgentState;
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
    await this.#notifyAssigned(moved, target, {
      transferredFrom: { id: s.agent.id, name: s.agent.name, username: s.agent.username },
    });
  }

  /** Closes a conversation (the holder, or any agent for a queued one). */
  async close(conn: Conn, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state as unknown as AgentState;
    const id = String(frame.conversationId ?? "");
    const c = await this.#app.store.conversation(id);
    if (!c) throw new FrameError("not_found", `No conversation "${id.slice(0, 64)}"`);
    if (c.status === "assigned" && c.agentId !== s.agent.id) {
      throw new FrameError("forbidden", "Another agent holds this conversation");
    }
    const closed = await this.#app.store.closeConversation(id);
    if (!closed) throw new FrameError("forbidden", "This conversation is closed already");
    await this.#publish(convChannel(id), { type: "closed", conversationId: id, rated: false });
    await this.#conversationUpdate(closed);
    if (c.status === "queued") await this.#positions();
  }

  /** Online (takes conversations) or away (keeps its own, gets no new ones). */
  async status(conn: Conn, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state as unknown as AgentState;
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
      await this.#notifyAssigned(won, agent, { auto: true });
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
