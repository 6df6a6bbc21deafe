/**
 * Customer service: agent sockets. Presence, the state frame, accepting (exactly one agent wins), replies,
 * transfer, close, status, and sessions: a socket whose session ended (logout, password change, removal) is
 * closed with 4001 at the next check, on every instance.
 *
 * @module
 */
import type { Pipelined } from "../realtime/frames.ts";
import { CloseCode, type Conn } from "../realtime/hub.ts";
import { FrameError, must, validClientMsgId, validPost, validText } from "../realtime/protocol.ts";
import type { ConversationRecord } from "../store/store.ts";
import { agentView, mayRead } from "./agents.ts";
import type { Assigner } from "./assignment.ts";
import {
  ADMINS,
  agentChannel,
  AGENTS,
  type AgentState,
  mentionsIn,
  noteFrame,
  notesStream,
  ONLINE,
  QUEUE_LIMIT,
  SESSION_CHECK_MS,
  type SupportDesk,
  uploadOwner,
  visitorChannel,
} from "./desk.ts";

/** Serves agent sockets. */
export class AgentDesk {
  #desk: SupportDesk;
  #assigner: Assigner;
  /** This instance's agent sockets, checked against their sessions every {@linkcode SESSION_CHECK_MS}. */
  #agentConns = new Set<Conn<AgentState>>();
  #sessionTimer: ReturnType<typeof setInterval> | undefined;

  constructor(desk: SupportDesk, assigner: Assigner) {
    this.#desk = desk;
    this.#assigner = assigner;
  }

  /** Stops the session checks (shutdown). */
  stop(): void {
    clearInterval(this.#sessionTimer);
    this.#sessionTimer = undefined;
  }

  /** An agent socket opened: presence, then the state frame. */
  async agentOpen(conn: Conn<AgentState>): Promise<void> {
    const { hub, broker, store } = this.#desk.app;
    const s = conn.state;
    const entry = { connId: conn.id, id: s.agent.id, name: s.agent.name };
    this.#agentConns.add(conn);
    this.#sessionTimer ??= setInterval(() => this.#checkSessions(), SESSION_CHECK_MS);
    await Promise.all([
      hub.join(conn, agentChannel(s.agent.id)),
      hub.join(conn, AGENTS),
      ...(s.agent.role === "admin" ? [hub.join(conn, ADMINS)] : []),
    ]);
    await broker.presenceAdd(AGENTS, entry);
    await broker.presenceAdd(ONLINE, entry);
    const [queue, mine] = await Promise.all([
      this.#desk.queue(),
      store.conversations({ status: "assigned", agentId: s.agent.id, limit: QUEUE_LIMIT }),
    ]);
    conn.sendJson({
      type: "state",
      agent: { id: s.agent.id, name: s.agent.name, username: s.agent.username },
      queue: await this.#desk.views(queue),
      mine: await this.#desk.views(mine),
      agents: await this.#desk.agents(),
    });
    await this.#desk.agentsUpdate();
    this.#assigner.autoAssign();
  }

  /** An agent socket closed: presence, and re-queue its conversations if it does not come back in time. */
  async agentClose(conn: Conn<AgentState>): Promise<void> {
    const { broker } = this.#desk.app;
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
      live = await this.#desk.app.store.liveSessions(
        [...new Set(conns.map((c) => c.state.sessionHash))],
        Date.now(),
      );
    } catch (err) {
      // The store is away: keep the sockets rather than cut every agent; the next check tries again.
      this.#desk.app.log.warn("session_check_failed", { error: String(err) });
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
    this.#desk.app.log.info("agent_session_ended", { conn: conn.id });
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
    const { broker, config } = this.#desk.app;
    await this.#desk.agentsUpdate();
    this.#desk.later(config.supportGraceS * 1000, async () => {
      const still = (await broker.presence(AGENTS)).some((e) => e.id === agentId);
      if (!still) await this.#assigner.requeueAll(agentId, "agent_left");
    });
  }

  #mine(conn: Conn<AgentState>, c: ConversationRecord | undefined, id: string): ConversationRecord {
    const s = conn.state;
    if (!c) throw new FrameError("not_found", `No conversation "${id.slice(0, 64)}"`);
    if (c.status !== "assigned" || c.agentId !== s.agent.id) {
      throw new FrameError("forbidden", "This conversation is not assigned to you; accept it first");
    }
    return c;
  }

  /** Accept: exactly one agent wins; the others get `taken`. */
  async accept(conn: Conn<AgentState>, conversationId: string): Promise<void> {
    const s = conn.state;
    const { store } = this.#desk.app;
    const won = await store.assignConversation(
      conversationId,
      s.agent.id,
      { status: "queued" },
      this.#desk.conversationEvent("conversation.assigned", { agent: agentView(s.agent), via: "accept" }),
    );
    if (!won) {
      const c = await store.conversation(conversationId);
      if (!c) throw new FrameError("not_found", `No conversation "${conversationId.slice(0, 64)}"`);
      if (c.status === "closed") throw new FrameError("forbidden", "This conversation is closed");
      if (c.agentId === s.agent.id) throw new FrameError("taken", "You already have this conversation");
      throw new FrameError("taken", "Another agent took this conversation first");
    }
    this.#assigner.forget(conversationId);
    await this.#desk.notifyAssigned(won, s.agent, true);
  }

  /** An agent's reply. */
  async agentMessage(conn: Conn<AgentState>, frame: Record<string, unknown>): Promise<Pipelined> {
    const s = conn.state;
    const id = String(frame.conversationId ?? "");
    const { text, attachments: ids } = must(validPost(frame));
    const clientMsgId = must(validClientMsgId(frame.clientMsgId));
    const c = this.#mine(conn, await this.#desk.app.store.conversation(id), id);
    const from = { id: s.agent.id, name: s.agent.name, role: "agent" as const };
    const attachments = await this.#desk.attach(ids, uploadOwner("agent", s.agent.id), c.id);
    // To the visitor and to all of this agent's sockets. Once queued in the store, the next frame may start.
    const { done } = await this.#desk.startPost(
      conn,
      c,
      from,
      { text, attachments, clientMsgId },
      agentChannel(s.agent.id),
    );
    return { settled: done.then(() => {}) };
  }

  /**
   * A private note on a conversation the agent may read: stored apart from the conversation, delivered to the
   * holder, the author and every `@username` it mentions (a notification), never to the visitor.
   */
  async note(conn: Conn<AgentState>, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state;
    const { store } = this.#desk.app;
    const id = String(frame.conversationId ?? "");
    const text = must(validText(frame.text));
    const clientMsgId = must(validClientMsgId(frame.clientMsgId));
    const c = await store.conversation(id);
    if (!c) throw new FrameError("not_found", `No conversation "${id.slice(0, 64)}"`);
    if (!(await mayRead(store, s.agent, c))) {
      throw new FrameError("forbidden", "Another agent holds this conversation");
    }
    const stored = await this.#desk.append(notesStream(c.id), {
      from: { id: s.agent.id, name: s.agent.name, role: "agent" },
      text,
      clientMsgId,
    });
    const mentions = mentionsIn(text);
    const frameOut = noteFrame(c.id, stored, mentions);
    if (stored.duplicate) return conn.sendJson(frameOut);
    const mentioned = await Promise.all(mentions.map((u) => store.agentByUsername(u)));
    const to = new Set([
      s.agent.id,
      ...(c.agentId ? [c.agentId] : []),
      ...mentioned.flatMap((a) => a ? [a.id] : []),
    ]);
    for (const agentId of to) await this.#desk.publish(agentChannel(agentId), frameOut);
  }

  async agentTyping(conn: Conn<AgentState>, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state;
    const id = String(frame.conversationId ?? "");
    const now = Date.now();
    if (now - s.lastTypingAt < 1000) return;
    s.lastTypingAt = now;
    const c = this.#mine(conn, await this.#desk.app.store.conversation(id), id);
    await this.#desk.publish(visitorChannel(c.visitorId), {
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
    const c = this.#mine(conn, await this.#desk.app.store.conversation(id), id);
    await this.#desk.app.store.markRead(c.id, "agent", upTo);
    await this.#desk.publish(visitorChannel(c.visitorId), { type: "read", upTo: String(upTo) });
  }

  /** Hands a conversation to another connected agent (by username). */
  async transfer(conn: Conn<AgentState>, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state;
    const id = String(frame.conversationId ?? "");
    const c = this.#mine(conn, await this.#desk.app.store.conversation(id), id);
    const username = String(frame.toAgent ?? "");
    const target = await this.#desk.app.store.agentByUsername(username);
    if (!target) throw new FrameError("not_found", `No agent "${username.slice(0, 32)}"`);
    if (target.id === s.agent.id) throw new FrameError("bad_message", "You already hold this conversation");
    const connected = (await this.#desk.app.broker.presence(AGENTS)).some((e) => e.id === target.id);
    if (!connected) throw new FrameError("not_found", `Agent "${username}" is not connected`);
    const moved = await this.#desk.app.store.assignConversation(
      c.id,
      target.id,
      { status: "assigned", agentId: s.agent.id },
      this.#desk.conversationEvent("conversation.assigned", {
        agent: agentView(target),
        via: "transfer",
        transferredFrom: agentView(s.agent),
      }),
    );
    if (!moved) throw new FrameError("taken", "The conversation changed meanwhile; try again");
    await this.#desk.notifyAssigned(moved, target, false, {
      transferredFrom: { id: s.agent.id, name: s.agent.name, username: s.agent.username },
    });
  }

  /** Closes a conversation (the holder, or any agent for a queued one). */
  async close(conn: Conn<AgentState>, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state;
    const id = String(frame.conversationId ?? "");
    const c = await this.#desk.app.store.conversation(id);
    if (!c) throw new FrameError("not_found", `No conversation "${id.slice(0, 64)}"`);
    if (c.status === "assigned" && c.agentId !== s.agent.id) {
      throw new FrameError("forbidden", "Another agent holds this conversation");
    }
    const closed = await this.#desk.app.store.closeConversation(
      id,
      this.#desk.conversationEvent("conversation.closed", { closedBy: agentView(s.agent) }),
    );
    if (!closed) throw new FrameError("forbidden", "This conversation is closed already");
    await this.#desk.publish(visitorChannel(c.visitorId), {
      type: "closed",
      conversationId: id,
      rated: false,
    });
    await this.#desk.conversationUpdate(closed);
    if (c.status === "queued") await this.#desk.positions(c.createdAt);
  }

  /** Online (takes conversations) or away (keeps its own, gets no new ones). */
  async status(conn: Conn<AgentState>, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state;
    if (frame.status !== "online" && frame.status !== "away") {
      throw new FrameError("bad_message", '"status" must be "online" or "away"');
    }
    s.status = frame.status;
    if (s.status === "online") {
      await this.#desk.app.broker.presenceAdd(ONLINE, {
        connId: conn.id,
        id: s.agent.id,
        name: s.agent.name,
      });
    } else {
      await this.#desk.app.broker.presenceRemove(ONLINE, conn.id);
    }
    conn.sendJson({ type: "status", status: s.status });
    await this.#desk.agentsUpdate();
    if (s.status === "online") this.#assigner.autoAssign();
  }
}
