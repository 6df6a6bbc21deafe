/**
 * Attachments (issue #13): `POST /api/uploads` limits and type checks by the file's own bytes, files sent with
 * messages both ways, and downloads only for the conversation's visitor and the agents who may read it.
 */
import assert from "node:assert/strict";
import { get, startTestServer } from "./helpers.ts";
import { openAgent, openVisitor, write } from "./support_helpers.ts";
import { sniff } from "../lib/http/sniff.ts";

type Frame = Record<string, unknown>;

/** A 1×1 PNG. */
export const PNG_1X1 = Uint8Array.from(
  atob("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="),
  (c) => c.charCodeAt(0),
);

/** A ZIP archive's local file headers for these entry names (enough for sniffing). */
function zipOf(...names: string[]): Uint8Array<ArrayBuffer> {
  const parts: number[] = [];
  for (const name of names) {
    const header = new Uint8Array(30);
    header.set([0x50, 0x4b, 3, 4]);
    new DataView(header.buffer).setUint16(26, name.length, true);
    parts.push(...header, ...new TextEncoder().encode(name));
  }
  return Uint8Array.from(parts);
}

const upload = (server: { http(p: string): string }, auth: string, body: BodyInit, name: string) =>
  get(server.http(`/api/uploads?name=${encodeURIComponent(name)}`), {
    method: "POST",
    headers: { authorization: `Bearer ${auth}`, "content-type": "application/octet-stream" },
    body,
  });

Deno.test("sniffing: the type comes from the bytes, and the name gets that type's extension", () => {
  const text = new TextEncoder().encode("<html><script>alert(1)</script></html>");
  assert.equal(sniff(text, "cat.png")?.mime, "text/plain; charset=utf-8", "HTML is only ever text");
  assert.equal(sniff(PNG_1X1, "invoice.pdf")?.mime, "image/png");
  assert.equal(sniff(new TextEncoder().encode("%PDF-1.7\n…"), "x")?.mime, "application/pdf");
  assert.equal(
    sniff(zipOf("[Content_Types].xml", "_rels/.rels", "word/document.xml"), "a.docx")?.mime,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  );
  assert.equal(sniff(zipOf("[Content_Types].xml", "xl/workbook.xml"), "a")?.extensions[0], "xlsx");
  assert.equal(sniff(zipOf("payload.exe"), "report.docx"), undefined, "any other archive is refused");
  assert.equal(sniff(Uint8Array.from([0x4d, 0x5a, 0x90, 0, 3, 0, 0, 0]), "a.txt"), undefined, "binary");
  assert.equal(sniff(new TextEncoder().encode("a,b\n1,2\n"), "orders.csv")?.mime, "text/csv; charset=utf-8");
  assert.equal(
    sniff(new Uint8Array([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]), "old.xls")?.extensions[0],
    "xls",
  );
  assert.equal(sniff(new TextEncoder().encode('<svg onload="alert(1)"/>'), "a.svg")?.image, false);
});

Deno.test("uploads: size limit (413), refused types (415), auth (401), and safe names", async () => {
  await using server = await startTestServer({ maxUploadBytes: 4096 });
  const v = await openVisitor(server);
  const png = await upload(server, v.token, PNG_1X1, "../../etc/screen shot.PNG");
  assert.equal(png.status, 201, png.text);
  const u = JSON.parse(png.text).upload;
  assert.deepEqual([u.type, u.name, u.size, u.url], [
    "image/png",
    "screen shot.PNG",
    PNG_1X1.length,
    `/api/uploads/${u.id}`,
  ]);
  const big = await upload(server, v.token, new Uint8Array(5000).fill(65), "big.txt");
  assert.equal(big.status, 413);
  assert.match(JSON.parse(big.text).message, /4096 bytes/);
  const exe = await upload(server, v.token, Uint8Array.from([0x4d, 0x5a, 0x90, 0, 3, 0, 0, 0]), "a.png");
  assert.deepEqual([exe.status, JSON.parse(exe.text).error], [415, "unsupported_type"]);
  const zip = await upload(server, v.token, zipOf("evil.exe"), "report.docx");
  assert.equal(zip.status, 415);
  const html = await upload(server, v.token, "<script>alert(1)</script>", "x.html");
  assert.equal(html.status, 201);
  assert.deepEqual([JSON.parse(html.text).upload.type, JSON.parse(html.text).upload.name], [
    "text/plain; charset=utf-8",
    "x.html.txt",
  ]);
  assert.equal((await upload(server, v.token, "", "empty.txt")).status, 400);
  assert.equal((await get(server.http("/api/uploads"), { method: "POST", body: "hi" })).status, 401);
  assert.equal(
    (await upload(server, "v_forged.token", "hi", "a.txt")).status,
    401,
    "a token we never issued",
  );
  // multipart/form-data works too (curl -F, FormData).
  const form = new FormData();
  form.set("file", new File([PNG_1X1], "from-form.png"));
  const multi = await get(server.http("/api/uploads"), {
    method: "POST",
    headers: { authorization: `Bearer ${v.token}` },
    body: form,
  });
  assert.equal(multi.status, 201, multi.text);
  assert.equal(JSON.parse(multi.text).upload.name, "from-form.png");
  // The uploader may fetch its unsent file; nobody else may.
  const mine = await fetch(server.http(u.url), { headers: { authorization: `Bearer ${v.token}` } });
  assert.equal(mine.status, 200);
  assert.deepEqual(new Uint8Array(await mine.arrayBuffer()), PNG_1X1);
  const other = await openVisitor(server);
  assert.equal(
    (await get(server.http(u.url), { headers: { authorization: `Bearer ${other.token}` } })).status,
    403,
  );
  assert.equal(
    (await get(server.http(`/api/uploads/${crypto.randomUUID()}`), {
      headers: { authorization: `Bearer ${v.token}` },
    })).status,
    404,
  );
  await Promise.all([v.client.close(), other.client.close()]);
});

Deno.test("attachments both ways: only the conversation's visitor and agents who may read it can fetch them", async () => {
  await using server = await startTestServer({ demoAgents: ["alice:alice-pass-1", "bob:bob-pass-22"] });
  const alice = await openAgent(server, "alice", "alice-pass-1");
  const bob = await openAgent(server, "bob", "bob-pass-22");
  const v = await openVisitor(server);
  await write(v, "the order page is broken");
  const shot = JSON.parse((await upload(server, v.token, PNG_1X1, "broken.png")).text).upload;
  v.client.send({ type: "message", attachments: [shot.id], clientMsgId: "m2" });
  const sent = await v.client.next((f) => f.clientMsgId === "m2");
  assert.equal(sent.text, "", "a file alone needs no text");
  assert.deepEqual(sent.attachments, [{
    id: shot.id,
    name: "broken.png",
    type: "image/png",
    size: PNG_1X1.length,
    url: shot.url,
  }]);
  alice.client.send({ type: "accept", conversationId: v.conversationId });
  const accepted = await alice.client.nextType("accepted");
  assert.deepEqual(
    (accepted.messages as Frame[]).map((m) => (m.attachments as Frame[] | undefined)?.[0]?.id),
    [
      undefined,
      shot.id,
    ],
  );
  // Downloads: the holder (cookie or token) and the visitor; not bob, who never held it, nor another visitor.
  const as = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
  const byAgent = await fetch(server.http(shot.url), as(alice.token));
  assert.equal(byAgent.status, 200);
  assert.equal(byAgent.headers.get("content-type"), "image/png");
  assert.equal(byAgent.headers.get("x-content-type-options"), "nosniff");
  assert.match(byAgent.headers.get("content-security-policy") ?? "", /sandbox/);
  assert.match(byAgent.headers.get("content-disposition") ?? "", /^inline;/, "images show inline");
  await byAgent.body?.cancel();
  assert.equal((await get(server.http(shot.url), as(bob.token))).status, 403);
  const stranger = await openVisitor(server);
  assert.equal((await get(server.http(shot.url), as(stranger.token))).status, 403);
  // Someone else's upload cannot be sent either.
  await write(stranger, "hello");
  stranger.client.send({ type: "message", text: "look", attachments: [shot.id] });
  assert.equal((await stranger.client.nextType("error")).code, "not_found");

  // The agent sends a PDF; the visitor gets it, as a download.
  const pdf = JSON.parse(
    (await upload(server, alice.token, "%PDF-1.4\nrefund form", "refund"))
      .text,
  ).upload;
  assert.equal(pdf.name, "refund.pdf");
  alice.client.send({
    type: "message",
    conversationId: v.conversationId,
    text: "Please fill this in",
    attachments: [pdf.id],
  });
  const got = await v.client.next((f) => f.text === "Please fill this in");
  assert.equal((got.attachments as Frame[])[0].type, "application/pdf");
  const byVisitor = await fetch(server.http(pdf.url), as(v.token));
  assert.equal(byVisitor.status, 200);
  assert.match(byVisitor.headers.get("content-disposition") ?? "", /^attachment; filename="refund.pdf"/);
  assert.equal(await byVisitor.text(), "%PDF-1.4\nrefund form");
  const text = await get(
    server.http(`/api/support/conversations/${v.conversationId}/transcript?format=text`),
    as(alice.token),
  );
  assert.match(text.text, new RegExp(`\\(visitor\\): \\[file: broken\\.png, /api/uploads/${shot.id}\\]`));
  // Reconnecting, the visitor's history carries the attachments.
  const again = await openVisitor(server, v.token);
  assert.ok(
    (again.history.messages as Frame[]).some((m) =>
      (m.attachments as Frame[] | undefined)?.[0]?.id === pdf.id
    ),
  );
  // An attachment list that is not a list of upload ids is refused.
  v.client.send({ type: "message", text: "x", attachments: ["../../etc/passwd"] });
  assert.equal((await v.client.nextType("error")).code, "bad_message");
  await Promise.all([
    alice.client.close(),
    bob.client.close(),
    v.client.close(),
    stranger.client.close(),
    again.client.close(),
  ]);
});
