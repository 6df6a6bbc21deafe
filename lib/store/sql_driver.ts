/**
 * What {@linkcode SqlStore} needs from a database: statements in, rows out, transactions, and the group commit of
 * appends, which each database does its own way. `sqlite.ts` and `postgres.ts` implement it.
 *
 * Every statement is written once, with `?` placeholders, in SQL both databases accept; the PostgreSQL driver
 * numbers them `$1`, `$2`, ….
 *
 * @module
 */
import type { AppendRequest } from "./group_commit.ts";
import type { StoredMessage } from "./store.ts";
import type { Row } from "./rows.ts";

export type { Row };

/** A statement parameter: what both databases bind the same way. */
export type SqlValue = string | number | bigint | null | Uint8Array;

/** Runs statements: on its own (autocommit) or inside a transaction. */
export interface SqlRunner {
  /** The rows a statement returns (a `SELECT`, or a write with `RETURNING`). */
  query(sql: string, params?: readonly SqlValue[]): Promise<Row[]>;
  /** Runs a write; resolves to how many rows it changed. */
  run(sql: string, params?: readonly SqlValue[]): Promise<number>;
}

/** One database under a {@linkcode SqlStore}. */
export interface SqlDriver extends SqlRunner {
  /** Which database: picks a migration's statement where the two differ (binary columns). */
  readonly dialect: "sqlite" | "postgres";
  /**
   * Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. `fn` must run its
   * statements through `tx` only (SQLite has one connection, and the others wait for the transaction to end).
   */
  transaction<T>(fn: (tx: SqlRunner) => Promise<T>): Promise<T>;
  /** Inside a migration's transaction: waits until no other process migrates this database, then holds it. */
  lockMigrations(tx: SqlRunner): Promise<void>;
  /**
   * Commits a batch of appends in one transaction, all or nothing, and returns one stored message per append in
   * order (a resend comes back with `duplicate` set). Numbering and statements come from `group_commit.ts`.
   */
  commitAppends(batch: readonly AppendRequest[]): Promise<StoredMessage[]>;
  close(): Promise<void>;
}
