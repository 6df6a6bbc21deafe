/**
 * The embedded store: {@linkcode SqlStore} on SQLite through Deno's built-in `node:sqlite`, one file in the data
 * dir, WAL mode. This module holds only what is SQLite's own: the pragmas, the WAL checkpoints (on a worker
 * thread, `checkpointer.ts`), transactions
 * on one synchronous connection (statements from outside wait for them), and the group commit.
 *
 * Appends are group-committed: every append made in one event-loop turn goes into one transaction that runs
 * synchronously (no await between BEGIN and COMMIT, seqs numbered in JS), and each promise resolves only after
 * that transaction commits, so a message is durable before anyone sees it. With `synchronous=NORMAL` in WAL mode a
 * commit survives a process crash (`kill -9`); see docs/deploy.md for power loss.
 *
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import {
  type AppendRequest,
  BatchPlan,
  deliveryParams,
  FIND_BY_CLIENT_MSG_ID,
  INSERT_DELIVERY,
  INSERT_MESSAGE,
  RESERVE_SEQS,
} from "./group_commit.ts";
import type { Row, SqlDriver, SqlRunner, SqlValue } from "./sql_driver.ts";
import { indexTerms, INSERT_SEARCH } from "./search.ts";
import { SqlStore } from "./sql_store.ts";
import type { StoredMessage } from "./store.ts";
import { toMessage } from "./rows.ts";

/** How often the WAL is checkpointed. */
const CHECKPOINT_MS = 250;

/**
 * The transaction open on a file, shared by this process's connections to it. A transaction spans awaits (the
 * statements of `fn`): a statement of the same connection run meanwhile would join it, and another connection's
 * write would block the event loop on the file's lock (busy_timeout) that only this loop can release. So every
 * statement from outside waits for `open` to settle, and runs in the same step as its last check. With none open,
 * nothing waits: a statement runs at once, in the caller's turn.
 */
interface Gate {
  open: Promise<void> | undefined;
  connections: number;
}

/** The gate of each file this process has open, by its resolved path. */
const gates = new Map<string, Gate>();

/** A {@linkcode SqlDriver} on one SQLite file, through one synchronous connection. */
export class SqliteDriver implements SqlDriver {
  readonly dialect = "sqlite";
  #db: DatabaseSync;
  #stmts = new Map<string, StatementSync>();
  #checkpointer: Checkpointer | undefined;
  #gate: Gate;
  #gateKey: string | undefined;
  /** Runs statements at once: the open transaction's own. */
  #inside: SqlRunner = {
    query: (sql, params = []) => Promise.try(() => this.#all(sql, params)),
    run: (sql, params = []) => Promise.try(() => this.#changes(sql, params)),
  };

  /** Opens (creating when needed) `path`. Use `":memory:"` for a throwaway database. */
  constructor(path: string) {
    const db = new DatabaseSync(path);
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    db.exec("PRAGMA busy_timeout = 5000");
    // Checkpoints run inside COMMIT otherwise, stalling the event loop for tens of ms now and then; small
    // passive checkpoints on a timer keep each pause short.
    db.exec("PRAGMA wal_autocheckpoint = 0");
    db.exec("PRAGMA foreign_keys = ON");
    this.#db = db;
    // An in-memory database is this connection's alone; a file is shared with any other connection to it.
    const key = path === ":memory:" || path === "" ? undefined : realPath(path);
    this.#gate = (key === undefined ? undefined : gates.get(key)) ?? { open: undefined, connections: 0 };
    this.#gate.connections++;
    if (key !== undefined) gates.set(key, this.#gate);
    this.#gateKey = key;
    // An in-memory database has no WAL to checkpoint.
    this.#checkpointer = key === undefined ? undefined : new Checkpointer(db, key);
  }

  #stmt(sql: string): StatementSync {
    let s = this.#stmts.get(sql);
    if (!s) {
      s = this.#db.prepare(sql);
      this.#stmts.set(sql, s);
    }
    return s;
  }

  #all(sql: string, params: readonly SqlValue[]): Row[] {
    return this.#stmt(sql).all(...params);
  }

  #changes(sql: string, params: readonly SqlValue[]): number {
    return Number(this.#stmt(sql).run(...params).changes);
  }

  async query(sql: string, params: readonly SqlValue[] = []): Promise<Row[]> {
    while (this.#gate.open) await this.#gate.open;
    return this.#all(sql, params);
  }

  async run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    while (this.#gate.open) await this.#gate.open;
    return this.#changes(sql, params);
  }

  async transaction<T>(fn: (tx: SqlRunner) => Promise<T>): Promise<T> {
    while (this.#gate.open) await this.#gate.open;
    let end!: () => void;
    this.#gate.open = new Promise((resolve) => end = resolve);
    try {
      this.#db.exec("BEGIN IMMEDIATE");
      const out = await fn(this.#inside);
      this.#db.exec("COMMIT");
      return out;
    } catch (err) {
      this.#rollback();
      throw err;
    } finally {
      this.#gate.open = undefined;
      end();
    }
  }

  /** `BEGIN IMMEDIATE` already holds the database's write lock: no other process migrates meanwhile. */
  lockMigrations(): Promise<void> {
    return Promise.resolve();
  }

  /** One synchronous transaction: one head update per stream, then one prepared insert per message. */
  async commitAppends(batch: readonly AppendRequest[]): Promise<StoredMessage[]> {
    while (this.#gate.open) await this.#gate.open;
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const plan = new BatchPlan(batch);
      const find = this.#stmt(FIND_BY_CLIENT_MSG_ID);
      const earlier: StoredMessage[] = [];
      for (const k of plan.resends) {
        const row = find.get(k.stream, k.clientMsgId);
        if (row) earlier.push(toMessage(row));
      }
      const reserve = this.#stmt(RESERVE_SEQS);
      const heads = new Map<string, number>();
      for (const [stream, count] of plan.counts(earlier)) {
        heads.set(stream, Number(reserve.get(stream, count)!.seq));
      }
      const { results, rows, search, deliveries } = plan.number(heads);
      const insert = this.#stmt(INSERT_MESSAGE);
      for (const row of rows) insert.run(...row);
      if (search.length > 0) {
        const index = this.#stmt(INSERT_SEARCH.sqlite);
        for (const [id, seq, text] of search) index.run(id, seq, indexTerms("sqlite", text));
      }
      if (deliveries.length > 0) {
        const outbox = this.#stmt(INSERT_DELIVERY);
        for (const d of deliveries) outbox.run(...deliveryParams(d));
      }
      this.#db.exec("COMMIT");
      return results;
    } catch (err) {
      this.#rollback();
      throw err;
    }
  }

  #rollback(): void {
    try {
      this.#db.exec("ROLLBACK");
    } catch {
      // no transaction left to roll back
    }
  }

  async close(): Promise<void> {
    await this.#checkpointer?.stop();
    if (--this.#gate.connections === 0 && this.#gateKey) gates.delete(this.#gateKey);
    this.#db.close();
  }
}

/**
 * Passive WAL checkpoints every {@linkcode CHECKPOINT_MS}, on a worker thread with its own connection
 * (`checkpointer.ts`): a checkpoint fsyncs, and on this thread it stalled the event loop for ~6 ms each time.
 * Where no worker starts (a runtime without it), the same checkpoints run on a timer here.
 */
class Checkpointer {
  #worker: Worker | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #db: DatabaseSync;
  #stopped: Promise<void> | undefined;

  constructor(db: DatabaseSync, path: string) {
    this.#db = db;
    try {
      const worker = new Worker(new URL("./checkpointer.ts", import.meta.url).href, { type: "module" });
      worker.onerror = (event) => {
        event.preventDefault();
        this.#fallBack();
      };
      worker.onmessage = (event: MessageEvent<{ error?: string }>) => {
        if (event.data.error) this.#fallBack();
      };
      worker.postMessage({ path, everyMs: CHECKPOINT_MS });
      this.#worker = worker;
    } catch {
      this.#fallBack();
    }
  }

  #fallBack(): void {
    this.#worker?.terminate();
    this.#worker = undefined;
    if (this.#timer !== undefined || this.#stopped) return;
    this.#timer = setInterval(() => {
      try {
        this.#db.exec("PRAGMA wal_checkpoint(PASSIVE)");
      } catch {
        // busy or closed: the next tick tries again
      }
    }, CHECKPOINT_MS);
  }

  /** Ends the checkpoints; the worker closes its connection first (at most 2 s). */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      clearInterval(this.#timer);
      const worker = this.#worker;
      if (!worker) return;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        worker.onmessage = (event: MessageEvent<{ stopped?: boolean }>) => {
          if (event.data.stopped) resolve();
        };
        worker.onerror = (event) => {
          event.preventDefault();
          resolve();
        };
        timer = setTimeout(resolve, 2000);
        worker.postMessage({ stop: true });
      });
      clearTimeout(timer);
      worker.terminate();
    })();
    return this.#stopped;
  }
}

/** The file behind `path` (one name for every spelling of it), or `path` when it cannot be resolved. */
function realPath(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return path;
  }
}

/** The {@linkcode SqlStore} on one SQLite file. */
export class SqliteStore extends SqlStore {
  /** Opens (creating when needed) `path` and applies migrations. Use `":memory:"` for a throwaway store. */
  static async open(path: string): Promise<SqliteStore> {
    return await SqlStore.migrated(new SqliteStore(new SqliteDriver(path)));
  }
}
