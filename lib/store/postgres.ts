/**
 * The cluster store: PostgreSQL through the `postgres` npm client. Same migrations and contract as the SQLite
 * store; per-stream seqs come from a row in `stream_heads` updated inside the append transaction, so ids keep
 * increasing across instances. Appends made in one event-loop turn share one transaction (group commit).
 *
 * @module
 */
import postgres from "postgres";
import { MIGRATIONS } from "./migrations.ts";
import type {
  AgentRecord,
  ConversationRecord,
  ConversationStatus,
  HistoryQuery,
  NewMessage,
  ScheduleRecord,
  Store,
  StoredMessage,
  StreamSummary,
  VisitorRecord,
} from "./store.ts";
import {
  clientKey,
  newId,
  newSecret,
  type PendingAppend,
  toAgent,
  toConversation,
  toMessage,
  toSchedule,
  toVisitor,
  unstorable,
  visitorIdFor,
} from "./rows.ts";

type Sql = postgres.Sql;
// deno-lint-ignore no-explicit-any
type Param = any;

/** A {@linkcode Store} on PostgreSQL. */
export class PostgresStore implements Store {
  #sql: Sql;
  #pending: PendingAppend[] = [];
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  /** Set by close(): later appends (frames still in a socket's line at shutdown) fail at once, with no timer. */
  #closed = false;
  #flushing: Promise<void> = Promise.resolve();

  private constructor(sql: Sql) {
    this.#sql = sql;
  }

  /** Connects and applies migrations (under an advisory lock, so concurrent starts apply them once). */
  static async open(url: string): Promise<PostgresStore> {
    const sql = postgres(url, { max: 10, onnotice: () => {}, connect_timeout: 10, idle_timeout: 60 });
    const store = new PostgresStore(sql);
    await store.#migrate();
    return store;
  }

  async #migrate(): Promise<void> {
    await this.#sql.begin(async (tx) => {
      await tx.unsafe("SELECT pg_advisory_xact_lock(727274)");
      await tx.unsafe(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
      );
      const applied = new Set(
        (await tx.unsafe("SELECT version FROM schema_migrations")).map((r) => Number(r.version)),
      );
      for (const m of MIGRATIONS) {
        if (applied.has(m.version)) continue;
        for (const statement of m.statements) await tx.unsafe(statement);
        await tx.unsafe("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", [
          m.version,
          m.name,
          Date.now(),
        ]);
      }
    });
  }

  #q(text: string, params: Param[] = []) {
    return this.#sql.unsafe(text, params);
  }

  async #one(text: string, params: Param[] = []) {
    return (await this.#q(text, params))[0];
  }

  append(stream: string, message: NewMessage): Promise<StoredMessage> {
    return this.#enqueue(stream, message);
  }

  async nextSeq(stream: string): Promise<number> {
    return (await this.#enqueue(stream, undefined)).seq;
  }

  #enqueue(stream: string, message: NewMessage | undefined): Promise<StoredMessage> {
    const refused = this.#closed ? "The store is closed" : unstorable(stream, message);
    if (refused) return Promise.reject(new Error(refused));
    return new Promise((resolve, reject) => {
      this.#pending.push({ stream, message, resolve, reject });
      this.#flushTimer ??= setTimeout(() => {
        this.#flushTimer = undefined;
        // One batch at a time keeps per-stream order.
        this.#flushing = this.#flushing.then(() => this.#flush());
      }, 0);
    });
  }

  /**
   * Commits every pending append in one transaction. When that fails, each append is committed on its own (in
   * order), so a row the database refuses fails alone and never its neighbours.
   */
  async #flush(): Promise<void> {
    const batch = this.#pending;
    this.#pending = [];
    if (batch.length === 0) return;
    let results: StoredMessage[];
    try {
      results = await this.#commit(batch);
    } catch (err) {
      if (batch.length === 1) return batch[0].reject(err);
      for (const p of batch) {
        try {
          p.resolve((await this.#commit([p]))[0]);
        } catch (err) {
          p.reject(err);
        }
      }
      return;
    }
    batch.forEach((p, i) => p.resolve(results[i]));
  }

  #commit(batch: PendingAppend[]): Promise<StoredMessage[]> {
    return this.#sql.begin(async (tx) => {
      const now = Date.now();
      // Resends: one lookup for every client id in the batch. Two instances storing the same resend at once
      // collide on the unique index; the batch then retries row by row and the second one finds the first.
      const earlier = new Map<string, StoredMessage>();
      const withIds = batch.filter((p) => p.message?.clientMsgId);
      if (withIds.length > 0) {
        const found = await tx.unsafe(
          `SELECT m.* FROM messages m JOIN unnest($1::text[], $2::text[]) AS k(stream, cid)
           ON m.stream = k.stream AND m.client_msg_id = k.cid`,
          [withIds.map((p) => p.stream), withIds.map((p) => p.message!.clientMsgId!)],
        );
        for (const r of found) earlier.set(clientKey(r.stream, r.client_msg_id), toMessage(r));
      }
      // One head update per stream reserves a block of seqs (the row lock orders instances), and one
      // multi-row INSERT stores the batch: a few round trips per batch instead of two per message.
      const counts = new Map<string, number>();
      const fresh: boolean[] = [];
      const seen = new Set<string>();
      for (const p of batch) {
        const cid = p.message?.clientMsgId;
        const key = cid ? clientKey(p.stream, cid) : "";
        const isNew = !cid || (!earlier.has(key) && !seen.has(key));
        if (cid) seen.add(key);
        fresh.push(isNew);
        if (isNew) counts.set(p.stream, (counts.get(p.stream) ?? 0) + 1);
      }
      const next = new Map<string, number>();
      for (const [stream, n] of counts) {
        const [head] = await tx.unsafe(
          "INSERT INTO stream_heads (stream, seq) VALUES ($1, $2) ON CONFLICT (stream) DO UPDATE SET seq = stream_heads.seq + $2 RETURNING seq",
          [stream, n],
        );
        next.set(stream, Number(head.seq) - n + 1);
      }
      const out: StoredMessage[] = [];
      const rows: Record<string, unknown>[] = [];
      batch.forEach((p, i) => {
        const m = p.message;
        const key = m?.clientMsgId ? clientKey(p.stream, m.clientMsgId) : "";
        if (!fresh[i]) {
          out.push({ ...earlier.get(key)!, duplicate: true });
          return;
        }
        const seq = next.get(p.stream)!;
        next.set(p.stream, seq + 1);
        if (m) {
          rows.push({
            stream: p.stream,
            seq,
            ts: now,
            from_id: m.from.id,
            from_name: m.from.name,
            from_role: m.from.role ?? null,
            text: m.text ?? null,
            data: m.data ?? null,
            client_msg_id: m.clientMsgId ?? null,
          });
        }
        const stored = { ...(m ?? { from: { id: "", name: "" } }), stream: p.stream, seq, ts: now };
        if (key) earlier.set(key, stored);
        out.push(stored);
      });
      // Large batches go in chunks to stay under the protocol's parameter limit (65,535).
      for (let k = 0; k < rows.length; k += 5000) {
        await tx`INSERT INTO messages ${
          tx(rows.slice(k, k + 5000) as Record<string, postgres.SerializableParameter>[])
        }`;
      }
      return out;
    }) as Promise<StoredMessage[]>;
  }

  async history(stream: string, q: HistoryQuery): Promise<StoredMessage[]> {
    const before = q.before ?? Number.MAX_SAFE_INTEGER;
    if (q.after !== undefined) {
      return (await this.#q(
        "SELECT * FROM messages WHERE stream = $1 AND seq > $2 AND seq < $3 ORDER BY seq ASC LIMIT $4",
        [stream, q.after, before, q.limit],
      )).map(toMessage);
    }
    return (await this.#q(
      "SELECT * FROM messages WHERE stream = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
      [stream, before, q.limit],
    )).map(toMessage).reverse();
  }

  async prune(prefix: string, rules: { before?: number; keep?: number }): Promise<number> {
    let n = 0;
    const end = prefix + "\uffff";
    if (rules.before !== undefined) {
      n += (await this.#q("DELETE FROM messages WHERE stream >= $1 AND stream < $2 AND ts < $3", [
        prefix,
        end,
        rules.before,
      ])).count;
    }
    if (rules.keep !== undefined) {
      n += (await this.#q(
        `DELETE FROM messages WHERE stream >= $1 AND stream < $2
         AND seq <= (SELECT h.seq FROM stream_heads h WHERE h.stream = messages.stream) - $3`,
        [prefix, end, rules.keep],
      )).count;
    }
    return n;
  }

  async findByClientMsgId(stream: string, clientMsgId: string): Promise<StoredMessage | undefined> {
    const r = await this.#one("SELECT * FROM messages WHERE stream = $1 AND client_msg_id = $2 LIMIT 1", [
      stream,
      clientMsgId,
    ]);
    return r ? toMessage(r) : undefined;
  }

  async countAfter(stream: string, after: number, role: string): Promise<number> {
    const r = await this.#one(
      "SELECT COUNT(*) AS n FROM messages WHERE stream = $1 AND seq > $2 AND from_role = $3",
      [stream, after, role],
    );
    return Number(r?.n ?? 0);
  }

  async lastSeq(stream: string): Promise<number> {
    const r = await this.#one("SELECT seq FROM stream_heads WHERE stream = $1", [stream]);
    return r ? Number(r.seq) : 0;
  }

  async trim(stream: string, keep: number): Promise<void> {
    await this.#q(
      "DELETE FROM messages WHERE stream = $1 AND seq <= (SELECT seq FROM stream_heads WHERE stream = $1) - $2",
      [stream, keep],
    );
  }

  async streams(prefix: string, limit: number): Promise<StreamSummary[]> {
    const rows = await this.#q(
      `SELECT h.stream AS stream, h.seq AS seq, COALESCE((SELECT MAX(ts) FROM messages m WHERE m.stream = h.stream), 0) AS ts
       FROM stream_heads h WHERE h.stream >= $1 AND h.stream < $2 ORDER BY h.stream LIMIT $3`,
      [prefix, prefix + "\uffff", limit],
    );
    return rows.map((r) => ({ stream: String(r.stream), lastSeq: Number(r.seq), lastTs: Number(r.ts) }));
  }

  async upsertAgent(a: Omit<AgentRecord, "id" | "createdAt">): Promise<AgentRecord> {
    const r = await this.#one(
      `INSERT INTO agents (id, username, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (username) DO UPDATE SET name = EXCLUDED.name, password_hash = EXCLUDED.password_hash RETURNING *`,
      [newId(), a.username, a.name, a.passwordHash, Date.now()],
    );
    return toAgent(r);
  }

  async agentByUsername(username: string): Promise<AgentRecord | undefined> {
    const r = await this.#one("SELECT * FROM agents WHERE username = $1", [username]);
    return r ? toAgent(r) : undefined;
  }

  async agentById(id: string): Promise<AgentRecord | undefined> {
    const r = await this.#one("SELECT * FROM agents WHERE id = $1", [id]);
    return r ? toAgent(r) : undefined;
  }

  async listAgents(): Promise<AgentRecord[]> {
    return (await this.#q("SELECT * FROM agents ORDER BY username")).map(toAgent);
  }

  async removeAgent(username: string): Promise<boolean> {
    const r = await this.#one("DELETE FROM agents WHERE username = $1 RETURNING id", [username]);
    if (!r) return false;
    await this.#q("DELETE FROM agent_sessions WHERE agent_id = $1", [r.id]);
    return true;
  }

  async deleteAgentSessions(agentId: string): Promise<void> {
    await this.#q("DELETE FROM agent_sessions WHERE agent_id = $1", [agentId]);
  }

  async liveSessions(tokenHashes: readonly string[], now: number): Promise<Set<string>> {
    if (tokenHashes.length === 0) return new Set();
    const rows = await this.#q(
      "SELECT token_hash FROM agent_sessions WHERE token_hash = ANY($1::text[]) AND expires_at > $2",
      [tokenHashes, now],
    );
    return new Set(rows.map((r) => String(r.token_hash)));
  }

  async createSession(tokenHash: string, agentId: string, expiresAt: number): Promise<void> {
    await this.#q("INSERT INTO agent_sessions (token_hash, agent_id, expires_at) VALUES ($1, $2, $3)", [
      tokenHash,
      agentId,
      expiresAt,
    ]);
  }

  async sessionAgent(tokenHash: string, now: number): Promise<string | undefined> {
    const r = await this.#one(
      "SELECT agent_id FROM agent_sessions WHERE token_hash = $1 AND expires_at > $2",
      [
        tokenHash,
        now,
      ],
    );
    return r ? String(r.agent_id) : undefined;
  }

  async deleteSession(tokenHash: string): Promise<void> {
    await this.#q("DELETE FROM agent_sessions WHERE token_hash = $1", [tokenHash]);
  }

  async createVisitor(tokenHash: string): Promise<VisitorRecord> {
    await this.#q(
      "INSERT INTO visitors (id, token_hash, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
      [visitorIdFor(tokenHash), tokenHash, Date.now()],
    );
    return toVisitor(await this.#one("SELECT * FROM visitors WHERE token_hash = $1", [tokenHash]));
  }

  async visitorByToken(tokenHash: string): Promise<VisitorRecord | undefined> {
    const r = await this.#one("SELECT * FROM visitors WHERE token_hash = $1", [tokenHash]);
    return r ? toVisitor(r) : undefined;
  }

  async visitorById(id: string): Promise<VisitorRecord | undefined> {
    const r = await this.#one("SELECT * FROM visitors WHERE id = $1", [id]);
    return r ? toVisitor(r) : undefined;
  }

  async updateVisitor(id: string, profile: { name?: string; email?: string }): Promise<void> {
    if (profile.name !== undefined) {
      await this.#q("UPDATE visitors SET name = $1 WHERE id = $2", [profile.name, id]);
    }
    if (profile.email !== undefined) {
      await this.#q("UPDATE visitors SET email = $1 WHERE id = $2", [profile.email, id]);
    }
  }

  async openConversation(
    visitorId: string,
    lastAgentId: string | null,
  ): Promise<{ conversation: ConversationRecord; created: boolean }> {
    const now = Date.now();
    // The partial unique index conversations_one_open turns a second open conversation into a no-op.
    const inserted = await this.#q(
      `INSERT INTO conversations (id, visitor_id, status, last_agent_id, created_at, updated_at)
       VALUES ($1, $2, 'queued', $3, $4, $5) ON CONFLICT DO NOTHING RETURNING *`,
      [newId(), visitorId, lastAgentId, now, now],
    );
    if (inserted[0]) return { conversation: toConversation(inserted[0]), created: true };
    const r = await this.#one("SELECT * FROM conversations WHERE visitor_id = $1 AND status <> 'closed'", [
      visitorId,
    ]);
    // Closed between the insert and the read: try again.
    return r
      ? { conversation: toConversation(r), created: false }
      : this.openConversation(visitorId, lastAgentId);
  }

  async conversation(id: string): Promise<ConversationRecord | undefined> {
    const r = await this.#one("SELECT * FROM conversations WHERE id = $1", [id]);
    return r ? toConversation(r) : undefined;
  }

  async openConversationOf(visitorId: string): Promise<ConversationRecord | undefined> {
    const r = await this.#one(
      "SELECT * FROM conversations WHERE visitor_id = $1 AND status <> 'closed' ORDER BY created_at DESC LIMIT 1",
      [visitorId],
    );
    return r ? toConversation(r) : undefined;
  }

  async latestConversationOf(visitorId: string): Promise<ConversationRecord | undefined> {
    const r = await this.#one(
      "SELECT * FROM conversations WHERE visitor_id = $1 ORDER BY created_at DESC LIMIT 1",
      [visitorId],
    );
    return r ? toConversation(r) : undefined;
  }

  async conversations(f: { status?: ConversationStatus; agentId?: string; limit: number }): Promise<
    ConversationRecord[]
  > {
    return (await this.#q(
      `SELECT * FROM conversations WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR agent_id = $2)
       ORDER BY created_at ASC LIMIT $3`,
      [f.status ?? null, f.agentId ?? null, f.limit],
    )).map(toConversation);
  }

  async queuedConversations(limit: number): Promise<ConversationRecord[]> {
    return (await this.#q(
      `SELECT c.* FROM conversations c JOIN stream_heads h ON h.stream = 'conv:' || c.id
       WHERE c.status = 'queued' AND h.seq > 0 ORDER BY c.created_at ASC LIMIT $1`,
      [limit],
    )).map(toConversation);
  }

  async assignConversation(
    id: string,
    agentId: string,
    expect: { status: ConversationStatus; agentId?: string | null },
  ): Promise<ConversationRecord | undefined> {
    const now = Date.now();
    const r = await this.#one(
      `UPDATE conversations SET status = 'assigned', agent_id = $1, last_agent_id = $1, assigned_at = $2, updated_at = $2
       WHERE id = $3 AND status = $4 AND ($5 = 0 OR agent_id IS NOT DISTINCT FROM $6) RETURNING *`,
      [agentId, now, id, expect.status, expect.agentId === undefined ? 0 : 1, expect.agentId ?? null],
    );
    return r ? toConversation(r) : undefined;
  }

  async requeueConversation(id: string, agentId: string): Promise<ConversationRecord | undefined> {
    const r = await this.#one(
      `UPDATE conversations SET status = 'queued', agent_id = NULL, updated_at = $1
       WHERE id = $2 AND status = 'assigned' AND agent_id = $3 RETURNING *`,
      [Date.now(), id, agentId],
    );
    return r ? toConversation(r) : undefined;
  }

  async closeConversation(id: string): Promise<ConversationRecord | undefined> {
    const now = Date.now();
    const r = await this.#one(
      "UPDATE conversations SET status = 'closed', closed_at = $1, updated_at = $1 WHERE id = $2 AND status <> 'closed' RETURNING *",
      [now, id],
    );
    return r ? toConversation(r) : undefined;
  }

  async rateConversation(id: string, rating: number, comment: string | null): Promise<void> {
    await this.#q("UPDATE conversations SET rating = $1, rating_comment = $2 WHERE id = $3", [
      rating,
      comment,
      id,
    ]);
  }

  async markRead(id: string, side: "visitor" | "agent", upTo: number): Promise<void> {
    const col = side === "visitor" ? "visitor_read_seq" : "agent_read_seq";
    await this.#q(`UPDATE conversations SET ${col} = GREATEST(${col}, $1) WHERE id = $2`, [upTo, id]);
  }

  async createSchedule(s: Omit<ScheduleRecord, "id" | "createdAt" | "lastFiredAt">): Promise<ScheduleRecord> {
    const r = await this.#one(
      `INSERT INTO schedules (id, topic, data, next_at, every_ms, cron, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
       RETURNING *`,
      [newId(), s.topic, s.data, s.nextAt, s.everyMs, s.cron, Date.now()],
    );
    return toSchedule(r);
  }

  async listSchedules(): Promise<ScheduleRecord[]> {
    return (await this.#q("SELECT * FROM schedules ORDER BY created_at")).map(toSchedule);
  }

  async deleteSchedule(id: string): Promise<boolean> {
    return (await this.#q("DELETE FROM schedules WHERE id = $1 RETURNING id", [id])).length === 1;
  }

  async dueSchedules(now: number): Promise<ScheduleRecord[]> {
    return (await this.#q(
      "SELECT * FROM schedules WHERE next_at IS NOT NULL AND next_at <= $1 ORDER BY next_at",
      [
        now,
      ],
    )).map(toSchedule);
  }

  async claimSchedule(
    id: string,
    expectedNextAt: number,
    nextAt: number | null,
    firedAt: number,
  ): Promise<boolean> {
    const rows = await this.#q(
      "UPDATE schedules SET next_at = $1, last_fired_at = $2 WHERE id = $3 AND next_at = $4 RETURNING id",
      [nextAt, firedAt, id, expectedNextAt],
    );
    return rows.length === 1;
  }

  async secret(name: string): Promise<string> {
    await this.#q("INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", [
      name,
      newSecret(),
    ]);
    return String((await this.#one("SELECT value FROM secrets WHERE name = $1", [name])).value);
  }

  async ready(): Promise<boolean> {
    try {
      await this.#q("SELECT 1");
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#flushTimer !== undefined) {
      clearTimeout(this.#flushTimer);
      this.#flushTimer = undefined;
      this.#flushing = this.#flushing.then(() => this.#flush());
    }
    await this.#flushing;
    await this.#sql.end({ timeout: 2 });
  }
}
