/**
 * The cluster store: {@linkcode SqlStore} on PostgreSQL through the `postgres` npm client. This module holds only
 * what is PostgreSQL's own: the connection pool, `?` placeholders numbered `$1…`, the advisory lock that lets one
 * instance migrate at a time, and the group commit.
 *
 * Per-stream seqs come from a row in `stream_heads` updated inside the append transaction, so they keep
 * increasing across instances. Appends made in one event-loop turn share one transaction (group commit) of a few
 * round trips: one resend lookup, one head update per stream, one multi-row insert.
 *
 * @module
 */
import postgres from "postgres";
import {
  type AppendRequest,
  BatchPlan,
  deliveryParams,
  INSERT_DELIVERY,
  MESSAGE_COLUMNS,
} from "./group_commit.ts";
import type { Row, SqlDriver, SqlRunner, SqlValue } from "./sql_driver.ts";
import { SqlStore } from "./sql_store.ts";
import type { StoredMessage } from "./store.ts";
import { toMessage } from "./rows.ts";
import { indexTerms } from "./search.ts";

/** A parameter of this module's own statements: also text arrays (`unnest`), which may hold nulls. */
type PgValue = SqlValue | readonly (string | null)[];

/**
 * Statements with `?` as PostgreSQL wants them. The store's statements are a fixed set (its `IN` lists come in
 * a few lengths), so the cache stays small.
 */
const numberedCache = new Map<string, string>();

/** `?` → `$1`, `$2`, … outside quoted literals (the statements hold no `?` operator). */
function numbered(sql: string): string {
  let out = numberedCache.get(sql);
  if (out === undefined) {
    let n = 0;
    out = sql.replace(/'(?:[^']|'')*'|\?/g, (m) => m === "?" ? `$${++n}` : m);
    numberedCache.set(sql, out);
  }
  return out;
}

/** Runs `?` statements on the pool or in one transaction. */
/** A statement with a list of placeholders whose length varies. */
const VARIABLE_LIST = /\bIN \(\?/i;

class PgRunner implements SqlRunner {
  #sql: postgres.Sql | postgres.TransactionSql;

  constructor(sql: postgres.Sql | postgres.TransactionSql) {
    this.#sql = sql;
  }

  #unsafe(sql: string, params: readonly PgValue[]) {
    // Named prepared statements: PostgreSQL parses and plans each of our statements once per connection. Not
    // for `IN (?, ?, …)` lists, whose text changes with their length (each would stay prepared).
    return this.#sql.unsafe(numbered(sql), params as postgres.ParameterOrJSON<never>[], {
      prepare: !VARIABLE_LIST.test(sql),
    });
  }

  async query(sql: string, params: readonly PgValue[] = []): Promise<Row[]> {
    return await this.#unsafe(sql, params);
  }

  async run(sql: string, params: readonly PgValue[] = []): Promise<number> {
    return (await this.#unsafe(sql, params)).count;
  }
}

/** {@linkcode RESERVE_SEQS} for many streams: parameters are the streams and their counts, as arrays. */
const RESERVE_SEQS_MANY = `INSERT INTO stream_heads (stream, seq)
  SELECT s, n FROM unnest(?::text[], ?::bigint[]) AS k(s, n) ORDER BY s
  ON CONFLICT (stream) DO UPDATE SET seq = stream_heads.seq + excluded.seq RETURNING stream, seq`;

/** The PostgreSQL array type of each `messages` column. */
const COLUMN_ARRAYS = MESSAGE_COLUMNS.map((c) => (c === "seq" || c === "ts" ? "bigint[]" : "text[]"));
/** Inserts message rows given as one array per column ({@linkcode MESSAGE_COLUMNS} order). */
const INSERT_MESSAGES = `INSERT INTO messages (${MESSAGE_COLUMNS.join(", ")})
  SELECT * FROM unnest(${COLUMN_ARRAYS.map((t) => `?::${t}`).join(", ")})`;
/** {@linkcode INSERT_MESSAGES}, and the word index rows (ids, seqs, terms) in the same statement. */
const INSERT_MESSAGES_AND_SEARCH = `WITH stored AS (${INSERT_MESSAGES})
  INSERT INTO message_search (conversation_id, seq, terms)
  SELECT id, seq, CAST(terms AS tsvector) FROM unnest(?::text[], ?::bigint[], ?::text[]) AS s(id, seq, terms)`;

/** A row value as an array element: seqs and times as text (bigint arrays), the rest as it is. */
const pgArrayValue = (v: SqlValue): string | null =>
  v === null ? null : typeof v === "number" || typeof v === "bigint" ? String(v) : (v as string);

/** A {@linkcode SqlDriver} on a PostgreSQL pool. */
export class PostgresDriver extends PgRunner implements SqlDriver {
  readonly dialect = "postgres";
  #sql: postgres.Sql;

  /** Connects lazily (the first statement opens the pool). */
  constructor(url: string) {
    const sql = postgres(url, { max: 10, onnotice: () => {}, connect_timeout: 10, idle_timeout: 60 });
    super(sql);
    this.#sql = sql;
  }

  transaction<T>(fn: (tx: SqlRunner) => Promise<T>): Promise<T> {
    return this.#sql.begin((tx) => fn(new PgRunner(tx))) as Promise<T>;
  }

  /** A transaction-scoped advisory lock: concurrent starts of a cluster migrate one after the other. */
  async lockMigrations(tx: SqlRunner): Promise<void> {
    await tx.query("SELECT pg_advisory_xact_lock(727274)");
  }

  /**
   * One lookup for every client id in the batch (`unnest`), one head update per stream to reserve its block of
   * seqs (the row lock orders instances), one multi-row insert: a few round trips per batch, not two per message.
   * Two instances storing the same resend at once collide on the unique index; the batch then retries row by row
   * and the second one finds the first.
   */
  commitAppends(batch: readonly AppendRequest[]): Promise<StoredMessage[]> {
    return this.#sql.begin(async (sql) => {
      const tx = new PgRunner(sql);
      const plan = new BatchPlan(batch);
      const keys = plan.resends;
      const earlier = keys.length === 0 ? [] : await tx.query(
        `SELECT m.* FROM messages m JOIN unnest(?::text[], ?::text[]) AS k(stream, cid)
         ON m.stream = k.stream AND m.client_msg_id = k.cid`,
        [keys.map((k) => k.stream), keys.map((k) => k.clientMsgId)],
      );
      // Every stream's seqs in one statement (one round trip, however many conversations the batch touches),
      // head rows locked in stream order, so two instances' batches cannot deadlock on them.
      const counts = [...plan.counts(earlier.map(toMessage))];
      const heads = new Map<string, number>();
      const reserved = await tx.query(RESERVE_SEQS_MANY, [
        counts.map(([stream]) => stream),
        counts.map(([, count]) => String(count)),
      ]);
      for (const r of reserved) heads.set(r.stream as string, Number(r.seq));
      const { results, rows, search, deliveries } = plan.number(heads);
      // One statement for the rows and their word index, whatever the batch size: columns as arrays.
      const columns = MESSAGE_COLUMNS.map((_, i) => rows.map((row) => pgArrayValue(row[i])));
      if (search.length === 0) await tx.run(INSERT_MESSAGES, columns);
      else {
        await tx.run(INSERT_MESSAGES_AND_SEARCH, [
          ...columns,
          search.map((r) => r[0]),
          search.map((r) => String(r[1])),
          search.map((r) => indexTerms("postgres", r[2])),
        ]);
      }
      // Sent together: the client pipelines them on the transaction's connection.
      await Promise.all(deliveries.map((d) => tx.run(INSERT_DELIVERY, deliveryParams(d))));
      return results;
    }) as Promise<StoredMessage[]>;
  }

  close(): Promise<void> {
    return this.#sql.end({ timeout: 2 });
  }
}

/** The {@linkcode SqlStore} on PostgreSQL (cluster mode). */
export class PostgresStore extends SqlStore {
  /** Connects and applies migrations (under an advisory lock, so concurrent starts apply them once). */
  static async open(url: string): Promise<PostgresStore> {
    return await SqlStore.migrated(new PostgresStore(new PostgresDriver(url)));
  }
}
