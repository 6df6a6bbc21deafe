/**
 * Probe: what one group-committed chat append costs in `node:sqlite` (WAL, `synchronous=NORMAL`), and how long the
 * slowest commits take. Uses the schema of Switchboard's `messages` and `stream_heads` tables and the same two
 * statements per message (head upsert with `RETURNING`, then insert), `batch` messages per transaction.
 *
 * Usage: `deno run --allow-read --allow-write bench/probes/sqlite_commit.ts [batch] [transactions]`
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";

const batch = Number(Deno.args[0] ?? 38);
const transactions = Number(Deno.args[1] ?? 2000);
const dir = await Deno.makeTempDir({ prefix: "sqlite-probe-" });
try {
  const db = new DatabaseSync(`${dir}/probe.db`);
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA synchronous = NORMAL");
  db.exec("CREATE TABLE stream_heads (stream TEXT PRIMARY KEY, seq BIGINT NOT NULL)");
  db.exec(`CREATE TABLE messages (stream TEXT NOT NULL, seq BIGINT NOT NULL, ts BIGINT NOT NULL,
    from_id TEXT NOT NULL, from_name TEXT NOT NULL, from_role TEXT, text TEXT, data TEXT, client_msg_id TEXT,
    PRIMARY KEY (stream, seq))`);
  const head = db.prepare(
    "INSERT INTO stream_heads (stream, seq) VALUES (?, 1) ON CONFLICT (stream) DO UPDATE SET seq = stream_heads.seq + 1 RETURNING seq",
  );
  const insert = db.prepare(
    "INSERT INTO messages (stream, seq, ts, from_id, from_name, from_role, text, data, client_msg_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
  );
  const commits: number[] = [];
  const start = performance.now();
  for (let t = 0; t < transactions; t++) {
    db.exec("BEGIN IMMEDIATE");
    for (let k = 0; k < batch; k++) {
      const seq = Number(head.get("room:bench")!.seq);
      insert.run("room:bench", seq, Date.now(), "abcdefgh-1", "c1", null, `~t${seq}`, null, null);
    }
    const c = performance.now();
    db.exec("COMMIT");
    commits.push(performance.now() - c);
  }
  const perMessage = (performance.now() - start) * 1000 / (batch * transactions);
  commits.sort((a, b) => a - b);
  const at = (q: number) => commits[Math.min(commits.length - 1, Math.floor(q * commits.length))].toFixed(2);
  console.log(`${batch} messages × ${transactions} transactions: ${perMessage.toFixed(1)} µs per message`);
  console.log(
    `COMMIT ms: p50 ${at(0.5)}, p99 ${at(0.99)}, max ${at(1)}; over 5 ms: ${
      commits.filter((c) => c > 5).length
    }`,
  );
  db.close();
} finally {
  await Deno.remove(dir, { recursive: true });
}
