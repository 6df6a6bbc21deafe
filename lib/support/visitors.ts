/**
 * Customer service: visitor sockets. A visitor is known by its token; the server signs the tokens it issues, so
 * a second tab holding a token whose visitor is not stored yet keeps the same identity. A visitor only ever
 * reaches its own conversation, whatever ids it sends.
 *
 * @module
 */
import type { Identity } from "../auth/identity.ts";
import type { Pipelined } from "../realtime/frames.ts";
import { timingSafeEqual } from "../http/http.ts";
import type { Conn } from "../realtime/hub.ts";
import { FrameError, must, storable, validClientMsgId, validPost, validText } from "../realtime/protocol.ts";
import type { ConversationRecord, VisitorRecord } from "../store/store.ts";
import { visitorIdFor } from "../store/rows.ts";
import type { Assigner } from "./assignment.ts";
import {
  agentChannel,
  convStream,
  HISTORY_LIMIT,
  hookVisitor,
  type SupportDesk,
  type SupportMessage,
  supportMessage,
  uploadOwner,
  visitorChannel,
  visitorName,
  type VisitorState,
} from "./desk.ts";
import { newToken, tokenHash } from "./passwords.ts";

const base64url = (bytes: Uint8Array): string =>
  btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

/** What the widget may report of where the visitor is, and how long each field may be. */
const CONTEXT_FIELDS: [string, number][] = [
  ["url", 2048],
  ["title", 300],
  ["referrer", 2048],
  ["language", 35],
  ["timeZone", 64],
  ["browser", 300],
];

/**
 * A visitor's name and email as the widget sends them (either may be left out; an empty email clears it).
 *
 * @throws {FrameError} `bad_message` for a name past 64 characters or something that is not an email address.
 */
export function validProfile(frame: Record<string, unknown>): { name?: string; email?: string } {
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
  return profile;
}

/** Serves visitor sockets. */
export class VisitorDesk {
  #desk: SupportDesk;
  #assigner: Assigner;
  #tokenKey: Promise<CryptoKey> | undefined;

  constructor(desk: SupportDesk, assigner: Assigner) {
    this.#desk = desk;
    this.#assigner = assigner;
  }

  /**
   * The visitor a token names. A token we issued whose visitor is not stored yet (another tab of the same
   * browser, before anyone wrote) keeps its identity; anything else gets a fresh token. Nothing is stored until
   * the visitor writes.
   */
  async visitorFor(
    token: string | undefined,
    identity?: Identity,
  ): Promise<Omit<VisitorState, "lastTypingAt">> {
    if (identity) return await this.#identified(token, identity);
    if (token && token.startsWith("v_") && token.length <= 100) {
      const hash = await tokenHash(token);
      const visitor = await this.#desk.app.store.visitorByToken(hash);
      if (visitor) return { token, tokenHash: hash, visitorId: visitor.id, visitor };
      if (await this.#issuedByUs(token)) {
        return { token, tokenHash: hash, visitorId: visitorIdFor(hash), visitor: undefined };
      }
    }
    const fresh = await this.#newVisitorToken();
    const hash = await tokenHash(fresh);
    return { token: fresh, tokenHash: hash, visitorId: visitorIdFor(hash), visitor: undefined };
  }

  /** The visitor id of a visitor token: a stored visitor's, or the id a token we issued will get; else none. */
  async knownVisitorId(token: string): Promise<string | undefined> {
    if (!token.startsWith("v_") || token.length > 100) return undefined;
    const hash = await tokenHash(token);
    const visitor = await this.#desk.app.store.visitorByToken(hash);
    if (visitor) return visitor.id;
    return (await this.#issuedByUs(token)) ? visitorIdFor(hash) : undefined;
  }

  /**
   * A visitor the host application identified (a user token): keyed by its `sub`, so the same customer on any
   * browser or device is one visitor with one history. Name, email and attributes come from the token, marked
   * verified. An anonymous visitor of this browser (its visitor token) who logged in keeps its conversations.
   */
  async #identified(
    token: string | undefined,
    identity: Identity,
  ): Promise<Omit<VisitorState, "lastTypingAt">> {
    const { store } = this.#desk.app;
    const hash = await tokenHash(`user:${identity.sub}`);
    const visitor = await store.createVisitor(hash);
    const profile = {
      name: identity.name,
      // A token without an email keeps the one the visitor gave (the leave-a-message form asks for it).
      email: identity.email ?? visitor.email ?? "",
      verified: true,
      attributes: identity.attributes ?? {},
    };
    await store.updateVisitor(visitor.id, profile);
    if (token && token.startsWith("v_") && token.length <= 100) {
      const anonymous = await store.visitorByToken(await tokenHash(token));
      if (anonymous && anonymous.id !== visitor.id) await store.moveConversations(anonymous.id, visitor.id);
    }
    return {
      // Only an anonymous visitor token goes back to the widget to keep (never the user token).
      token: token?.startsWith("v_") ? token : "",
      tokenHash: hash,
      visitorId: visitor.id,
      visitor: { ...visitor, ...profile },
    };
  }

  /** The HMAC key that signs visitor tokens, shared by every instance through the store. */
  #key(): Promise<CryptoKey> {
    this.#tokenKey ??= this.#desk.app.store.secret("visitor-tokens").then((secret) =>
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
    return timingSafeEqual(base64url(mac), token.slice(dot + 1));
  }

  /** The visitor's current conversation: the open one, else the last one (closed). */
  async conversationFor(visitor: VisitorRecord): Promise<ConversationRecord | undefined> {
    const { store } = this.#desk.app;
    return (await store.openConversationOf(visitor.id)) ?? (await store.latestConversationOf(visitor.id));
  }

  /** The conversation a visitor socket works on now (another tab may have started a new one). */
  async #current(s: VisitorState): Promise<ConversationRecord | undefined> {
    return s.visitor ? await this.conversationFor(s.visitor) : undefined;
  }

  /** A visitor socket opened: session, history, then where the conversation stands. */
  async visitorOpen(conn: Conn<VisitorState>): Promise<void> {
    const s = conn.state;
    await this.#desk.app.hub.join(conn, visitorChannel(s.visitorId));
    // Presence says whether the visitor is online (webhooks tell the host, to email one who is not).
    await this.#desk.app.broker.presenceAdd(visitorChannel(s.visitorId), {
      connId: conn.id,
      id: s.visitorId,
      name: "",
    });
    const c = await this.#current(s);
    conn.sendJson({ type: "session", token: s.token, conversationId: c?.id ?? null });
    conn.sendJson({ type: "availability", ...await this.#desk.availability(s.lang ?? "en") });
    if (c) await this.#sendStatus(conn, c);
    else {
      conn.sendJson({ type: "history", conversationId: null, messages: [] });
      await this.#desk.noAgentNotice(conn);
    }
  }

  async #sendStatus(conn: Conn<VisitorState>, c: ConversationRecord): Promise<void> {
    const history = await this.#desk.app.store.history(convStream(c.id), { limit: HISTORY_LIMIT });
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
      const agent = await this.#desk.app.store.agentById(c.agentId);
      conn.sendJson({ type: "assigned", agent: { id: c.agentId, name: agent?.name ?? "" } });
      if (c.agentReadSeq > 0) conn.sendJson({ type: "read", upTo: String(c.agentReadSeq) });
    } else if (history.length > 0) {
      const position = (await this.#desk.queue()).findIndex((q) => q.id === c.id) + 1;
      if (position > 0) conn.sendJson({ type: "queued", position });
    }
    await this.#desk.noAgentNotice(conn);
  }

  /** Stores the visitor on first use (one row per token, whichever socket gets there first). */
  async #ensureVisitor(conn: Conn<VisitorState>): Promise<VisitorRecord> {
    const s = conn.state;
    if (!s.visitor) {
      const visitor = await this.#desk.app.store.createVisitor(s.tokenHash);
      // The context reported before the visitor was stored is kept now.
      if (s.context) await this.#desk.app.store.updateVisitor(visitor.id, { context: s.context });
      s.visitor = { ...visitor, ...(s.context ? { context: s.context } : {}) };
    }
    return s.visitor;
  }

  /**
   * The conversation a visitor writes to: the open one, or a new one (after a close, or the very first). The
   * store keeps one open conversation per visitor, so tabs writing at once share it, and all of them are told.
   */
  async #writableConversation(conn: Conn<VisitorState>): Promise<ConversationRecord> {
    const { store, guard, metrics } = this.#desk.app;
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
      this.#desk.conversationEvent("conversation.created", { visitor: hookVisitor(visitor, visitor.id) }),
    );
    if (created) {
      const channel = visitorChannel(visitor.id);
      await this.#desk.publish(channel, { type: "session", conversationId: conversation.id });
      await this.#desk.publish(channel, { type: "history", conversationId: conversation.id, messages: [] });
    }
    return conversation;
  }

  /**
   * The leave-a-message form (outside hours, or with no agent online): stores the visitor's name and email and
   * the message in a conversation marked `offline`, queued for the agents, with the usual webhook events. A
   * visitor with an open conversation adds the message to it. A resend with the same `clientMsgId` is stored
   * once. Returns the visitor token, to keep.
   */
  async leaveMessage(
    ip: string,
    token: string | undefined,
    form: { name: string; email: string; text: string; clientMsgId: string | undefined },
    identity?: Identity,
  ): Promise<{ token: string; conversationId: string }> {
    const { store, guard, metrics } = this.#desk.app;
    const s = await this.visitorFor(token, identity);
    let visitor = s.visitor ?? await store.createVisitor(s.tokenHash);
    // A verified visitor keeps the token's name and email; the form only fills an email the token lacks.
    const profile = !visitor.verified
      ? { name: form.name, email: form.email }
      : !visitor.email && form.email
      ? { email: form.email }
      : undefined;
    if (profile) {
      await store.updateVisitor(visitor.id, profile);
      visitor = { ...visitor, ...profile };
    }
    let c = await store.openConversationOf(visitor.id);
    if (!c) {
      if (!guard.newConversations.take(ip)) {
        metrics.inc("switchboard_errors_total", { code: "rate_limited" });
        throw new FrameError(
          "rate_limited",
          "Too many new conversations from your address; try again in a minute",
        );
      }
      ({ conversation: c } = await store.openConversation(
        visitor.id,
        null,
        this.#desk.conversationEvent("conversation.created", { visitor: hookVisitor(visitor, visitor.id) }),
        "offline",
      ));
    }
    const from = { id: visitor.id, name: visitorName(visitor), role: "visitor" as const };
    const posted = await this.#desk.post(undefined, c, from, {
      text: form.text,
      clientMsgId: form.clientMsgId,
    });
    if (posted) await this.#toAgents(c, posted);
    return { token: s.token, conversationId: c.id };
  }

  /** A visitor socket closed: it leaves presence. */
  async visitorClose(conn: Conn<VisitorState>): Promise<void> {
    await this.#desk.app.broker.presenceRemove(visitorChannel(conn.state.visitorId), conn.id);
  }

  /** A visitor wrote: store it, deliver it, and queue the conversation on its first message. */
  async visitorMessage(conn: Conn<VisitorState>, frame: Record<string, unknown>): Promise<Pipelined> {
    const s = conn.state;
    const { text, attachments: ids } = must(validPost(frame));
    const clientMsgId = must(validClientMsgId(frame.clientMsgId));
    // The name may have changed in another tab (on any instance): read it with the conversation, not after.
    const [c, stored] = await Promise.all([
      this.#writableConversation(conn),
      s.visitor ? this.#desk.app.store.visitorById(s.visitor.id) : undefined,
    ]);
    const visitor = stored ?? s.visitor!;
    const from = { id: visitor.id, name: visitorName(visitor), role: "visitor" as const };
    const attachments = await this.#desk.attach(ids, uploadOwner("visitor", visitor.id), c.id);
    // A resend after a reconnect is confirmed to its sender again, not stored or delivered twice. The holder
    // gets the message with the visitor's own tabs; a queued conversation updates the queue after.
    const holder = c.status === "assigned" && c.agentId ? agentChannel(c.agentId) : undefined;
    // Once the message is queued in the store its place is fixed: the socket's next frame may start.
    const { done } = await this.#desk.startPost(conn, c, from, { text, attachments, clientMsgId }, holder);
    return {
      settled: done.then(async (posted) => {
        if (!posted) return;
        if (!holder) await this.#toAgents(c, posted);
        if (c.status !== "assigned") await this.#desk.noAgentNotice(conn);
      }),
    };
  }

  /** A visitor's stored message reaches the holder, or updates the queue (a first message joins it). */
  async #toAgents(c: ConversationRecord, posted: { message: SupportMessage; seq: number }): Promise<void> {
    if (c.status === "assigned" && c.agentId) {
      await this.#desk.publish(agentChannel(c.agentId), posted.message);
      return;
    }
    await this.#desk.conversationUpdate(c);
    if (posted.seq === 1) {
      await this.#desk.positions(c.createdAt);
      this.#assigner.autoAssign();
    }
  }

  /**
   * Where the visitor is (the widget reports it on connect and on every page change): page URL and title,
   * referrer, language, time zone and browser. Kept on the socket until the visitor is stored, then on the
   * visitor; agents see it in the conversation's view, live.
   */
  async visitorContext(conn: Conn<VisitorState>, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state;
    const context: Record<string, string> = {};
    for (const [key, max] of CONTEXT_FIELDS) {
      const v = frame[key];
      if (v === undefined || v === "") continue;
      if (typeof v !== "string" || v.length > max || !storable(v)) {
        throw new FrameError("bad_message", `"${key}" must be text of at most ${max} characters`);
      }
      if ((key === "url" || key === "referrer") && !/^https?:\/\//i.test(v)) {
        throw new FrameError("bad_message", `"${key}" must be an http(s) URL`);
      }
      context[key] = v;
    }
    s.context = context;
    if (!s.visitor) return;
    await this.#desk.app.store.updateVisitor(s.visitor.id, { context });
    s.visitor = { ...s.visitor, context };
    const c = await this.#current(s);
    if (c && c.status !== "closed") await this.#desk.conversationUpdate(c);
  }

  /** The visitor is typing: tell the agent holding the conversation. */
  async visitorTyping(conn: Conn<VisitorState>): Promise<void> {
    const s = conn.state;
    const now = Date.now();
    if (now - s.lastTypingAt < 1000) return;
    s.lastTypingAt = now;
    const c = await this.#current(s);
    if (c?.status === "assigned" && c.agentId && s.visitor) {
      await this.#desk.publish(agentChannel(c.agentId), {
        type: "typing",
        conversationId: c.id,
        from: { id: s.visitor.id, name: visitorName(s.visitor), role: "visitor" },
      });
    }
  }

  /** The visitor set a name or email. */
  async visitorProfile(conn: Conn<VisitorState>, frame: Record<string, unknown>): Promise<void> {
    const s = conn.state;
    if (s.visitor?.verified) {
      throw new FrameError(
        "forbidden",
        "The site verified this visitor: its name and email come from the site",
      );
    }
    const profile = validProfile(frame);
    const visitor = await this.#ensureVisitor(conn);
    await this.#desk.app.store.updateVisitor(visitor.id, profile);
    s.visitor = { ...visitor, ...profile };
    conn.sendJson({ type: "profile", name: s.visitor.name, email: s.visitor.email });
    const c = await this.#current(s);
    if (c && c.status !== "closed") await this.#desk.conversationUpdate(c);
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
    await this.#desk.app.store.rateConversation(
      c.id,
      score,
      comment,
      this.#desk.conversationEvent("conversation.rated", { rating: score, comment }),
    );
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
    await this.#desk.app.store.markRead(c.id, "visitor", upTo);
    if (c.status === "assigned" && c.agentId) {
      await this.#desk.publish(agentChannel(c.agentId), {
        type: "read",
        conversationId: c.id,
        upTo: String(upTo),
      });
    }
  }
}
