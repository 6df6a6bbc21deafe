/**
 * The store keeps everything durable: message streams (chat rooms, topics, support conversations), agents,
 * visitors, conversations and schedules. One implementation, `SqlStore` (`sql_store.ts`), holds every statement,
 * the migrations (`migrations.ts`) and the row mapping, over a small driver per database (`sql_driver.ts`):
 * SQLite (`sqlite.ts`) is the embedded default, PostgreSQL (`postgres.ts`) serves a cluster. Both pass the same
 * contract tests.
 *
 * @module
 */

/** Who wrote a message. */
export interface Author {
  id: string;
  name: string;
  role?: "visitor" | "agent" | "system" | "member" | "api" | "user";
}

/** A file sent with a message (its bytes stay in `uploads`; `url` is added on the wire). */
export interface Attachment {
  id: string;
  name: string;
  /** The type the server found in the file's own bytes. */
  type: string;
  size: number;
}

/** A message to append to a stream. */
export interface NewMessage {
  from: Author;
  text?: string;
  /** JSON-encoded payload (topic publications). */
  data?: string;
  clientMsgId?: string;
  attachments?: Attachment[];
}

/**
 * An uploaded file. `owner` is who uploaded it (`visitor:<id>`, `agent:<id>`); `stream` is where it was sent,
 * null while unsent (unsent uploads expire). `data` is read only by {@linkcode Store.upload}.
 */
export interface UploadRecord extends Attachment {
  owner: string;
  stream: string | null;
  createdAt: number;
  data?: Uint8Array;
}

/** A stored message: `seq` increases by one per stream, across instances. */
export interface StoredMessage extends NewMessage {
  stream: string;
  seq: number;
  ts: number;
  /**
   * Set by {@linkcode Store.append} when the stream already held a message with this `clientMsgId` (a resend):
   * nothing new was stored, and this is the earlier message.
   */
  duplicate?: true;
}

/** Which part of a stream's history to read. */
export interface HistoryQuery {
  /** Only messages with a larger seq. */
  after?: number;
  /** Only messages with a smaller seq. */
  before?: number;
  /** At most this many; with `after`, the oldest ones, otherwise the newest ones. */
  limit: number;
}

/** A stream and its size, for listings. */
export interface StreamSummary {
  stream: string;
  lastSeq: number;
  lastTs: number;
}

/** A support agent as stored (the hash never leaves the store except for verification). */
export interface AgentRecord {
  id: string;
  username: string;
  name: string;
  passwordHash: string;
  createdAt: number;
  /** `admin` sees every conversation and manages agents; `agent` sees the queue and what it holds or held. */
  role: "admin" | "agent";
  /** A disabled agent cannot log in; its sessions are ended. */
  disabled: boolean;
}

/** A visitor of the support widget. */
export interface VisitorRecord {
  id: string;
  name: string;
  email: string;
  createdAt: number;
  /** Identified by the host application (a user token): name, email and attributes are its, not typed in. */
  verified: boolean;
  /** Verified attributes from the token (plan, order count, …). */
  attributes?: Record<string, unknown>;
  /** Where the visitor is, as the widget last reported: page URL and title, referrer, language, time zone, browser. */
  context?: Record<string, string>;
}

/** The changeable part of a visitor; `verified` marks name, email and attributes as the host application's. */
export type VisitorProfile = Partial<
  Pick<VisitorRecord, "name" | "email" | "verified" | "attributes" | "context">
>;

/** Conversation states. */
export type ConversationStatus = "queued" | "assigned" | "closed";

/** A support conversation. */
export interface ConversationRecord {
  id: string;
  visitorId: string;
  status: ConversationStatus;
  agentId: string | null;
  /** The agent who last held it (preferred when the visitor comes back). */
  lastAgentId: string | null;
  createdAt: number;
  updatedAt: number;
  assignedAt: number | null;
  closedAt: number | null;
  rating: number | null;
  ratingComment: string | null;
  visitorReadSeq: number;
  agentReadSeq: number;
  /** `offline` for a message left through the offline form, `chat` for a live chat. */
  source: "chat" | "offline";
}

/** A conversation as reports count it: its times, its agent, and its first human reply. */
export interface ReportRow {
  id: string;
  source: "chat" | "offline";
  status: ConversationStatus;
  createdAt: number;
  closedAt: number | null;
  /** The agent holding it, or who held it last. */
  agentId: string | null;
  rating: number | null;
  /** When an agent first wrote in it, and who. */
  firstReplyAt: number | null;
  firstReplyBy: string | null;
}

/** Everything stored of one visitor that the visitor may see (agents' private notes are not part of it). */
export interface VisitorExport {
  visitor: VisitorRecord;
  conversations: (ConversationRecord & { messages: StoredMessage[] })[];
  /** Files the visitor uploaded or was sent, with their bytes. */
  uploads: (UploadRecord & { data: Uint8Array })[];
}

/** What a deletion removed. */
export interface Deleted {
  conversations: number;
  messages: number;
  uploads: number;
  visitors: number;
}

/** One admin action, as the audit log keeps it. */
export interface AuditEntry {
  id: string;
  at: number;
  /** Who acted: `agent:<username>` or `api-key`. */
  actor: string;
  /** What was done, such as `agent.add` or `connection.close`. */
  action: string;
  /** What it was done to (an id, a username, a room). */
  target: string;
  detail: Record<string, unknown>;
  /** The instance that did it. */
  instance: string;
}

/** A canned reply: team-wide (`ownerId` ""), or an agent's own. */
export interface CannedReply {
  id: string;
  ownerId: string;
  shortcut: string;
  text: string;
  createdAt: number;
}

/** A webhook event on its way to one receiver, as the outbox holds it. */
export interface WebhookDelivery {
  /** The `webhook-id`: the same on every try. */
  id: string;
  url: string;
  /** The event type (`message.created`, …). */
  event: string;
  /** The exact JSON body that is signed and sent. */
  body: string;
  createdAt: number;
  status: "pending" | "delivered" | "failed";
  attempts: number;
  /** When the next try is due (pending ones). */
  nextAt: number;
  lastStatus: number | null;
  lastError: string | null;
  deliveredAt: number | null;
}

/** A new outbox row: written in the same transaction as what caused the event. */
export type NewDelivery = Pick<WebhookDelivery, "id" | "url" | "event" | "body" | "createdAt">;

/** One try of a delivery. */
export interface DeliveryAttempt {
  attempt: number;
  at: number;
  /** The receiver's HTTP status, or null when it did not answer (timeout, refused). */
  status: number | null;
  error: string | null;
  durationMs: number;
}

/** The events a change causes, made from what the change stored (a conversation, a message). */
export type Emit<T> = (record: T) => NewDelivery[];

/** A scheduled publication. */
export interface ScheduleRecord {
  id: string;
  topic: string;
  /** JSON-encoded payload. */
  data: string;
  /** Next due time, ms since epoch; null once a one-shot fired. */
  nextAt: number | null;
  everyMs: number | null;
  cron: string | null;
  createdAt: number;
  lastFiredAt: number | null;
}

/** Durable state. Every method may be called from any instance of a cluster. */
export interface Store {
  /**
   * Appends to a stream (durable when the promise resolves) and returns the stored message with its seq.
   * Appends made in one call order are numbered in that order. A message whose `clientMsgId` the stream already
   * holds is not stored again: the earlier one comes back with `duplicate` set (atomic, across instances). A
   * message the database cannot keep fails alone, never the others committed with it.
   */
  append(stream: string, message: NewMessage, emit?: Emit<StoredMessage>): Promise<StoredMessage>;
  /** Advances a stream's seq without keeping the message (topics without history). */
  nextSeq(stream: string): Promise<number>;
  /** Reads history, oldest first. */
  history(stream: string, query: HistoryQuery): Promise<StoredMessage[]>;
  /** A stored message of a stream with this client id (a resend after a reconnect). */
  findByClientMsgId(stream: string, clientMsgId: string): Promise<StoredMessage | undefined>;
  /** How many messages after `after` were written by `role`. */
  countAfter(stream: string, after: number, role: string): Promise<number>;
  /** The last stored message of each stream that has one (one query for a list, not one per stream). */
  lastMessages(streams: readonly string[]): Promise<Map<string, StoredMessage>>;
  /** Per conversation id, the visitor messages after the agent's read mark (absent: none). */
  unreadCounts(conversationIds: readonly string[]): Promise<Map<string, number>>;
  /** How many conversations each agent holds now (absent: none). */
  assignedCounts(): Promise<Map<string, number>>;
  /** The highest seq of a stream (0 when empty). */
  lastSeq(stream: string): Promise<number>;
  /** Deletes all but the newest `keep` messages of a stream. */
  trim(stream: string, keep: number): Promise<void>;
  /**
   * Retention for every stream whose name starts with `prefix`: deletes messages older than `before` (ms since
   * epoch) and all but the newest `keep` of each stream. Returns how many messages were deleted.
   */
  prune(prefix: string, rules: { before?: number; keep?: number }): Promise<number>;
  /** Streams whose name starts with `prefix`. */
  streams(prefix: string, limit: number): Promise<StreamSummary[]>;

  /** Creates or replaces (by username) an agent. */
  upsertAgent(
    agent: Omit<AgentRecord, "id" | "createdAt" | "role" | "disabled"> & Partial<Pick<AgentRecord, "role">>,
  ): Promise<AgentRecord>;
  /** Changes an agent's display name, role or disabled flag; undefined when there is no such agent. */
  updateAgent(
    username: string,
    change: Partial<Pick<AgentRecord, "role" | "disabled" | "name">>,
  ): Promise<AgentRecord | undefined>;
  /** Every agent who holds or held a conversation, with its role. */
  holders(conversationId: string): Promise<{ agentId: string; role: AgentRecord["role"] }[]>;
  /** Whether an agent held (or holds) a conversation: agents may read those, and the queue. */
  heldBy(conversationId: string, agentId: string): Promise<boolean>;
  agentByUsername(username: string): Promise<AgentRecord | undefined>;
  agentById(id: string): Promise<AgentRecord | undefined>;
  /** The agents with these ids that exist, by id. */
  agentsByIds(ids: readonly string[]): Promise<Map<string, AgentRecord>>;
  listAgents(): Promise<AgentRecord[]>;
  /** Removes an agent and its sessions; false when there was none. */
  removeAgent(username: string): Promise<boolean>;
  /** Ends every session of an agent (a password change). */
  deleteAgentSessions(agentId: string): Promise<void>;
  /** Which of these session hashes are still live (sockets of ended sessions are closed). */
  liveSessions(tokenHashes: readonly string[], now: number): Promise<Set<string>>;
  /** Stores a session (by the hash of its token). */
  createSession(tokenHash: string, agentId: string, expiresAt: number): Promise<void>;
  /** The agent id of a live session. */
  sessionAgent(tokenHash: string, now: number): Promise<string | undefined>;
  deleteSession(tokenHash: string): Promise<void>;

  /** The visitor identified by the hash of its token, created when there is none (atomic: one row per token). */
  createVisitor(tokenHash: string): Promise<VisitorRecord>;
  visitorByToken(tokenHash: string): Promise<VisitorRecord | undefined>;
  visitorById(id: string): Promise<VisitorRecord | undefined>;
  /** The visitors with these ids that exist, by id. */
  visitorsByIds(ids: readonly string[]): Promise<Map<string, VisitorRecord>>;
  /** Sets the given fields of a visitor's profile. */
  updateVisitor(id: string, profile: VisitorProfile): Promise<void>;
  /**
   * Moves a visitor's conversations to another visitor (an anonymous visitor who logged in): all closed ones,
   * and the open one unless the other visitor has an open one already. Returns how many moved.
   */
  moveConversations(fromVisitorId: string, toVisitorId: string): Promise<number>;

  /**
   * The visitor's open conversation, or a new queued one when it has none. The database holds at most one open
   * conversation per visitor, so concurrent calls (tabs, instances) get the same one; `created` says which call
   * made it.
   */
  openConversation(
    visitorId: string,
    lastAgentId: string | null,
    emit?: Emit<ConversationRecord>,
    source?: ConversationRecord["source"],
  ): Promise<{ conversation: ConversationRecord; created: boolean }>;
  conversation(id: string): Promise<ConversationRecord | undefined>;
  /** The visitor's newest conversation that is not closed. */
  openConversationOf(visitorId: string): Promise<ConversationRecord | undefined>;
  /** The visitor's newest conversation. */
  latestConversationOf(visitorId: string): Promise<ConversationRecord | undefined>;
  /** Conversations, oldest first; `visibleTo` keeps those an agent (not an admin) may see. */
  conversations(
    filter: {
      status?: ConversationStatus;
      agentId?: string;
      visitorId?: string;
      visibleTo?: string;
      limit: number;
    },
  ): Promise<ConversationRecord[]>;
  /**
   * Conversations whose messages, visitor name or email contain `q` (case-insensitive, any script: "订单"
   * finds "我的订单还没到"), newest first; `visibleTo` as for {@linkcode conversations}.
   */
  searchConversations(
    q: string,
    filter: { visibleTo?: string; limit: number },
  ): Promise<ConversationRecord[]>;
  /** Queued conversations that hold at least one message, oldest first (the agents' queue), in one query. */
  queuedConversations(limit: number): Promise<ConversationRecord[]>;
  /** Assigns a conversation only if it is in `fromStatus` (and held by `fromAgent` when given): exactly one wins. */
  assignConversation(
    id: string,
    agentId: string,
    expect: { status: ConversationStatus; agentId?: string | null },
    emit?: Emit<ConversationRecord>,
  ): Promise<ConversationRecord | undefined>;
  /** Puts an assigned conversation back in the queue (only if `agentId` still holds it). */
  requeueConversation(id: string, agentId: string): Promise<ConversationRecord | undefined>;
  /** Closes a conversation unless it is closed already. */
  closeConversation(id: string, emit?: Emit<ConversationRecord>): Promise<ConversationRecord | undefined>;
  rateConversation(
    id: string,
    rating: number,
    comment: string | null,
    emit?: Emit<ConversationRecord>,
  ): Promise<void>;
  markRead(id: string, side: "visitor" | "agent", upTo: number): Promise<void>;

  /** The team's canned replies and an agent's own, by shortcut. */
  cannedReplies(agentId: string): Promise<CannedReply[]>;
  /** Everything of one visitor a data request hands out, or undefined for an unknown visitor. */
  visitorExport(visitorId: string): Promise<VisitorExport | undefined>;
  /**
   * Deletes a visitor with its conversations, messages, notes, uploads, search index rows and the webhook
   * deliveries that carry them, in one transaction. Undefined for an unknown visitor.
   */
  deleteVisitor(visitorId: string): Promise<Deleted | undefined>;
  /**
   * Deletes closed conversations closed before `before` (ms) the same way, and then visitors created before it
   * who have no conversation left.
   */
  purgeClosedConversations(before: number): Promise<Deleted>;
  /** The conversations created in `[from, to)` (ms), for reports. */
  reportRows(from: number, to: number): Promise<ReportRow[]>;
  /** A stored setting (parsed JSON), or undefined. */
  setting(key: string): Promise<unknown>;
  /** Stores a setting (any JSON value). */
  saveSetting(key: string, value: unknown): Promise<void>;
  /** Appends one entry to the audit log. */
  appendAudit(entry: Omit<AuditEntry, "id" | "at">): Promise<AuditEntry>;
  /** The audit log, newest first: entries before `before` (ms), at most `limit`. */
  auditLog(opts: { before?: number; limit: number }): Promise<AuditEntry[]>;
  /** Adds a canned reply; undefined when its owner has that shortcut already. */
  addCannedReply(r: Omit<CannedReply, "id" | "createdAt">): Promise<CannedReply | undefined>;
  cannedReply(id: string): Promise<CannedReply | undefined>;
  deleteCannedReply(id: string): Promise<boolean>;

  /** Keeps an uploaded file, unsent. */
  saveUpload(u: Omit<UploadRecord, "stream" | "createdAt"> & { data: Uint8Array }): Promise<UploadRecord>;
  /** An upload with its bytes. */
  upload(id: string): Promise<UploadRecord | undefined>;
  /**
   * Marks uploads of `owner` as sent to `stream` and returns them in the order given, or undefined (and marks
   * nothing) unless every id is the owner's and unsent or sent to this stream already (a resend).
   */
  attachUploads(ids: readonly string[], owner: string, stream: string): Promise<Attachment[] | undefined>;
  /** Deletes unsent uploads made before `before`; returns how many. */
  pruneUploads(before: number): Promise<number>;

  /**
   * Claims up to `limit` pending deliveries due at `now` for `lockMs` (no other instance takes them meanwhile;
   * a crashed claimer's expire), oldest first.
   */
  claimDeliveries(now: number, lockMs: number, limit: number): Promise<WebhookDelivery[]>;
  /** Records a try and its outcome: delivered, due again at `nextAt`, or failed for good. */
  recordAttempt(
    id: string,
    attempt: DeliveryAttempt,
    outcome: { delivered: true } | { nextAt: number } | { failed: true },
  ): Promise<void>;
  /** Deliveries, newest first, optionally by status. */
  deliveries(filter: { status?: WebhookDelivery["status"]; limit: number }): Promise<WebhookDelivery[]>;
  delivery(id: string): Promise<WebhookDelivery | undefined>;
  deliveryAttempts(id: string): Promise<DeliveryAttempt[]>;
  /** Makes a delivery pending and due now (a retry); false when there is none. */
  retryDelivery(id: string, now: number): Promise<boolean>;

  createSchedule(s: Omit<ScheduleRecord, "id" | "createdAt" | "lastFiredAt">): Promise<ScheduleRecord>;
  listSchedules(): Promise<ScheduleRecord[]>;
  deleteSchedule(id: string): Promise<boolean>;
  /** Schedules due at `now`. */
  dueSchedules(now: number): Promise<ScheduleRecord[]>;
  /** Moves a due schedule from `expectedNextAt` to `nextAt`; false when another instance already did (claim). */
  claimSchedule(id: string, expectedNextAt: number, nextAt: number | null, firedAt: number): Promise<boolean>;

  /**
   * A random secret shared by every instance on this store, made on first use (atomic: all get the same value).
   */
  secret(name: string): Promise<string>;

  /** Whether the store answers now. */
  ready(): Promise<boolean>;
  close(): Promise<void>;
}
