/**
 * Data requests and retention (issue #14): export everything of one visitor, delete a visitor with all of it,
 * and `--retention-days`. After each, every row of every table of the SQLite file is searched: nothing of the
 * visitor is left, and the other visitor's data is still there (so the search can find what it looks for).
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { get, spawnServer, startTestServer } from "./helpers.ts";
import { openAgent, openVisitor, write } from "./support_helpers.ts";
import { receiver, SECRET } from "./webhook_receiver.ts";

type Frame = Record<string, unknown>;

/**
 * Every row of every table (FTS5 shadow tables too) but those in `except`, as text: strings as they are, bytes
 * as Latin-1.
 */
function everything(path: string, except: string[] = []): string {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as {
      name: string;
    }[];
    const out: string[] = [];
    for (const { name } of tables) {
      if (except.includes(name)) continue;
      for (const row of db.prepare(`SELECT * FROM "${name}"`).all()) {
        for (const v of Object.values(row)) {
          out.push(v instanceof Uint8Array ? new TextDecoder("latin1").decode(v) : String(v));
        }
      }
    }
    return out.join("\n");
  } finally {
    db.close();
  }
}

/** A visitor who chats with alice, sends a file and gets a private note; returns what identifies it. */
async function chatWithFile(
  server: { http(p: string): string; ws(p: string): string },
  alice: Awaited<ReturnType<typeof openAgent>>,
  words: string,
) {
  const v = await openVisitor(server);
  v.client.send({ type: "profile", name: `Name ${words}`, email: `${words}@example.com` });
  await v.client.nextType("profile");
  const file = new TextEncoder().encode(`file ${words}\n`);
  const up = await get(server.http(`/api/uploads?name=${words}.txt`), {
    method: "POST",
    headers: { authorization: `Bearer ${v.token}`, "content-type": "application/octet-stream" },
    body: file,
  });
  assert.equal(up.status, 201, up.text);
  const uploadId = JSON.parse(up.text).upload.id as string;
  v.client.send({
    type: "message",
    text: `order ${words}`,
    attachments: [uploadId],
    clientMsgId: crypto.randomUUID(),
  });
  const own = await v.client.next((f) => f.type === "message" && f.from !== undefined);
  v.conversationId = own.conversationId as string;
  alice.client.send({ type: "accept", conversationId: v.conversationId });
  await alice.client.next((f) => f.type === "accepted" && (f.conversation as Frame).id === v.conversationId);
  alice.client.send({
    type: "message",
    conversationId: v.conversationId,
    text: `reply ${words}`,
    clientMsgId: `r-${words}`,
  });
  await v.client.next((f) => f.type === "message" && f.text === `reply ${words}`);
  alice.client.send({
    type: "note",
    conversationId: v.conversationId,
    text: `note ${words}`,
    clientMsgId: `n-${words}`,
  });
  await alice.client.next((f) => f.type === "note" && f.text === `note ${words}`);
  return { v, uploadId, file, visitorId: (own.from as Frame).id as string };
}

Deno.test("a visitor's data: exported as JSON without internal notes, then deleted leaving nothing behind", async () => {
  const hooks = receiver(() => 204);
  const dataDir = await Deno.makeTempDir({ prefix: "switchboard-gdpr-" });
  const goneIds: string[] = [];
  try {
    {
      await using server = await startTestServer({
        dataDir,
        apiKeys: ["ops-key"],
        demoAgents: ["alice:secret123"],
        webhookUrls: [hooks.url],
        webhookSecret: SECRET,
      });
      const alice = await openAgent(server, "alice", "secret123");
      const gone = await chatWithFile(server, alice, "quokkazebra");
      const kept = await chatWithFile(server, alice, "wombatyak");
      goneIds.push(gone.visitorId, gone.v.conversationId, gone.uploadId);
      await hooks.until((rs) => rs.filter((r) => r.event.type === "message.created").length >= 4);
      const key = { authorization: "Bearer ops-key" };

      // Export.
      const res = await get(server.http(`/api/support/visitors/${gone.visitorId}/export`), { headers: key });
      assert.equal(res.status, 200, res.text);
      assert.match(res.headers.get("content-disposition") ?? "", /attachment; filename="visitor-.+\.json"/);
      const data = JSON.parse(res.text);
      assert.deepEqual([data.visitor.name, data.visitor.email], [
        "Name quokkazebra",
        "quokkazebra@example.com",
      ]);
      assert.equal(data.conversations.length, 1);
      assert.deepEqual(
        (data.conversations[0].messages as Frame[]).map((m) => m.text),
        ["order quokkazebra", "reply quokkazebra"],
      );
      assert.equal(data.uploads.length, 1);
      assert.equal(data.uploads[0].id, gone.uploadId);
      assert.equal(atob(data.uploads[0].base64), "file quokkazebra\n");
      assert.equal(data.uploads[0].conversationId, gone.v.conversationId);
      assert.doesNotMatch(res.text, /note quokkazebra/, "private notes stay internal");
      assert.doesNotMatch(res.text, /wombatyak/, "nothing of another visitor");

      // Who may, and bad ids.
      const aliceKey = { authorization: `Bearer ${alice.token}` };
      assert.equal(
        (await get(server.http(`/api/support/visitors/${gone.visitorId}/export`), { headers: aliceKey }))
          .status,
        403,
      );
      assert.equal(
        (await get(server.http(`/api/support/visitors/${gone.visitorId}`), { method: "DELETE" })).status,
        401,
      );
      assert.equal(
        (await get(server.http("/api/support/visitors/nobody-here/export"), { headers: key })).status,
        404,
      );
      assert.equal(
        (await get(server.http("/api/support/visitors/bad%20id/export"), { headers: key })).status,
        400,
      );

      // Delete.
      await gone.v.client.close();
      const del = await get(server.http(`/api/support/visitors/${gone.visitorId}`), {
        method: "DELETE",
        headers: key,
      });
      assert.equal(del.status, 200, del.text);
      assert.deepEqual(JSON.parse(del.text).deleted, {
        conversations: 1,
        messages: 3,
        uploads: 1,
        visitors: 1,
      });
      assert.equal(
        (await get(server.http(`/api/support/visitors/${gone.visitorId}`), {
          method: "DELETE",
          headers: key,
        })).status,
        404,
      );
      assert.equal(
        (await get(server.http(`/api/uploads/${gone.uploadId}`), { headers: aliceKey })).status,
        404,
      );
      const log = JSON.parse((await get(server.http("/api/admin/audit"), { headers: key })).text);
      assert.deepEqual(
        log.entries.slice(0, 2).map((e: Frame) => [e.actor, e.action, e.target]),
        [["api-key", "visitor.delete", gone.visitorId], ["api-key", "visitor.export", gone.visitorId]],
      );
      const search = JSON.parse(
        (await get(server.http("/api/support/conversations?q=quokkazebra"), { headers: aliceKey })).text,
      );
      assert.deepEqual(search.conversations, []);
      await kept.v.client.close();
      await alice.client.close();
    }
    // Every row of the database file, after the server stopped.
    const rows = everything(`${dataDir}/switchboard.db`);
    for (const word of ["wombatyak", "note wombatyak", "file wombatyak"]) {
      assert.match(rows, new RegExp(word), word);
    }
    assert.doesNotMatch(rows, /quokkazebra/, "no row mentions the deleted visitor's words");
    // The audit log keeps who deleted which visitor id (accountability), and nothing else of it.
    const outsideAudit = everything(`${dataDir}/switchboard.db`, ["audit_log"]);
    for (const id of goneIds) assert.equal(outsideAudit.includes(id), false, `no row names ${id}`);
  } finally {
    await hooks.close();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("--retention-days purges closed conversations with their files and notes, and keeps open ones", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "switchboard-retention-" });
  try {
    let closedVisitor = "";
    {
      await using server = await startTestServer({ dataDir, demoAgents: ["alice:secret123"] });
      const alice = await openAgent(server, "alice", "secret123");
      const old = await chatWithFile(server, alice, "capybaraold");
      closedVisitor = old.visitorId;
      alice.client.send({ type: "close", conversationId: old.v.conversationId });
      await old.v.client.nextType("closed");
      const open = await openVisitor(server);
      await write(open, "still open llamaopen");
      await old.v.client.close();
      await open.client.close();
      await alice.client.close();
    }
    // Age the closed conversation and its visitor by 40 days, as time would.
    const db = new DatabaseSync(`${dataDir}/switchboard.db`);
    const shift = 40 * 86_400_000;
    db.prepare(
      "UPDATE conversations SET closed_at = closed_at - ?, created_at = created_at - ? WHERE status = 'closed'",
    )
      .run(shift, shift);
    db.prepare("UPDATE visitors SET created_at = created_at - ? WHERE id = ?").run(shift, closedVisitor);
    db.close();
    assert.match(everything(`${dataDir}/switchboard.db`), /capybaraold/);

    // The command users run; retention runs a second after start.
    await using server = await spawnServer([
      "--data-dir",
      dataDir,
      "--retention-days",
      "30",
      "--log-level",
      "info",
    ]);
    const deadline = Date.now() + 15_000;
    while (!server.lines.some((l) => l.includes('"support_retention"'))) {
      if (Date.now() > deadline) throw new Error(`no support_retention line:\n${server.lines.join("\n")}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const line = JSON.parse(server.lines.find((l) => l.includes('"support_retention"'))!);
    assert.deepEqual(
      [line.conversations, line.messages, line.uploads, line.visitors],
      [1, 3, 1, 1],
      JSON.stringify(line),
    );
    await server.stop();
    const rows = everything(`${dataDir}/switchboard.db`);
    assert.doesNotMatch(rows, /capybaraold/);
    assert.match(rows, /llamaopen/, "an open conversation is never purged");

    // A bad value is refused like any flag.
    const bad = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "main.ts", "--retention-days", "-3"],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(bad.code, 2);
    assert.match(new TextDecoder().decode(bad.stderr), /--retention-days/);
  } finally {
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});
