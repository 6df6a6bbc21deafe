/**
 * Customer service (客服), the shared part: channels, socket states, the wire form of conversations and
 * messages, and the desk every part of support works through (publishing, views, the queue and its positions).
 * `visitors.ts` serves visitor sockets, `agent_desk.ts` agent sockets, `assignment.ts` auto assignment and
 * re-queueing; `support.ts` puts them together.
 *
 * All state lives in the store (conversations, messages) and the broker (presence, fan-out), so any instance can
 * serve any visitor or agent. Channels:
 * - `support:visitor:<visitorId>`: every socket of one visitor (all its tabs, on any instance);
 * - `support:agent:<agentId>`: every socket of one agent;
 * - `support:agents`: every agent socket (the queue, who is online, and which conversations left the queue);
 * - `support:admins`: every admin socket (every conversation's updates).
 * Presence: `support:agents` holds connected agent sockets; `support:online` those whose status is online.
 *
 * A conversation joins the agent queue with the visitor's first message. Accepting is a conditional update in the
 * store, so exactly one agent wins a race, whichever instance each is on.
 *
 * @module
 */
import type { Services } from "../services.ts";
import { type Availability, availability, SettingsCache } from "./hours.ts";
import type { FrameMeta } from "../broker/broker.ts";
import type { Conn } from "../realtime/hub.ts";
import { FrameError, messageFrame, type WireMessage } from "../realtime/protocol.ts";
import type {
  AgentRecord,
  Attachment,
  Author,
  ConversationRecord,
  Emit,
  StoredMessage,
  VisitorRecord,
} from "../store/store.ts";

export const visitorChannel = (visitorId: string): string => `support:visitor:${visitorId}`;
export const agentChannel = (id: string): string => `support:agent:${id}`;
export const convStream = (id: string): string => `conv:${id}`;
/** Agents' private notes on a conversation: their own stream, so nothing visitor-facing ever reads them. */
export const notesStream = (id: string): string => `notes:${id}`;
export const AGENTS = "support:agents";
export const ONLINE = "support:online";
/** Every admin socket: conversation views beyond the queue go here and to their holders only. */
export const ADMINS = "support:admins";

/** Messages sent with a conversation's history. */
export const HISTORY_LIMIT = 200;
/** Most conversations listed in a queue or an agent's own list. */
export const QUEUE_LIMIT = 1000;

/** How often the sessions behind open agent sockets are checked (an ended session closes its sockets). */
export const SESSION_CHECK_MS = 2000;

/** A private note on the wire: agents only, never a visitor's socket, history or export. */
export function noteFrame(
  conversationId: string,
  m: StoredMessage,
  mentions: string[],
): Record<string, unknown> {
  return { ...messageFrame(m, { conversationId }, "agent"), type: "note", private: true, mentions };
}

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
  /** The stored visitor's id, or for a token not stored yet the id its row will get (`visitorIdFor`). */
  visitorId: string;
  visitor: VisitorRecord | undefined;
  lastTypingAt: number;
  /** The widget's last report of where the visitor is; stored once the visitor is. */
  context?: Record<string, string>;
  /** The language the widget speaks (its `?lang=`, else the browser's), for the welcome. */
  lang?: "en" | "zh";
}

/** What an agent socket knows. */
export interface AgentState {
  agent: AgentRecord;
  /** The hash of the session token the socket was opened with: when the session ends, the socket closes. */
  sessionHash: string;
  status: "online" | "away";
  lastTypingAt: number;
}

/** The usernames a note mentions (`@alice`), once each. */
export function mentionsIn(text: string): string[] {
  // "ask @bob." mentions bob: a username never ends a sentence with its dot.
  const names = [...text.matchAll(/(?<![\w@])@([A-Za-z0-9._-]{1,32})/g)].map((m) => m[1].replace(/\.+$/, ""));
  return [...new Set(names.filter((n) => n !== ""))];
}

/** The `owner` an upload is stored under: who uploaded it. */
export const uploadOwner = (kind: "visitor" | "agent", id: string): string => `${kind}:${id}`;

/** A conversation as webhook events carry it. */
export function hookConversation(c: ConversationRecord): Record<string, unknown> {
  return {
    id: c.id,
    visitorId: c.visitorId,
    status: c.status,
    source: c.source,
    agentId: c.agentId,
    createdAt: c.createdAt,
    assignedAt: c.assignedAt,
    closedAt: c.closedAt,
    rating: c.rating,
    ratingComment: c.ratingComment,
  };
}

/** A visitor as webhook events carry it. */
export function hookVisitor(v: VisitorRecord | undefined, id: string): Record<string, unknown> {
  return {
    id,
    name: v ? visitorName(v) : "",
    email: v?.email ?? "",
    verified: v?.verified ?? false,
    ...(v?.verified ? { attributes: v.attributes ?? {} } : {}),
  };
}

/** A visitor's display name. */
export const visitorName = (v: VisitorRecord): string => v.name || `Visitor ${v.id.slice(0, 4)}`;

/** What every part of support shares: the services, publishing, timers, views and the queue. One per app. */
export class SupportDesk {
  readonly app: Services;
  /** Business hours, welcome and the offline form (stored, cached briefly). */
  readonly settings: SettingsCache;
  #timers = new Set<ReturnType<typeof setTimeout>>();

  constructor(app: Services) {
    this.app = app;
    this.settings = new SettingsCache(app.store, app.config.tz);
  }

  /** Whether visitors can chat now, and the welcome in `lang`. */
  async availability(lang: "en" | "zh"): Promise<Availability & { welcome: string; timeZone: string }> {
    const settings = await this.settings.get();
    const online = settings.offlineWhenNoAgents ? (await this.onlineAgentIds()).size : 1;
    return {
      ...availability(settings, Date.now(), online),
      welcome: settings.welcome[lang],
      timeZone: settings.hours.timeZone,
    };
  }

  /** Publishes a message; a broker failure becomes `unavailable` for the frame that caused it. */
  async publish(channel: string, message: unknown, meta?: FrameMeta): Promise<void> {
    try {
      await this.app.broker.publish(channel, JSON.stringify(message), meta);
    } catch (err) {
      this.app.log.error("publish_failed", { channel, error: String(err) });
      // What was stored stays stored; the sockets resync when the broker is back (close 1012).
      throw new FrameError(
        "unavailable",
        "Saved, but live delivery failed; it will appear after reconnecting",
      );
    }
  }

  /** Runs `fn` after `ms` (stopped at shutdown); its failure is logged. */
  later(ms: number, fn: () => Promise<void>): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn().catch((err) => this.app.log.error("support_timer_failed", { error: String(err) }));
    }, ms);
    this.#timers.add(t);
  }

  /** The wire form of a conversation for agents. */
  async view(c: ConversationRecord): Promise<Record<string, unknown>> {
    return (await this.views([c]))[0];
  }

  /** The wire forms of conversations, in order: three queries for the whole list, not three per conversation. */
  async views(cs: readonly ConversationRecord[]): Promise<Record<string, unknown>[]> {
    if (cs.length === 0) return [];
    const { store } = this.app;
    const [visitors, last, unread] = await Promise.all([
      store.visitorsByIds(cs.map((c) => c.visitorId)),
      store.lastMessages(cs.map((c) => convStream(c.id))),
      store.unreadCounts(cs.map((c) => c.id)),
    ]);
    return cs.map((c) => {
      const visitor = visitors.get(c.visitorId);
      const lastMessage = last.get(convStream(c.id));
      return {
        id: c.id,
        status: c.status,
        source: c.source,
        visitor: {
          id: c.visitorId,
          name: visitor ? visitorName(visitor) : "",
          email: visitor?.email ?? "",
          ...(visitor?.verified ? { verified: true, attributes: visitor.attributes ?? {} } : {}),
          ...(visitor?.context ? { context: visitor.context } : {}),
        },
        agentId: c.agentId,
        lastMessage: lastMessage ? supportMessage(c.id, lastMessage) : null,
        createdAt: c.createdAt,
        unread: unread.get(c.id) ?? 0,
      };
    });
  }

  /**
   * The outbox rows of a conversation event (`conversation.*`) for the store write that causes it; `extra`
   * joins the conversation in `data`. Undefined without webhooks.
   */
  conversationEvent(
    type: "conversation.created" | "conversation.assigned" | "conversation.closed" | "conversation.rated",
    extra: Record<string, unknown> = {},
  ): Emit<ConversationRecord> | undefined {
    return this.app.webhooks.emit(
      type,
      (c: ConversationRecord) => ({ conversation: hookConversation(c), ...extra }),
    );
  }

  /** Whether a visitor has a socket open now, on any instance. */
  async visitorOnline(visitorId: string): Promise<boolean> {
    return (await this.app.broker.presence(visitorChannel(visitorId))).length > 0;
  }

  /** Queued conversations that have a message, oldest first. */
  queue(): Promise<ConversationRecord[]> {
    return this.app.store.queuedConversations(QUEUE_LIMIT);
  }

  /** Agents connected now, with their status. */
  async agents(): Promise<{ id: string; name: string; username: string; status: "online" | "away" }[]> {
    const [all, online] = await Promise.all([
      this.app.broker.presence(AGENTS),
      this.app.broker.presence(ONLINE),
    ]);
    const onlineIds = new Set(online.map((e) => e.id));
    const ids = [...new Set(all.map((e) => e.id))];
    const records = await this.app.store.agentsByIds(ids);
    return ids.map((id) => ({
      id,
      name: records.get(id)?.name ?? "",
      username: records.get(id)?.username ?? "",
      status: onlineIds.has(id) ? "online" as const : "away" as const,
    }));
  }

  /** Agents whose status is online, on any instance. */
  async onlineAgentIds(): Promise<Set<string>> {
    return new Set((await this.app.broker.presence(ONLINE)).map((e) => e.id));
  }

  /**
   * Tells agents how a conversation stands now, within the role rule: a queued one goes to every agent (the
   * queue is everyone's); otherwise the whole view goes to admins and to the agents who hold or held it, and
   * every other agent learns only its id, status and holder (so it leaves their queue), never its content.
   */
  async conversationUpdate(c: ConversationRecord): Promise<void> {
    const view = { type: "conversation", conversation: await this.view(c) };
    if (c.status === "queued") return await this.publish(AGENTS, view);
    const holders = await this.app.store.holders(c.id);
    const readers = new Set(holders.filter((h) => h.role !== "admin").map((h) => h.agentId));
    if (c.agentId) readers.add(c.agentId);
    // The short form first: an agent who gets both (in both channels) ends with the whole view.
    await this.publish(AGENTS, {
      type: "conversation",
      conversation: { id: c.id, status: c.status, agentId: c.agentId },
    });
    await Promise.all([ADMINS, ...[...readers].map(agentChannel)].map((ch) => this.publish(ch, view)));
  }

  /** Tells every agent who is connected. */
  async agentsUpdate(): Promise<void> {
    await this.publish(AGENTS, { type: "agents", agents: await this.agents() });
  }

  /** Conversations waiting in the queue at the last count (for `/metrics`). */
  queueLength = 0;

  /**
   * Tells queued visitors their position after the conversation created at `pivot` joined or left the queue.
   * The queue is ordered by creation, so only conversations created at or after `pivot` moved: a new one tells
   * only itself, not the whole queue again.
   */
  async positions(pivot: number): Promise<void> {
    const queue = await this.queue();
    this.queueLength = queue.length;
    await Promise.all(
      queue.map((c, i) =>
        c.createdAt >= pivot
          ? this.publish(visitorChannel(c.visitorId), { type: "queued", position: i + 1 })
          : undefined
      ),
    );
  }

  /** Tells a visitor socket when no agent is online. */
  async noAgentNotice(conn: Conn): Promise<void> {
    if ((await this.onlineAgentIds()).size === 0) {
      conn.sendJson({
        type: "notice",
        code: "no_agent_online",
        message: "No agent is online right now; leave a message and we will answer as soon as possible.",
      });
    }
  }

  /** Stores a conversation message; a store failure becomes `unavailable`. */
  async append(
    stream: string,
    m: Parameters<Services["store"]["append"]>[1],
    emit?: Emit<StoredMessage>,
  ): Promise<StoredMessage> {
    try {
      return await this.app.store.append(stream, m, emit);
    } catch (err) {
      this.app.log.error("store_failed", { error: String(err) });
      throw new FrameError("unavailable", "The message could not be stored; send it again");
    }
  }

  /**
   * Marks uploads as sent to a conversation and returns them for its message; refuses the frame when one is not
   * `owner`'s, was sent elsewhere, or expired.
   */
  async attach(ids: readonly string[], owner: string, conversationId: string): Promise<Attachment[]> {
    if (ids.length === 0) return [];
    const attached = await this.app.store.attachUploads(ids, owner, convStream(conversationId));
    if (!attached) {
      throw new FrameError("not_found", "An attachment is missing, not yours, or expired; upload it again");
    }
    return attached;
  }

  /**
   * Stores and delivers a support message: to the visitor's channel (every tab) and `also` (an agent's
   * channel) at once. Undefined for a resend, which is confirmed to `conn` again and neither stored nor
   * delivered twice.
   */
  async post(
    conn: Conn | undefined,
    c: ConversationRecord,
    from: Author,
    what: { text: string; attachments?: Attachment[]; clientMsgId: string | undefined },
    also?: string,
  ): Promise<{ message: SupportMessage; seq: number } | undefined> {
    return await (await this.startPost(conn, c, from, what, also)).done;
  }

  /**
   * {@linkcode post} in two steps, for a socket's line: it resolves once the message is queued in the store (so
   * its order among the socket's messages is fixed, and the socket's next frame may start), and `done` once it is
   * stored and delivered.
   */
  async startPost(
    conn: Conn | undefined,
    c: ConversationRecord,
    from: Author,
    what: { text: string; attachments?: Attachment[]; clientMsgId: string | undefined },
    also?: string,
  ): Promise<{ done: Promise<{ message: SupportMessage; seq: number } | undefined> }> {
    // `message.created` says whether the visitor is online, so the host can email one who is not.
    let emit: Emit<StoredMessage> | undefined;
    if (this.app.webhooks.enabled) {
      const [visitor, online] = await Promise.all([
        this.app.store.visitorById(c.visitorId),
        this.visitorOnline(c.visitorId),
      ]);
      emit = this.app.webhooks.emit("message.created", (m: StoredMessage) => ({
        conversationId: c.id,
        message: supportMessage(c.id, m),
        visitor: { ...hookVisitor(visitor, c.visitorId), online },
      }));
    }
    const appended = this.append(convStream(c.id), {
      from,
      text: what.text,
      ...(what.attachments?.length ? { attachments: what.attachments } : {}),
      clientMsgId: what.clientMsgId,
    }, emit);
    const done = (async () => {
      const stored = await appended;
      const message = supportMessage(c.id, stored);
      if (stored.duplicate) {
        conn?.sendJson(message);
        return undefined;
      }
      // The visitor's channel carries every message of the conversation, so it carries their positions.
      await Promise.all([
        this.publish(visitorChannel(c.visitorId), message, {
          at: { stream: stored.stream, seq: stored.seq },
        }),
        also === undefined ? undefined : this.publish(also, message),
      ]);
      return { message, seq: stored.seq };
    })();
    // Handled by whoever awaits it; this keeps an early failure (a closed store) from counting as unhandled.
    done.catch(() => {});
    return { done };
  }

  /** Tells everyone a conversation has a new holder; `fromQueue` when it left the queue (positions move). */
  async notifyAssigned(
    c: ConversationRecord,
    agent: AgentRecord,
    fromQueue: boolean,
    extra: Record<string, unknown> = {},
  ) {
    const [messages, notes] = await Promise.all([
      this.app.store.history(convStream(c.id), { limit: HISTORY_LIMIT }),
      this.app.store.history(notesStream(c.id), { limit: HISTORY_LIMIT }),
    ]);
    await this.publish(agentChannel(agent.id), {
      type: "accepted",
      conversation: await this.view(c),
      messages: messages.map((m) => supportMessage(c.id, m)),
      notes: notes.map((m) => noteFrame(c.id, m, mentionsIn(m.text ?? ""))),
      ...extra,
    });
    await this.publish(visitorChannel(c.visitorId), {
      type: "assigned",
      agent: { id: agent.id, name: agent.name },
    });
    await this.conversationUpdate(c);
    if (fromQueue) await this.positions(c.createdAt);
  }

  /** Stops every timer (shutdown). */
  stop(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }
}
