/**
 * Opens the configured store: PostgreSQL when a database URL is given (cluster mode), else SQLite in the data dir.
 *
 * @module
 */
import type { Store } from "./store.ts";
import { SqliteStore } from "./sqlite.ts";

/** Opens the store for a data dir or a database URL. */
export async function openStore(options: { dataDir: string; databaseUrl?: string }): Promise<Store> {
  if (options.databaseUrl) {
    const { PostgresStore } = await import("./postgres.ts");
    return await PostgresStore.open(options.databaseUrl);
  }
  await Deno.mkdir(options.dataDir, { recursive: true });
  return SqliteStore.open(`${options.dataDir}/switchboard.db`);
}
