/**
 * The embedded store: SQLite through Deno's built-in `node:sqlite`, one file in the data dir, WAL mode.
 *
 * Appends are group-committed: every append made in one event-loop turn goes into one transaction, and each
 * promise resolves only after that transaction commits, so a message is durable before anyone sees it. With
 * `synchronous=NORMAL` in WAL mode a commit survives a process crash (`kill -9`); see docs/deploy.md for power loss.
 *
 * @module
 */
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
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

/** How often the WAL is checkpointed. */
const CHECKPOINT_MS = 250;

/** A {@linkcode Store} on one SQLite file. */
export class SqliteStore implements Store {
  #db: DatabaseSync;
  #stmts = new Map<string, StatementSync>();
  #pending: PendingAppend[] = [];
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  /** Set by close(): later appends (frames still in a socket's line at shutdown) fail at once, with no timer. */
  #closed = false;
  #checkpointTimer: ReturnType<typeof setInterval> | undefined;

  private constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /** Opens (creating when needed) `path` and applies migrations. Use `":memory:"` for a throwaway store. */
  static open(path: string): SqliteStore {
    const db = new DatabaseSync(path);
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    db.exec("PRAGMA busy_timeout = 5000");
    // Checkpoints run inside COMMIT otherwise, stalling the event loop for tens of ms now and then; small
    // passive checkpoints on a timer keep each pause short.
    db.exec("PRAGMA wal_autocheckpoint = 0");
    db.exec("PRAGMA foreign_keys = ON");
    const store = new SqliteStore(db);
    store.#migrate();
    store.#checkpointTimer = setInterval(() => {
      try {
        db.exec("PRAGMA wal_checkpoint(PASSIVE)");
      } catch {
        // busy or closed: the next tick tries again
      }
    }, CHECKPOINT_MS);
    return store;
  }

  #migrate(): void {
    this.#db.exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    );
    const applied = new Set(
      this.#db.prepare("SELECT version FROM schema_migrations").all().map((r) => Number(r.version)),
    );
    for (const m of MIGRATIONS) {
      if (applied.has(m.version)) continue;
      this.#db.exec("BEGIN IMMEDIATE");
      try {
        for (const sql of m.statements) this.#db.exec(sql);
        this.#db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)").run(
          m.version,
          m.name,
          Date.now(),
        );
        this.#db.exec("COMMIT");
      } catch (err) {
        this.#db.exec("ROLLBACK");
        throw err;
      }
    }
  }

  #stmt(sql: string): StatementSync {
    let s = this.#stmts.get(sql);
    if (!s) {
      s = this.#db.prepare(sql);
      this.#stmts.set(sql, s);
    }
    return s;
  }

  #all(sql: string, ...params: SQLInputValue[]) {
    return this.#stmt(sql).all(...params);
  }
  #get(sql: string, ...params: SQLInputValue[]) {
    return this.#stmt(sql).get(...params);
  }
  #run(sql: string, ...params: SQLInputValue[]) {
    return this.#stmt(sql).run(...params);
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
      if (this.#flushTimer === undefined) this.#flushTimer = setTimeout(() => this.#flush(), 0);
    });
  }

  /**
   * Commits every pending append in one transaction. When that fails, each append is committed on its own, so
   * the one the database refuses fails alone.
   */
  #flush(): void {
    this.#flushTimer = undefined;
    const batch = this.#pending;
    this.#pending = [];
    if (batch.length === 0) return;
    let results: StoredMessage[];
    try {
      results = this.#commit(batch);
    } catch (err) {
      if (batch.length === 1) return batch[0].reject(err);
      for (const p of batch) {
        try {
          p.resolve(this.#commit([p])[0]);
        } catch (err) {
          p.reject(err);
        }
      }
      return;
    }
    batch.forEach((p, i) => p.resolve(results[i]));
  }

  #commit(batch: PendingAppend[]): StoredMessage[] {
    const results: StoredMessage[] = [];
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const now = Date.now();
      // Seqs are numbered here, under the write lock: one head read and one head write per stream per batch.
      const heads = new Map<string, number>();
      const seen = new Map<string, StoredMessage>();
      for (const p of batch) {
        const m = p.message;
        if (m?.clientMsgId) {
          const key = clientKey(p.stream, m.clientMsgId);
          let earlier = seen.get(key);
          if (!earlier) {
            const row = this.#get(
              "SELECT * FROM messages WHERE stream = ? AND client_msg_id = ?",
              p.stream,
              m.clientMsgId,
            );
            if (row) earlier = toMessage(row);
          }
          if (earlier) {
            results.push({ ...earlier, duplicate: true });
            continue;
          }
        }
        let head = heads.get(p.stream);
        if (head === undefined) {
          const row = this.#get("SELECT seq FROM stream_heads WHERE stream = ?", p.stream);
          head = row ? Number(row.seq) : 0;
        }
        const seq = head + 1;
        heads.set(p.stream, seq);
        if (m) {
          this.#run(
            "INSERT INTO messages (stream, seq, ts, from_id, from_name, from_role, text, data, client_msg_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            p.stream,
            seq,
            now,
            m.from.id,
            m.from.name,
            m.from.role ?? null,
            m.text ?? null,
            m.data ?? null,
            m.clientMsgId ?? null,
          );
        }
        const stored = { ...(m ?? { from: { id: "", name: "" } }), stream: p.stream, seq, ts: now };
        if (m?.clientMsgId) seen.set(clientKey(p.stream, m.clientMsgId), stored);
        results.push(stored);
      }
      for (const [stream, seq] of heads) {
        this.#run(
          "INSERT INTO stream_heads (stream, seq) VALUES (?, ?) ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq",
          stream,
          seq,
        );
      }
      this.#db.exec("COMMIT");
    } catch (err) {
      try {
        this.#db.exec("ROLLBACK");
      } catch {
        // no transaction left to roll back
      }
      throw err;
    }
    return results;
  }

  history(stream: string, q: HistoryQuery): Promise<StoredMessage[]> {
    let rows;
    if (q.after !== undefined) {
      rows = this.#all(
        "SELECT * FROM messages WHERE stream = ? AND seq > ? AND seq < ? ORDER BY seq ASC LIMIT ?",
        stream,
        q.after,
        q.before ?? Number.MAX_SAFE_INTEGER,
        q.limit,
      );
    } else {
      rows = this.#all(
        "SELECT * FROM messages WHERE stream = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
        stream,
        q.before ?? Number.MAX_SAFE_INTEGER,
        q.limit,
      ).reverse();
    }
    return Promise.resolve(rows.map(toMessage));
  }

  prune(prefix: string, rules: { before?: number; keep?: number }): Promise<number> {
    let n = 0;
    const end = prefix + "\uffff";
    if (rules.before !== undefined) {
      n += Number(
        this.#run(
          "DELETE FROM messages WHERE stream >= ? AND stream < ? AND ts < ?",
          prefix,
          end,
          rules.before,
        )
          .changes,
      );
    }
    if (rules.keep !== undefined) {
      n += Number(
        this.#run(
          `DELETE FROM messages WHERE stream >= ? AND stream < ?
           AND seq <= (SELECT h.seq FROM stream_heads h WHERE h.stream = messages.stream) - ?`,
          prefix,
          end,
          rules.keep,
        ).changes,
      );
    }
    return Promise.resolve(n);
  }

  findByClientMsgId(stream: string, clientMsgId: string): Promise<StoredMessage | undefined> {
    const r = this.#get(
      "SELECT * FROM messages WHERE stream = ? AND client_msg_id = ? LIMIT 1",
      stream,
      clientMsgId,
    );
    return Promise.resolve(r ? toMessage(r) : undefined);
  }

  countAfter(stream: string, after: number, role: string): Promise<number> {
    const r = this.#get(
      "SELECT COUNT(*) AS n FROM messages WHERE stream = ? AND seq > ? AND from_role = ?",
      stream,
      after,
      role,
    );
    return Promise.resolve(Number(r?.n ?? 0));
  }

  lastSeq(stream: string): Promise<number> {
    const row = this.#get("SELECT seq FROM stream_heads WHERE stream = ?", stream);
    return Promise.resolve(row ? Number(row.seq) : 0);
  }

  trim(stream: string, keep: number): Promise<void> {
    this.#run(
      "DELETE FROM messages WHERE stream = ? AND seq <= (SELECT seq FROM stream_heads WHERE stream = ?) - ?",
      stream,
      stream,
      keep,
    );
    return Promise.resolve();
  }

  streams(prefix: string, limit: number): Promise<StreamSummary[]> {
    const rows = this.#all(
      `SELECT h.stream AS stream, h.seq AS seq, COALESCE((SELECT MAX(ts) FROM messages m WHERE m.stream = h.stream), 0) AS ts
       FROM stream_heads h WHERE h.stream >= ? AND h.stream < ? ORDER BY h.stream LIMIT ?`,
      prefix,
      prefix + "\uffff",
      limit,
    );
    return Promise.resolve(
      rows.map((r) => ({ stream: String(r.stream), lastSeq: Number(r.seq), lastTs: Number(r.ts) })),
    );
  }

  upsertAgent(a: Omit<AgentRecord, "id" | "createdAt">): Promise<AgentRecord> {
    const existing = this.#get("SELECT * FROM agents WHERE username = ?", a.username);
    if (existing) {
      this.#run(
        "UPDATE agents SET name = ?, password_hash = ? WHERE username = ?",
        a.name,
        a.passwordHash,
        a.username,
      );
    } else {
      this.#run(
        "INSERT INTO agents (id, username, name, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
        newId(),
        a.username,
        a.name,
        a.passwordHash,
        Date.now(),
      );
    }
    return Promise.resolve(toAgent(this.#get("SELECT * FROM agents WHERE username = ?", a.username)!));
  }

  agentByUsername(username: string): Promise<AgentRecord | undefined> {
    const r = this.#get("SELECT * FROM agents WHERE username = ?", username);
    return Promise.resolve(r ? toAgent(r) : undefined);
  }

  agentById(id: string): Promise<AgentRecord | undefined> {
    const r = this.#get("SELECT * FROM agents WHERE id = ?", id);
    return Promise.resolve(r ? toAgent(r) : undefined);
  }

  listAgents(): Promise<AgentRecord[]> {
    return Promise.resolve(this.#all("SELECT * FROM agents ORDER BY username").map(toAgent));
  }

  removeAgent(username: string): Promise<boolean> {
    const agent = this.#get("SELECT id FROM agents WHERE username = ?", username);
    if (!agent) return Promise.resolve(false);
    this.#run("DELETE FROM agent_sessions WHERE agent_id = ?", agent.id as string);
    this.#run("DELETE FROM agents WHERE id = ?", agent.id as string);
    return Promise.resolve(true);
  }

  deleteAgentSessions(agentId: string): Promise<void> {
    this.#run("DELETE FROM agent_sessions WHERE agent_id = ?", agentId);
    return Promise.resolve();
  }

  liveSessions(tokenHashes: readonly string[], now: number): Promise<Set<string>> {
    const live = new Set<string>();
    for (const hash of tokenHashes) {
      if (
        this.#get("SELECT 1 AS ok FROM agent_sessions WHERE token_hash = ? AND expires_at > ?", hash, now)
      ) {
        live.add(hash);
      }
    }
    return Promise.resolve(live);
  }

  createSession(tokenHash: string, agentId: string, expiresAt: number): Promise<void> {
    this.#run(
      "INSERT INTO agent_sessions (token_hash, agent_id, expires_at) VALUES (?, ?, ?)",
      tokenHash,
      agentId,
      expiresAt,
    );
    return Promise.resolve();
  }

  sessionAgent(tokenHash: string, now: number): Promise<string | undefined> {
    const r = this.#get(
      "SELECT agent_id FROM agent_sessions WHERE token_hash = ? AND expires_at > ?",
      tokenHash,
      now,
    );
    return Promise.resolve(r ? String(r.agent_id) : undefined);
  }

  deleteSession(tokenHash: string): Promise<void> {
    this.#run("DELETE FROM agent_sessions WHERE token_hash = ?", tokenHash);
    return Promise.resolve();
  }

  createVisitor(tokenHash: string): Promise<VisitorRecord> {
    this.#run(
      "INSERT INTO visitors (id, token_hash, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
      visitorIdFor(tokenHash),
      tokenHash,
      Date.now(),
    );
    return Promise.resolve(toVisitor(this.#get("SELECT * FROM visitors WHERE token_hash = ?", tokenHash)!));
  }

  visitorByToken(tokenHash: string): Promise<VisitorRecord | undefined> {
    const r = this.#get("SELECT * FROM visitors WHERE token_hash = ?", tokenHash);
    return Promise.resolve(r ? toVisitor(r) : undefined);
  }

  visitorById(id: string): Promise<VisitorRecord | undefined> {
    const r = this.#get("SELECT * FROM visitors WHERE id = ?", id);
    return Promise.resolve(r ? toVisitor(r) : undefined);
  }

  updateVisitor(id: string, profile: { name?: string; email?: string }): Promise<void> {
    if (profile.name !== undefined) this.#run("UPDATE visitors SET name = ? WHERE id = ?", profile.name, id);
    if (profile.email !== undefined) {
      this.#run("UPDATE visitors SET email = ? WHERE id = ?", profile.email, id);
    }
    return Promise.resolve();
  }

  openConversation(
    visitorId: string,
    lastAgentId: string | null,
  ): Promise<{ conversation: ConversationRecord; created: boolean }> {
    const now = Date.now();
    // The partial unique index conversations_one_open turns a second open conversation into a no-op.
    const created = Number(
      this.#run(
        `INSERT INTO conversations (id, visitor_id, status, last_agent_id, created_at, updated_at)
         VALUES (?, ?, 'queued', ?, ?, ?) ON CONFLICT DO NOTHING`,
        newId(),
        visitorId,
        lastAgentId,
        now,
        now,
      ).changes,
    ) === 1;
    const r = this.#get(
      "SELECT * FROM conversations WHERE visitor_id = ? AND status <> 'closed'",
      visitorId,
    )!;
    return Promise.resolve({ conversation: toConversation(r), created });
  }

  conversation(id: string): Promise<ConversationRecord | undefined> {
    const r = this.#get("SELECT * FROM conversations WHERE id = ?", id);
    return Promise.resolve(r ? toConversation(r) : undefined);
  }

  openConversationOf(visitorId: string): Promise<ConversationRecord | undefined> {
    const r = this.#get(
      "SELECT * FROM conversations WHERE visitor_id = ? AND status <> 'closed' ORDER BY created_at DESC LIMIT 1",
      visitorId,
    );
    return Promise.resolve(r ? toConversation(r) : undefined);
  }

  latestConversationOf(visitorId: string): Promise<ConversationRecord | undefined> {
    const r = this.#get(
      "SELECT * FROM conversations WHERE visitor_id = ? ORDER BY created_at DESC LIMIT 1",
      visitorId,
    );
    return Promise.resolve(r ? toConversation(r) : undefined);
  }

  conversations(
    f: { status?: ConversationStatus; agentId?: string; limit: number },
  ): Promise<ConversationRecord[]> {
    const rows = this.#all(
      `SELECT * FROM conversations WHERE (? IS NULL OR status = ?) AND (? IS NULL OR agent_id = ?)
       ORDER BY created_at ASC LIMIT ?`,
      f.status ?? null,
      f.status ?? null,
      f.agentId ?? null,
      f.agentId ?? null,
      f.limit,
    );
    return Promise.resolve(rows.map(toConversation));
  }

  queuedConversations(limit: number): Promise<ConversationRecord[]> {
    const rows = this.#all(
      `SELECT c.* FROM conversations c JOIN stream_heads h ON h.stream = 'conv:' || c.id
       WHERE c.status = 'queued' AND h.seq > 0 ORDER BY c.created_at ASC LIMIT ?`,
      limit,
    );
    return Promise.resolve(rows.map(toConversation));
  }

  assignConversation(
    id: string,
    agentId: string,
    expect: { status: ConversationStatus; agentId?: string | null },
  ): Promise<ConversationRecord | undefined> {
    const now = Date.now();
    const result = this.#run(
      `UPDATE conversations SET status = 'assigned', agent_id = ?, last_agent_id = ?, assigned_at = ?, updated_at = ?
       WHERE id = ? AND status = ? AND (? = 0 OR agent_id IS ?)`,
      agentId,
      agentId,
      now,
      now,
      id,
      expect.status,
      expect.agentId === undefined ? 0 : 1,
      expect.agentId ?? null,
    );
    if (Number(result.changes) !== 1) return Promise.resolve(undefined);
    return this.conversation(id);
  }

  requeueConversation(id: string, agentId: string): Promise<ConversationRecord | undefined> {
    const result = this.#run(
      "UPDATE conversations SET status = 'queued', agent_id = NULL, updated_at = ? WHERE id = ? AND status = 'assigned' AND agent_id = ?",
      Date.now(),
      id,
      agentId,
    );
    if (Number(result.changes) !== 1) return Promise.resolve(undefined);
    return this.conversation(id);
  }

  closeConversation(id: string): Promise<ConversationRecord | undefined> {
    const now = Date.now();
    const result = this.#run(
      "UPDATE conversations SET status = 'closed', closed_at = ?, updated_at = ? WHERE id = ? AND status <> 'closed'",
      now,
      now,
      id,
    );
    if (Number(result.changes) !== 1) return Promise.resolve(undefined);
    return this.conversation(id);
  }

  rateConversation(id: string, rating: number, comment: string | null): Promise<void> {
    this.#run("UPDATE conversations SET rating = ?, rating_comment = ? WHERE id = ?", rating, comment, id);
    return Promise.resolve();
  }

  markRead(id: string, side: "visitor" | "agent", upTo: number): Promise<void> {
    const col = side === "visitor" ? "visitor_read_seq" : "agent_read_seq";
    this.#run(`UPDATE conversations SET ${col} = MAX(${col}, ?) WHERE id = ?`, upTo, id);
    return Promise.resolve();
  }

  createSchedule(s: Omit<ScheduleRecord, "id" | "createdAt" | "lastFiredAt">): Promise<ScheduleRecord> {
    const id = newId();
    this.#run(
      "INSERT INTO schedules (id, topic, data, next_at, every_ms, cron, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
      id,
      s.topic,
      s.data,
      s.nextAt,
      s.everyMs,
      s.cron,
      Date.now(),
    );
    return Promise.resolve(toSchedule(this.#get("SELECT * FROM schedules WHERE id = ?", id)!));
  }

  listSchedules(): Promise<ScheduleRecord[]> {
    return Promise.resolve(this.#all("SELECT * FROM schedules ORDER BY created_at").map(toSchedule));
  }

  deleteSchedule(id: string): Promise<boolean> {
    return Promise.resolve(Number(this.#run("DELETE FROM schedules WHERE id = ?", id).changes) === 1);
  }

  dueSchedules(now: number): Promise<ScheduleRecord[]> {
    return Promise.resolve(
      this.#all("SELECT * FROM schedules WHERE next_at IS NOT NULL AND next_at <= ? ORDER BY next_at", now)
        .map(
          toSchedule,
        ),
    );
  }

  claimSchedule(
    id: string,
    expectedNextAt: number,
    nextAt: number | null,
    firedAt: number,
  ): Promise<boolean> {
    const r = this.#run(
      "UPDATE schedules SET next_at = ?, last_fired_at = ? WHERE id = ? AND next_at = ?",
      nextAt,
      firedAt,
      id,
      expectedNextAt,
    );
    return Promise.resolve(Number(r.changes) === 1);
  }

  secret(name: string): Promise<string> {
    this.#run(
      "INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
      name,
      newSecret(),
    );
    return Promise.resolve(String(this.#get("SELECT value FROM secrets WHERE name = ?", name)!.value));
  }

  ready(): Promise<boolean> {
    try {
      this.#get("SELECT 1 AS ok");
      return Promise.resolve(true);
    } catch {
      return Promise.resolve(false);
    }
  }

  close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#checkpointTimer);
    if (this.#flushTimer !== undefined) {
      clearTimeout(this.#flushTimer);
      this.#flush();
    }
    this.#db.close();
    return Promise.resolve();
  }
}
