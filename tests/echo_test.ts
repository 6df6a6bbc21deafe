import assert from "node:assert/strict";
import { startTestServer, TestClient } from "./helpers.ts";

Deno.test("echo socket returns multi-byte UTF-8 text unchanged", async () => {
  await using server = await startTestServer();
  await using client = await TestClient.open(server.ws("/ws/echo"));
  const text = "你好, Switchboard! 👋🏽 ñ — \u0000 end";
  client.send(text);
  assert.equal(await client.next(), text);
});

Deno.test("echo socket returns binary frames byte for byte", async () => {
  await using server = await startTestServer();
  await using client = await TestClient.open(server.ws("/ws/echo"));
  const bytes = new Uint8Array(70_000).map((_, i) => (i * 31 + 7) % 256);
  client.send(bytes);
  const got = await client.next() as unknown as ArrayBuffer;
  assert.ok(got instanceof ArrayBuffer, `expected a binary frame, got ${typeof got}`);
  assert.deepEqual(new Uint8Array(got), bytes);
});

Deno.test("echo socket keeps 1000 pipelined frames in order", async () => {
  await using server = await startTestServer();
  await using client = await TestClient.open(server.ws("/ws/echo"));
  for (let i = 0; i < 1000; i++) client.send(`frame ${i}`);
  for (let i = 0; i < 1000; i++) assert.equal(await client.next(), `frame ${i}`);
});

Deno.test("every seed echo alias echoes", async () => {
  await using server = await startTestServer();
  for (const path of ["/md_admin/test_socket", "/test_socket"]) {
    await using client = await TestClient.open(server.ws(path));
    client.send(`via ${path}`);
    assert.equal(await client.next(), `via ${path}`);
  }
});

Deno.test("a frame over --max-message-bytes closes only that socket with 1009", async () => {
  await using server = await startTestServer({ maxMessageBytes: 1024 });
  await using big = await TestClient.open(server.ws("/ws/echo"));
  await using other = await TestClient.open(server.ws("/ws/echo"));
  big.send("x".repeat(1025));
  const closed = await big.closed;
  assert.equal(closed.code, 1009);
  other.send("still here");
  assert.equal(await other.next(), "still here");
  // Exactly at the limit is fine, counted in UTF-8 bytes (3 bytes each).
  other.send("€".repeat(341));
  assert.equal(await other.next(), "€".repeat(341));
});

Deno.test("a peer that never answers pings is dropped after --idle-timeout", async () => {
  await using server = await startTestServer({ idleTimeoutS: 2 });
  // A raw TCP client completes the handshake and then never reads or answers a ping: a dead peer.
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  try {
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    await conn.write(
      new TextEncoder().encode(
        `GET /ws/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ),
    );
    const started = performance.now();
    const buf = new Uint8Array(4096);
    let first = "";
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      if (!first) first = new TextDecoder().decode(buf.subarray(0, n));
    }
    const ms = performance.now() - started;
    assert.match(first, /^HTTP\/1\.1 101/);
    assert.ok(ms > 1500 && ms < 4500, `dropped after about 2 s, took ${Math.round(ms)} ms`);
    assert.equal(server.running.app.ctx.hub.size, 0, "the hub forgot the dead socket");
  } finally {
    conn.close();
  }
});
