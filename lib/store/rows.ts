/**
 * Row ↔ record mapping for {@linkcode SqlStore} (both databases return the same columns), and the checks and ids
 * it makes before a row is written.
 *
 * @module
 */
import type {
  AgentRecord,
  AuditEntry,
  CannedReply,
  ConversationRecord,
  ConversationStatus,
  NewMessage,
  ScheduleRecord,
  StoredMessage,
  UploadRecord,
  VisitorRecord,
  WebhookDelivery,
} from "./store.ts";

/** A row as a driver returns it: SQLite gives numbers, PostgreSQL gives BIGINT columns as strings. */
// deno-lint-ignore no-explicit-any
export type Row = Record<string, any>;

const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/** A `messages` row as a {@linkcode StoredMessage}. */
export function toMessage(r: Row): StoredMessage {
  const m: StoredMessage = {
    stream: r.stream,
    seq: num(r.seq),
    ts: num(r.ts),
    from: { id: r.from_id, name: r.from_name },
  };
  if (r.from_role) m.from.role = r.from_role;
  if (r.text !== null && r.text !== undefined) m.text = r.text;
  if (r.data !== null && r.data !== undefined) m.data = r.data;
  if (r.client_msg_id) m.clientMsgId = r.client_msg_id;
  if (r.attachments) m.attachments = JSON.parse(r.attachments);
  return m;
}

/** An `agents` row. */
export function toAgent(r: Row): AgentRecord {
  return {
    id: r.id,
    username: r.username,
    name: r.name,
    passwordHash: r.password_hash,
    createdAt: num(r.created_at),
    role: r.role === "admin" ? "admin" : "agent",
    disabled: Number(r.disabled ?? 0) === 1,
  };
}

/** A `visitors` row. */
export function toVisitor(r: Row): VisitorRecord {
  const v: VisitorRecord = {
    id: r.id,
    name: r.name,
    email: r.email,
    createdAt: num(r.created_at),
    verified: Number(r.verified ?? 0) === 1,
  };
  if (r.attributes) v.attributes = JSON.parse(r.attributes);
  if (r.context) v.context = JSON.parse(r.context);
  return v;
}

/** A `conversations` row. */
export function toConversation(r: Row): ConversationRecord {
  return {
    id: r.id,
    visitorId: r.visitor_id,
    status: r.status as ConversationStatus,
    agentId: r.agent_id ?? null,
    lastAgentId: r.last_agent_id ?? null,
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
    assignedAt: numOrNull(r.assigned_at),
    closedAt: numOrNull(r.closed_at),
    rating: numOrNull(r.rating),
    ratingComment: r.rating_comment ?? null,
    visitorReadSeq: num(r.visitor_read_seq),
    agentReadSeq: num(r.agent_read_seq),
    source: r.source === "offline" ? "offline" : "chat",
  };
}

/** An `audit_log` row. */
export function toAudit(r: Row): AuditEntry {
  return {
    id: r.id,
    at: num(r.at),
    actor: r.actor,
    action: r.action,
    target: r.target,
    detail: JSON.parse(r.detail),
    instance: r.instance,
  };
}

/** An `uploads` row (with its bytes only when the query selected them). */
export function toUpload(r: Row): UploadRecord {
  const u: UploadRecord = {
    id: r.id,
    owner: r.owner,
    stream: r.stream ?? null,
    name: r.name,
    type: r.type,
    size: num(r.size),
    createdAt: num(r.created_at),
  };
  if (r.data !== undefined) u.data = new Uint8Array(r.data.buffer, r.data.byteOffset, r.data.byteLength);
  return u;
}

/** A `webhook_deliveries` row. */
export function toDelivery(r: Row): WebhookDelivery {
  return {
    id: r.id,
    url: r.url,
    event: r.event,
    body: r.body,
    createdAt: num(r.created_at),
    status: r.status,
    attempts: num(r.attempts),
    nextAt: num(r.next_at),
    lastStatus: numOrNull(r.last_status),
    lastError: r.last_error ?? null,
    deliveredAt: numOrNull(r.delivered_at),
  };
}

/** A `canned_replies` row. */
export function toCanned(r: Row): CannedReply {
  return { id: r.id, ownerId: r.owner_id, shortcut: r.shortcut, text: r.text, createdAt: num(r.created_at) };
}

/** A `schedules` row. */
export function toSchedule(r: Row): ScheduleRecord {
  return {
    id: r.id,
    topic: r.topic,
    data: r.data,
    nextAt: numOrNull(r.next_at),
    everyMs: numOrNull(r.every_ms),
    cron: r.cron ?? null,
    createdAt: num(r.created_at),
    lastFiredAt: numOrNull(r.last_fired_at),
  };
}

/**
 * Why a message cannot be stored, or undefined. PostgreSQL text cannot hold U+0000 (SQLite can), so the store
 * refuses it here, on both, before it can share a commit with anyone else's message.
 */
export function unstorable(stream: string, m: NewMessage | undefined): string | undefined {
  const fields = [
    stream,
    m?.from.id,
    m?.from.name,
    m?.text,
    m?.data,
    m?.clientMsgId,
    ...(m?.attachments ?? []).map((a) => a.name),
  ];
  if (fields.some((f) => typeof f === "string" && f.includes("\0"))) {
    return "The message contains U+0000, which cannot be stored";
  }
  return undefined;
}

/**
 * The id a visitor row gets: derived from its token's hash, so every socket holding the token knows the
 * visitor's channel before the row exists (the hash is one-way, so the id reveals nothing of the token).
 */
export function visitorIdFor(tokenHash: string): string {
  const h = tokenHash.slice(0, 32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** A new random secret: 256 bits, hex. */
export function newSecret(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(32)), (b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
}

/** A new random id. */
export function newId(): string {
  return crypto.randomUUID();
}
