/**
 * The WAL checkpointer of an embedded store, run in a worker (`sqlite.ts` starts it). A checkpoint copies the
 * WAL into the database file and fsyncs it: on the event loop's thread that stalled every socket for ~6 ms four
 * times a second under load (issue #15, measured in docs/benchmarks.md). Here it runs on its own thread with its
 * own connection; a passive checkpoint never blocks the writer on the main thread, it copies what it can.
 *
 * Messages: `{path, everyMs}` starts it (answer `{ready: true}`), `{stop: true}` ends it (answer
 * `{stopped: true}` after the connection is closed).
 *
 * @module
 */
/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
import { DatabaseSync } from "node:sqlite";

let db: DatabaseSync | undefined;
let timer: ReturnType<typeof setInterval> | undefined;

self.onmessage = (event: MessageEvent<{ path?: string; everyMs?: number; stop?: boolean }>) => {
  const { path, everyMs, stop } = event.data;
  if (path !== undefined && db === undefined) {
    try {
      db = new DatabaseSync(path);
      db.exec("PRAGMA busy_timeout = 0");
    } catch (err) {
      self.postMessage({ error: String(err) });
      return;
    }
    timer = setInterval(() => {
      try {
        db!.exec("PRAGMA wal_checkpoint(PASSIVE)");
      } catch {
        // Busy or closing: the next tick tries again.
      }
    }, everyMs ?? 250);
    self.postMessage({ ready: true });
  }
  if (stop) {
    clearInterval(timer);
    try {
      db?.close();
    } catch { /* closed */ }
    db = undefined;
    self.postMessage({ stopped: true });
  }
};
