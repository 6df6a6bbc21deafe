/**
 * What the two drivers' group commits share: the statements an append runs and the numbering of a batch. How a
 * batch reaches the database stays in each driver: SQLite runs it synchronously in one event-loop turn,
 * PostgreSQL in a few round trips (`sqlite.ts`, `postgres.ts`).
 *
 * A driver commits a batch in three steps, inside one transaction, with a {@linkcode BatchPlan} of it:
 * 1. finds the stored messages with the client ids of `plan.resends` (a resend takes no seq);
 * 2. reserves the seqs `plan.counts(found)` asks for, per stream ({@linkcode RESERVE_SEQS});
 * 3. numbers the batch with `plan.number(heads)` and inserts the rows it returns ({@linkcode INSERT_MESSAGE}),
 *    and the support messages' rows of the word index (`search.ts`).
 *
 * @module
 */
import type { Emit, NewDelivery, NewMessage, StoredMessage } from "./store.ts";
import type { SqlValue } from "./sql_driver.ts";
import { indexed } from "./search.ts";

/** One append of a batch; no message for a seq alone ({@linkcode Store.nextSeq}). */
export interface AppendRequest {
  stream: string;
  message: NewMessage | undefined;
  /** The webhook events the stored message causes: committed with it, never for a resend. */
  emit?: Emit<StoredMessage>;
}

/** Inserts one outbox row; parameters: id, url, event, body, created_at, next_at. */
export const INSERT_DELIVERY = `INSERT INTO webhook_deliveries (id, url, event, body, created_at, next_at)
  VALUES (?, ?, ?, ?, ?, ?)`;

/** The parameters of {@linkcode INSERT_DELIVERY} for a new delivery (due at once). */
export const deliveryParams = (
  d: NewDelivery,
): SqlValue[] => [d.id, d.url, d.event, d.body, d.createdAt, d.createdAt];

/** The stored message of a stream with a client id (the unique index `messages_client_msg` allows one). */
export const FIND_BY_CLIENT_MSG_ID = "SELECT * FROM messages WHERE stream = ? AND client_msg_id = ?";

/**
 * Parameters: stream, count. Reserves `count` seqs of the stream and returns the new head, the last of them; the
 * head row's lock orders concurrent commits, across instances too.
 */
export const RESERVE_SEQS = `INSERT INTO stream_heads (stream, seq) VALUES (?, ?)
  ON CONFLICT (stream) DO UPDATE SET seq = stream_heads.seq + excluded.seq RETURNING seq`;

/** The columns of a `messages` row, in the order of a {@linkcode MessageRow}. */
export const MESSAGE_COLUMNS = [
  "stream",
  "seq",
  "ts",
  "from_id",
  "from_name",
  "from_role",
  "text",
  "data",
  "client_msg_id",
  "attachments",
] as const;

/** A `messages` row to insert: its values in {@linkcode MESSAGE_COLUMNS} order. */
export type MessageRow = SqlValue[];

/** Inserts one message; its parameters are a {@linkcode MessageRow}. */
export const INSERT_MESSAGE = `INSERT INTO messages (${MESSAGE_COLUMNS.join(", ")}) VALUES (${
  MESSAGE_COLUMNS.map(() => "?").join(", ")
})`;

/** A message for the word index: conversation id, seq, text (each driver makes its own terms of the text). */
export type SearchRow = [conversationId: string, seq: number, text: string];

/** The key under which a batch remembers a client message id. */
const clientKey = (stream: string, clientMsgId: string): string => `${stream}\n${clientMsgId}`;

/** A batch on its way into the database: which appends are resends, and the seqs of the others. */
export class BatchPlan {
  /** The client ids the batch carries, once per stream and id: the resends to look for. */
  readonly resends: { stream: string; clientMsgId: string }[] = [];
  #batch: readonly AppendRequest[];
  /** Per append: its client key, and whether it is the first of the batch with that key. */
  #keys: (string | undefined)[] = [];
  #first: boolean[] = [];
  /** Stored messages by client key: found in the database, then those of this batch as it is numbered. */
  #byKey = new Map<string, StoredMessage>();
  #fresh: boolean[] = [];
  #counts = new Map<string, number>();

  constructor(batch: readonly AppendRequest[]) {
    this.#batch = batch;
    const seen = new Set<string>();
    for (const { stream, message } of batch) {
      const clientMsgId = message?.clientMsgId;
      const key = clientMsgId ? clientKey(stream, clientMsgId) : undefined;
      const first = key !== undefined && !seen.has(key);
      if (first) {
        seen.add(key);
        this.resends.push({ stream, clientMsgId: clientMsgId! });
      }
      this.#keys.push(key);
      this.#first.push(first);
    }
  }

  /**
   * Takes the stored messages found for {@linkcode BatchPlan.resends} and returns how many new seqs each stream
   * needs: reserve them, then call {@linkcode BatchPlan.number}.
   */
  counts(earlier: readonly StoredMessage[]): ReadonlyMap<string, number> {
    for (const m of earlier) this.#byKey.set(clientKey(m.stream, m.clientMsgId!), m);
    for (let i = 0; i < this.#batch.length; i++) {
      const key = this.#keys[i];
      const fresh = key === undefined || (this.#first[i] && !this.#byKey.has(key));
      this.#fresh.push(fresh);
      if (fresh) {
        const stream = this.#batch[i].stream;
        this.#counts.set(stream, (this.#counts.get(stream) ?? 0) + 1);
      }
    }
    return this.#counts;
  }

  /**
   * Numbers the new appends in batch order from the reserved blocks (`heads`: each stream's head after
   * reserving its count). Returns the stored message of every append, in order, and the rows to insert.
   */
  number(
    heads: ReadonlyMap<string, number>,
    now = Date.now(),
  ): { results: StoredMessage[]; rows: MessageRow[]; search: SearchRow[]; deliveries: NewDelivery[] } {
    const next = new Map<string, number>();
    for (const [stream, count] of this.#counts) next.set(stream, heads.get(stream)! - count + 1);
    const results: StoredMessage[] = [];
    const rows: MessageRow[] = [];
    const search: SearchRow[] = [];
    const deliveries: NewDelivery[] = [];
    for (let i = 0; i < this.#batch.length; i++) {
      const { stream, message: m } = this.#batch[i];
      const key = this.#keys[i];
      if (!this.#fresh[i]) {
        results.push({ ...this.#byKey.get(key!)!, duplicate: true });
        continue;
      }
      const seq = next.get(stream)!;
      next.set(stream, seq + 1);
      if (m) {
        rows.push([
          stream,
          seq,
          now,
          m.from.id,
          m.from.name,
          m.from.role ?? null,
          m.text ?? null,
          m.data ?? null,
          m.clientMsgId ?? null,
          m.attachments?.length ? JSON.stringify(m.attachments) : null,
        ]);
        if (m.text && indexed(stream)) search.push([stream.slice(stream.indexOf(":") + 1), seq, m.text]);
      }
      const stored = { ...(m ?? { from: { id: "", name: "" } }), stream, seq, ts: now };
      const emit = this.#batch[i].emit;
      if (emit) deliveries.push(...emit(stored));
      if (key !== undefined) this.#byKey.set(key, stored);
      results.push(stored);
    }
    return { results, rows, search, deliveries };
  }
}
