/**
 * Schema migrations for SQLite and PostgreSQL alike, in SQL both accept, so the two schemas evolve together.
 * `SqlStore` records applied versions in `schema_migrations` and applies the rest at start.
 *
 * @module
 */

/**
 * A statement both databases accept, or one per database where they differ (binary columns, the word index); an
 * empty one is skipped.
 */
export type MigrationStatement = string | { sqlite: string; postgres: string };

/** One schema step. Never edit a released step; add a new one. */
export interface Migration {
  version: number;
  name: string;
  statements: MigrationStatement[];
  /** Then index the support messages already stored (`SqlStore` does it, with the words of `search.ts`). */
  backfill?: true;
}

/** Every migration, in order. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "streams, agents, visitors, conversations, schedules",
    statements: [
      `CREATE TABLE stream_heads (stream TEXT PRIMARY KEY, seq BIGINT NOT NULL)`,
      `CREATE TABLE messages (
        stream TEXT NOT NULL,
        seq BIGINT NOT NULL,
        ts BIGINT NOT NULL,
        from_id TEXT NOT NULL,
        from_name TEXT NOT NULL,
        from_role TEXT,
        text TEXT,
        data TEXT,
        client_msg_id TEXT,
        PRIMARY KEY (stream, seq)
      )`,
      `CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at BIGINT NOT NULL
      )`,
      `CREATE TABLE agent_sessions (
        token_hash TEXT PRIMARY KEY,
        agent_id TEXT NOT NULL,
        expires_at BIGINT NOT NULL
      )`,
      `CREATE TABLE visitors (
        id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL DEFAULT '',
        email TEXT NOT NULL DEFAULT '',
        created_at BIGINT NOT NULL
      )`,
      `CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        visitor_id TEXT NOT NULL,
        status TEXT NOT NULL,
        agent_id TEXT,
        last_agent_id TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        assigned_at BIGINT,
        closed_at BIGINT,
        rating INTEGER,
        rating_comment TEXT,
        visitor_read_seq BIGINT NOT NULL DEFAULT 0,
        agent_read_seq BIGINT NOT NULL DEFAULT 0
      )`,
      `CREATE INDEX conversations_status ON conversations (status, created_at)`,
      `CREATE INDEX conversations_visitor ON conversations (visitor_id, created_at)`,
      `CREATE TABLE schedules (
        id TEXT PRIMARY KEY,
        topic TEXT NOT NULL,
        data TEXT NOT NULL,
        next_at BIGINT,
        every_ms BIGINT,
        cron TEXT,
        created_at BIGINT NOT NULL,
        last_fired_at BIGINT
      )`,
      `CREATE INDEX schedules_next ON schedules (next_at)`,
    ],
  },
  {
    version: 2,
    name: "find resent messages by client id",
    statements: [`CREATE INDEX messages_client_msg ON messages (stream, client_msg_id)`],
  },
  {
    version: 3,
    name: "atomic creation: one open conversation per visitor, unique client ids, secrets, session lookup",
    statements: [
      // Older code could race into two open conversations for one visitor: keep the newest open.
      `UPDATE conversations SET status = 'closed', closed_at = updated_at
       WHERE status <> 'closed' AND EXISTS (
         SELECT 1 FROM conversations n WHERE n.visitor_id = conversations.visitor_id AND n.status <> 'closed'
           AND (n.created_at > conversations.created_at OR (n.created_at = conversations.created_at AND n.id > conversations.id)))`,
      `CREATE UNIQUE INDEX conversations_one_open ON conversations (visitor_id) WHERE status <> 'closed'`,
      // Likewise a resend could be stored twice: the later copy keeps its text and loses only its client id.
      `UPDATE messages SET client_msg_id = NULL
       WHERE client_msg_id IS NOT NULL AND EXISTS (
         SELECT 1 FROM messages e WHERE e.stream = messages.stream AND e.client_msg_id = messages.client_msg_id
           AND e.seq < messages.seq)`,
      `DROP INDEX messages_client_msg`,
      `CREATE UNIQUE INDEX messages_client_msg ON messages (stream, client_msg_id)`,
      `CREATE INDEX messages_stream_ts ON messages (stream, ts)`,
      `CREATE INDEX agent_sessions_agent ON agent_sessions (agent_id)`,
      `CREATE TABLE secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)`,
    ],
  },
  {
    version: 4,
    name: "visitors identified by the host application",
    statements: [
      `ALTER TABLE visitors ADD COLUMN verified INTEGER NOT NULL DEFAULT 0`,
      `ALTER TABLE visitors ADD COLUMN attributes TEXT`,
    ],
  },
  {
    version: 5,
    name: "agent roles, disabled agents, who held each conversation",
    statements: [
      `ALTER TABLE agents ADD COLUMN role TEXT NOT NULL DEFAULT 'agent'`,
      `ALTER TABLE agents ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0`,
      `CREATE TABLE conversation_holders (
        conversation_id TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        PRIMARY KEY (conversation_id, agent_id)
      )`,
      `CREATE INDEX conversation_holders_agent ON conversation_holders (agent_id)`,
      `INSERT INTO conversation_holders (conversation_id, agent_id)
       SELECT id, last_agent_id FROM conversations WHERE last_agent_id IS NOT NULL`,
    ],
  },
  {
    version: 6,
    name: "canned replies",
    statements: [
      `CREATE TABLE canned_replies (
        id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL,
        shortcut TEXT NOT NULL,
        text TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        UNIQUE (owner_id, shortcut)
      )`,
    ],
  },
  {
    version: 7,
    name: "visitor context",
    statements: [`ALTER TABLE visitors ADD COLUMN context TEXT`],
  },
  {
    version: 8,
    name: "uploads (attachments) kept in the store",
    statements: [
      // `stream` is where the upload was sent (a conversation); NULL while unsent, and unsent ones expire.
      {
        sqlite: `CREATE TABLE uploads (
          id TEXT PRIMARY KEY, owner TEXT NOT NULL, stream TEXT, name TEXT NOT NULL, type TEXT NOT NULL,
          size BIGINT NOT NULL, data BLOB NOT NULL, created_at BIGINT NOT NULL)`,
        postgres: `CREATE TABLE uploads (
          id TEXT PRIMARY KEY, owner TEXT NOT NULL, stream TEXT, name TEXT NOT NULL, type TEXT NOT NULL,
          size BIGINT NOT NULL, data BYTEA NOT NULL, created_at BIGINT NOT NULL)`,
      },
      `CREATE INDEX uploads_unsent ON uploads (created_at) WHERE stream IS NULL`,
      `CREATE INDEX uploads_stream ON uploads (stream)`,
      `ALTER TABLE messages ADD COLUMN attachments TEXT`,
    ],
  },
  {
    version: 9,
    name: "word index of support messages",
    statements: [
      {
        sqlite: `CREATE VIRTUAL TABLE message_search USING fts5(
          terms, conversation_id UNINDEXED, seq UNINDEXED, tokenize = 'unicode61')`,
        postgres: `CREATE TABLE message_search (
          conversation_id TEXT NOT NULL, seq BIGINT NOT NULL, terms TSVECTOR NOT NULL,
          PRIMARY KEY (conversation_id, seq))`,
      },
      { sqlite: "", postgres: `CREATE INDEX message_search_terms ON message_search USING GIN (terms)` },
    ],
    // Messages stored before the index existed are indexed once, here (the words are cut in `search.ts`).
    backfill: true,
  },
  {
    version: 10,
    name: "webhook outbox and delivery attempts",
    statements: [
      `CREATE TABLE webhook_deliveries (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        event TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at BIGINT NOT NULL,
        locked_until BIGINT NOT NULL DEFAULT 0,
        last_status INTEGER,
        last_error TEXT,
        delivered_at BIGINT
      )`,
      `CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_at)`,
      `CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at)`,
      `CREATE TABLE webhook_attempts (
        delivery_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        at BIGINT NOT NULL,
        status INTEGER,
        error TEXT,
        duration_ms INTEGER NOT NULL,
        PRIMARY KEY (delivery_id, attempt)
      )`,
    ],
  },
  {
    version: 11,
    name: "settings, offline conversations and the audit log",
    statements: [
      `CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at BIGINT NOT NULL
      )`,
      `ALTER TABLE conversations ADD COLUMN source TEXT NOT NULL DEFAULT 'chat'`,
      `CREATE INDEX conversations_created ON conversations (created_at)`,
      `CREATE TABLE audit_log (
        id TEXT PRIMARY KEY,
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL,
        instance TEXT NOT NULL
      )`,
      `CREATE INDEX audit_log_at ON audit_log (at)`,
    ],
  },
];
