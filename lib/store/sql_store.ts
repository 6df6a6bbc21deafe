/**
 * The one SQL {@linkcode Store}: every statement, the migration loop, the row mapping and the queue of the group
 * commit, written once over a {@linkcode SqlDriver}. What really differs between databases lives in the drivers:
 * `sqlite.ts` (the embedded default: pragmas, WAL checkpoints, a synchronous group commit) and `postgres.ts`
 * (cluster mode: the migration lock, a group commit in a few round trips). `group_commit.ts` holds what their
 * group commits share.
 *
 * Statements use `?` placeholders and SQL both databases accept (`CAST(? AS TEXT)`, `IS NOT DISTINCT FROM`,
 * `ON CONFLICT`, `RETURNING`, `IN (?, …)` built from a list).
 *
 * @module
 */
import { clearImmediate, setImmediate } from "node:timers";
import { MIGRATIONS } from "./migrations.ts";
import {
  type AppendRequest,
  deliveryParams,
  FIND_BY_CLIENT_MSG_ID,
  INSERT_DELIVERY,
} from "./group_commit.ts";
import type { Row, SqlDriver, SqlRunner, SqlValue } from "./sql_driver.ts";
import { indexTerms, INSERT_SEARCH, MATCH_CONDITION, matchExpression } from "./search.ts";
import type {
  AgentRecord,
  Attachment,
  AuditEntry,
  CannedReply,
  ConversationRecord,
  ConversationStatus,
  Deleted,
  DeliveryAttempt,
  Emit,
  HistoryQuery,
  NewMessage,
  ReportRow,
  ScheduleRecord,
  Store,
  StoredMessage,
  StreamSummary,
  UploadRecord,
  VisitorExport,
  VisitorProfile,
  VisitorRecord,
  WebhookDelivery,
} from "./store.ts";
import {
  newId,
  newSecret,
  toAgent,
  toAudit,
  toCanned,
  toConversation,
  toDelivery,
  toMessage,
  toSchedule,
  toUpload,
  toVisitor,
  unstorable,
  visitorIdFor,
} from "./rows.ts";

/** An append waiting for the next group commit (appends made in one event-loop turn share one). */
interface PendingAppend extends AppendRequest {
  resolve: (m: StoredMessage) => void;
  reject: (err: unknown) => void;
}

const DELETE_AGENT_SESSIONS = "DELETE FROM agent_sessions WHERE agent_id = ?";
const STREAM_HEAD = "SELECT seq FROM stream_heads WHERE stream = ?";

/** How many values one `IN (?, …)` list takes: far below both databases' parameter limits. */
const IN_LIST_MAX = 512;

/**
 * `?, ?, …` for a list, padded (with its last value) to a power of two, so that drivers that cache statements
 * by their text see a handful of lists, not one per length. Repeats do not change what `IN` matches.
 */
function inList(values: readonly string[]): { marks: string; params: string[] } {
  let size = 1;
  while (size < values.length) size *= 2;
  const params = [...values];
  while (params.length < size) params.push(values[values.length - 1]);
  return { marks: params.map(() => "?").join(", "), params };
}

/** A {@linkcode Store} on a SQL database, through its {@linkcode SqlDriver}. */
/** Conversations one purge transaction deletes. */
const PURGE_BATCH = 200;

/** `?, ?, ?` for `n` values. */
const marks = (n: number) => Array(n).fill("?").join(", ");

/**
 * Deletes conversations with everything that holds their content: messages, notes, stream heads, search rows,
 * uploads, holders, and the webhook deliveries whose body names them (or one of `alsoNamed`, a visitor id).
 */
async function dropConversations(tx: SqlRunner, ids: string[], alsoNamed: string[]): Promise<Deleted> {
  const deleted: Deleted = { conversations: 0, messages: 0, uploads: 0, visitors: 0 };
  const named = [...ids, ...alsoNamed];
  if (named.length > 0) {
    // Ids are random and long, so a body that contains one is about it.
    const like = named.map(() => "body LIKE ? ESCAPE '!'").join(" OR ");
    const patterns = named.map((id) => `%${id.replace(/[!%_]/g, "!$&")}%`);
    await tx.run(
      `DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE ${like})`,
      patterns,
    );
    await tx.run(`DELETE FROM webhook_deliveries WHERE ${like}`, patterns);
  }
  if (ids.length === 0) return deleted;
  const streams = ids.flatMap((id) => [`conv:${id}`, `notes:${id}`]);
  deleted.messages = await tx.run(`DELETE FROM messages WHERE stream IN (${marks(streams.length)})`, streams);
  await tx.run(`DELETE FROM stream_heads WHERE stream IN (${marks(streams.length)})`, streams);
  await tx.run(`DELETE FROM message_search WHERE conversation_id IN (${marks(ids.length)})`, ids);
  deleted.uploads = await tx.run(`DELETE FROM uploads WHERE stream IN (${marks(streams.length)})`, streams);
  await tx.run(`DELETE FROM conversation_holders WHERE conversation_id IN (${marks(ids.length)})`, ids);
  deleted.conversations = await tx.run(`DELETE FROM conversations WHERE id IN (${marks(ids.length)})`, ids);
  return deleted;
}

export class SqlStore implements Store {
  #driver: SqlDriver;
  #pending: PendingAppend[] = [];
  #lastAuditAt = 0;
  /**
   * The group commit's trigger: an immediate, which runs once this turn's I/O callbacks are done, so every append
   * they queued goes in one commit. A `setTimeout(…, 0)` waited ~2 ms each time (Deno's timers), and with a chain
   * of commits that was the median latency of a chat message.
   */
  #flushTimer: ReturnType<typeof setImmediate> | undefined;
  /** Set by close(): later appends (frames still in a socket's line at shutdown) fail at once, with no timer. */
  #closed = false;
  /** The group commit in progress: one at a time keeps per-stream order. */
  #flushing: Promise<void> = Promise.resolve();

  /** A store on `driver`; the openers ({@linkcode SqlStore.migrated}) apply the migrations before handing it out. */
  protected constructor(driver: SqlDriver) {
    this.#driver = driver;
  }

  /** Applies the migrations `store`'s database lacks and returns it; closes it when they fail. */
  protected static async migrated<S extends SqlStore>(store: S): Promise<S> {
    try {
      await store.#migrate();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  /** One transaction under the driver's migration lock, so concurrent starts apply each step once. */
  #migrate(): Promise<void> {
    return this.#driver.transaction(async (tx) => {
      await this.#driver.lockMigrations(tx);
      await tx.run(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
      );
      const applied = new Set(
        (await tx.query("SELECT version FROM schema_migrations")).map((r) => Number(r.version)),
      );
      for (const m of MIGRATIONS) {
        if (applied.has(m.version)) continue;
        for (const statement of m.statements) {
          const sql = typeof statement === "string" ? statement : statement[this.#driver.dialect];
          if (sql !== "") await tx.run(sql);
        }
        if (m.backfill) await this.#indexStored(tx);
        await tx.run("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", [
          m.version,
          m.name,
          Date.now(),
        ]);
      }
    });
  }

  /** Adds the support messages stored before the word index existed to it, a page at a time. */
  async #indexStored(tx: SqlRunner): Promise<void> {
    const dialect = this.#driver.dialect;
    for (let stream = "conv:", seq = 0;;) {
      const page = await tx.query(
        `SELECT stream, seq, text FROM messages
         WHERE ((stream = ? AND seq > ?) OR stream > ?) AND stream < 'conv;' AND text IS NOT NULL
         ORDER BY stream, seq LIMIT 500`,
        [stream, seq, stream],
      );
      for (const r of page) {
        await tx.run(INSERT_SEARCH[dialect], [
          String(r.stream).slice(5),
          Number(r.seq),
          indexTerms(dialect, String(r.text)),
        ]);
      }
      if (page.length < 500) return;
      stream = String(page[page.length - 1].stream);
      seq = Number(page[page.length - 1].seq);
    }
  }

  /**
   * Runs a write that returns one conversation row, and stores the events `emit` makes of it in the same
   * transaction (a change and its webhooks are committed together, or neither).
   */
  async #changeConversation(
    sql: string,
    params: readonly SqlValue[],
    emit: Emit<ConversationRecord> | undefined,
    also?: (tx: SqlRunner, c: ConversationRecord) => Promise<void>,
  ): Promise<ConversationRecord | undefined> {
    const run = async (tx: SqlRunner) => {
      const row = (await tx.query(sql, params))[0];
      if (!row) return undefined;
      const c = toConversation(row);
      if (also) await also(tx, c);
      for (const d of emit?.(c) ?? []) await tx.run(INSERT_DELIVERY, deliveryParams(d));
      return c;
    };
    return emit || also ? await this.#driver.transaction(run) : await run(this.#driver);
  }

  async #one(sql: string, params: readonly SqlValue[] = []): Promise<Row | undefined> {
    return (await this.#driver.query(sql, params))[0];
  }

  /** The first row a statement returns, as a record, or undefined. */
  async #find<T>(to: (r: Row) => T, sql: string, params: readonly SqlValue[]): Promise<T | undefined> {
    const r = await this.#one(sql, params);
    return r ? to(r) : undefined;
  }

  append(stream: string, message: NewMessage, emit?: Emit<StoredMessage>): Promise<StoredMessage> {
    return this.#enqueue(stream, message, emit);
  }

  async nextSeq(stream: string): Promise<number> {
    return (await this.#enqueue(stream, undefined)).seq;
  }

  #enqueue(
    stream: string,
    message: NewMessage | undefined,
    emit?: Emit<StoredMessage>,
  ): Promise<StoredMessage> {
    const refused = this.#closed ? "The store is closed" : unstorable(stream, message);
    if (refused) return Promise.reject(new Error(refused));
    return new Promise((resolve, reject) => {
      this.#pending.push({ stream, message, emit, resolve, reject });
      this.#flushTimer ??= setImmediate(() => {
        this.#flushTimer = undefined;
        this.#flushing = this.#flushing.then(() => this.#flush());
      });
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
      results = await this.#driver.commitAppends(batch);
    } catch (err) {
      if (batch.length === 1) return batch[0].reject(err);
      for (const p of batch) {
        try {
          p.resolve((await this.#driver.commitAppends([p]))[0]);
        } catch (err) {
          p.reject(err);
        }
      }
      return;
    }
    batch.forEach((p, i) => p.resolve(results[i]));
  }

  async history(stream: string, q: HistoryQuery): Promise<StoredMessage[]> {
    const before = q.before ?? Number.MAX_SAFE_INTEGER;
    if (q.after !== undefined) {
      return (await this.#driver.query(
        "SELECT * FROM messages WHERE stream = ? AND seq > ? AND seq < ? ORDER BY seq ASC LIMIT ?",
        [stream, q.after, before, q.limit],
      )).map(toMessage);
    }
    return (await this.#driver.query(
      "SELECT * FROM messages WHERE stream = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
      [stream, before, q.limit],
    )).map(toMessage).reverse();
  }

  async prune(prefix: string, rules: { before?: number; keep?: number }): Promise<number> {
    let n = 0;
    const end = prefix + "\uffff";
    if (rules.before !== undefined) {
      n += await this.#driver.run("DELETE FROM messages WHERE stream >= ? AND stream < ? AND ts < ?", [
        prefix,
        end,
        rules.before,
      ]);
    }
    if (rules.keep !== undefined) {
      n += await this.#driver.run(
        `DELETE FROM messages WHERE stream >= ? AND stream < ?
         AND seq <= (SELECT h.seq FROM stream_heads h WHERE h.stream = messages.stream) - ?`,
        [prefix, end, rules.keep],
      );
    }
    return n;
  }

  findByClientMsgId(stream: string, clientMsgId: string): Promise<StoredMessage | undefined> {
    return this.#find(toMessage, FIND_BY_CLIENT_MSG_ID, [stream, clientMsgId]);
  }

  async countAfter(stream: string, after: number, role: string): Promise<number> {
    const r = await this.#one(
      "SELECT COUNT(*) AS n FROM messages WHERE stream = ? AND seq > ? AND from_role = ?",
      [stream, after, role],
    );
    return Number(r?.n ?? 0);
  }

  async lastSeq(stream: string): Promise<number> {
    const r = await this.#one(STREAM_HEAD, [stream]);
    return r ? Number(r.seq) : 0;
  }

  async trim(stream: string, keep: number): Promise<void> {
    await this.#driver.run(
      `DELETE FROM messages WHERE stream = ? AND seq <= (${STREAM_HEAD}) - ?`,
      [stream, stream, keep],
    );
  }

  async streams(prefix: string, limit: number): Promise<StreamSummary[]> {
    const rows = await this.#driver.query(
      `SELECT h.stream AS stream, h.seq AS seq, COALESCE((SELECT MAX(ts) FROM messages m WHERE m.stream = h.stream), 0) AS ts
       FROM stream_heads h WHERE h.stream >= ? AND h.stream < ? ORDER BY h.stream LIMIT ?`,
      [prefix, prefix + "\uffff", limit],
    );
    return rows.map((r) => ({ stream: String(r.stream), lastSeq: Number(r.seq), lastTs: Number(r.ts) }));
  }

  async upsertAgent(
    a: Omit<AgentRecord, "id" | "createdAt" | "role" | "disabled"> & Partial<Pick<AgentRecord, "role">>,
  ): Promise<AgentRecord> {
    const r = await this.#one(
      `INSERT INTO agents (id, username, name, password_hash, created_at, role) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (username) DO UPDATE SET name = excluded.name, password_hash = excluded.password_hash,
       role = COALESCE(CAST(? AS TEXT), agents.role) RETURNING *`,
      [newId(), a.username, a.name, a.passwordHash, Date.now(), a.role ?? "agent", a.role ?? null],
    );
    return toAgent(r!);
  }

  async updateAgent(
    username: string,
    change: Partial<Pick<AgentRecord, "role" | "disabled" | "name">>,
  ): Promise<AgentRecord | undefined> {
    if (change.name !== undefined) {
      await this.#driver.run("UPDATE agents SET name = ? WHERE username = ?", [change.name, username]);
    }
    if (change.role !== undefined) {
      await this.#driver.run("UPDATE agents SET role = ? WHERE username = ?", [change.role, username]);
    }
    if (change.disabled !== undefined) {
      await this.#driver.run("UPDATE agents SET disabled = ? WHERE username = ?", [
        change.disabled ? 1 : 0,
        username,
      ]);
    }
    return this.agentByUsername(username);
  }

  async heldBy(conversationId: string, agentId: string): Promise<boolean> {
    const rows = await this.#driver.query(
      "SELECT 1 AS held FROM conversation_holders WHERE conversation_id = ? AND agent_id = ?",
      [conversationId, agentId],
    );
    return rows.length > 0;
  }

  async holders(conversationId: string): Promise<{ agentId: string; role: AgentRecord["role"] }[]> {
    return (await this.#driver.query(
      `SELECT h.agent_id, a.role FROM conversation_holders h JOIN agents a ON a.id = h.agent_id
       WHERE h.conversation_id = ? ORDER BY h.agent_id`,
      [conversationId],
    )).map((r) => ({ agentId: String(r.agent_id), role: r.role === "admin" ? "admin" : "agent" }));
  }

  agentByUsername(username: string): Promise<AgentRecord | undefined> {
    return this.#find(toAgent, "SELECT * FROM agents WHERE username = ?", [username]);
  }

  agentById(id: string): Promise<AgentRecord | undefined> {
    return this.#find(toAgent, "SELECT * FROM agents WHERE id = ?", [id]);
  }

  async listAgents(): Promise<AgentRecord[]> {
    return (await this.#driver.query("SELECT * FROM agents ORDER BY username")).map(toAgent);
  }

  /** The agent and its sessions go in one transaction: neither outlives the other. */
  removeAgent(username: string): Promise<boolean> {
    return this.#driver.transaction(async (tx) => {
      const [agent] = await tx.query("DELETE FROM agents WHERE username = ? RETURNING id", [username]);
      if (!agent) return false;
      await tx.run(DELETE_AGENT_SESSIONS, [agent.id]);
      return true;
    });
  }

  async deleteAgentSessions(agentId: string): Promise<void> {
    await this.#driver.run(DELETE_AGENT_SESSIONS, [agentId]);
  }

  async liveSessions(tokenHashes: readonly string[], now: number): Promise<Set<string>> {
    const rows = await this.#whereIn(
      (marks) => `SELECT token_hash FROM agent_sessions WHERE expires_at > ? AND token_hash IN (${marks})`,
      tokenHashes,
      [now],
    );
    return new Set(rows.map((r) => String(r.token_hash)));
  }

  /**
   * The rows of `sql(marks)` for a list of values, in `IN` lists of at most {@linkcode IN_LIST_MAX}; `before` are
   * the parameters that come ahead of the list. Repeated values are asked for once.
   */
  async #whereIn(
    sql: (marks: string) => string,
    values: readonly string[],
    before: SqlValue[] = [],
  ): Promise<Row[]> {
    const unique = [...new Set(values)];
    const rows: Row[] = [];
    for (let i = 0; i < unique.length; i += IN_LIST_MAX) {
      const { marks, params } = inList(unique.slice(i, i + IN_LIST_MAX));
      rows.push(...await this.#driver.query(sql(marks), [...before, ...params]));
    }
    return rows;
  }

  async agentsByIds(ids: readonly string[]): Promise<Map<string, AgentRecord>> {
    const rows = await this.#whereIn((marks) => `SELECT * FROM agents WHERE id IN (${marks})`, ids);
    return new Map(rows.map((r) => [r.id as string, toAgent(r)]));
  }

  async visitorsByIds(ids: readonly string[]): Promise<Map<string, VisitorRecord>> {
    const rows = await this.#whereIn((marks) => `SELECT * FROM visitors WHERE id IN (${marks})`, ids);
    return new Map(rows.map((r) => [r.id as string, toVisitor(r)]));
  }

  async lastMessages(streams: readonly string[]): Promise<Map<string, StoredMessage>> {
    const rows = await this.#whereIn(
      (marks) =>
        `SELECT m.* FROM messages m JOIN (SELECT stream, MAX(seq) AS seq FROM messages WHERE stream IN (${marks})
         GROUP BY stream) last ON m.stream = last.stream AND m.seq = last.seq`,
      streams,
    );
    return new Map(rows.map((r) => [r.stream as string, toMessage(r)]));
  }

  async unreadCounts(conversationIds: readonly string[]): Promise<Map<string, number>> {
    const rows = await this.#whereIn(
      (marks) =>
        `SELECT c.id AS id, COUNT(*) AS n FROM conversations c JOIN messages m
         ON m.stream = 'conv:' || c.id AND m.seq > c.agent_read_seq AND m.from_role = 'visitor'
         WHERE c.id IN (${marks}) GROUP BY c.id`,
      conversationIds,
    );
    return new Map(rows.map((r) => [r.id as string, Number(r.n)]));
  }

  async assignedCounts(): Promise<Map<string, number>> {
    const rows = await this.#driver.query(
      "SELECT agent_id, COUNT(*) AS n FROM conversations WHERE status = 'assigned' GROUP BY agent_id",
    );
    return new Map(rows.map((r) => [r.agent_id as string, Number(r.n)]));
  }

  async createSession(tokenHash: string, agentId: string, expiresAt: number): Promise<void> {
    await this.#driver.run("INSERT INTO agent_sessions (token_hash, agent_id, expires_at) VALUES (?, ?, ?)", [
      tokenHash,
      agentId,
      expiresAt,
    ]);
  }

  async sessionAgent(tokenHash: string, now: number): Promise<string | undefined> {
    const r = await this.#one("SELECT agent_id FROM agent_sessions WHERE token_hash = ? AND expires_at > ?", [
      tokenHash,
      now,
    ]);
    return r ? String(r.agent_id) : undefined;
  }

  async deleteSession(tokenHash: string): Promise<void> {
    await this.#driver.run("DELETE FROM agent_sessions WHERE token_hash = ?", [tokenHash]);
  }

  async createVisitor(tokenHash: string): Promise<VisitorRecord> {
    await this.#driver.run(
      "INSERT INTO visitors (id, token_hash, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
      [visitorIdFor(tokenHash), tokenHash, Date.now()],
    );
    return (await this.visitorByToken(tokenHash))!;
  }

  visitorByToken(tokenHash: string): Promise<VisitorRecord | undefined> {
    return this.#find(toVisitor, "SELECT * FROM visitors WHERE token_hash = ?", [tokenHash]);
  }

  visitorById(id: string): Promise<VisitorRecord | undefined> {
    return this.#find(toVisitor, "SELECT * FROM visitors WHERE id = ?", [id]);
  }

  async updateVisitor(id: string, profile: VisitorProfile): Promise<void> {
    const columns: [string, SqlValue][] = [];
    if (profile.name !== undefined) columns.push(["name", profile.name]);
    if (profile.email !== undefined) columns.push(["email", profile.email]);
    if (profile.verified !== undefined) columns.push(["verified", profile.verified ? 1 : 0]);
    if (profile.attributes !== undefined) columns.push(["attributes", JSON.stringify(profile.attributes)]);
    if (profile.context !== undefined) columns.push(["context", JSON.stringify(profile.context)]);
    if (columns.length === 0) return;
    // Column names come from the list above, never from the caller.
    await this.#driver.run(
      `UPDATE visitors SET ${columns.map(([c]) => `${c} = ?`).join(", ")} WHERE id = ?`,
      [...columns.map(([, v]) => v), id],
    );
  }

  moveConversations(fromVisitorId: string, toVisitorId: string): Promise<number> {
    // The partial unique index keeps one open conversation per visitor: the open one moves only into none.
    return this.#driver.run(
      `UPDATE conversations SET visitor_id = ? WHERE visitor_id = ? AND (status = 'closed' OR NOT EXISTS (
         SELECT 1 FROM conversations o WHERE o.visitor_id = ? AND o.status <> 'closed'))`,
      [toVisitorId, fromVisitorId, toVisitorId],
    );
  }

  async openConversation(
    visitorId: string,
    lastAgentId: string | null,
    emit?: Emit<ConversationRecord>,
    source: ConversationRecord["source"] = "chat",
  ): Promise<{ conversation: ConversationRecord; created: boolean }> {
    const now = Date.now();
    // The partial unique index conversations_one_open turns a second open conversation into a no-op.
    const inserted = await this.#changeConversation(
      `INSERT INTO conversations (id, visitor_id, status, last_agent_id, created_at, updated_at, source)
       VALUES (?, ?, 'queued', ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING *`,
      [newId(), visitorId, lastAgentId, now, now, source],
      emit,
    );
    if (inserted) return { conversation: inserted, created: true };
    const open = await this.openConversationOf(visitorId);
    // Closed between the insert and the read (another instance): try again.
    return open
      ? { conversation: open, created: false }
      : this.openConversation(visitorId, lastAgentId, emit, source);
  }

  conversation(id: string): Promise<ConversationRecord | undefined> {
    return this.#find(toConversation, "SELECT * FROM conversations WHERE id = ?", [id]);
  }

  openConversationOf(visitorId: string): Promise<ConversationRecord | undefined> {
    return this.#find(
      toConversation,
      "SELECT * FROM conversations WHERE visitor_id = ? AND status <> 'closed' ORDER BY created_at DESC LIMIT 1",
      [visitorId],
    );
  }

  latestConversationOf(visitorId: string): Promise<ConversationRecord | undefined> {
    return this.#find(
      toConversation,
      "SELECT * FROM conversations WHERE visitor_id = ? ORDER BY created_at DESC LIMIT 1",
      [visitorId],
    );
  }

  async conversations(
    f: {
      status?: ConversationStatus;
      agentId?: string;
      visitorId?: string;
      visibleTo?: string;
      limit: number;
    },
  ): Promise<ConversationRecord[]> {
    const status = f.status ?? null;
    const agentId = f.agentId ?? null;
    const visitorId = f.visitorId ?? null;
    const viewer = f.visibleTo ?? null;
    return (await this.#driver.query(
      `SELECT * FROM conversations
       WHERE (CAST(? AS TEXT) IS NULL OR status = ?) AND (CAST(? AS TEXT) IS NULL OR agent_id = ?)
       AND (CAST(? AS TEXT) IS NULL OR visitor_id = ?)
       AND (CAST(? AS TEXT) IS NULL OR status = 'queued' OR agent_id = ? OR EXISTS (
         SELECT 1 FROM conversation_holders h WHERE h.conversation_id = conversations.id AND h.agent_id = ?))
       ORDER BY created_at ASC LIMIT ?`,
      [status, status, agentId, agentId, visitorId, visitorId, viewer, viewer, viewer, f.limit],
    )).map(toConversation);
  }

  async searchConversations(
    q: string,
    f: { visibleTo?: string; limit: number },
  ): Promise<ConversationRecord[]> {
    // Message text through the word index (`search.ts`: Chinese as phrases of characters, prefixes); visitor
    // names and emails as substrings, LIKE's wildcards in the query escaped.
    const dialect = this.#driver.dialect;
    const match = matchExpression(dialect, q);
    const like = `%${q.toLowerCase().replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
    const viewer = f.visibleTo ?? null;
    return (await this.#driver.query(
      `SELECT c.* FROM conversations c LEFT JOIN visitors v ON v.id = c.visitor_id
       WHERE (LOWER(v.name) LIKE ? ESCAPE '\\' OR LOWER(v.email) LIKE ? ESCAPE '\\'${
        match === undefined
          ? ""
          : ` OR c.id IN (SELECT conversation_id FROM message_search WHERE ${MATCH_CONDITION[dialect]})`
      })
       AND (CAST(? AS TEXT) IS NULL OR c.status = 'queued' OR c.agent_id = ? OR EXISTS (
         SELECT 1 FROM conversation_holders h WHERE h.conversation_id = c.id AND h.agent_id = ?))
       ORDER BY c.updated_at DESC LIMIT ?`,
      [like, like, ...(match === undefined ? [] : [match]), viewer, viewer, viewer, f.limit],
    )).map(toConversation);
  }

  async queuedConversations(limit: number): Promise<ConversationRecord[]> {
    return (await this.#driver.query(
      `SELECT c.* FROM conversations c JOIN stream_heads h ON h.stream = 'conv:' || c.id
       WHERE c.status = 'queued' AND h.seq > 0 ORDER BY c.created_at ASC LIMIT ?`,
      [limit],
    )).map(toConversation);
  }

  async assignConversation(
    id: string,
    agentId: string,
    expect: { status: ConversationStatus; agentId?: string | null },
    emit?: Emit<ConversationRecord>,
  ): Promise<ConversationRecord | undefined> {
    const now = Date.now();
    // Who held a conversation may read it later (roles: agents see what they held): one transaction.
    return await this.#changeConversation(
      `UPDATE conversations SET status = 'assigned', agent_id = ?, last_agent_id = ?, assigned_at = ?, updated_at = ?
       WHERE id = ? AND status = ? AND (? = 0 OR agent_id IS NOT DISTINCT FROM ?) RETURNING *`,
      [
        agentId,
        agentId,
        now,
        now,
        id,
        expect.status,
        expect.agentId === undefined ? 0 : 1,
        expect.agentId ?? null,
      ],
      emit,
      async (tx) => {
        await tx.run(
          "INSERT INTO conversation_holders (conversation_id, agent_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
          [id, agentId],
        );
      },
    );
  }

  requeueConversation(id: string, agentId: string): Promise<ConversationRecord | undefined> {
    return this.#find(
      toConversation,
      `UPDATE conversations SET status = 'queued', agent_id = NULL, updated_at = ?
       WHERE id = ? AND status = 'assigned' AND agent_id = ? RETURNING *`,
      [Date.now(), id, agentId],
    );
  }

  closeConversation(id: string, emit?: Emit<ConversationRecord>): Promise<ConversationRecord | undefined> {
    const now = Date.now();
    return this.#changeConversation(
      "UPDATE conversations SET status = 'closed', closed_at = ?, updated_at = ? WHERE id = ? AND status <> 'closed' RETURNING *",
      [now, now, id],
      emit,
    );
  }

  async rateConversation(
    id: string,
    rating: number,
    comment: string | null,
    emit?: Emit<ConversationRecord>,
  ): Promise<void> {
    await this.#changeConversation(
      "UPDATE conversations SET rating = ?, rating_comment = ? WHERE id = ? RETURNING *",
      [rating, comment, id],
      emit,
    );
  }

  async markRead(id: string, side: "visitor" | "agent", upTo: number): Promise<void> {
    const col = side === "visitor" ? "visitor_read_seq" : "agent_read_seq";
    // Read marks never go back: an older mark changes nothing (no MAX/GREATEST, which the two spell apart).
    await this.#driver.run(`UPDATE conversations SET ${col} = ? WHERE id = ? AND ${col} < ?`, [
      upTo,
      id,
      upTo,
    ]);
  }

  async visitorExport(visitorId: string): Promise<VisitorExport | undefined> {
    const visitor = await this.visitorById(visitorId);
    if (!visitor) return undefined;
    const conversations = (await this.#driver.query(
      "SELECT * FROM conversations WHERE visitor_id = ? ORDER BY created_at",
      [visitorId],
    )).map(toConversation);
    const withMessages = await Promise.all(conversations.map(async (c) => ({
      ...c,
      messages: (await this.#driver.query("SELECT * FROM messages WHERE stream = ? ORDER BY seq", [
        `conv:${c.id}`,
      ])).map(toMessage),
    })));
    const streams = conversations.map((c) => `conv:${c.id}`);
    const uploads = (await this.#driver.query(
      `SELECT * FROM uploads WHERE owner = ?${
        streams.length ? ` OR stream IN (${marks(streams.length)})` : ""
      }
       ORDER BY created_at`,
      [`visitor:${visitorId}`, ...streams],
    )).map((r) => toUpload(r) as UploadRecord & { data: Uint8Array });
    return { visitor, conversations: withMessages, uploads };
  }

  async deleteVisitor(visitorId: string): Promise<Deleted | undefined> {
    return await this.#driver.transaction(async (tx) => {
      const ids = (await tx.query("SELECT id FROM conversations WHERE visitor_id = ?", [visitorId]))
        .map((r) => r.id as string);
      const deleted = await dropConversations(tx, ids, [visitorId]);
      deleted.uploads += await tx.run("DELETE FROM uploads WHERE owner = ?", [`visitor:${visitorId}`]);
      deleted.visitors = await tx.run("DELETE FROM visitors WHERE id = ?", [visitorId]);
      return deleted.visitors === 0 && deleted.conversations === 0 ? undefined : deleted;
    }).then(async (deleted) => {
      if (deleted?.messages) await this.#forgetDeletedWords();
      return deleted;
    });
  }

  /**
   * SQLite's FTS5 keeps a deleted row's words in its index segments until they are merged: merge them now, so
   * a deleted message leaves no word behind. (PostgreSQL deletes the tsvector with its row.)
   */
  async #forgetDeletedWords(): Promise<void> {
    if (this.#driver.dialect === "sqlite") {
      await this.#driver.run("INSERT INTO message_search (message_search) VALUES ('optimize')", []);
    }
  }

  async purgeClosedConversations(before: number): Promise<Deleted> {
    const total: Deleted = { conversations: 0, messages: 0, uploads: 0, visitors: 0 };
    // In batches, each its own transaction: a long purge never holds the database for long.
    for (;;) {
      const batch = await this.#driver.transaction(async (tx) => {
        const ids = (await tx.query(
          "SELECT id FROM conversations WHERE status = 'closed' AND closed_at < ? ORDER BY closed_at LIMIT ?",
          [before, PURGE_BATCH],
        )).map((r) => r.id as string);
        return { n: ids.length, deleted: await dropConversations(tx, ids, []) };
      });
      for (const k of ["conversations", "messages", "uploads"] as const) total[k] += batch.deleted[k];
      if (batch.n < PURGE_BATCH) break;
    }
    if (total.messages > 0) await this.#forgetDeletedWords();
    // Visitors left with nothing, and whose own uploads were never sent.
    total.uploads += await this.#driver.run(
      `DELETE FROM uploads WHERE stream IS NULL AND owner IN (SELECT 'visitor:' || v.id FROM visitors v
         WHERE v.created_at < ? AND NOT EXISTS (SELECT 1 FROM conversations c WHERE c.visitor_id = v.id))`,
      [before],
    );
    total.visitors += await this.#driver.run(
      `DELETE FROM visitors WHERE created_at < ?
         AND NOT EXISTS (SELECT 1 FROM conversations c WHERE c.visitor_id = visitors.id)`,
      [before],
    );
    return total;
  }

  async reportRows(from: number, to: number): Promise<ReportRow[]> {
    const rows = await this.#driver.query(
      `SELECT c.id, c.source, c.status, c.created_at, c.closed_at, COALESCE(c.agent_id, c.last_agent_id) AS agent,
         c.rating, f.ts AS first_at, f.from_id AS first_by
       FROM conversations c
       LEFT JOIN messages f ON f.stream = 'conv:' || c.id AND f.seq = (
         SELECT MIN(m.seq) FROM messages m WHERE m.stream = 'conv:' || c.id AND m.from_role = 'agent')
       WHERE c.created_at >= ? AND c.created_at < ?
       ORDER BY c.created_at`,
      [from, to],
    );
    return rows.map((r) => ({
      id: r.id as string,
      source: r.source === "offline" ? "offline" : "chat",
      status: r.status as ConversationStatus,
      createdAt: Number(r.created_at),
      closedAt: r.closed_at == null ? null : Number(r.closed_at),
      agentId: (r.agent as string | null) ?? null,
      rating: r.rating == null ? null : Number(r.rating),
      firstReplyAt: r.first_at == null ? null : Number(r.first_at),
      firstReplyBy: (r.first_by as string | null) ?? null,
    }));
  }

  async setting(key: string): Promise<unknown> {
    const rows = await this.#driver.query("SELECT value FROM settings WHERE key = ?", [key]);
    return rows.length ? JSON.parse(rows[0].value as string) : undefined;
  }

  async saveSetting(key: string, value: unknown): Promise<void> {
    await this.#driver.run(
      `INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
      [key, JSON.stringify(value), Date.now()],
    );
  }

  async appendAudit(entry: Omit<AuditEntry, "id" | "at">): Promise<AuditEntry> {
    // Strictly increasing on this instance, so entries keep their order and a page boundary (`before`) never
    // falls between two entries of one millisecond.
    this.#lastAuditAt = Math.max(Date.now(), this.#lastAuditAt + 1);
    const e: AuditEntry = { id: newId(), at: this.#lastAuditAt, ...entry };
    await this.#driver.run(
      "INSERT INTO audit_log (id, at, actor, action, target, detail, instance) VALUES (?, ?, ?, ?, ?, ?, ?)",
      [e.id, e.at, e.actor, e.action, e.target, JSON.stringify(e.detail), e.instance],
    );
    return e;
  }

  async auditLog(opts: { before?: number; limit: number }): Promise<AuditEntry[]> {
    return (await this.#driver.query(
      "SELECT * FROM audit_log WHERE at < ? ORDER BY at DESC, id DESC LIMIT ?",
      [opts.before ?? Number.MAX_SAFE_INTEGER, opts.limit],
    )).map(toAudit);
  }

  async cannedReplies(agentId: string): Promise<CannedReply[]> {
    return (await this.#driver.query(
      "SELECT * FROM canned_replies WHERE owner_id = '' OR owner_id = ? ORDER BY shortcut, owner_id",
      [agentId],
    )).map(toCanned);
  }

  addCannedReply(r: Omit<CannedReply, "id" | "createdAt">): Promise<CannedReply | undefined> {
    return this.#find(
      toCanned,
      `INSERT INTO canned_replies (id, owner_id, shortcut, text, created_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT DO NOTHING RETURNING *`,
      [newId(), r.ownerId, r.shortcut, r.text, Date.now()],
    );
  }

  cannedReply(id: string): Promise<CannedReply | undefined> {
    return this.#find(toCanned, "SELECT * FROM canned_replies WHERE id = ?", [id]);
  }

  async deleteCannedReply(id: string): Promise<boolean> {
    return (await this.#driver.run("DELETE FROM canned_replies WHERE id = ?", [id])) === 1;
  }

  async saveUpload(
    u: Omit<UploadRecord, "stream" | "createdAt"> & { data: Uint8Array },
  ): Promise<UploadRecord> {
    const createdAt = Date.now();
    await this.#driver.run(
      "INSERT INTO uploads (id, owner, stream, name, type, size, data, created_at) VALUES (?, ?, NULL, ?, ?, ?, ?, ?)",
      [u.id, u.owner, u.name, u.type, u.size, u.data, createdAt],
    );
    return { id: u.id, owner: u.owner, stream: null, name: u.name, type: u.type, size: u.size, createdAt };
  }

  upload(id: string): Promise<UploadRecord | undefined> {
    return this.#find(toUpload, "SELECT * FROM uploads WHERE id = ?", [id]);
  }

  /** One transaction: every id is checked, then all are marked, or none. */
  attachUploads(ids: readonly string[], owner: string, stream: string): Promise<Attachment[] | undefined> {
    const unique = [...new Set(ids)];
    if (unique.length === 0) return Promise.resolve([]);
    const { marks, params } = inList(unique);
    return this.#driver.transaction(async (tx) => {
      const rows = await tx.query(
        `SELECT id, owner, stream, name, type, size, created_at FROM uploads
         WHERE id IN (${marks}) AND owner = ? AND (stream IS NULL OR stream = ?)`,
        [...params, owner, stream],
      );
      if (rows.length !== unique.length) return undefined;
      await tx.run(`UPDATE uploads SET stream = ? WHERE id IN (${marks}) AND stream IS NULL`, [
        stream,
        ...params,
      ]);
      const byId = new Map(rows.map((r) => [r.id as string, toUpload(r)]));
      return ids.map((id) => {
        const { name, type, size } = byId.get(id)!;
        return { id, name, type, size };
      });
    });
  }

  async pruneUploads(before: number): Promise<number> {
    return await this.#driver.run("DELETE FROM uploads WHERE stream IS NULL AND created_at < ?", [before]);
  }

  async claimDeliveries(now: number, lockMs: number, limit: number): Promise<WebhookDelivery[]> {
    // The outer conditions are checked again on each row as it is locked (PostgreSQL re-reads a row another
    // transaction just claimed), so two instances never claim the same delivery.
    const due = "status = 'pending' AND next_at <= ? AND locked_until <= ?";
    return (await this.#driver.query(
      `UPDATE webhook_deliveries SET locked_until = ?
       WHERE ${due} AND id IN (SELECT id FROM webhook_deliveries WHERE ${due} ORDER BY next_at LIMIT ?)
       RETURNING *`,
      [now + lockMs, now, now, now, now, limit],
    )).map(toDelivery).sort((a, b) => a.createdAt - b.createdAt);
  }

  recordAttempt(
    id: string,
    attempt: DeliveryAttempt,
    outcome: { delivered: true } | { nextAt: number } | { failed: true },
  ): Promise<void> {
    return this.#driver.transaction(async (tx) => {
      await tx.run(
        `INSERT INTO webhook_attempts (delivery_id, attempt, at, status, error, duration_ms) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT DO NOTHING`,
        [id, attempt.attempt, attempt.at, attempt.status, attempt.error, attempt.durationMs],
      );
      const [status, nextAt, deliveredAt] = "delivered" in outcome
        ? ["delivered", null, attempt.at]
        : "nextAt" in outcome
        ? ["pending", outcome.nextAt, null]
        : ["failed", null, null];
      await tx.run(
        `UPDATE webhook_deliveries SET status = ?, attempts = ?, next_at = COALESCE(?, next_at), locked_until = 0,
         last_status = ?, last_error = ?, delivered_at = ? WHERE id = ?`,
        [status, attempt.attempt, nextAt, attempt.status, attempt.error, deliveredAt, id],
      );
    });
  }

  async deliveries(
    filter: { status?: WebhookDelivery["status"]; limit: number },
  ): Promise<WebhookDelivery[]> {
    return (await this.#driver.query(
      `SELECT * FROM webhook_deliveries WHERE (CAST(? AS TEXT) IS NULL OR status = ?)
       ORDER BY created_at DESC, id LIMIT ?`,
      [filter.status ?? null, filter.status ?? null, filter.limit],
    )).map(toDelivery);
  }

  delivery(id: string): Promise<WebhookDelivery | undefined> {
    return this.#find(toDelivery, "SELECT * FROM webhook_deliveries WHERE id = ?", [id]);
  }

  async deliveryAttempts(id: string): Promise<DeliveryAttempt[]> {
    return (await this.#driver.query(
      "SELECT * FROM webhook_attempts WHERE delivery_id = ? ORDER BY attempt",
      [id],
    )).map((r) => ({
      attempt: Number(r.attempt),
      at: Number(r.at),
      status: r.status === null || r.status === undefined ? null : Number(r.status),
      error: r.error ?? null,
      durationMs: Number(r.duration_ms),
    }));
  }

  async retryDelivery(id: string, now: number): Promise<boolean> {
    return (await this.#driver.run(
      "UPDATE webhook_deliveries SET status = 'pending', next_at = ?, locked_until = 0 WHERE id = ? AND status <> 'delivered'",
      [now, id],
    )) === 1;
  }

  async createSchedule(s: Omit<ScheduleRecord, "id" | "createdAt" | "lastFiredAt">): Promise<ScheduleRecord> {
    const r = await this.#one(
      `INSERT INTO schedules (id, topic, data, next_at, every_ms, cron, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
       RETURNING *`,
      [newId(), s.topic, s.data, s.nextAt, s.everyMs, s.cron, Date.now()],
    );
    return toSchedule(r!);
  }

  async listSchedules(): Promise<ScheduleRecord[]> {
    return (await this.#driver.query("SELECT * FROM schedules ORDER BY created_at")).map(toSchedule);
  }

  async deleteSchedule(id: string): Promise<boolean> {
    return (await this.#driver.run("DELETE FROM schedules WHERE id = ?", [id])) === 1;
  }

  async dueSchedules(now: number): Promise<ScheduleRecord[]> {
    return (await this.#driver.query(
      "SELECT * FROM schedules WHERE next_at IS NOT NULL AND next_at <= ? ORDER BY next_at",
      [now],
    )).map(toSchedule);
  }

  async claimSchedule(
    id: string,
    expectedNextAt: number,
    nextAt: number | null,
    firedAt: number,
  ): Promise<boolean> {
    const changed = await this.#driver.run(
      "UPDATE schedules SET next_at = ?, last_fired_at = ? WHERE id = ? AND next_at = ?",
      [nextAt, firedAt, id, expectedNextAt],
    );
    return changed === 1;
  }

  async secret(name: string): Promise<string> {
    await this.#driver.run("INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", [
      name,
      newSecret(),
    ]);
    return String((await this.#one("SELECT value FROM secrets WHERE name = ?", [name]))!.value);
  }

  async ready(): Promise<boolean> {
    try {
      await this.#driver.query("SELECT 1 AS ok");
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#flushTimer !== undefined) {
      clearImmediate(this.#flushTimer);
      this.#flushTimer = undefined;
      this.#flushing = this.#flushing.then(() => this.#flush());
    }
    await this.#flushing;
    await this.#driver.close();
  }
}
