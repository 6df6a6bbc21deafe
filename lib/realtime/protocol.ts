/**
 * The wire protocol's shared parts: error codes, error frames, parsing client frames, and the name rules.
 * Each endpoint validates its own frame types on top of {@linkcode parseClientFrame}; see docs/protocol.md.
 *
 * @module
 */

import type { Attachment, StoredMessage } from "../store/store.ts";

/** A stored message on the wire, in a room (`room`) or a support conversation (`conversationId`). */
export type WireMessage<Where extends Record<string, string>> = {
  type: "message";
  id: string;
  from: { id: string; name: string; role?: string; verified?: boolean };
  text: string;
  ts: number;
  clientMsgId?: string;
  /** Files sent with the message, each fetched from its `url` (`GET /api/uploads/:id`). */
  attachments?: (Attachment & { url: string })[];
} & Where;

/**
 * The one wire shape of a stored message: `where` names its room or conversation; `defaultRole` adds
 * `from.role` (support conversations say who wrote: visitor, agent or system).
 */
export function messageFrame<Where extends Record<string, string>>(
  m: StoredMessage,
  where: Where,
  defaultRole?: string,
): WireMessage<Where> {
  const from: { id: string; name: string; role?: string; verified?: boolean } = {
    id: m.from.id,
    name: m.from.name,
  };
  if (defaultRole !== undefined) from.role = m.from.role ?? defaultRole;
  // A verified user (its token's `sub` as id) is told apart from self-named members.
  if (m.from.role === "user") from.verified = true;
  const out = {
    type: "message",
    id: String(m.seq),
    ...where,
    from,
    text: m.text ?? "",
    ts: m.ts,
  } as WireMessage<
    Where
  >;
  if (m.clientMsgId) out.clientMsgId = m.clientMsgId;
  if (m.attachments?.length) {
    out.attachments = m.attachments.map((a) => ({ ...a, url: `/api/uploads/${a.id}` }));
  }
  return out;
}

/** Error codes sent in `{"type":"error","code","message"}` frames. */
export type ErrorCode =
  | "bad_json"
  | "unknown_type"
  | "bad_message"
  | "too_large"
  | "rate_limited"
  | "not_found"
  | "forbidden"
  | "unauthorized"
  | "taken"
  | "bad_topic"
  | "unavailable"
  | "internal";

/** A client frame: a JSON object with a string `type`. */
export type ClientFrame = { type: string } & Record<string, unknown>;

/** A failed validation: the error code and a sentence for the client. */
export interface ProtocolError {
  ok: false;
  code: ErrorCode;
  message: string;
}

/** What every validator returns: the checked value, or why it was refused. */
export type Checked<T> = { ok: true; value: T } | ProtocolError;

/** A rejected client frame; becomes `{"type":"error","code","message"}`. Handlers throw it; nothing else. */
export class FrameError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = "FrameError";
    this.code = code;
  }
}

const ok = <T>(value: T): Checked<T> => ({ ok: true, value });
const refuse = (code: ErrorCode, message: string): ProtocolError => ({ ok: false, code, message });

/** The checked value, or a {@linkcode FrameError} with the refusal's code and sentence. */
export function must<T>(checked: Checked<T>): T {
  if (!checked.ok) throw new FrameError(checked.code, checked.message);
  return checked.value;
}

/** The encoded error frame. */
export function errorFrame(code: ErrorCode, message: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ type: "error", code, message, ...extra });
}

/** Parses a client frame: JSON text holding an object with a string `type`. */
export function parseClientFrame(data: string | ArrayBuffer): Checked<ClientFrame> {
  if (typeof data !== "string") return refuse("bad_json", "Frames must be JSON text, not binary");
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return refuse("bad_json", "Frame is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return refuse("bad_json", "Frame must be a JSON object");
  }
  const type = (value as Record<string, unknown>).type;
  if (typeof type !== "string") return refuse("bad_message", 'Frame needs a string "type"');
  return ok(value as ClientFrame);
}

/** Room names: 1–64 of letters, digits, `-`, `_`, `.`. */
export const ROOM_RE = /^[A-Za-z0-9._-]{1,64}$/;
/** Topic names: 1–128 of letters, digits, `.`, `-`, `_`, `:`. */
export const TOPIC_RE = /^[A-Za-z0-9._:-]{1,128}$/;
/** Most characters in a chat or support message. */
export const MAX_TEXT_CHARS = 4000;

/**
 * Whether text can be stored the same way on every store: PostgreSQL cannot keep U+0000, and a lone surrogate
 * half would silently become U+FFFD. Such text is refused at the boundary, the same on SQLite and PostgreSQL.
 */
export function storable(text: string): boolean {
  return !text.includes("\0") && text.isWellFormed();
}

const UNSTORABLE = "contains U+0000 or a lone surrogate, which cannot be stored";

/**
 * Checks message text: a string of 1–4000 characters after trimming. Returns the trimmed text or an error
 * (`too_large` past the limit, `bad_message` otherwise).
 */
export function validText(text: unknown, max = MAX_TEXT_CHARS): Checked<string> {
  if (typeof text !== "string") return refuse("bad_message", '"text" must be a string');
  if (!storable(text)) return refuse("bad_message", `"text" ${UNSTORABLE}`);
  const trimmed = text.trim();
  if (trimmed.length === 0) return refuse("bad_message", '"text" must not be empty');
  if ([...trimmed].length > max) return refuse("too_large", `"text" is over ${max} characters`);
  return ok(trimmed);
}

/** Checks a display name: 1–32 characters after trimming. */
export function validName(name: unknown, max = 32): Checked<string> {
  if (typeof name !== "string") return refuse("bad_message", "Name must be a string");
  if (!storable(name)) return refuse("bad_message", `Name ${UNSTORABLE}`);
  const trimmed = name.trim();
  if (trimmed.length === 0) return refuse("bad_message", "Name must not be empty");
  if ([...trimmed].length > max) return refuse("bad_message", `Name is over ${max} characters`);
  return ok(trimmed);
}

/** Most attachments one message carries. */
export const MAX_ATTACHMENTS = 10;
const UPLOAD_ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Whether a string is an upload id. */
export const isUploadId = (v: string): boolean => UPLOAD_ID_RE.test(v);

/**
 * Checks what a message says: its `text`, and the upload ids in `attachments` (absent, or at most
 * {@linkcode MAX_ATTACHMENTS}). With files attached, the text may be empty.
 */
export function validPost(frame: Record<string, unknown>): Checked<{ text: string; attachments: string[] }> {
  const ids = frame.attachments;
  if (ids !== undefined && ids !== null) {
    if (
      !Array.isArray(ids) || ids.length > MAX_ATTACHMENTS ||
      !ids.every((id) => typeof id === "string" && isUploadId(id))
    ) {
      return refuse("bad_message", `"attachments" must be a list of at most ${MAX_ATTACHMENTS} upload ids`);
    }
    if (ids.length > 0 && (frame.text === undefined || frame.text === "")) {
      return ok({ text: "", attachments: [...new Set(ids as string[])] });
    }
  }
  const text = validText(frame.text);
  if (!text.ok) return text;
  return ok({ text: text.value, attachments: [...new Set((ids ?? []) as string[])] });
}

/** Checks an optional client message id (1–64 printable characters). */
export function validClientMsgId(v: unknown): Checked<string | undefined> {
  if (v === undefined || v === null) return ok(undefined);
  if (typeof v !== "string" || v.length === 0 || v.length > 64) {
    return refuse("bad_message", '"clientMsgId" must be a string of 1–64 characters');
  }
  if (!storable(v)) return refuse("bad_message", `"clientMsgId" ${UNSTORABLE}`);
  return ok(v);
}

/** Parses an optional message id cursor (`since`, `before`, `after`): a non-negative integer. */
export function parseCursor(raw: string | null): number | undefined | null {
  if (raw === null || raw === "") return undefined;
  if (!/^\d{1,15}$/.test(raw)) return null;
  return Number(raw);
}
