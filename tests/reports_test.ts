/**
 * Support reports against seeded conversations with known timings: first response to the first human reply,
 * resolution, CSAT, per agent and overall, days cut in the shop's time zone; JSON and CSV; who may read them.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { SqliteStore } from "../lib/store/sqlite.ts";
import { saveAgent } from "../lib/support/agents.ts";
import { dayStart, wallClock } from "../lib/calendar.ts";
import { get, startTestServer } from "./helpers.ts";
import { loginAgent } from "./support_helpers.ts";

const H = 3_600_000;
/** An instant given as Shanghai wall-clock time (UTC+8, no DST). */
const sh = (local: string) => Date.parse(`${local}+08:00`);

interface Seed {
  id: string;
  created: number;
  status: "queued" | "assigned" | "closed";
  agent?: string;
  closedAfterS?: number;
  rating?: number;
  source?: "offline";
  /** Messages: seconds after creation, and who. */
  messages: [number, "visitor" | "agent", string?][];
}

/** Writes conversations and their messages straight into the database file, with the times given. */
function seed(path: string, conversations: Seed[]) {
  const db = new DatabaseSync(path);
  try {
    for (const [i, c] of conversations.entries()) {
      db.prepare(
        `INSERT INTO conversations (id, visitor_id, status, agent_id, last_agent_id, created_at, updated_at,
           assigned_at, closed_at, rating, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        c.id,
        `v${i}`,
        c.status,
        c.agent ?? null,
        c.agent ?? null,
        c.created,
        c.created,
        c.agent ? c.created : null,
        c.closedAfterS === undefined ? null : c.created + c.closedAfterS * 1000,
        c.rating ?? null,
        c.source ?? "chat",
      );
      for (const [seq, [afterS, role, agent]] of c.messages.entries()) {
        db.prepare(
          `INSERT INTO messages (stream, seq, ts, from_id, from_name, from_role, text) VALUES (?, ?, ?, ?, ?, ?, ?)`,
        ).run(
          `conv:${c.id}`,
          seq + 1,
          c.created + afterS * 1000,
          role === "agent" ? agent! : `v${i}`,
          "x",
          role,
          "hi",
        );
      }
    }
  } finally {
    db.close();
  }
}

Deno.test("the calendar cuts days at local midnight, also on DST days", () => {
  assert.equal(new Date(dayStart("2026-11-02", "Asia/Shanghai")).toISOString(), "2026-11-01T16:00:00.000Z");
  assert.equal(new Date(dayStart("2026-03-29", "Europe/Paris")).toISOString(), "2026-03-28T23:00:00.000Z");
  assert.equal(new Date(dayStart("2026-10-25", "Europe/Paris")).toISOString(), "2026-10-24T22:00:00.000Z");
  assert.equal(
    new Date(dayStart("2026-03-08", "America/New_York")).toISOString(),
    "2026-03-08T05:00:00.000Z",
  );
  assert.deepEqual(wallClock(Date.parse("2026-11-02T15:59:59Z"), "Asia/Shanghai"), {
    date: "2026-11-02",
    weekday: "mon",
    minute: 23 * 60 + 59,
  });
});

Deno.test("reports count first response, resolution and CSAT per agent and overall, in JSON and CSV", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "switchboard-reports-" });
  try {
    const store = await SqliteStore.open(`${dataDir}/switchboard.db`);
    const alice = await saveAgent(store, "alice", "secret123", "Alice");
    const bob = await saveAgent(store, "bob", "secret456", "Bob");
    await store.close();
    const t0 = sh("2026-11-02T10:00:00");
    seed(`${dataDir}/switchboard.db`, [
      // Outside the range on both sides.
      {
        id: "c0",
        created: sh("2026-11-01T23:59:59"),
        status: "closed",
        agent: alice.id,
        messages: [[1, "agent", alice.id]],
      },
      { id: "c6", created: sh("2026-11-04T00:00:10"), status: "queued", messages: [[0, "visitor"]] },
      // 2026-11-02
      {
        id: "c1",
        created: t0,
        status: "closed",
        agent: alice.id,
        closedAfterS: 600,
        rating: 5,
        messages: [[0, "visitor"], [30, "agent", alice.id], [40, "agent", alice.id]],
      },
      {
        id: "c2",
        created: t0 + H,
        status: "closed",
        agent: alice.id,
        closedAfterS: 1200,
        rating: 4,
        messages: [[0, "visitor"], [5, "visitor"], [90, "agent", alice.id]],
      },
      // Alice answers first, then transfers it to Bob, who closes it.
      {
        id: "c3",
        created: t0 + 2 * H,
        status: "closed",
        agent: bob.id,
        closedAfterS: 300,
        rating: 2,
        messages: [[0, "visitor"], [60, "agent", alice.id], [200, "agent", bob.id]],
      },
      // 2026-11-03
      {
        id: "c4",
        created: sh("2026-11-03T09:00:00"),
        status: "assigned",
        agent: bob.id,
        messages: [[0, "visitor"], [120, "agent", bob.id]],
      },
      {
        id: "c5",
        created: sh("2026-11-03T23:59:30"),
        status: "queued",
        source: "offline",
        messages: [[0, "visitor"]],
      },
    ]);

    await using server = await startTestServer({ dataDir, apiKeys: ["report-key"] });
    const auth = { authorization: "Bearer report-key" };
    const url = "/api/support/reports?from=2026-11-02&to=2026-11-03&tz=Asia/Shanghai";
    const res = await get(server.http(url), { headers: auth });
    assert.equal(res.status, 200, res.text);
    const r = JSON.parse(res.text);
    assert.deepEqual([r.from, r.to, r.timeZone], ["2026-11-02", "2026-11-03", "Asia/Shanghai"]);
    assert.deepEqual(r.overall, {
      conversations: 5,
      answered: 4,
      closed: 3,
      offline: 1,
      firstResponse: { count: 4, medianS: 60, p90S: 120, averageS: 75 },
      resolution: { count: 3, medianS: 600, p90S: 1200 },
      csat: { count: 3, average: 3.67, distribution: { "1": 0, "2": 1, "3": 0, "4": 1, "5": 1 } },
    });
    const byName = Object.fromEntries(
      r.agents.map((a: { agent: { username: string } }) => [a.agent.username, a]),
    );
    assert.deepEqual(Object.keys(byName).sort(), ["alice", "bob"]);
    assert.deepEqual(byName.alice.agent, { id: alice.id, username: "alice", name: "Alice", role: "agent" });
    // Alice's first responses include c3's, which Bob resolved.
    assert.deepEqual(byName.alice.firstResponse, { count: 3, medianS: 60, p90S: 90, averageS: 60 });
    assert.deepEqual(byName.alice.resolution, { count: 2, medianS: 600, p90S: 1200 });
    assert.deepEqual([byName.alice.conversations, byName.alice.csat.average], [2, 4.5]);
    assert.deepEqual(byName.bob.firstResponse, { count: 1, medianS: 120, p90S: 120, averageS: 120 });
    assert.deepEqual(byName.bob.resolution, { count: 1, medianS: 300, p90S: 300 });
    assert.deepEqual([byName.bob.conversations, byName.bob.answered, byName.bob.csat.average], [2, 2, 2]);
    assert.deepEqual(r.days, [
      {
        date: "2026-11-02",
        conversations: 3,
        firstResponseMedianS: 60,
        resolutionMedianS: 600,
        csatAverage: 3.67,
      },
      {
        date: "2026-11-03",
        conversations: 2,
        firstResponseMedianS: 120,
        resolutionMedianS: null,
        csatAverage: null,
      },
    ]);

    // The same instants fall on other days in another zone: c6 (00:00:10 UTC+8 on the 4th) is the 3rd in UTC.
    const utc = JSON.parse(
      (await get(server.http("/api/support/reports?from=2026-11-03&to=2026-11-03&tz=UTC"), { headers: auth }))
        .text,
    );
    assert.equal(utc.overall.conversations, 3, "c4 (01:00 UTC), c5 (15:59:30 UTC) and c6 (16:00:10 UTC)");

    const csv = await get(server.http(`${url}&format=csv`), { headers: auth });
    assert.equal(csv.status, 200);
    assert.match(csv.headers.get("content-type") ?? "", /^text\/csv/);
    assert.match(
      csv.headers.get("content-disposition") ?? "",
      /attachment; filename="support-report-2026-11-02-2026-11-03.csv"/,
    );
    const lines = csv.text.trimEnd().split("\r\n");
    assert.equal(lines[0].split(",").slice(0, 4).join(","), "agent,name,conversations,answered");
    assert.deepEqual(lines.slice(1).map((l) => l.split(",")[0]), ["alice", "bob", "*"]);
    assert.equal(lines[3], "*,,5,4,3,1,60,120,75,600,1200,3,3.67,0,1,0,1,1");

    // Who may read it, and bad input.
    assert.equal((await get(server.http(url))).status, 401);
    const agentLogin = await loginAgent(server, "alice", "secret123");
    const asAgent = await get(server.http(url), {
      headers: { authorization: `Bearer ${agentLogin.body.token}` },
    });
    assert.equal(asAgent.status, 403, "an agent is not an admin");
    for (
      const bad of [
        "from=2026-11-05&to=2026-11-01",
        "from=2026-02-30&to=2026-03-01",
        "from=2025-01-01&to=2026-11-01",
        "from=2026-11-01&to=2026-11-02&tz=Mars/Base",
        "from=2026-11-01&to=2026-11-02&format=xml",
      ]
    ) {
      const b = await get(server.http(`/api/support/reports?${bad}`), { headers: auth });
      assert.equal(b.status, 400, bad);
      assert.equal(JSON.parse(b.text).error, "bad_request");
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});
